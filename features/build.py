"""Observations table -> features table: the one entry function of the features layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from regenmap.errors import ConfigError, InputError
from regenmap.features import phenology, quality, seasonal, windows
from regenmap.features.spec import FEATURE_INDICES, FeatureSpec
from regenmap.features.timegrid import (
    Composite,
    Smoothing,
    Step,
    TimeGrid,
    available_indices,
    parse_year_start,
    regularize,
    smooth,
)
from regenmap.schema import FEATURES_SCHEMA, FIELD_ID

#: Indices whose absence is worth a warning (features depending on them are NaN).
WARN_IF_MISSING: tuple[str, ...] = ("ndvi", "ndti", "bsi")


def feature_specs(indices: Sequence[str] = FEATURE_INDICES) -> list[FeatureSpec]:
    """Return every feature column, in the order :func:`build_features` writes them."""
    return [*quality.specs(), *phenology.specs(), *windows.specs(), *seasonal.specs(indices)]


def _year_offsets(grid: TimeGrid, year_start: str, year: int | None
                  ) -> tuple[tuple[float, float], list[tuple[float, float]], int]:
    """Pick the agricultural year (the one with most observations unless ``year`` is given)."""
    parse_year_start(year_start)
    origin = pd.Timestamp(grid.origin)
    end_days = float(grid.edges_days[-1])

    def days(ts: pd.Timestamp) -> float:
        return float((ts - origin) / pd.Timedelta(days=1))

    n_years = 1
    while days(origin + pd.DateOffset(years=n_years)) < end_days:
        n_years += 1
    if year is not None:
        k = year - origin.year
    else:
        per_cell = sum(c.sum(axis=0, dtype=np.int64) for c in grid.counts.values())
        per_cell = np.asarray(per_cell) if grid.counts else np.zeros(grid.t_days.shape, np.int64)
        totals = []
        for k in range(n_years):
            a = days(origin + pd.DateOffset(years=k))
            b = days(origin + pd.DateOffset(years=k + 1))
            totals.append(int(per_cell[(grid.t_days >= a) & (grid.t_days < b)].sum()))
        k = int(np.argmax(totals))
    start = origin + pd.DateOffset(years=k)
    bounds = [days(start + pd.DateOffset(months=3 * q)) for q in range(5)]
    seasons = [(bounds[q], bounds[q + 1]) for q in range(4)]
    return (bounds[0], bounds[4]), seasons, int(start.year)


def build_features(observations: pd.DataFrame, *, step_days: Step = 10,
                   min_valid_fraction: float = 0.6, max_gap_days: int = 45,
                   year_start: str = "01-01", stat: str = "mean", composite: Composite = "mean",
                   smoothing: Smoothing = "none", year: int | None = None,
                   sensor_offsets: Mapping[str, Mapping[str, float]] | None = None,
                   window_options: windows.WindowOptions | None = None,
                   detect_fraction: float = 0.4, amplitude_fraction: float = 0.2,
                   min_amplitude: float = 0.1) -> pd.DataFrame:
    """Compute the per-field features table from an observations table.

    Parameters
    ----------
    observations
        Observations table (``docs/architecture.md``): ``field_id``, ``time``,
        ``valid_fraction``, ``sensor`` and ``<index>_<stat>`` float columns. Any mix
        of sensors; indices absent (e.g. NDTI of a sensor without SWIR) give NaN
        features and one :class:`~regenmap.features.timegrid.MissingIndexWarning`.
    step_days
        Regular grid step in days (5, 10, 16 ...) or ``"monthly"``.
    min_valid_fraction
        Observations with a smaller valid (cloud-free) share are dropped and counted
        (``obs_n_dropped``).
    max_gap_days
        Longest gap bridged by linear interpolation; longer gaps stay NaN.
    year_start
        ``MM-DD`` start of the agricultural year the features describe.
    stat
        Per-acquisition statistic the series are made of (``mean``, ``median`` ...).
    composite
        ``mean`` (weighted by valid_fraction), ``median`` or ``max_ndvi``.
    smoothing
        ``none``, ``savgol`` or ``whittaker`` on the grid (phenology always uses a
        50-day Savitzky-Golay filter of NDVI when this is ``none``).
    year
        Calendar year in which the described agricultural year starts; by default
        the one with the most observations.
    sensor_offsets
        ``{sensor: {index: offset}}`` harmonisation added before compositing.
    window_options
        Thresholds of the practice windows.
    detect_fraction, amplitude_fraction, min_amplitude
        Phenology options (:func:`regenmap.features.phenology.detect_cycles`).

    Returns
    -------
    pandas.DataFrame
        One row per distinct ``field_id`` (sorted), ``field_id`` (str) first, then
        float32 columns named as in :func:`feature_dictionary`. Fields without a
        usable observation keep their row, with NaN features. ``attrs["features"]``
        holds the options and the chosen year.

    Raises
    ------
    InputError
        If ``field_id`` or ``time`` is missing, or no ``<index>_<stat>`` column of a
        known index (NDVI, EVI, NDTI, BSI, NDMI) is present.
    ConfigError
        For an invalid option value.
    """
    if isinstance(step_days, bool) or (step_days != "monthly" and not isinstance(step_days, int)):
        raise ConfigError(f"features.step_days={step_days!r}: use whole days or 'monthly'")
    if max_gap_days < 0:
        raise ConfigError(f"features.max_gap_days={max_gap_days}: use a value >= 0")
    opts = window_options or windows.WindowOptions()
    present = available_indices(observations, stat)
    if not set(present) & set(FEATURE_INDICES):
        stats = sorted({str(c).rsplit("_", 1)[1] for c in observations.columns
                        if "_" in str(c) and str(c).split("_", 1)[0] in FEATURE_INDICES})
        hint = f" Statistics present: {', '.join(stats)} (set features.stat)." if stats else ""
        raise InputError(f"the observations table has no '<index>_{stat}' column for any of "
                         f"{', '.join(FEATURE_INDICES)}.{hint}")
    grid = regularize(observations, indices=FEATURE_INDICES, stat=stat, step_days=step_days,
                      min_valid_fraction=min_valid_fraction, max_gap_days=max_gap_days,
                      year_start=year_start, composite=composite, smoothing=smoothing,
                      sensor_offsets=sensor_offsets, warn_missing=WARN_IF_MISSING)
    return features_from_grid(grid, year_start=year_start, year=year, window_options=opts,
                              detect_fraction=detect_fraction,
                              amplitude_fraction=amplitude_fraction, min_amplitude=min_amplitude)


def features_from_grid(grid: TimeGrid, *, year_start: str | None = None, year: int | None = None,
                       window_options: windows.WindowOptions | None = None,
                       detect_fraction: float = 0.4, amplitude_fraction: float = 0.2,
                       min_amplitude: float = 0.1) -> pd.DataFrame:
    """Compute the features table from an already regularised :class:`TimeGrid`.

    See :func:`build_features` for the parameters and the returned table;
    ``year_start`` defaults to (and must equal) the one the grid was built with.
    """
    grid_start = str(grid.options.get("year_start", "01-01"))
    if year_start is not None and year_start != grid_start:
        raise ConfigError(f"year_start={year_start!r} differs from the grid's {grid_start!r}: "
                          "regularize the observations with the same year_start")
    year_start = grid_start
    opts = window_options or windows.WindowOptions()
    n = grid.n_fields
    yr, seasons, year_label = _year_offsets(grid, year_start, year)
    ndvi = grid.values.get("ndvi", np.full((n, grid.t_days.size), np.nan, np.float32))
    primary = "ndvi" if np.isfinite(ndvi).any() else next(
        (k for k, v in grid.values.items() if np.isfinite(v).any()), "ndvi")
    counts = grid.counts.get(primary, np.zeros((n, grid.t_days.size), np.int16))
    width = grid.step_days

    cols: dict[str, np.ndarray] = {}
    cols.update(quality.compute(
        n_rows=grid.n_rows, n_dropped=grid.n_dropped, n_sensors=grid.n_sensors, counts=counts,
        filled=grid.values.get(primary, ndvi), ndti=grid.values.get("ndti"),
        t_days=grid.t_days, year=yr, max_gap_days=float(str(grid.options["max_gap_days"])),
        obs_field=grid.obs_field, obs_t=grid.obs_t_days))

    ndvi_ph = smooth(ndvi, grid.t_days, "savgol") \
        if grid.options.get("smoothing", "none") == "none" else ndvi
    cycles = phenology.detect_cycles(ndvi_ph, grid.t_days, detect_fraction=detect_fraction,
                                     amplitude_fraction=amplitude_fraction,
                                     min_amplitude=min_amplitude)
    first, second, count = phenology.rank_in_window(cycles, n, *yr)
    cols.update(phenology.compute(cycles, first, second, count, yr[0]))

    start, end, closed = windows.fallow_bounds(cycles, first, n, float(grid.edges_days[-1]), opts)
    pre_start, pre_end = windows.precrop_bounds(cycles, first, n, float(grid.edges_days[0]), opts)
    cols.update(windows.compute(grid.values, grid.composites, counts, grid.t_days, width, yr,
                                start, end, closed, pre_start, pre_end, opts))
    cols.update(seasonal.compute(grid.values, grid.t_days, yr, seasons))

    names = [s.name for s in feature_specs()]
    frame = pd.DataFrame({FIELD_ID: pd.Series(grid.field_ids, dtype=str),
                          **{k: cols[k].astype(np.float32, copy=False) for k in names}})
    frame.attrs["features"] = _record(grid, year_label, opts, detect_fraction,
                                      amplitude_fraction, min_amplitude)
    return frame


def _record(grid: TimeGrid, year_label: int, opts: windows.WindowOptions, detect_fraction: float,
            amplitude_fraction: float, min_amplitude: float) -> dict[str, Any]:
    return {
        "schema": FEATURES_SCHEMA, "year": year_label,
        "grid_origin": str(pd.Timestamp(grid.origin).date()), **grid.options,
        "windows": asdict(opts),
        "phenology": {"detect_fraction": detect_fraction,
                      "amplitude_fraction": amplitude_fraction, "min_amplitude": min_amplitude},
        "indices_present": sorted(k for k, v in grid.values.items() if np.isfinite(v).any()),
    }


def feature_dictionary() -> pd.DataFrame:
    """Return the feature dictionary (see :func:`regenmap.features.dictionary.feature_dictionary`)."""
    from regenmap.features.dictionary import feature_dictionary as _fd

    return _fd()
