"""Observation density and reliability of each field's series: features and flags."""

from __future__ import annotations

import numpy as np

from regenmap.features.spec import FeatureSpec

#: Fewer valid observations in the year than this raises ``flag_few_obs``.
MIN_OBS_YEAR = 8


def specs() -> list[FeatureSpec]:
    """Return the observation-quality columns, in output order."""
    return [
        FeatureSpec("obs_n_rows", "count", "Observation rows of the field in the input (all "
                    "years, all sensors, before any filter).", "", "all"),
        FeatureSpec("obs_n_dropped", "count", "Rows dropped because valid_fraction was below "
                    "min_valid_fraction (clouds, shadows) or missing.", "", "all"),
        FeatureSpec("obs_n_valid", "count", "Kept observations with a value of the primary index "
                    "(NDVI) in the agricultural year.", "ndvi", "year"),
        FeatureSpec("obs_n_sensors", "count", "Distinct sensors among the kept observations.",
                    "", "all"),
        FeatureSpec("obs_longest_gap_days", "days", "Longest time without a valid observation in "
                    "the agricultural year, year start and end included.",
                    "ndvi", "year"),
        FeatureSpec("obs_year_share", "1", "Share of the year's grid cells holding at least one "
                    "valid observation.", "ndvi", "year"),
        FeatureSpec("obs_filled_share", "1", "Share of the year's grid cells with a value after "
                    "gap filling (the rest are gaps longer than max_gap_days).", "ndvi", "year"),
        FeatureSpec("flag_few_obs", "flag", f"1 if obs_n_valid < {MIN_OBS_YEAR}: features of this "
                    "field are unreliable.", "ndvi", "year"),
        FeatureSpec("flag_long_gap", "flag", "1 if obs_longest_gap_days > max_gap_days: dates "
                    "of phenology and windows may be off.", "ndvi", "year"),
        FeatureSpec("flag_no_ndti", "flag", "1 if the field has no NDTI value in the year "
                    "(no SWIR bands): tillage features are NaN.", "ndti", "year"),
    ]


def longest_gap_days(observed: np.ndarray, t_days: np.ndarray, year: tuple[float, float]
                     ) -> np.ndarray:
    """Longest interval without an observed cell, year start and end included.

    Parameters
    ----------
    observed
        ``(n_fields, n_time)`` bool, True where a cell holds an observation.
    t_days
        ``(n_time,)`` cell centres, days since origin.
    year
        ``(start, end)`` of the window, days since origin.

    Returns
    -------
    numpy.ndarray
        ``(n_fields,)`` float64 days; the whole window length when nothing is observed.
    """
    cols = (t_days >= year[0]) & (t_days < year[1])
    t = t_days[cols]
    obs = observed[:, cols]
    n, k = obs.shape
    span = year[1] - year[0]
    if k == 0:
        return np.full(n, span)
    # Times of observed cells, NaN elsewhere; gaps are differences of consecutive observed times.
    tt = np.where(obs, t[None, :], np.nan)
    prev = np.maximum.accumulate(np.where(obs, np.arange(k), -1), axis=1)
    prev_shift = np.concatenate([np.full((n, 1), -1), prev[:, :-1]], axis=1)
    prev_t = np.where(prev_shift >= 0, t[np.clip(prev_shift, 0, None)], year[0])
    gaps = np.where(obs, tt - prev_t, 0.0)
    last = np.where(obs.any(axis=1), np.nanmax(np.where(obs, tt, -np.inf), axis=1), year[0])
    tail = year[1] - last
    out = np.maximum(gaps.max(axis=1), tail)
    return np.where(obs.any(axis=1), out, span)


def longest_gap_exact(obs_field: np.ndarray, obs_t: np.ndarray, n_fields: int,
                      year: tuple[float, float]) -> np.ndarray:
    """Longest interval without an observation in ``year``, year start and end included.

    Parameters
    ----------
    obs_field, obs_t
        ``(n_obs,)`` field row and time (days) of every valid observation, sorted by
        field then time.
    n_fields
        Number of fields.
    year
        ``(start, end)`` days.

    Returns
    -------
    numpy.ndarray
        ``(n_fields,)`` float64 days; the whole year for a field without observation in it.
    """
    span = year[1] - year[0]
    out = np.full(n_fields, span)
    inside = (obs_t >= year[0]) & (obs_t < year[1])
    f, t = obs_field[inside], obs_t[inside]
    if f.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, f[1:] != f[:-1]])
    ends = np.r_[starts[1:], f.size] - 1
    gaps = np.r_[0.0, np.diff(t)]
    gaps[starts] = t[starts] - year[0]
    longest = np.maximum.reduceat(gaps, starts)
    out[f[starts]] = np.maximum(longest, year[1] - t[ends])
    return out


def compute(*, n_rows: np.ndarray, n_dropped: np.ndarray, n_sensors: np.ndarray,
            counts: np.ndarray, filled: np.ndarray, ndti: np.ndarray | None,
            t_days: np.ndarray, year: tuple[float, float], max_gap_days: float,
            obs_field: np.ndarray | None = None, obs_t: np.ndarray | None = None
            ) -> dict[str, np.ndarray]:
    """Compute the observation-quality columns.

    Parameters
    ----------
    n_rows, n_dropped, n_sensors
        ``(n_fields,)`` counts from the time grid.
    counts
        ``(n_fields, n_time)`` kept observations per cell of the primary index.
    filled
        ``(n_fields, n_time)`` gap-filled primary index.
    ndti
        ``(n_fields, n_time)`` gap-filled NDTI, or None when absent.
    t_days
        ``(n_time,)`` cell centres, days since origin.
    year
        ``(start, end)`` of the agricultural year.
    max_gap_days
        Gap-filling limit, the threshold of ``flag_long_gap``.
    obs_field, obs_t
        Valid observations (see :func:`longest_gap_exact`); when given the longest gap
        is exact, otherwise it is measured between grid cells.

    Returns
    -------
    dict
        Column name -> ``(n_fields,)`` float32, in :func:`specs` order.
    """
    cols = (t_days >= year[0]) & (t_days < year[1])
    k = max(int(cols.sum()), 1)
    n_valid = counts[:, cols].sum(axis=1)
    if obs_field is not None and obs_t is not None:
        gap = longest_gap_exact(obs_field, obs_t, n_rows.shape[0], year)
    else:
        gap = longest_gap_days(counts > 0, t_days, year)
    has_ndti = (np.zeros(n_rows.shape, dtype=bool) if ndti is None
                else np.isfinite(ndti[:, cols]).any(axis=1))
    out = {
        "obs_n_rows": n_rows,
        "obs_n_dropped": n_dropped,
        "obs_n_valid": n_valid,
        "obs_n_sensors": n_sensors,
        "obs_longest_gap_days": gap,
        "obs_year_share": (counts[:, cols] > 0).sum(axis=1) / k,
        "obs_filled_share": np.isfinite(filled[:, cols]).sum(axis=1) / k,
        "flag_few_obs": n_valid < MIN_OBS_YEAR,
        "flag_long_gap": gap > max_gap_days,
        "flag_no_ndti": ~has_ndti,
    }
    return {k2: np.asarray(v, dtype=np.float32) for k2, v in out.items()}
