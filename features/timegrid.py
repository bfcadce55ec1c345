"""Regular per-field time grid: irregular observations -> (field, time) arrays.

Every field's series of each index is composited onto the same fixed grid
(bins of ``step_days`` days, or calendar months), small gaps are filled by
linear interpolation in time and the result may be smoothed. All of it runs
on whole ``(n_fields, n_time)`` NumPy arrays: there is no Python loop over
fields. :func:`to_xarray` gives the labelled ``(field, time)`` form.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import xarray as xr

from regenmap.errors import ConfigError, InputError
from regenmap.schema import FIELD_ID, SENSOR, TIME, VALID_FRACTION, stat_column

Composite = Literal["mean", "median", "max_ndvi"]
Smoothing = Literal["none", "savgol", "whittaker"]
Step = int | Literal["monthly"]

if TYPE_CHECKING:
    from regenmap.features.options import FeatureOptions

_NS_PER_DAY = 86_400 * 10**9


class MissingIndexWarning(UserWarning):
    """An index (e.g. NDTI without SWIR bands) is absent: its features are NaN."""


@dataclass(frozen=True)
class TimeGrid:
    """Per-field regular time series of several indices.

    Attributes
    ----------
    field_ids
        ``(n_fields,)`` object array of field ids (str), sorted.
    times
        ``(n_time,)`` datetime64[ns] bin centres.
    t_days
        ``(n_time,)`` float64 bin centres in days since ``origin``.
    edges_days
        ``(n_time + 1,)`` float64 bin edges in days since ``origin``.
    origin
        datetime64[ns] start of the first bin (a ``year_start`` date).
    values
        Index name (lower case) -> ``(n_fields, n_time)`` float32 composites after
        gap filling and smoothing; NaN where no value could be had.
    composites
        Same keys and shapes: the composites before gap filling (NaN in empty bins).
    counts
        Same keys: ``(n_fields, n_time)`` int16 number of kept observations per bin
        (repeated acquisitions of one field at one time count once).
    n_rows
        ``(n_fields,)`` int64 observation rows of each field in the input.
    n_dropped
        ``(n_fields,)`` int64 rows dropped as below ``min_valid_fraction`` (or no time).
    n_sensors
        ``(n_fields,)`` int64 distinct sensors among the kept rows of each field.
    options
        The options the grid was built with (recorded in provenance).
    obs_field, obs_t_days
        ``(n_obs,)`` field row and time (days since ``origin``) of every kept observation
        with at least one index value, repeats removed, sorted by field then time.
    """

    field_ids: np.ndarray
    times: np.ndarray
    t_days: np.ndarray
    edges_days: np.ndarray
    origin: np.datetime64
    values: dict[str, np.ndarray]
    composites: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    n_rows: np.ndarray
    n_dropped: np.ndarray
    n_sensors: np.ndarray
    options: dict[str, object] = field(default_factory=dict)
    obs_field: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    obs_t_days: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_fields(self) -> int:
        """Number of fields (rows)."""
        return int(self.field_ids.shape[0])

    @property
    def step_days(self) -> np.ndarray:
        """``(n_time,)`` float64 width of each bin in days."""
        return np.diff(self.edges_days)

    def days(self, when: pd.Timestamp) -> float:
        """Days from the grid origin to ``when``."""
        return float((pd.Timestamp(when) - pd.Timestamp(self.origin)) / pd.Timedelta(days=1))

    def take(self, rows: np.ndarray) -> TimeGrid:
        """Return the grid of some fields only.

        Parameters
        ----------
        rows
            (m,) int positions of the fields to keep, in the order wanted.
        """
        rows = np.asarray(rows, dtype=np.int64)
        new_pos = np.full(self.n_fields, -1, dtype=np.int64)
        new_pos[rows] = np.arange(rows.size)
        keep = new_pos[self.obs_field] >= 0 if self.obs_field.size else np.zeros(0, bool)
        obs_field = new_pos[self.obs_field[keep]]
        obs_t = self.obs_t_days[keep]
        order = np.lexsort((obs_t, obs_field))
        return TimeGrid(field_ids=self.field_ids[rows], times=self.times, t_days=self.t_days,
                        edges_days=self.edges_days, origin=self.origin,
                        values={k: v[rows] for k, v in self.values.items()},
                        composites={k: v[rows] for k, v in self.composites.items()},
                        counts={k: v[rows] for k, v in self.counts.items()},
                        n_rows=self.n_rows[rows], n_dropped=self.n_dropped[rows],
                        n_sensors=self.n_sensors[rows], options=self.options,
                        obs_field=obs_field[order], obs_t_days=obs_t[order])


def anchor_before(when: np.datetime64, year_start: str) -> np.datetime64:
    """Return the latest ``year_start`` (``MM-DD``) date on or before ``when``.

    Parameters
    ----------
    when
        A datetime64 instant.
    year_start
        Month and day, ``MM-DD``, e.g. ``"10-01"`` for a season starting in October.

    Returns
    -------
    numpy.datetime64
        Midnight of that date, datetime64[ns].
    """
    month, day = parse_year_start(year_start)
    ts = pd.Timestamp(when)
    candidate = pd.Timestamp(year=ts.year, month=month, day=day)
    if candidate > ts:
        candidate = pd.Timestamp(year=ts.year - 1, month=month, day=day)
    return np.datetime64(candidate.value, "ns")


def parse_year_start(year_start: str) -> tuple[int, int]:
    """Parse ``MM-DD`` into (month, day), raising :class:`ConfigError` on a bad value."""
    try:
        month_s, day_s = year_start.split("-")
        month, day = int(month_s), int(day_s)
        pd.Timestamp(year=2001, month=month, day=day)  # rejects 02-30, 13-01 ...
    except (ValueError, AttributeError):
        raise ConfigError(f"year_start={year_start!r} is not a valid MM-DD date "
                          "(e.g. '01-01', or '10-01' for a season starting in October)") from None
    if (month, day) == (2, 29):
        raise ConfigError("year_start='02-29' does not exist every year: use 03-01")
    return month, day


def grid_edges(origin: np.datetime64, last: np.datetime64, step: Step) -> np.ndarray:
    """Return bin edges, in days since ``origin``, covering ``[origin, last]``.

    Parameters
    ----------
    origin, last
        First and last instants to cover (datetime64).
    step
        Bin width in days (int >= 1) or ``"monthly"`` for calendar months.

    Returns
    -------
    numpy.ndarray
        ``(n_time + 1,)`` float64 increasing edges; the first is 0.
    """
    span = float((last - origin) / np.timedelta64(1, "D"))
    if step == "monthly":
        start = pd.Timestamp(origin)
        n = max(1, int(np.ceil(span / 28.0)) + 1)
        months = pd.date_range(start, periods=n + 1, freq=pd.DateOffset(months=1))
        edges = (months - start) / pd.Timedelta(days=1)
        edges_arr = np.asarray(edges, dtype=np.float64)
        keep = int(np.searchsorted(edges_arr, span, side="right")) + 1
        return edges_arr[: max(2, keep)]
    if not isinstance(step, int) or step < 1:
        raise ConfigError(f"step_days={step!r}: use a whole number of days >= 1 "
                          "(5, 10, 16 ...) or 'monthly'")
    n = int(np.floor(span / step)) + 1
    return np.arange(n + 1, dtype=np.float64) * step


def _bin_of(t_days: np.ndarray, edges: np.ndarray, step: Step) -> np.ndarray:
    if step == "monthly":
        return np.searchsorted(edges, t_days, side="right").astype(np.int64) - 1
    return np.floor(t_days / float(step)).astype(np.int64)


def available_indices(observations: pd.DataFrame, stat: str) -> list[str]:
    """Return the lower-case index names having a ``<index>_<stat>`` column."""
    suffix = f"_{stat.lower()}"
    return sorted({c[: -len(suffix)] for c in observations.columns
                   if isinstance(c, str) and c.endswith(suffix) and c != suffix})


def _composite_mean(key: np.ndarray, v: np.ndarray, w: np.ndarray, size: int) -> np.ndarray:
    num = np.bincount(key, weights=v * w, minlength=size)
    den = np.bincount(key, weights=w, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out


def _order_by_key_then_value(key: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Permutation sorting rows by integer ``key``, then by finite value ``v``.

    One float64 argsort of ``key + 0.5 * (v scaled to [0, 1])`` instead of a lexsort
    (several times faster); values closer than ~1e-9 of their range may tie, which
    cannot change a median or maximum by more than that.
    """
    if v.size == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = float(v.min()), float(v.max())
    if key.max(initial=0) >= 2**40 or hi == lo:
        return np.lexsort((v, key))
    return np.argsort(key + 0.5 * (v - lo) / (hi - lo), kind="stable")


def _composite_median(key: np.ndarray, v: np.ndarray, size: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    order = _order_by_key_then_value(key, v)
    ks, vs = key[order], v[order]
    cnt = np.bincount(ks, minlength=size)
    starts = np.concatenate(([0], np.cumsum(cnt)[:-1]))
    has = cnt > 0
    lo = starts + (cnt - 1) // 2
    hi = starts + cnt // 2
    out = np.full(size, np.nan)
    out[has] = 0.5 * (vs[lo[has]] + vs[hi[has]])
    return out, cnt


def _select_max(key: np.ndarray, score: np.ndarray, size: int) -> np.ndarray:
    """Return, per key, the row (position in ``key``) of the largest ``score``; -1 if none."""
    order = _order_by_key_then_value(key, score)
    ks = key[order]
    last = np.ones(ks.shape[0], dtype=bool)
    last[:-1] = ks[1:] != ks[:-1]
    pick = np.full(size, -1, dtype=np.int64)
    pick[ks[last]] = order[last]
    return pick


def encode_strings(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a string column, with its sorted distinct values.

    Uses Arrow's dictionary encoding (much faster than hashing Python strings).
    Missing values become the string ``"None"``.

    Returns
    -------
    codes, values
        ``(n,)`` int64 codes into ``values``, an ``(n_distinct,)`` sorted object array of str.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        arr = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(column.astype(str), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = pc.cast(arr, pa.string())
    arr = pc.fill_null(arr, "None")
    enc = pc.dictionary_encode(arr)
    values = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    order = np.argsort(values.astype(str), kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    codes = rank[enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)]
    return codes, values[order]


def _repeated(key: np.ndarray) -> np.ndarray:
    """Flag every row whose key already appeared earlier (the first occurrence is not flagged)."""
    if key.size < 2:
        return np.zeros(key.size, dtype=bool)
    d = np.diff(key)
    out = np.zeros(key.size, dtype=bool)
    if (d >= 0).all():  # the usual case: sorted by field then time
        out[1:] = d == 0
        return out
    order = np.argsort(key, kind="stable")
    ks = key[order]
    out[order[1:]] = ks[1:] == ks[:-1]
    return out


def _merge_repeats(key: np.ndarray, vf: np.ndarray, keep: np.ndarray, repeat: np.ndarray
                   ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Merge rows sharing a (field, time) ``key`` into the first of them.

    Values become the ``valid_fraction``-weighted mean of the kept repeats and
    ``valid_fraction`` their maximum; the other repeats (``repeat``) are then ignored.
    Only the rows of repeated keys are touched.
    """
    idx = np.nonzero(np.isin(key, np.unique(key[repeat])))[0]
    _, first_pos, group = np.unique(key[idx], return_index=True, return_inverse=True)
    first = idx[first_pos]
    w = np.where(keep[idx], vf[idx], 0.0)
    vf_out = vf.copy()
    best = np.full(first.size, -np.inf)
    np.maximum.at(best, group, np.where(keep[idx], vf[idx], -np.inf))
    vf_out[first] = np.where(np.isfinite(best), best, vf[first])

    def mean(v: np.ndarray) -> np.ndarray:
        vi = v[idx]
        ok = np.isfinite(vi) & (w > 0)
        num = np.bincount(group, weights=np.where(ok, vi * w, 0.0), minlength=first.size)
        den = np.bincount(group, weights=np.where(ok, w, 0.0), minlength=first.size)
        out = v.copy()
        merged = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        out[first] = np.where(den > 0, merged, v[first])
        return out

    return vf_out, mean


def fill_gaps(y: np.ndarray, t_days: np.ndarray, max_gap_days: float) -> np.ndarray:
    """Fill NaN runs by linear interpolation in time when the gap is short enough.

    Parameters
    ----------
    y
        ``(n_fields, n_time)`` float array, NaN where no composite.
    t_days
        ``(n_time,)`` times of the columns, in days.
    max_gap_days
        A NaN run is filled only when the two valid values around it are at most
        this many days apart; longer gaps, and NaN before the first or after the
        last valid value, stay NaN (no extrapolation).

    Returns
    -------
    numpy.ndarray
        New array of the same shape and dtype.
    """
    n, T = y.shape
    if T == 0 or n == 0:
        return y.copy()
    valid = np.isfinite(y)
    holes = ~valid.all(axis=1) & valid.any(axis=1)
    if not holes.all():  # only rows with a gap need the work below
        out = y.copy()
        if holes.any():
            out[holes] = fill_gaps(y[holes], t_days, max_gap_days)
        return out
    cols = np.arange(T)
    prev = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(valid, cols, T)[:, ::-1], axis=1)[:, ::-1]
    inside = ~valid & (prev >= 0) & (nxt < T)
    p = np.clip(prev, 0, T - 1)
    q = np.clip(nxt, 0, T - 1)
    tp, tq = t_days[p], t_days[q]
    gap = tq - tp
    ok = inside & (gap <= max_gap_days)
    yp = np.take_along_axis(y, p, axis=1)
    yq = np.take_along_axis(y, q, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (t_days[None, :] - tp) / np.where(gap > 0, gap, 1.0)
        filled = yp + w * (yq - yp)
    return np.where(ok, filled, y).astype(y.dtype, copy=False)


def _fill_all(y: np.ndarray, t_days: np.ndarray) -> np.ndarray:
    """Fill every NaN (interpolate inside, hold the edge value outside) for filtering."""
    out = fill_gaps(y, t_days, np.inf)
    T = y.shape[1]
    valid = np.isfinite(out)
    cols = np.arange(T)
    first = np.where(valid.any(axis=1), np.argmax(valid, axis=1), 0)
    last = np.where(valid.any(axis=1), T - 1 - np.argmax(valid[:, ::-1], axis=1), 0)
    idx = np.clip(cols[None, :], first[:, None], last[:, None])
    out = np.take_along_axis(out, idx, axis=1)
    return np.where(np.isfinite(out), out, 0.0)  # rows without any value: masked again later


def smooth(y: np.ndarray, t_days: np.ndarray, method: Smoothing, *, window_days: float = 50.0,
           lam: float = 2.0) -> np.ndarray:
    """Smooth each row of a gap-filled grid; NaN cells stay NaN.

    Parameters
    ----------
    y
        ``(n_fields, n_time)`` float array.
    t_days
        ``(n_time,)`` column times, in days (only used to bridge NaN before filtering).
    method
        ``none``; ``savgol`` (Savitzky-Golay, quadratic, scipy); ``whittaker``
        (second-order Whittaker smoother, NaN cells weighted 0, solved for all fields
        at once with a batched linear solve).
    window_days
        Savitzky-Golay window in days, rounded to an odd number of grid cells (>= 3).
    lam
        Whittaker smoothing parameter (larger is smoother) for a 10-day grid; it is
        scaled by ``(10 / step) ** 4`` so that other steps smooth alike in days.

    Returns
    -------
    numpy.ndarray
        Smoothed array, same shape and dtype.
    """
    if method == "none" or y.size == 0:
        return y
    n, T = y.shape
    nan = ~np.isfinite(y)
    step = float(np.median(np.diff(t_days))) if T > 1 else 10.0
    if method == "savgol":
        from scipy.signal import savgol_filter

        win = min(max(3, round(window_days / step)) | 1, T if T % 2 else T - 1)
        if win < 3:
            return y
        out = savgol_filter(_fill_all(y, t_days).astype(np.float64), win, min(2, win - 1), axis=1)
        out = np.where(nan, np.nan, out)
        return out.astype(y.dtype)
    if method == "whittaker":
        if T < 3:
            return y
        D = np.diff(np.eye(T), n=2, axis=0)
        P = lam * (10.0 / step) ** 4 * (D.T @ D)
        w = (~nan).astype(np.float64)
        yz = np.where(nan, 0.0, y).astype(np.float64)
        out = np.empty((n, T), dtype=np.float64)
        eye = np.eye(T)
        # Rows without a missing cell share one system matrix: one inverse for all of them.
        full = ~nan.any(axis=1)
        out[full] = yz[full] @ np.linalg.inv(eye + P).T
        part = np.flatnonzero(~full)
        chunk = max(1, 2_000_000 // (T * T))
        for s in range(0, part.size, chunk):  # chunks bound memory; not a per-field loop
            rows = part[s:s + chunk]
            ws = w[rows]
            A = ws[:, :, None] * eye[None] + P[None] + 1e-9 * eye[None]
            out[rows] = np.linalg.solve(A, (ws * yz[rows])[:, :, None])[:, :, 0]
        out = np.where(nan, np.nan, out)
        return out.astype(y.dtype)
    raise ConfigError(f"smoothing={method!r}: use 'none', 'savgol' or 'whittaker'")


def regularize(observations: pd.DataFrame, options: FeatureOptions | None = None, *,
               indices: Sequence[str] | None = None, warn_missing: Sequence[str] = ()
               ) -> TimeGrid:
    """Composite an observations table onto a regular per-field time grid.

    Parameters
    ----------
    observations
        Observations table (``core/schema.py``): ``field_id``, ``time`` and
        ``<index>_<stat>`` columns; ``valid_fraction`` and ``sensor`` if present.
    options
        Grid options (:class:`~regenmap.features.options.FeatureOptions`): ``stat``,
        ``step_days``, ``min_valid_fraction`` (rows below it, or NaN, are dropped and
        counted), ``max_gap_days``, ``year_start`` (the grid starts on the last such date
        before the first observation), ``composite``, ``smoothing`` and its parameters,
        ``sensor_offsets``. Defaults if None.
    indices
        Lower-case index names to grid; every ``<index>_<stat>`` present if None.
        Requested indices without a column get all-NaN arrays.
    warn_missing
        Index names whose absence deserves a :class:`MissingIndexWarning`.

    Returns
    -------
    TimeGrid
        One row per distinct ``field_id`` of the input (also fields with no kept row).

    Raises
    ------
    InputError
        If ``field_id`` or ``time`` is missing.
    """
    from regenmap.features.options import FeatureOptions

    opts = options or FeatureOptions()
    stat, step_days = opts.stat, opts.step_days
    min_valid_fraction, max_gap_days = opts.min_valid_fraction, float(opts.max_gap_days)
    year_start, composite, smoothing = opts.year_start, opts.composite, opts.smoothing
    smoothing_window_days, whittaker_lambda = opts.smoothing_window_days, opts.whittaker_lambda
    sensor_offsets = opts.sensor_offsets
    for col in (FIELD_ID, TIME):
        if col not in observations.columns:
            raise InputError(f"observations table has no '{col}' column (columns: "
                             f"{', '.join(map(str, observations.columns[:12]))}); it needs "
                             f"'{FIELD_ID}', '{TIME}' and '<index>_<stat>' columns")
    idx_names = [i.lower() for i in (indices if indices is not None
                                     else available_indices(observations, stat))]
    codes, field_ids = encode_strings(observations[FIELD_ID])
    n_fields = field_ids.shape[0]

    t_ns = pd.to_datetime(observations[TIME]).to_numpy(dtype="datetime64[ns]")
    has_time = ~np.isnat(t_ns)
    if VALID_FRACTION in observations.columns:
        vf = observations[VALID_FRACTION].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        vf = np.ones(len(observations))
    keep = has_time & np.isfinite(vf) & (vf >= min_valid_fraction)
    n_rows = np.bincount(codes, minlength=n_fields).astype(np.int64)
    n_dropped = np.bincount(codes[~keep], minlength=n_fields).astype(np.int64)
    sensor_codes: np.ndarray | None = None
    sensor_names: list[str] = []
    if SENSOR in observations.columns:
        sensor_codes, names_arr = encode_strings(observations[SENSOR])
        sensor_names = [str(x) for x in names_arr]
        n_s = max(len(sensor_names), 1)
        seen = np.bincount(codes[keep].astype(np.int64) * n_s + sensor_codes[keep],
                           minlength=n_fields * n_s)
        n_sensors = (seen.reshape(n_fields, n_s) > 0).sum(axis=1).astype(np.int64)
    else:
        n_sensors = (np.bincount(codes[keep], minlength=n_fields) > 0).astype(np.int64)

    if has_time.any():
        origin = anchor_before(t_ns[has_time].min(), year_start)
        last = t_ns[has_time].max()
    else:
        origin = anchor_before(np.datetime64("2000-01-01", "ns"), year_start)
        last = origin
    edges = grid_edges(origin, last, step_days)
    T = edges.shape[0] - 1
    t_days = 0.5 * (edges[:-1] + edges[1:])
    times = origin + (t_days * _NS_PER_DAY).astype("timedelta64[ns]")

    rel = np.zeros(len(observations))
    rel[has_time] = (t_ns[has_time] - origin).astype(np.int64) / _NS_PER_DAY
    b = np.clip(_bin_of(rel, edges, step_days), 0, T - 1)
    key_all = codes.astype(np.int64) * T + b
    size = n_fields * T
    # Repeated acquisitions (same field and second, e.g. from overlapping granules) count once.
    pair = codes.astype(np.int64) * (int(rel.max(initial=0.0) * 86_400) + 2) + np.round(
        rel * 86_400).astype(np.int64)
    repeat = _repeated(pair)
    repeat_mean: Callable[[np.ndarray], np.ndarray] | None = None
    if repeat.any():
        vf, repeat_mean = _merge_repeats(pair, vf, keep, repeat)
        keep = has_time & np.isfinite(vf) & (vf >= min_valid_fraction)

    offsets = {str(k): {str(i).lower(): float(v) for i, v in d.items()}
               for k, d in (sensor_offsets or {}).items()}

    def column(index: str) -> np.ndarray | None:
        name = stat_column(index, stat)
        if name not in observations.columns:
            return None
        v = observations[name].to_numpy(dtype=np.float64, na_value=np.nan).copy()
        if offsets and sensor_codes is not None:
            for sensor, per_index in offsets.items():
                if index in per_index and sensor in sensor_names:
                    v[sensor_codes == sensor_names.index(sensor)] += per_index[index]
        return v if repeat_mean is None else repeat_mean(v)

    pick: np.ndarray | None = None
    if composite == "max_ndvi":
        ndvi = column("ndvi")
        if ndvi is None:
            warnings.warn("composite='max_ndvi' needs an NDVI column "
                          f"('{stat_column('ndvi', stat)}'); using 'median' instead",
                          MissingIndexWarning, stacklevel=2)
            composite = "median"
        else:
            ok = keep & np.isfinite(ndvi) & ~repeat
            rows = np.nonzero(ok)[0]
            sel = _select_max(key_all[ok], ndvi[ok], size)
            pick = np.where(sel >= 0, rows[np.clip(sel, 0, None)], -1)

    any_value = np.zeros(len(observations), dtype=bool)
    values: dict[str, np.ndarray] = {}
    composites: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for index in idx_names:
        v = column(index)
        if v is None or not np.isfinite(v[keep]).any():
            if index in warn_missing:
                warnings.warn(f"index '{index}' is absent from the observations (no finite "
                              f"'{stat_column(index, stat)}' values, e.g. a sensor without "
                              f"the bands it needs): its features are NaN",
                              MissingIndexWarning, stacklevel=2)
            empty = np.full((n_fields, T), np.nan, dtype=np.float32)
            values[index], composites[index] = empty, empty.copy()
            counts[index] = np.zeros((n_fields, T), dtype=np.int16)
            continue
        ok = keep & np.isfinite(v) & ~repeat
        any_value |= ok
        key = key_all[ok]
        cnt = np.bincount(key, minlength=size)
        if composite == "mean":
            comp = _composite_mean(key, v[ok], vf[ok], size)
        elif composite == "median":
            comp, _ = _composite_median(key, v[ok], size)
        else:
            assert pick is not None  # internal invariant, not user input
            comp = np.where(pick >= 0, v[np.clip(pick, 0, None)], np.nan)
            if not np.isfinite(comp[cnt > 0]).all():
                # Bins whose max-NDVI observation lacks this index fall back to the median.
                med, _ = _composite_median(key, v[ok], size)
                comp = np.where(np.isfinite(comp), comp, med)
        comp2 = comp.reshape(n_fields, T).astype(np.float32)
        filled = fill_gaps(comp2, t_days, max_gap_days)
        filled = smooth(filled, t_days, smoothing, window_days=smoothing_window_days,
                        lam=whittaker_lambda)
        values[index] = filled
        composites[index] = comp2
        counts[index] = np.minimum(cnt, np.iinfo(np.int16).max).astype(np.int16).reshape(n_fields, T)

    sel = pair[any_value]
    order_obs = np.arange(sel.size) if sel.size < 2 or (np.diff(sel) >= 0).all() else \
        np.argsort(sel, kind="stable")
    record: dict[str, object] = {
        "stat": stat, "step_days": step_days, "min_valid_fraction": min_valid_fraction,
        "max_gap_days": opts.max_gap_days, "year_start": year_start, "composite": composite,
        "smoothing": smoothing, "smoothing_window_days": smoothing_window_days,
        "whittaker_lambda": whittaker_lambda, "sensor_offsets": offsets,
    }
    return TimeGrid(field_ids=field_ids, times=times, t_days=t_days, edges_days=edges,
                    origin=origin, values=values, composites=composites, counts=counts,
                    n_rows=n_rows, n_dropped=n_dropped, n_sensors=n_sensors, options=record,
                    obs_field=codes[any_value][order_obs], obs_t_days=rel[any_value][order_obs])


def to_xarray(grid: TimeGrid, *, which: Literal["values", "composites"] = "values"
              ) -> xr.Dataset:
    """Return the grid as an xarray Dataset with dims ``(field, time)``.

    Parameters
    ----------
    grid
        A :class:`TimeGrid`.
    which
        ``values`` (gap-filled, smoothed) or ``composites`` (raw bins).

    Returns
    -------
    xarray.Dataset
        One float32 variable per index, plus ``n_obs_<index>`` int16 counts;
        coordinates ``field`` (field_id) and ``time`` (bin centres).
    """
    data = grid.values if which == "values" else grid.composites
    coords = {"field": grid.field_ids.astype(str), "time": grid.times}
    variables: dict[str, xr.DataArray] = {}
    for name, arr in data.items():
        variables[name] = xr.DataArray(arr, dims=("field", "time"), coords=coords,
                                       attrs={"long_name": name.upper(), "units": "1"})
        variables[f"n_obs_{name}"] = xr.DataArray(grid.counts[name], dims=("field", "time"),
                                                  coords=coords)
    return xr.Dataset(variables, attrs={k: str(v) for k, v in grid.options.items()})


def to_dataarray(grid: TimeGrid, index: str) -> xr.DataArray:
    """Return one index of the grid as a ``(field, time)`` float32 DataArray."""
    ds = to_xarray(grid)
    if index.lower() not in ds:
        raise InputError(f"index '{index}' is not on the grid; available: "
                         f"{', '.join(sorted(grid.values))}")
    return ds[index.lower()]
