"""Observations table -> features table: the one entry function of the features layer."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from regenmap.errors import ConfigError, InputError
from regenmap.features import phenology, quality, seasonal, windows
from regenmap.features.dictionary import feature_dictionary, feature_specs
from regenmap.features.options import FeatureOptions
from regenmap.features.spec import FEATURE_INDICES
from regenmap.features.timegrid import (
    TimeGrid,
    available_indices,
    parse_year_start,
    regularize,
    smooth,
)
from regenmap.schema import FEATURES_SCHEMA, FIELD_ID, stat_column

#: Indices whose absence is worth a warning (features depending on them are NaN).
WARN_IF_MISSING: tuple[str, ...] = ("ndvi", "ndti", "bsi")


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


def build_features(observations: pd.DataFrame, options: FeatureOptions | None = None, *,
                   year: int | None = None) -> pd.DataFrame:
    """Compute the per-field features table from an observations table.

    Parameters
    ----------
    observations
        Observations table (``docs/architecture.md``): ``field_id``, ``time``,
        ``valid_fraction``, ``sensor`` and ``<index>_<stat>`` float columns. Any mix
        of sensors; indices absent (e.g. NDTI of a sensor without SWIR) give NaN
        features and one :class:`~regenmap.features.timegrid.MissingIndexWarning`.
    options
        Time grid, smoothing, phenology and window options; defaults if None.
    year
        Calendar year in which the described agricultural year starts; by default
        the one with the most observations.

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

    Examples
    --------
    >>> table = build_features(observations, FeatureOptions(step_days=5))  # doctest: +SKIP
    """
    opts = options or FeatureOptions()
    stat = opts.stat
    present = available_indices(observations, stat)
    if not set(present) & set(FEATURE_INDICES):
        stats = sorted({str(c).rsplit("_", 1)[1] for c in observations.columns
                        if "_" in str(c) and str(c).split("_", 1)[0] in FEATURE_INDICES})
        hint = f" Statistics present: {', '.join(stats)} (choose one as the statistic)." \
            if stats else ""
        raise InputError(f"the observations table has no '<index>_{stat}' column for any of "
                         f"{', '.join(FEATURE_INDICES)}.{hint}")
    grid = regularize(observations, opts, indices=FEATURE_INDICES, warn_missing=WARN_IF_MISSING)
    return features_from_grid(grid, opts, year=year)


def features_from_grid(grid: TimeGrid, options: FeatureOptions | None = None, *,
                       year: int | None = None) -> pd.DataFrame:
    """Compute the features table from an already regularised :class:`TimeGrid`.

    See :func:`build_features` for the parameters and the returned table;
    ``options.year_start`` must equal the one the grid was built with.
    """
    opts = options or FeatureOptions(year_start=str(grid.options.get("year_start", "01-01")))
    grid_start = str(grid.options.get("year_start", "01-01"))
    if opts.year_start != grid_start:
        raise ConfigError(f"year_start={opts.year_start!r} differs from the grid's "
                          f"{grid_start!r}: regularize the observations with the same year_start")
    n = grid.n_fields
    yr, seasons, year_label = _year_offsets(grid, grid_start, year)
    ndvi = grid.values.get("ndvi", np.full((n, grid.t_days.size), np.nan, np.float32))
    primary = "ndvi" if np.isfinite(ndvi).any() else next(
        (k for k, v in grid.values.items() if np.isfinite(v).any()), "ndvi")
    counts = grid.counts.get(primary, np.zeros((n, grid.t_days.size), np.int16))

    cols: dict[str, np.ndarray] = {}
    cols.update(quality.compute(
        n_rows=grid.n_rows, n_dropped=grid.n_dropped, n_sensors=grid.n_sensors, counts=counts,
        filled=grid.values.get(primary, ndvi), ndti=grid.values.get("ndti"),
        t_days=grid.t_days, year=yr, max_gap_days=float(str(grid.options["max_gap_days"])),
        obs_field=grid.obs_field, obs_t=grid.obs_t_days))

    ndvi_ph = smooth(ndvi, grid.t_days, "savgol") \
        if grid.options.get("smoothing", "none") == "none" else ndvi
    cycles = phenology.detect_cycles(ndvi_ph, grid.t_days, detect_fraction=opts.detect_fraction,
                                     amplitude_fraction=opts.amplitude_fraction,
                                     min_amplitude=opts.min_amplitude)
    first, second, count = phenology.rank_in_window(cycles, n, *yr)
    cols.update(phenology.compute(cycles, first, second, count, yr[0]))

    bounds = windows.practice_windows(cycles, first, n, data_start=float(grid.edges_days[0]),
                                      data_end=float(grid.edges_days[-1]), opts=opts.windows)
    cols.update(windows.compute(grid.values, grid.composites, counts, t_days=grid.t_days,
                                width=grid.step_days, year=yr, windows=bounds,
                                opts=opts.windows))
    cols.update(seasonal.compute(grid.values, grid.t_days, yr, seasons))

    names = [s.name for s in feature_specs()]
    frame = pd.DataFrame({FIELD_ID: pd.Series(grid.field_ids, dtype=str),
                          **{k: cols[k].astype(np.float32, copy=False) for k in names}})
    frame.attrs["features"] = _record(grid, year_label, opts)
    return frame


def _record(grid: TimeGrid, year_label: int, opts: FeatureOptions) -> dict[str, Any]:
    return {
        "schema": FEATURES_SCHEMA, "year": year_label,
        "grid_origin": str(pd.Timestamp(grid.origin).date()), **grid.options,
        "windows": asdict(opts.windows),
        "phenology": {"detect_fraction": opts.detect_fraction,
                      "amplitude_fraction": opts.amplitude_fraction,
                      "min_amplitude": opts.min_amplitude},
        "indices_present": sorted(k for k, v in grid.values.items() if np.isfinite(v).any()),
    }


def drop_absent_indices(frame: pd.DataFrame, observations: pd.DataFrame, *, stat: str
                        ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Remove the feature columns of indices that no observation carries.

    :func:`build_features` keeps a stable column set, giving NaN columns for an
    index that was not extracted (e.g. NDTI from a sensor without SWIR). A job
    stores only the features it can compute, so that models are not trained on
    columns that are NaN everywhere; the removed columns are recorded. Columns
    of such an index that hold values (e.g. the ``flag_no_ndti`` flag) stay.

    Parameters
    ----------
    frame
        Features table (fields, features).
    observations
        The observations it was built from (``<index>_<stat>`` columns).
    stat
        Statistic of the observations the features were built on.

    Returns
    -------
    frame, absent
        The table without those columns, and index -> removed feature names.
    """
    spec = feature_dictionary()
    absent: dict[str, list[str]] = {}
    for index, names in spec.groupby("index")["name"]:
        if not index:
            continue
        column = stat_column(str(index), stat)
        has_values = column in observations and bool(observations[column].notna().any())
        dropped = [n for n in names if n in frame.columns and not frame[n].notna().any()]
        if not has_values and dropped:
            absent[str(index)] = dropped
    if absent:
        warnings.warn(f"no observation has {', '.join(i.upper() for i in absent)}: their "
                      f"{sum(map(len, absent.values()))} features are left out of this job's "
                      "features table (recorded as absent_indices in its metadata)",
                      UserWarning, stacklevel=2)
        frame = frame.drop(columns=[n for names in absent.values() for n in names])
    return frame, absent
