"""Growing cycles found from each field's own NDVI curve, for all fields at once.

A cycle is a run of grid cells where the field's NDVI is above
``base + detect_fraction * (max - base)`` of that field (base and max over the
whole grid). Around each run, the valleys before and after the peak give the
cycle's own amplitudes; start (SOS) and end of season (EOS) are where the curve
crosses ``valley + amplitude_fraction * (peak - valley)``, interpolated
linearly between grid cells. Every step works on arrays of all cycles of all
fields: there is no loop over fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regenmap.errors import ConfigError
from regenmap.features.spec import FeatureSpec


@dataclass(frozen=True)
class Cycles:
    """All detected growing cycles, one entry per cycle (cycle order: field, then time).

    Attributes
    ----------
    row
        ``(n_cycles,)`` int64 field row of each cycle.
    peak_idx
        ``(n_cycles,)`` int64 grid column of the peak.
    sos, pos, eos
        ``(n_cycles,)`` float64 start, peak and end of season, days since grid origin;
        NaN when the crossing is outside the data (cycle cut by the series edge or a gap).
    peak
        ``(n_cycles,)`` float64 NDVI at the peak.
    base
        ``(n_cycles,)`` float64 mean of the valleys on both sides (NDVI).
    amplitude
        ``(n_cycles,)`` float64 ``peak - base``.
    integral
        ``(n_cycles,)`` float64 integral of ``NDVI - base`` (clipped at 0) from SOS to
        EOS (or the run's extent where they are NaN), NDVI x days.
    """

    row: np.ndarray
    peak_idx: np.ndarray
    sos: np.ndarray
    pos: np.ndarray
    eos: np.ndarray
    peak: np.ndarray
    base: np.ndarray
    amplitude: np.ndarray
    integral: np.ndarray

    @property
    def length(self) -> np.ndarray:
        """``(n_cycles,)`` season length EOS - SOS in days (NaN if either is NaN)."""
        return self.eos - self.sos

    def take(self, mask: np.ndarray) -> Cycles:
        """Return the cycles selected by a boolean mask or integer index array."""
        return Cycles(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def _crossing(t0: np.ndarray, y0: np.ndarray, t1: np.ndarray, y1: np.ndarray,
              thr: np.ndarray) -> np.ndarray:
    """Time where the segment (t0, y0)-(t1, y1) crosses ``thr`` (linear)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        f = (thr - y0) / (y1 - y0)
    f = np.where(np.isfinite(f), np.clip(f, 0.0, 1.0), 0.5)
    return t0 + f * (t1 - t0)


def detect_cycles(ndvi: np.ndarray, t_days: np.ndarray, *, detect_fraction: float = 0.4,
                  amplitude_fraction: float = 0.2, min_amplitude: float = 0.1,
                  min_run_days: float = 20.0) -> Cycles:
    """Find the growing cycles of every field's regular NDVI series.

    Parameters
    ----------
    ndvi
        ``(n_fields, n_time)`` float NDVI on a regular grid, NaN where unknown.
    t_days
        ``(n_time,)`` float64 column centres, days since the grid origin.
    detect_fraction
        A cycle is a run above ``base + detect_fraction * (max - base)`` of the field.
    amplitude_fraction
        SOS/EOS are the crossings of ``valley + amplitude_fraction * (peak - valley)``.
    min_amplitude
        Cycles whose amplitude (peak minus mean valley, NDVI) is below this are dropped.
    min_run_days
        Runs spanning fewer days (cells x step) than this are dropped (noise spikes).

    Returns
    -------
    Cycles
        Every kept cycle, ordered by field row then time.
    """
    if not 0 < detect_fraction < 1 or not 0 < amplitude_fraction < 1:
        raise ConfigError("phenology fractions must lie strictly between 0 and 1, got "
                          f"detect_fraction={detect_fraction}, amplitude_fraction={amplitude_fraction}")
    y = np.asarray(ndvi, dtype=np.float64)
    n, T = y.shape
    finite = np.isfinite(y)
    has = finite.any(axis=1)
    lo = np.where(has, np.nanmin(np.where(finite, y, np.inf), axis=1), np.nan)
    hi = np.where(has, np.nanmax(np.where(finite, y, -np.inf), axis=1), np.nan)
    thr = lo + detect_fraction * (hi - lo)
    above = finite & (y > thr[:, None]) & ((hi - lo) >= min_amplitude)[:, None]

    padded = np.zeros((n, T + 2), dtype=np.int8)
    padded[:, 1:-1] = above
    d = np.diff(padded, axis=1)
    r_row, r_start = np.nonzero(d == 1)
    _, r_end = np.nonzero(d == -1)  # exclusive; same row-major order as starts
    step = np.median(np.diff(t_days)) if T > 1 else 1.0
    keep = (r_end - r_start) * step >= min_run_days
    r_row, r_start, r_end = r_row[keep], r_start[keep], r_end[keep]
    m = r_row.shape[0]
    empty = np.zeros(0)
    if m == 0:
        z = np.zeros(0, dtype=np.int64)
        return Cycles(z, z, empty, empty, empty, empty, empty, empty, empty)

    # Neighbouring runs in the same field bound each run's valleys.
    same_prev = np.zeros(m, dtype=bool)
    same_prev[1:] = r_row[1:] == r_row[:-1]
    same_next = np.zeros(m, dtype=bool)
    same_next[:-1] = r_row[:-1] == r_row[1:]
    left_lo = np.where(same_prev, np.roll(r_end, 1), 0)
    right_hi = np.where(same_next, np.roll(r_start, -1), T)

    Y = y[r_row]  # (m, T)
    cols = np.arange(T)[None, :]
    in_run = (cols >= r_start[:, None]) & (cols < r_end[:, None])
    peak_idx = np.argmax(np.where(in_run & np.isfinite(Y), Y, -np.inf), axis=1)
    peak = Y[np.arange(m), peak_idx]

    left = (cols >= left_lo[:, None]) & (cols <= peak_idx[:, None])
    right = (cols >= peak_idx[:, None]) & (cols < right_hi[:, None])
    Yf = np.where(np.isfinite(Y), Y, np.nan)
    with np.errstate(invalid="ignore"):
        lv = np.nanmin(np.where(left, Yf, np.inf), axis=1)
        rv = np.nanmin(np.where(right, Yf, np.inf), axis=1)
    # A valley is only known when the curve actually dips before the run (or after it).
    lv_known = r_start > left_lo
    lv_known &= np.isfinite(np.where(left & (cols < r_start[:, None]), Yf, np.nan)).any(axis=1)
    rv_known = right_hi > r_end
    rv_known &= np.isfinite(np.where(right & (cols >= r_end[:, None]), Yf, np.nan)).any(axis=1)
    lv = np.where(lv_known, lv, np.nan)
    rv = np.where(rv_known, rv, np.nan)
    both = np.stack([lv, rv])
    n_known = np.isfinite(both).sum(axis=0)
    base = np.where(n_known > 0, np.where(np.isfinite(both), both, 0.0).sum(axis=0)
                    / np.maximum(n_known, 1), np.nan)
    base = np.where(np.isfinite(base), base, lo[r_row])
    amplitude = peak - base
    thr_l = lv + amplitude_fraction * (peak - lv)
    thr_r = rv + amplitude_fraction * (peak - rv)

    # SOS: last cell left of the peak below the left threshold, then interpolate up.
    below_l = left & (Yf < thr_l[:, None])
    any_l = below_l.any(axis=1)
    i = T - 1 - np.argmax(below_l[:, ::-1], axis=1)
    i1 = np.clip(i + 1, 0, T - 1)
    ar = np.arange(m)
    sos = np.where(any_l, _crossing(t_days[i], Y[ar, i], t_days[i1], Y[ar, i1], thr_l), np.nan)
    # EOS: first cell right of the peak below the right threshold, interpolate down.
    below_r = right & (Yf < thr_r[:, None])
    any_r = below_r.any(axis=1)
    j = np.argmax(below_r, axis=1)
    j0 = np.clip(j - 1, 0, T - 1)
    eos = np.where(any_r, _crossing(t_days[j0], Y[ar, j0], t_days[j], Y[ar, j], thr_r), np.nan)
    pos = t_days[peak_idx]

    # Integral of NDVI above the cycle base between SOS and EOS (run extent if unknown).
    step_w = np.gradient(t_days) if T > 1 else np.ones(1)
    a = np.where(np.isfinite(sos), sos, t_days[r_start])
    b = np.where(np.isfinite(eos), eos, t_days[r_end - 1])
    tc = t_days[None, :]
    inside = (tc >= a[:, None]) & (tc <= b[:, None])
    excess = np.clip(np.where(np.isfinite(Y), Y, 0.0) - base[:, None], 0.0, None)
    integral = (excess * inside * step_w[None, :]).sum(axis=1)

    good = amplitude >= min_amplitude
    cyc = Cycles(row=r_row.astype(np.int64), peak_idx=peak_idx.astype(np.int64), sos=sos,
                 pos=pos, eos=eos, peak=peak, base=base, amplitude=amplitude, integral=integral)
    return cyc.take(good)


def rank_in_window(cycles: Cycles, n_fields: int, start: float, end: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick, per field, the highest and second-highest cycle peaking in ``[start, end)``.

    Parameters
    ----------
    cycles
        Output of :func:`detect_cycles`.
    n_fields
        Number of field rows.
    start, end
        Window, days since the grid origin (the agricultural year).

    Returns
    -------
    first, second, count
        ``(n_fields,)`` int64 cycle positions (-1 when none) and number of cycles
        peaking in the window.
    """
    inwin = (cycles.pos >= start) & (cycles.pos < end)
    idx = np.nonzero(inwin)[0]
    count = np.bincount(cycles.row[idx], minlength=n_fields).astype(np.int64)
    first = np.full(n_fields, -1, dtype=np.int64)
    second = np.full(n_fields, -1, dtype=np.int64)
    if idx.size:
        order = idx[np.lexsort((-cycles.peak[idx], cycles.row[idx]))]
        rows = cycles.row[order]
        new = np.ones(order.shape[0], dtype=bool)
        new[1:] = rows[1:] != rows[:-1]
        first[rows[new]] = order[new]
        sec = np.zeros(order.shape[0], dtype=bool)
        sec[1:] = ~new[1:] & new[:-1]
        second[rows[sec]] = order[sec]
    return first, second, count


def specs() -> list[FeatureSpec]:
    """Return the phenology feature columns, in output order."""
    C, C2 = "cycle", "cycle2"
    day = "days since the start of the agricultural year (may be negative or above 365 when the " \
          "cycle crosses the year boundary)"
    return [
        FeatureSpec("phen_n_cycles", "count", "Growing cycles whose NDVI peak falls in the "
                    "agricultural year (2 for double cropping).", "ndvi", "year"),
        FeatureSpec("phen_sos_day", "days", f"Start of season of the main cycle (highest peak), {day}.",
                    "ndvi", C),
        FeatureSpec("phen_pos_day", "days", f"Peak of season of the main cycle, {day}.", "ndvi", C),
        FeatureSpec("phen_eos_day", "days", f"End of season (harvest) of the main cycle, {day}.",
                    "ndvi", C),
        FeatureSpec("phen_length_days", "days", "Season length of the main cycle (EOS - SOS).",
                    "ndvi", C),
        FeatureSpec("phen_peak", "1", "NDVI at the peak of the main cycle.", "ndvi", C),
        FeatureSpec("phen_base", "1", "NDVI of the valleys around the main cycle (mean of both "
                    "sides).", "ndvi", C),
        FeatureSpec("phen_amplitude", "1", "Peak minus base NDVI of the main cycle.", "ndvi", C),
        FeatureSpec("phen_integral", "NDVI*days", "Integral of NDVI above the base from SOS to EOS "
                    "of the main cycle.", "ndvi", C),
        FeatureSpec("phen2_pos_day", "days", f"Peak of the second-highest cycle of the year, {day}.",
                    "ndvi", C2),
        FeatureSpec("phen2_length_days", "days", "Season length of the second cycle.", "ndvi", C2),
        FeatureSpec("phen2_peak", "1", "NDVI at the peak of the second cycle.", "ndvi", C2),
        FeatureSpec("phen2_amplitude", "1", "Peak minus base NDVI of the second cycle.", "ndvi", C2),
        FeatureSpec("phen2_integral", "NDVI*days", "Integral of NDVI above the base over the "
                    "second cycle.", "ndvi", C2),
    ]


def compute(cycles: Cycles, first: np.ndarray, second: np.ndarray, count: np.ndarray,
            year_start: float) -> dict[str, np.ndarray]:
    """Phenology columns of the main and second cycle of each field.

    Parameters
    ----------
    cycles
        All cycles.
    first, second, count
        From :func:`rank_in_window`.
    year_start
        Start of the agricultural year, days since grid origin (dates are made relative to it).

    Returns
    -------
    dict
        Column name -> ``(n_fields,)`` float32, in :func:`specs` order.
    """
    def pick(arr: np.ndarray, which: np.ndarray, shift: float = 0.0) -> np.ndarray:
        if arr.size == 0:
            return np.full(which.shape, np.nan, dtype=np.float32)
        v = arr[np.clip(which, 0, None)] - shift
        return np.where(which >= 0, v, np.nan).astype(np.float32)

    length = cycles.length
    out = {
        "phen_n_cycles": count.astype(np.float32),
        "phen_sos_day": pick(cycles.sos, first, year_start),
        "phen_pos_day": pick(cycles.pos, first, year_start),
        "phen_eos_day": pick(cycles.eos, first, year_start),
        "phen_length_days": pick(length, first),
        "phen_peak": pick(cycles.peak, first),
        "phen_base": pick(cycles.base, first),
        "phen_amplitude": pick(cycles.amplitude, first),
        "phen_integral": pick(cycles.integral, first),
        "phen2_pos_day": pick(cycles.pos, second, year_start),
        "phen2_length_days": pick(length, second),
        "phen2_peak": pick(cycles.peak, second),
        "phen2_amplitude": pick(cycles.amplitude, second),
        "phen2_integral": pick(cycles.integral, second),
    }
    return out
