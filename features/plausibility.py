"""Plausibility of series values: catch wrong scales and offsets before they become labels.

An index stored x10000, reflectance read with the wrong offset rule, a band
left in digital numbers: each gives numbers that look like data and are not.
These checks compare values with the range their kind of series can take and
say what the values look like (x10000? offset?), so a run can record the
problem, show it and stop when most of the data is implausible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from regenmap.schema import ACQUISITION_ID

#: Range each index can take (normalised differences lie in [-1, 1]).
INDEX_RANGES: dict[str, tuple[float, float]] = {
    **{k: (-1.0, 1.0) for k in ("ndvi", "ndti", "bsi", "ndmi", "nbr", "nbr2", "kndvi", "gndvi",
                                "ndre", "ndwi", "mndwi", "ndbi", "ndsi")},
    "evi": (-1.0, 2.5), "evi2": (-1.0, 2.5), "savi": (-1.5, 1.5), "msavi": (-1.0, 1.0),
}
#: Surface reflectance of an optical band, with room for noise and bright targets.
REFLECTANCE_RANGE: tuple[float, float] = (-0.2, 1.2)
#: Band common names whose series are reflectance.
REFLECTANCE_SERIES = frozenset({"coastal", "blue", "green", "red", "yellow", "rededge",
                                "rededge1", "rededge2", "rededge3", "nir", "nir08", "nir09",
                                "swir16", "swir22"})
#: Share of values out of range above which a series (or an acquisition) is implausible.
IMPLAUSIBLE_SHARE = 0.05


@dataclass(frozen=True)
class Implausible:
    """A series whose values are out of the range of its kind.

    Attributes
    ----------
    series
        Series name (``ndvi``, ``red``...).
    share
        Share (0-1) of its finite values out of range.
    n
        Finite values checked.
    low, high
        The range.
    looks_like
        What the values look like: ``x10000``, ``offset`` or ``out of range``.
    """

    series: str
    share: float
    n: int
    low: float
    high: float
    looks_like: str

    def text(self) -> str:
        """Return the problem in words, with what to check."""
        hint = {"x10000": "the values look multiplied by 10000: scale them by 0.0001",
                "offset": "many values lie below the range: an offset looks wrong (e.g. "
                          "Earth Engine's S2_SR_HARMONIZED needs no processing-baseline "
                          "offset; pick the profile that matches the product)",
                }.get(self.looks_like, "check the product's scale, offset and nodata value")
        return (f"{self.series.upper()}: {self.share:.0%} of {self.n} values lie outside "
                f"[{self.low:g}, {self.high:g}]; {hint}")


def value_range(series: str) -> tuple[float, float] | None:
    """Return the range a series can take, or None when it is not known (e.g. SAR, counts)."""
    if series in INDEX_RANGES:
        return INDEX_RANGES[series]
    if series in REFLECTANCE_SERIES:
        return REFLECTANCE_RANGE
    return None


@dataclass(frozen=True)
class Tally:
    """Counts of one series' values against its range (they add up across tiles).

    Attributes
    ----------
    n
        Finite values.
    out
        Values out of range.
    below
        Values below the range.
    huge
        Values beyond 50 times the range's larger bound (x10000 data).
    """

    n: int = 0
    out: int = 0
    below: int = 0
    huge: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.n + other.n, self.out + other.out, self.below + other.below,
                     self.huge + other.huge)


def tally(series: str, values: np.ndarray) -> Tally | None:
    """Count a series' values against its range; None when the range is unknown."""
    bounds = value_range(series)
    if bounds is None:
        return None
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    low, high = bounds
    return Tally(int(v.size), int(((v < low) | (v > high)).sum()), int((v < low).sum()),
                 int((np.abs(v) > 50 * max(abs(low), abs(high))).sum()))


def judge(series: str, counts: Tally) -> Implausible | None:
    """Decide from counts whether a series is implausible, and what it looks like."""
    bounds = value_range(series)
    if bounds is None or counts.n == 0:
        return None
    share = counts.out / counts.n
    if share <= IMPLAUSIBLE_SHARE:
        return None
    if counts.huge > counts.n / 2:
        looks = "x10000"
    elif counts.below > counts.out / 2:
        looks = "offset"
    else:
        looks = "out of range"
    return Implausible(series, share, counts.n, bounds[0], bounds[1], looks)


def check_values(series: str, values: np.ndarray) -> Implausible | None:
    """Check one series' values against its range.

    Parameters
    ----------
    series
        Lower-case series name.
    values
        Any shape; NaN are ignored.

    Returns
    -------
    Implausible or None
        None when the range is unknown, nothing is finite, or at most
        :data:`IMPLAUSIBLE_SHARE` of the values are out of range.
    """
    counts = tally(series, values)
    return None if counts is None else judge(series, counts)


def check_table(table: pd.DataFrame, stat: str) -> list[Implausible]:
    """Check every ``<series>_<stat>`` column of an observations table."""
    suffix = f"_{stat}"
    found = []
    for col in table.columns:
        if isinstance(col, str) and col.endswith(suffix):
            problem = check_values(col[: -len(suffix)], table[col].to_numpy())
            if problem is not None:
                found.append(problem)
    return found


def tally_acquisitions(table: pd.DataFrame, stat: str) -> dict[tuple[str, str], Tally]:
    """Count values per (acquisition, series) of an observations table (add across tiles).

    Parameters
    ----------
    table
        Observations with ``acquisition_id`` and ``<series>_<stat>`` columns.
    stat
        Statistic checked.
    """
    suffix = f"_{stat}"
    out: dict[tuple[str, str], Tally] = {}
    cols = [c for c in table.columns if isinstance(c, str) and c.endswith(suffix)
            and value_range(c[: -len(suffix)]) is not None]
    if not cols:
        return out
    for acq, rows in table.groupby(ACQUISITION_ID, sort=False):
        for col in cols:
            series = col[: -len(suffix)]
            counts = tally(series, rows[col].to_numpy())
            if counts is not None:
                out[(str(acq), series)] = counts
    return out
