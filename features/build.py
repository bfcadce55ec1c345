"""Observations table -> features table: the one entry function of the features layer."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from regenmap.errors import ConfigError, InputError
from regenmap.features import phenology, quality, seasonal, windows
from regenmap.features.dictionary import feature_dictionary, feature_specs
from regenmap.features.options import FeatureOptions
from regenmap.features.seasons import Season, SeasonCalendar
from regenmap.features.spec import FEATURE_INDICES
from regenmap.features.timegrid import (
    TimeGrid,
    available_indices,
    regularize,
    smooth,
)
from regenmap.schema import FEATURES_SCHEMA, FIELD_ID, SEASON, stat_column

#: Vegetation series phenology can read, in order of preference (NDVI first).
GREENNESS: tuple[str, ...] = ("ndvi", "evi", "kndvi", "evi2", "savi", "msavi", "gndvi", "ndre")
#: ``<name>_<stat>``-like columns of an observations table that are not series.
_NOT_SERIES = frozenset({"n", "valid"})

#: Indices whose absence is worth a warning (features depending on them are NaN).
WARN_IF_MISSING: tuple[str, ...] = ("ndvi", "ndti", "bsi")


def series_of(grid: TimeGrid) -> list[str]:
    """Return the series described by the seasonal features: the five indices, then the rest."""
    return [*FEATURE_INDICES, *sorted(k for k in grid.values if k not in FEATURE_INDICES)]


def busiest_year(grid: TimeGrid, year_start: str) -> int:
    """Calendar year in which the agricultural year with the most observations starts."""
    calendar = SeasonCalendar(year_start=year_start)
    origin = pd.Timestamp(grid.origin)
    per_cell = sum(c.sum(axis=0, dtype=np.int64) for c in grid.counts.values())
    per_cell = np.asarray(per_cell) if grid.counts else np.zeros(grid.t_days.shape, np.int64)
    best, best_total = origin.year, -1
    year = origin.year
    while grid.days(calendar.year(year).start) < float(grid.edges_days[-1]):
        season = calendar.year(year)
        a, b = grid.days(season.start), grid.days(season.end)
        total = int(per_cell[(grid.t_days >= a) & (grid.t_days < b)].sum())
        if total > best_total:
            best, best_total = year, total
        year += 1
    return best


def build_features(observations: pd.DataFrame, options: FeatureOptions | None = None, *,
                   seasons: Sequence[Season] | None = None, samples: pd.DataFrame | None = None,
                   year: int | None = None) -> pd.DataFrame:
    """Compute the features table from an observations table: one row per field and season.

    Parameters
    ----------
    observations
        Observations table (``docs/architecture.md``): ``field_id``, ``time``,
        ``valid_fraction``, ``sensor`` and ``<index>_<stat>`` float columns. Any mix
        of sensors; indices absent (e.g. NDTI of a sensor without SWIR) give NaN
        features and one :class:`~regenmap.features.timegrid.MissingIndexWarning`.
    options
        Time grid, smoothing, phenology and window options; defaults if None.
    seasons
        The seasons to describe (:class:`~regenmap.features.seasons.Season`). Every
        field gets a row per season, unless ``samples`` says which field has which.
    samples
        ``field_id`` and ``season`` (a name of ``seasons``): the (field, season) pairs to
        describe. Fields absent from the observations get a row of NaN features.
    year
        Without ``seasons``: the calendar year in which the one described agricultural
        year starts; by default the one with the most observations.

    Returns
    -------
    pandas.DataFrame
        One row per (field, season), sorted by ``field_id`` then season start:
        ``field_id`` (str), ``season`` (str), then float32 columns named as in
        :func:`feature_dictionary`, plus the seasonal family of every other series the
        observations carry (``nbr_mean_year``...). Fields without a usable observation in a season keep
        their row, with NaN features. ``attrs["features"]`` holds the options and the
        seasons' windows.

    Raises
    ------
    InputError
        If ``field_id`` or ``time`` is missing, or no ``<index>_<stat>`` column of a
        known index (NDVI, EVI, NDTI, BSI, NDMI) is present.
    ConfigError
        If ``samples`` names a season not in ``seasons``.

    Examples
    --------
    >>> table = build_features(observations, FeatureOptions(step_days=5))  # doctest: +SKIP
    """
    opts = options or FeatureOptions()
    stat = opts.stat
    present = [i for i in available_indices(observations, stat) if i not in _NOT_SERIES]
    if not present:
        stats = sorted({str(c).rsplit("_", 1)[1] for c in observations.columns
                        if "_" in str(c) and str(c).split("_", 1)[0] in FEATURE_INDICES})
        hint = f" Statistics present: {', '.join(stats)} (choose one as the statistic)." \
            if stats else ""
        raise InputError(f"the observations table has no '<index>_{stat}' column for any of "
                         f"{', '.join(FEATURE_INDICES)}.{hint}")
    # every other series the observations carry (NBR, kNDVI, raw bands...) gets the
    # seasonal feature family too
    extra = [i for i in present if i not in FEATURE_INDICES]
    grid = regularize(observations, opts, indices=(*FEATURE_INDICES, *extra),
                      warn_missing=WARN_IF_MISSING)
    if seasons is None:
        calendar = SeasonCalendar(year_start=opts.year_start)
        seasons = [calendar.year(year if year is not None else busiest_year(grid, opts.year_start))]
    by_name = {s.name: s for s in seasons}
    ids = pd.Index(grid.field_ids.astype(str))
    if samples is None:
        pairs = pd.DataFrame({FIELD_ID: np.repeat(ids.to_numpy(), len(by_name)),
                              SEASON: np.tile(list(by_name), len(ids))})
    else:
        pairs = pd.DataFrame({FIELD_ID: samples[FIELD_ID].astype(str).to_numpy(),
                              SEASON: samples[SEASON].astype(str).to_numpy()}).drop_duplicates()
        unknown = sorted(set(pairs[SEASON]) - set(by_name))
        if unknown:
            raise ConfigError(f"samples name season(s) {unknown[:5]} that are not described "
                              f"(seasons: {', '.join(by_name)})")
    frames = []
    for name, group in pairs.groupby(SEASON, sort=False):
        pos = ids.get_indexer(group[FIELD_ID])
        part = features_from_grid(grid.take(pos[pos >= 0]), opts, season=by_name[str(name)])
        missing = group[FIELD_ID].to_numpy()[pos < 0]
        if missing.size:  # no observation at all: a row of NaN features, never a dropped field
            empty = pd.DataFrame({FIELD_ID: missing})
            part = pd.concat([part, empty], ignore_index=True)
        part.insert(1, SEASON, str(name))
        frames.append(part)
    frame = pd.concat(frames, ignore_index=True) if frames else features_from_grid(
        grid.take(np.zeros(0, np.int64)), opts, season=next(iter(by_name.values())))
    if SEASON not in frame.columns:
        frame.insert(1, SEASON, pd.Series(dtype=str))
    start = frame[SEASON].map({n: s.start for n, s in by_name.items()})
    frame = frame.assign(_start=start).sort_values([FIELD_ID, "_start"], kind="stable")
    frame = frame.drop(columns="_start").reset_index(drop=True)
    names = [s.name for s in feature_specs(series_of(grid))]
    frame[names] = frame[names].astype(np.float32)
    frame.attrs["features"] = {**_record(grid, opts), "extra_series": extra, "seasons": {
        n: {"start": str(s.start.date()), "end": str(s.end.date()), "months": s.months}
        for n, s in by_name.items()}}
    return frame


def features_from_grid(grid: TimeGrid, options: FeatureOptions | None = None, *,
                       season: Season | None = None) -> pd.DataFrame:
    """Compute the features of every field of a :class:`TimeGrid` over one season.

    See :func:`build_features` for the returned columns (without ``season``);
    ``options.year_start`` must equal the one the grid was built with; ``season`` is the
    agricultural year with the most observations if None.
    """
    grid_start = str(grid.options.get("year_start", "01-01"))
    opts = options or FeatureOptions(year_start=grid_start)
    if opts.year_start != grid_start:
        raise ConfigError(f"year_start={opts.year_start!r} differs from the grid's "
                          f"{grid_start!r}: regularize the observations with the same year_start")
    if season is None:
        season = SeasonCalendar(year_start=grid_start).year(busiest_year(grid, grid_start))
    n = grid.n_fields
    yr = (grid.days(season.start), grid.days(season.end))
    quarters = [(grid.days(a), grid.days(b)) for a, b in season.quarters()]
    # the greenness series phenology reads: NDVI, else another vegetation index
    green = next((k for k in GREENNESS if k in grid.values and np.isfinite(grid.values[k]).any()),
                 "ndvi")
    ndvi = grid.values.get(green, np.full((n, grid.t_days.size), np.nan, np.float32))
    primary = green if np.isfinite(ndvi).any() else next(
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
    series = series_of(grid)
    cols.update(seasonal.compute(grid.values, grid.t_days, yr, quarters, indices=series))

    names = [s.name for s in feature_specs(series)]
    return pd.DataFrame({FIELD_ID: pd.Series(grid.field_ids, dtype=str),
                         **{k: cols[k].astype(np.float32, copy=False) for k in names}})


def _record(grid: TimeGrid, opts: FeatureOptions) -> dict[str, Any]:
    return {
        "schema": FEATURES_SCHEMA,
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
