"""Practice windows placed by each field's own phenology, and what happens in them.

- ``fallow``: from the harvest (EOS) of the field's main cycle of the year to
  the emergence (SOS) of its next cash crop: the next cycle whose peak reaches
  ``cash_peak_ratio`` of the main peak at least ``min_cash_interval_days`` after
  it (a weaker or earlier green-up in between is a cover crop, volunteers or a
  second-season crop, and belongs to the window). Without such a cycle in the data the
  window ends ``max_window_days`` after harvest or at the end of the data.
  Tillage shows here in residue (NDTI, BSI); cover crops as green (NDVI, EVI).
- ``fallow56``: the first 56 days after harvest (the window published
  cover-crop systems use).
- ``precrop``: from the previous cash crop's harvest (or the start of the data,
  at most ``max_window_days`` back) to the main crop's emergence: the winter
  before a spring crop, where its cover crop or its seedbed tillage shows.
- ``year``: permanent cover has no bare period in the year.

Windows are absolute times, so a season across the year boundary (southern
hemisphere) or two crops a year are handled like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regenmap.features.phenology import Cycles
from regenmap.features.spec import FeatureSpec


@dataclass(frozen=True)
class WindowOptions:
    """Thresholds of the practice windows (index units are unitless, times in days).

    Attributes
    ----------
    bare_ndvi
        NDVI below which a grid cell counts as bare (no green cover).
    bare_bsi
        BSI above which an observation counts as bare soil (with NDVI below ``bare_ndvi``).
    green_ndvi
        NDVI above which a cell counts as green cover.
    soil_ndvi
        NDVI of bare soil, the zero line of the green-cover integrals.
    cash_peak_ratio
        The next cash crop is the next cycle whose peak is at least this share of the main peak
        and comes at least ``min_cash_interval_days`` after it.
    min_cash_interval_days
        Green-ups peaking sooner than this after the main peak are inter-crop cover
        (cover crops, volunteers, a second-season millet), not the next cash crop.
    max_window_days
        Length of the fallow window when no next cash crop is in the data.
    early_days
        Length of the early post-harvest window (``fallow56``).
    """

    bare_ndvi: float = 0.3
    bare_bsi: float = 0.0
    green_ndvi: float = 0.4
    soil_ndvi: float = 0.2
    cash_peak_ratio: float = 0.8
    min_cash_interval_days: float = 200.0
    max_window_days: float = 330.0
    early_days: float = 56.0


def specs() -> list[FeatureSpec]:
    """Return the practice-window feature columns, in output order."""
    F, E, P, Y = "fallow", "fallow56", "precrop", "year"
    return [
        FeatureSpec("fallow_start_day", "days", "Start of the fallow window: harvest (EOS) of the "
                    "main cycle, days since the start of the agricultural year.", "ndvi", F),
        FeatureSpec("fallow_length_days", "days", "Length of the fallow window: harvest of the "
                    "main cycle to emergence of the next cash crop (or end of data/max length).",
                    "ndvi", F),
        FeatureSpec("fallow_closed", "flag", "1 if the fallow window ends at a detected next cash "
                    "crop, 0 if it was cut by the end of the data or max_window_days.", "ndvi", F),
        FeatureSpec("fallow_n_obs", "count", "Valid observations (kept acquisitions) inside the "
                    "fallow window.", "ndvi", F),
        FeatureSpec("fallow_ndti_min", "1", "Minimum NDTI in the fallow window (low: residue "
                    "removed or buried, i.e. tillage).", "ndti", F),
        FeatureSpec("fallow_ndti_drop", "1", "Largest fall of NDTI in the fallow window: highest "
                    "value before the minimum minus the minimum (a tillage event).", "ndti", F),
        FeatureSpec("fallow_ndti_mean", "1", "Mean NDTI in the fallow window.", "ndti", F),
        FeatureSpec("fallow_bsi_max", "1", "Maximum BSI in the fallow window.", "bsi", F),
        FeatureSpec("fallow_bare_share", "1", "Share of observations in the fallow window that "
                    "are bare soil (NDVI below bare_ndvi and BSI above bare_bsi).", "bsi", F),
        FeatureSpec("fallow_ndvi_mean", "1", "Mean NDVI in the fallow window.", "ndvi", F),
        FeatureSpec("fallow_ndvi_max", "1", "Maximum NDVI in the fallow window (cover crop or "
                    "weeds).", "ndvi", F),
        FeatureSpec("fallow_ndvi_greenup", "1", "Maximum green-up in the fallow window: highest "
                    "NDVI after the window minimum minus that minimum.", "ndvi", F),
        FeatureSpec("fallow_ndvi_integral", "NDVI*days", "Integral of NDVI above soil_ndvi over "
                    "the fallow window (green cover between cash crops).", "ndvi", F),
        FeatureSpec("fallow_evi_integral", "EVI*days", "Integral of EVI above 0.1 over the "
                    "fallow window.", "evi", F),
        FeatureSpec("fallow_green_days", "days", "Days of the fallow window with NDVI above "
                    "green_ndvi (length of green cover).", "ndvi", F),
        FeatureSpec("fallow56_ndvi_integral", "NDVI*days", "Integral of NDVI above soil_ndvi in "
                    "the 56 days after harvest.", "ndvi", E),
        FeatureSpec("fallow56_ndvi_max", "1", "Maximum NDVI in the 56 days after harvest.",
                    "ndvi", E),
        FeatureSpec("fallow56_green_days", "days", "Days with NDVI above green_ndvi in the 56 "
                    "days after harvest.", "ndvi", E),
        FeatureSpec("fallow56_ndti_min", "1", "Minimum NDTI in the 56 days after harvest.",
                    "ndti", E),
        FeatureSpec("precrop_length_days", "days", "Length of the pre-crop window: harvest of "
                    "the previous cash crop (or the start of the data, at most max_window_days "
                    "back) to emergence (SOS) of the main cycle.", "ndvi", P),
        FeatureSpec("precrop_n_obs", "count", "Valid observations inside the pre-crop window.",
                    "ndvi", P),
        FeatureSpec("precrop_ndvi_integral", "NDVI*days", "Integral of NDVI above soil_ndvi over "
                    "the pre-crop window (winter cover before a spring crop).", "ndvi", P),
        FeatureSpec("precrop_ndvi_max", "1", "Maximum NDVI in the pre-crop window.", "ndvi", P),
        FeatureSpec("precrop_green_days", "days", "Days of the pre-crop window with NDVI above "
                    "green_ndvi.", "ndvi", P),
        FeatureSpec("precrop_ndti_min", "1", "Minimum NDTI in the pre-crop window (seedbed "
                    "preparation buries residue).", "ndti", P),
        FeatureSpec("precrop_bare_share", "1", "Share of observations in the pre-crop window "
                    "that are bare soil (NDVI below bare_ndvi and BSI above bare_bsi).", "bsi", P),
        FeatureSpec("cover_longest_bare_days", "days", "Longest run of the agricultural year with "
                    "NDVI below bare_ndvi (0 for permanent cover).", "ndvi", Y),
        FeatureSpec("cover_bare_days", "days", "Days of the agricultural year with NDVI below "
                    "bare_ndvi.", "ndvi", Y),
        FeatureSpec("cover_green_share", "1", "Share of the agricultural year with NDVI above "
                    "green_ndvi.", "ndvi", Y),
        FeatureSpec("cover_ndvi_min", "1", "Minimum NDVI over the agricultural year (high: "
                    "permanent cover).", "ndvi", Y),
    ]


def _masked(y: np.ndarray | None, mask: np.ndarray) -> np.ndarray:
    if y is None:
        return np.full(mask.shape, np.nan)
    return np.where(mask & np.isfinite(y), y.astype(np.float64), np.nan)


def _nanreduce(x: np.ndarray, how: str) -> np.ndarray:
    ok = np.isfinite(x)
    has = ok.any(axis=1)
    if how == "min":
        r = np.where(ok, x, np.inf).min(axis=1)
    elif how == "max":
        r = np.where(ok, x, -np.inf).max(axis=1)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(ok, x, 0).sum(axis=1) / ok.sum(axis=1)
    return np.where(has, r, np.nan)


def _drop_before_min(x: np.ndarray) -> np.ndarray:
    """Per row: max of the cells up to the minimum's position, minus the minimum."""
    ok = np.isfinite(x)
    has = ok.any(axis=1)
    imin = np.argmin(np.where(ok, x, np.inf), axis=1)
    runmax = np.maximum.accumulate(np.where(ok, x, -np.inf), axis=1)
    r = np.arange(x.shape[0])
    return np.where(has, runmax[r, imin] - x[r, imin], np.nan)


def _rise_after_min(x: np.ndarray) -> np.ndarray:
    """Per row: max of the cells from the minimum's position on, minus the minimum."""
    ok = np.isfinite(x)
    has = ok.any(axis=1)
    imin = np.argmin(np.where(ok, x, np.inf), axis=1)
    revmax = np.maximum.accumulate(np.where(ok, x, -np.inf)[:, ::-1], axis=1)[:, ::-1]
    r = np.arange(x.shape[0])
    return np.where(has, revmax[r, imin] - x[r, imin], np.nan)


def longest_run_days(flag: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Longest run of True cells per row, in days (sum of the runs' cell widths).

    Parameters
    ----------
    flag
        ``(n, k)`` bool.
    width
        ``(k,)`` cell widths in days.
    """
    c = np.cumsum(np.where(flag, width[None, :], 0.0), axis=1)
    reset = np.maximum.accumulate(np.where(~flag, c, 0.0), axis=1)
    run = c - reset
    return run.max(axis=1) if flag.shape[1] else np.zeros(flag.shape[0])


def fallow_bounds(cycles: Cycles, main: np.ndarray, n_fields: int, data_end: float,
                  opts: WindowOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end of each field's fallow window, days since grid origin.

    Parameters
    ----------
    cycles
        All cycles (:func:`regenmap.features.phenology.detect_cycles`).
    main
        ``(n_fields,)`` position in ``cycles`` of each field's main cycle, -1 if none.
    n_fields
        Number of fields.
    data_end
        End of the grid, days since origin.
    opts
        Thresholds.

    Returns
    -------
    start, end, closed
        ``(n_fields,)`` float64 window bounds (NaN without a harvest) and bool
        ``closed`` (the end is a detected emergence).
    """
    has = main >= 0
    m = np.clip(main, 0, None)
    start = np.where(has, cycles.eos[m] if cycles.eos.size else np.nan, np.nan)
    nxt = np.full(n_fields, np.inf)
    if cycles.row.size:
        rows = cycles.row
        main_of = main[rows]
        ok = main_of >= 0
        mo = np.clip(main_of, 0, None)
        cand = ok & (cycles.pos >= cycles.pos[mo] + opts.min_cash_interval_days)
        cand &= cycles.peak >= opts.cash_peak_ratio * cycles.peak[mo]
        cand &= np.isfinite(cycles.sos) & (cycles.sos > start[rows])
        np.minimum.at(nxt, rows[cand], cycles.sos[cand])
    closed = np.isfinite(nxt)
    cap = np.minimum(start + opts.max_window_days, data_end)
    end = np.where(closed, np.minimum(nxt, start + opts.max_window_days), cap)
    closed &= nxt <= start + opts.max_window_days
    return start, end, closed


def precrop_bounds(cycles: Cycles, main: np.ndarray, n_fields: int, data_start: float,
                   opts: WindowOptions) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each field's pre-crop window, days since grid origin.

    The window ends at the main cycle's SOS and starts at the EOS of the previous
    cash crop (a cycle peaking at least ``min_cash_interval_days`` before the main
    peak and reaching ``cash_peak_ratio`` of it), else ``max_window_days`` before the
    SOS or the start of the data, whichever is later.

    Returns
    -------
    start, end
        ``(n_fields,)`` float64; NaN where the main cycle has no SOS.
    """
    has = main >= 0
    m = np.clip(main, 0, None)
    end = np.where(has, cycles.sos[m] if cycles.sos.size else np.nan, np.nan)
    prev = np.full(n_fields, -np.inf)
    if cycles.row.size:
        rows = cycles.row
        main_of = main[rows]
        mo = np.clip(main_of, 0, None)
        cand = (main_of >= 0) & (cycles.pos <= cycles.pos[mo] - opts.min_cash_interval_days)
        cand &= cycles.peak >= opts.cash_peak_ratio * cycles.peak[mo]
        cand &= np.isfinite(cycles.eos) & (cycles.eos < end[rows])
        np.maximum.at(prev, rows[cand], cycles.eos[cand])
    start = np.maximum(np.maximum(prev, end - opts.max_window_days), data_start)
    return np.where(np.isfinite(end), start, np.nan), end


def _bare_share(c_ndvi: np.ndarray | None, c_bsi: np.ndarray | None, win: np.ndarray,
                opts: WindowOptions) -> np.ndarray:
    """Share of observed cells in ``win`` that are bare soil (NaN without BSI or observations)."""
    if c_ndvi is None or c_bsi is None or not np.isfinite(c_bsi).any():
        return np.full(win.shape[0], np.nan)
    seen = win & np.isfinite(c_ndvi) & np.isfinite(c_bsi)
    bare = seen & (c_ndvi < opts.bare_ndvi) & (c_bsi > opts.bare_bsi)
    n_seen = seen.sum(axis=1)
    return np.where(n_seen > 0, bare.sum(axis=1) / np.maximum(n_seen, 1), np.nan)


@dataclass(frozen=True)
class Windows:
    """The practice windows of every field, in days since the grid origin.

    Attributes
    ----------
    fallow_start, fallow_end
        ``(n_fields,)`` float64 fallow window (harvest of the main cycle to emergence of
        the next cash crop); NaN without a harvest.
    fallow_closed
        ``(n_fields,)`` bool, True where the fallow window ends at a detected emergence.
    precrop_start, precrop_end
        ``(n_fields,)`` float64 pre-crop window (previous harvest to emergence of the
        main crop); NaN where the main cycle has no start of season.
    """

    fallow_start: np.ndarray
    fallow_end: np.ndarray
    fallow_closed: np.ndarray
    precrop_start: np.ndarray
    precrop_end: np.ndarray


def practice_windows(cycles: Cycles, main: np.ndarray, n_fields: int, *, data_start: float,
                     data_end: float, opts: WindowOptions) -> Windows:
    """Fallow and pre-crop windows of every field (:func:`fallow_bounds`, :func:`precrop_bounds`).

    Parameters
    ----------
    cycles
        All cycles (:func:`regenmap.features.phenology.detect_cycles`).
    main
        ``(n_fields,)`` position in ``cycles`` of each field's main cycle, -1 if none.
    n_fields
        Number of fields.
    data_start, data_end
        Start and end of the grid, days since origin.
    opts
        Thresholds.
    """
    start, end, closed = fallow_bounds(cycles, main, n_fields, data_end, opts)
    pre_start, pre_end = precrop_bounds(cycles, main, n_fields, data_start, opts)
    return Windows(start, end, closed, pre_start, pre_end)


def compute(values: dict[str, np.ndarray], composites: dict[str, np.ndarray],
            counts: np.ndarray, *, t_days: np.ndarray, width: np.ndarray,
            year: tuple[float, float], windows: Windows, opts: WindowOptions
            ) -> dict[str, np.ndarray]:
    """Compute the practice-window features.

    Parameters
    ----------
    values
        Index -> ``(n_fields, n_time)`` gap-filled regular series.
    composites
        Index -> ``(n_fields, n_time)`` composites before gap filling (observed cells only).
    counts
        ``(n_fields, n_time)`` kept observations per cell (of the primary index).
    t_days, width
        ``(n_time,)`` cell centres and widths, days.
    year
        ``(start, end)`` of the agricultural year, days since origin.
    windows
        Fallow and pre-crop window of each field (:func:`practice_windows`).
    opts
        Thresholds.

    Returns
    -------
    dict
        Column name -> ``(n_fields,)`` float32, in :func:`specs` order.
    """
    start, end, closed = windows.fallow_start, windows.fallow_end, windows.fallow_closed
    pre_start, pre_end = windows.precrop_start, windows.precrop_end
    ndvi, ndti = values.get("ndvi"), values.get("ndti")
    bsi, evi = values.get("bsi"), values.get("evi")
    tc = t_days[None, :]
    win = (tc >= start[:, None]) & (tc < end[:, None])
    early = (tc >= start[:, None]) & (tc < (start + opts.early_days)[:, None])
    has_win = np.isfinite(start)
    w = width[None, :]

    def integral(y: np.ndarray | None, mask: np.ndarray, zero: float) -> np.ndarray:
        x = _masked(y, mask)
        ok = np.isfinite(x)
        r = (np.clip(np.where(ok, x, zero) - zero, 0, None) * w).sum(axis=1)
        return np.where(ok.any(axis=1), r, np.nan)

    def days(y: np.ndarray | None, mask: np.ndarray, above: float) -> np.ndarray:
        x = _masked(y, mask)
        ok = np.isfinite(x)
        r = ((ok & (np.where(ok, x, -np.inf) > above)) * w).sum(axis=1)
        return np.where(ok.any(axis=1), r, np.nan)

    c_ndvi, c_bsi = composites.get("ndvi"), composites.get("bsi")
    pre = (tc >= pre_start[:, None]) & (tc < pre_end[:, None])
    has_pre = np.isfinite(pre_end)

    y_mask = np.broadcast_to((t_days >= year[0]) & (t_days < year[1]), win.shape)
    yn = _masked(ndvi, y_mask)
    y_ok = np.isfinite(yn)
    has_year = y_ok.any(axis=1)
    bare_cells = y_ok & (np.where(y_ok, yn, np.inf) < opts.bare_ndvi)
    year_days = (y_mask * w).sum(axis=1)

    out = {
        "fallow_start_day": np.where(has_win, start - year[0], np.nan),
        "fallow_length_days": np.where(has_win, end - start, np.nan),
        "fallow_closed": np.where(has_win, closed.astype(np.float64), np.nan),
        "fallow_n_obs": np.where(has_win, (counts * win).sum(axis=1), np.nan),
        "fallow_ndti_min": _nanreduce(_masked(ndti, win), "min"),
        "fallow_ndti_drop": _drop_before_min(_masked(ndti, win)),
        "fallow_ndti_mean": _nanreduce(_masked(ndti, win), "mean"),
        "fallow_bsi_max": _nanreduce(_masked(bsi, win), "max"),
        "fallow_bare_share": _bare_share(c_ndvi, c_bsi, win, opts),
        "fallow_ndvi_mean": _nanreduce(_masked(ndvi, win), "mean"),
        "fallow_ndvi_max": _nanreduce(_masked(ndvi, win), "max"),
        "fallow_ndvi_greenup": _rise_after_min(_masked(ndvi, win)),
        "fallow_ndvi_integral": integral(ndvi, win, opts.soil_ndvi),
        "fallow_evi_integral": integral(evi, win, 0.1),
        "fallow_green_days": days(ndvi, win, opts.green_ndvi),
        "fallow56_ndvi_integral": integral(ndvi, early, opts.soil_ndvi),
        "fallow56_ndvi_max": _nanreduce(_masked(ndvi, early), "max"),
        "fallow56_green_days": days(ndvi, early, opts.green_ndvi),
        "fallow56_ndti_min": _nanreduce(_masked(ndti, early), "min"),
        "precrop_length_days": np.where(has_pre, pre_end - pre_start, np.nan),
        "precrop_n_obs": np.where(has_pre, (counts * pre).sum(axis=1), np.nan),
        "precrop_ndvi_integral": integral(ndvi, pre, opts.soil_ndvi),
        "precrop_ndvi_max": _nanreduce(_masked(ndvi, pre), "max"),
        "precrop_green_days": days(ndvi, pre, opts.green_ndvi),
        "precrop_ndti_min": _nanreduce(_masked(ndti, pre), "min"),
        "precrop_bare_share": _bare_share(c_ndvi, c_bsi, pre, opts),
        "cover_longest_bare_days": np.where(has_year, longest_run_days(bare_cells, width), np.nan),
        "cover_bare_days": np.where(has_year, (bare_cells * w).sum(axis=1), np.nan),
        "cover_green_share": np.where(
            has_year, ((y_ok & (np.where(y_ok, yn, -np.inf) > opts.green_ndvi)) * w).sum(axis=1)
            / np.where(year_days > 0, year_days, 1.0), np.nan),
        "cover_ndvi_min": _nanreduce(yn, "min"),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
