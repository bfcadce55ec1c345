"""Seasonal statistics of each index over the regular grid: year and quarters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from regenmap.features.spec import FEATURE_INDICES, FeatureSpec

YEAR_STATS: tuple[str, ...] = ("mean", "std", "min", "max", "p10", "p50", "p90")
SEASON_STATS: tuple[str, ...] = ("mean", "p10", "p50", "p90", "slope")
SEASONS: tuple[str, ...] = ("s1", "s2", "s3", "s4")

_STAT_TEXT = {
    "mean": "mean", "std": "standard deviation", "min": "minimum", "max": "maximum",
    "p10": "10th percentile", "p50": "median", "p90": "90th percentile",
    "slope": "least-squares slope",
}


def specs(indices: Sequence[str] = FEATURE_INDICES) -> list[FeatureSpec]:
    """Return the seasonal feature columns, in output order."""
    out: list[FeatureSpec] = []
    for index in indices:
        up = index.upper()
        for s in YEAR_STATS:
            out.append(FeatureSpec(f"{index}_{s}_year", "1",
                                   f"{_STAT_TEXT[s].capitalize()} of the regular {up} series "
                                   "over the agricultural year (gap-filled grid cells).",
                                   index, "year"))
        for season in SEASONS:
            q = season[1]
            for s in SEASON_STATS:
                unit = "1/day" if s == "slope" else "1"
                what = (f"{_STAT_TEXT[s].capitalize()} of {up} against time"
                        if s == "slope" else f"{_STAT_TEXT[s].capitalize()} of {up}")
                out.append(FeatureSpec(f"{index}_{s}_{season}", unit,
                                       f"{what} in quarter {q} of the agricultural year "
                                       f"(months {3 * int(q) - 2}-{3 * int(q)} after year_start).",
                                       index, season))
    return out


def nanquantile_rows(x: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of each row ignoring NaN (linear interpolation), vectorised.

    Parameters
    ----------
    x
        ``(n, k)`` float array.
    qs
        Quantiles in [0, 1].

    Returns
    -------
    numpy.ndarray
        ``(len(qs), n)`` float64; NaN for rows without a finite value.
    """
    xs = np.sort(x.astype(np.float64), axis=1)  # NaN sort last
    n_ok = np.isfinite(xs).sum(axis=1)
    out = np.full((len(qs), x.shape[0]), np.nan)
    has = n_ok > 0
    if not has.any() or x.shape[1] == 0:
        return out
    rows = np.nonzero(has)[0]
    for k, q in enumerate(qs):
        pos = q * (n_ok[has] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_ok[has] - 1)
        f = pos - lo
        out[k, rows] = xs[rows, lo] * (1 - f) + xs[rows, hi] * f
    return out


def row_slope(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``y`` against ``t`` over finite cells.

    Parameters
    ----------
    y
        ``(n, k)`` float array.
    t
        ``(k,)`` float times (days).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 slope in units of ``y`` per day; NaN with fewer than 2 values.
    """
    ok = np.isfinite(y)
    n_ok = ok.sum(axis=1)
    tt = np.where(ok, t[None, :], 0.0)
    yy = np.where(ok, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = tt.sum(axis=1) / n_ok
        ym = yy.sum(axis=1) / n_ok
        dt = np.where(ok, t[None, :] - tm[:, None], 0.0)
        num = (dt * (yy - ym[:, None]) * ok).sum(axis=1)
        den = (dt * dt).sum(axis=1)
        slope = num / den
    return np.where((n_ok >= 2) & (den > 0), slope, np.nan)


def compute(values: dict[str, np.ndarray], t_days: np.ndarray, year: tuple[float, float],
            seasons: Sequence[tuple[float, float]], indices: Sequence[str] = FEATURE_INDICES
            ) -> dict[str, np.ndarray]:
    """Compute the seasonal features.

    Parameters
    ----------
    values
        Index -> ``(n_fields, n_time)`` regular series (gap-filled).
    t_days
        ``(n_time,)`` column centres, days since grid origin.
    year
        ``(start, end)`` of the agricultural year, days since grid origin.
    seasons
        Four ``(start, end)`` quarters of that year.
    indices
        Index names to describe; absent ones give NaN columns.

    Returns
    -------
    dict
        Column name -> ``(n_fields,)`` float32, in :func:`specs` order.
    """
    n = next(iter(values.values())).shape[0] if values else 0
    out: dict[str, np.ndarray] = {}
    nan = np.full(n, np.nan, dtype=np.float32)
    in_year = (t_days >= year[0]) & (t_days < year[1])
    for index in indices:
        y = values.get(index)
        if y is None or not np.isfinite(y).any():
            for s in YEAR_STATS:
                out[f"{index}_{s}_year"] = nan
            for season in SEASONS:
                for s in SEASON_STATS:
                    out[f"{index}_{s}_{season}"] = nan
            continue
        yy = y[:, in_year].astype(np.float64)
        ok = np.isfinite(yy)
        n_ok = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, yy, 0).sum(axis=1) / n_ok
            var = np.where(ok, (yy - mean[:, None]) ** 2, 0).sum(axis=1) / n_ok
        qs = nanquantile_rows(yy, (0.0, 1.0, 0.1, 0.5, 0.9))
        stats = {"mean": mean, "std": np.sqrt(var), "min": qs[0], "max": qs[1],
                 "p10": qs[2], "p50": qs[3], "p90": qs[4]}
        for s in YEAR_STATS:
            out[f"{index}_{s}_year"] = stats[s].astype(np.float32)
        for season, (a, b) in zip(SEASONS, seasons, strict=True):
            cols = (t_days >= a) & (t_days < b)
            ys = y[:, cols].astype(np.float64)
            oks = np.isfinite(ys)
            with np.errstate(invalid="ignore", divide="ignore"):
                smean = np.where(oks, ys, 0).sum(axis=1) / oks.sum(axis=1)
            sq = nanquantile_rows(ys, (0.1, 0.5, 0.9))
            sstats = {"mean": smean, "p10": sq[0], "p50": sq[1], "p90": sq[2],
                      "slope": row_slope(ys, t_days[cols])}
            for s in SEASON_STATS:
                out[f"{index}_{s}_{season}"] = sstats[s].astype(np.float32)
    return out
