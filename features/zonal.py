"""Per-field zonal statistics of spectral indices, fused with the index arithmetic.

The hot path of extraction. For one tile window and one acquisition it takes
the raw band arrays (as decoded, any dtype), the quality-mask verdict and the
field raster, and returns per field: ``n_pixels``, ``n_valid`` and, for every
index, mean, std, min, max, count and quantiles over the valid pixels.

Two numba passes, no float rasters:

1. a kernel generated for the set of indices (their formulas inlined) counts
   pixels per field and writes each valid field pixel's index values straight
   into a per-field contiguous buffer (CSR layout). Bands and the quality mask
   stay at their native resolution: a row and a column index map take each
   window pixel to its source pixel (nearest rule), so 20 m bands are never
   materialised on the 10 m grid, and the mask is decoded through a lookup table;
2. a fixed kernel reduces each field's segment. Quantiles are exact order statistics
   found without sorting: a histogram of the field's values over [min, max] (a
   monotone binning) tells which bin holds each wanted rank, and only that bin's
   values are searched by quickselect.

A pixel is *valid* when the mask keeps it and every band the indices need has
data there (not nodata, not NaN). An index value that is not finite (division
by zero) is left out of that index's statistics only. Quantiles use linear
interpolation between order statistics (NumPy's default); std is the
population standard deviation (ddof=0).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from regenmap.features.indices import SpectralIndex
from regenmap.geo.rasterize import FieldRaster

_LOAD_LOCK = threading.Lock()

#: Statistics always computed by :func:`zonal_stats` (quantiles come on top).
BASE_STATS = ("mean", "std", "min", "max", "count")


@dataclass(frozen=True)
class BandInput:
    """One band of one acquisition on the tile window.

    Attributes
    ----------
    data
        2-D raw values as decoded (uint16, float32...), on the window or at native resolution.
    scale, offset
        reflectance = data * scale + offset.
    nodata
        Raw value meaning "no data", or None (NaN always means no data).
    rows, cols
        int64 maps from window row/column to ``data`` row/column (nearest rule); None when
        ``data`` is already on the window.
    """

    data: np.ndarray
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None


@dataclass(frozen=True)
class MaskInput:
    """Quality band of one acquisition on the tile window.

    Attributes
    ----------
    data
        2-D integer codes (SCL classes, QA_PIXEL bits...), native resolution.
    keep
        (n,) bool lookup: ``keep[code]`` is True where the pixel is usable; codes beyond
        the table are dropped.
    rows, cols
        Index maps as in :class:`BandInput`.
    """

    data: np.ndarray
    keep: np.ndarray
    rows: np.ndarray | None = None
    cols: np.ndarray | None = None


@dataclass(frozen=True)
class ZonalResult:
    """Per-field results of one acquisition on one tile window.

    Attributes
    ----------
    n_pixels, n_valid
        (n_fields,) int64 pixels in the (buffered) field and those kept by the mask.
    stats
        ``(index_name, stat)`` -> (n_fields,) float32; stat is ``mean``, ``std``,
        ``min``, ``max``, ``count``, ``median`` or ``pNN``.
    """

    n_pixels: np.ndarray
    n_valid: np.ndarray
    stats: dict[tuple[str, str], np.ndarray]


def quantile_name(q: float) -> str:
    """Statistic name of a percentile: 50 -> ``median``, 10 -> ``p10``, 2.5 -> ``p2.5``."""
    if q == 50:
        return "median"
    return f"p{int(q)}" if float(q).is_integer() else f"p{q:g}"


def zonal_stats(fields: FieldRaster, bands: dict[str, BandInput], indices: Sequence[SpectralIndex],
                *, mask_valid: np.ndarray | None = None, mask: MaskInput | None = None,
                percentiles: Sequence[float] = (50.0,)) -> ZonalResult:
    """Compute per-field statistics of ``indices`` for one acquisition.

    Parameters
    ----------
    fields
        Field raster on the same window as the bands.
    bands
        Common band name (or precomputed index name, lower-case) -> band on the window.
        Indices whose bands are absent get NaN statistics.
    indices
        Indices to compute.
    mask_valid
        (height, width) bool, True where the pixel is usable (a decoded mask on the window).
    mask
        Undecoded quality band with its lookup table (instead of ``mask_valid``); all pixels
        are kept when both are None.
    percentiles
        Quantiles in percent (0-100) to compute; 50 is reported as ``median``.

    Returns
    -------
    ZonalResult
    """
    shape = fields.grid.shape
    used, formulas = _plan(bands, indices)
    if mask is None:
        mask = (MaskInput(np.ones((1, 1), np.uint8), np.array([False, True]),
                          np.zeros(shape[0], np.int64),
                          np.zeros(shape[1], np.int64)) if mask_valid is None
                else MaskInput(np.asarray(mask_valid, dtype=np.uint8), np.array([False, True])))
    params = np.array([[bands[n].scale, bands[n].offset,
                        np.nan if bands[n].nodata is None else bands[n].nodata] for n in used],
                      dtype=np.float64).reshape(len(used), 3)
    args: list[np.ndarray] = []
    direct: list[bool] = []
    for name in used:
        b = bands[name]
        maps = _maps(name, b.data, b.rows, b.cols, shape)
        args += [np.ascontiguousarray(b.data), *maps]
        direct.append(_is_direct(b.data, *maps, shape))
    mrows, mcols = _maps("mask", mask.data, mask.rows, mask.cols, shape)
    direct.append(_is_direct(mask.data, mrows, mcols, shape))
    kernel = _kernel(tuple(used), tuple(formulas), tuple(direct))
    offsets = fields.offsets
    qs = np.asarray(sorted(set(float(q) for q in percentiles)), dtype=np.float64)
    n_idx = len(indices)
    base = np.full((len(BASE_STATS), n_idx, fields.n_fields), np.nan, dtype=np.float32)
    quant = np.full((len(qs), n_idx, fields.n_fields), np.nan, dtype=np.float32)
    n_valid = np.zeros(fields.n_fields, np.int64)
    prow, pcol = fields.pixels
    kernel(prow, pcol, offsets, fields.visit_order, np.ascontiguousarray(mask.data), mrows, mcols,
           np.ascontiguousarray(mask.keep, np.bool_), params, qs, n_valid, base, quant, *args)
    n_pixels = np.diff(offsets)
    stats: dict[tuple[str, str], np.ndarray] = {}
    for k, idx in enumerate(indices):
        for s, name in enumerate(BASE_STATS):
            stats[(idx.name, name)] = base[s, k]
        for j, q in enumerate(qs):
            stats[(idx.name, quantile_name(q))] = quant[j, k]
    return ZonalResult(n_pixels=n_pixels, n_valid=n_valid, stats=stats)


def _maps(name: str, data: np.ndarray, rows: np.ndarray | None, cols: np.ndarray | None,
          shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index maps of one input (identity when it is on the window)."""
    if rows is None or cols is None:
        if data.shape != shape:
            raise ValueError(f"{name} has shape {data.shape} but the window is {shape}; "
                             "give its index maps")
        return np.arange(shape[0], dtype=np.int64), np.arange(shape[1], dtype=np.int64)
    if rows.shape != (shape[0],) or cols.shape != (shape[1],):
        raise ValueError(f"{name}: index maps do not match the window {shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= data.shape[0] or cols.min() < 0
                      or cols.max() >= data.shape[1]):
        raise ValueError(f"{name}: index maps point outside the data")
    return np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(cols, np.int64)


def _plan(bands: dict[str, BandInput], indices: Sequence[SpectralIndex]
          ) -> tuple[list[str], list[str]]:
    """Choose the bands to read and the per-index expression (``nan`` if not computable)."""
    used: list[str] = []
    formulas: list[str] = []
    for idx in indices:
        own = idx.name.lower()
        if own in bands:  # a precomputed index layer (e.g. an NDVI time stack)
            need: tuple[str, ...] = (own,)
            formula = own
        else:
            need = idx.bands
            formula = idx.formula
            for cname, value in idx.constants:
                formula = _substitute(formula, cname, repr(value))
        if all(b in bands for b in need):
            used.extend(b for b in need if b not in used)
            formulas.append(formula)
        else:
            formulas.append("np.nan")
    return used, formulas


def _substitute(formula: str, name: str, value: str) -> str:
    import re

    return re.sub(rf"\b{re.escape(name)}\b", f"({value})", formula)


@functools.cache
def _kernel(used: tuple[str, ...], formulas: tuple[str, ...], direct: tuple[bool, ...]) -> Any:
    """Generate and compile the fused mask + index + statistics kernel for one index set.

    ``direct[j]`` says band j is on the window itself (no index maps needed); the last
    entry is for the mask.
    """
    args = ", ".join(f"b{j}, r{j}, c{j}" for j in range(len(used)))
    n_idx = len(formulas)

    def at(j: int | str, arr: str) -> str:
        return f"{arr}[r, c]" if direct[-1 if j == "m" else int(j)] else \
            f"{arr}[{'mr' if j == 'm' else f'r{j}'}[r], {'mc' if j == 'm' else f'c{j}'}[c]]"

    hoist = [line for j in range(len(used)) for line in
             (f"sc{j} = params[{j}, 0]", f"of{j} = params[{j}, 1]", f"nd{j} = params[{j}, 2]")]
    check = [f"code = {at('m', 'mask')}", "ok = code >= 0 and code < nkeep and keep[code]"]
    for j in range(len(used)):
        check += ["if ok:", f"    v{j} = {at(j, f'b{j}')}", f"    ok = not (v{j} != v{j} or v{j} == nd{j})"]
    put = [f"{name} = np.float64(v{j}) * sc{j} + of{j}" for j, name in enumerate(used)]
    for k, f in enumerate(formulas):
        put += [f"x = {f}", "if np.isfinite(x):", f"    buf[{k}, n{k}] = x", f"    n{k} += 1",
                f"    s{k} += x", f"    ss{k} += x * x", f"    lo{k} = min(lo{k}, x)",
                f"    hi{k} = max(hi{k}, x)"]
    reset = [line for k in range(n_idx) for line in
             (f"n{k} = 0", f"s{k} = 0.0", f"ss{k} = 0.0", f"lo{k} = np.inf", f"hi{k} = -np.inf")]
    reduce = [f"_reduce_field(buf[{k}], n{k}, s{k}, ss{k}, lo{k}, hi{k}, qs, base[:, {k}, f], "
              f"quant[:, {k}, f], bins, counts, scratch)" for k in range(n_idx)]

    def block(lines: list[str], spaces: int) -> str:
        return "\n".join(" " * spaces + x for x in lines)

    # One loop over fields, each field's pixels together (grouped once per tile), fields
    # in spatial order: a field's values stay in a small buffer in cache and are reduced
    # right away. Accumulators are scalars (kept in registers), parameters are hoisted,
    # and everything is inlined textually (helper calls with many array arguments per
    # pixel would pay reference counting on every call).
    src = f"""import numba
import numpy as np

from regenmap.features.zonal import _HIST_BINS, _reduce_field

# Generated by regenmap.features.zonal for bands {used} (on the window: {direct[:-1]}),
# mask on the window: {direct[-1]}, indices {list(formulas)}.


@numba.njit(error_model="numpy", nogil=True, cache=True)
def kernel(prow, pcol, offsets, order, mask, mr, mc, keep, params, qs, n_valid, base, quant,
           {args}):
    n_fields = offsets.shape[0] - 1
    nkeep = keep.shape[0]
{block(hoist, 4)}
    longest = 0
    for f in range(n_fields):
        longest = max(longest, offsets[f + 1] - offsets[f])
    buf = np.empty(({n_idx}, longest), np.float32)
    bins = np.empty(longest, np.int32)
    scratch = np.empty(longest, np.float32)
    counts = np.empty(_HIST_BINS + 1, np.int64)
    for i in range(n_fields):
        f = order[i]
{block(reset, 8)}
        nv = 0
        for q in range(offsets[f], offsets[f + 1]):
            r = prow[q]
            c = pcol[q]
{block(check, 12)}
            if ok:
                nv += 1
{block(put, 16)}
        n_valid[f] = nv
{block(reduce, 8)}
"""
    return _load_kernel(src)


def _is_direct(data: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               shape: tuple[int, int]) -> bool:
    """Whether index maps are the identity (the input is on the window itself)."""
    return (data.shape == shape and bool(np.array_equal(rows, np.arange(shape[0])))
            and bool(np.array_equal(cols, np.arange(shape[1]))))


def _kernel_cache_dir() -> Path | None:
    """Folder for generated kernel modules (numba caches their machine code beside them)."""
    base = os.environ.get("REGENMAP_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    folder = Path(base) if base else Path.home() / ".cache"
    folder = folder / "regenmap" / "kernels"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def _load_kernel(src: str) -> Any:
    """Compile generated source; from a cached module file when possible (no recompile per process)."""
    with _LOAD_LOCK:
        return _load_kernel_locked(src)


def _load_kernel_locked(src: str) -> Any:
    # The generated module calls helpers of this module: numba's cache does not track
    # them, so this module's own source is part of the file name.
    own = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    digest = hashlib.sha256(f"{numba.__version__}\n{own}\n{src}".encode()).hexdigest()[:20]
    folder = _kernel_cache_dir()
    if folder is None:
        namespace: dict[str, Any] = {}
        exec(compile(src, "<regenmap.zonal kernel>", "exec"), namespace)
        return namespace["kernel"]
    path = folder / f"zonal_{digest}.py"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(src)
        Path(tmp).replace(path)
    name = f"regenmap_zonal_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name].kernel
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - file just written
        raise ImportError(f"cannot load generated kernel {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module.kernel


@numba.njit(nogil=True, cache=True)
def _select(a: np.ndarray, k: int, lo: int, hi: int) -> None:  # pragma: no cover - numba
    """Reorder ``a[lo:hi+1]`` in place so that ``a[k]`` is its k-th smallest value (Hoare)."""
    while hi > lo:
        mid = (lo + hi) // 2
        x, y, z = a[lo], a[mid], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))  # median of three
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return


#: Fields with fewer values than this select their quantiles by plain quickselect.
_HIST_MIN = 64
#: Most histogram bins used to narrow a quantile search.
_HIST_BINS = 4096


@numba.njit(nogil=True, cache=True)
def _kth(values: np.ndarray, m: int, k: int, bins: np.ndarray, cum: np.ndarray,
         scratch: np.ndarray) -> float:  # pragma: no cover - numba
    """Exact k-th smallest of ``values[:m]`` from its histogram (``bins``, ``cum``).

    ``bins[i]`` is the bin of ``values[i]`` (a monotone function of the value) and
    ``cum[b]`` the number of values in bins before b, so the k-th smallest lies in the
    bin b with ``cum[b] <= k < cum[b + 1]``; only that bin's values are gathered and
    searched by quickselect. Exact: the binning never breaks the order.
    """
    lo_b = 0
    hi_b = cum.shape[0] - 2
    while lo_b < hi_b:  # last bin b with cum[b] <= k
        mid = (lo_b + hi_b + 1) // 2
        if cum[mid] <= k:
            lo_b = mid
        else:
            hi_b = mid - 1
    b = lo_b
    n = 0
    for i in range(m):
        if bins[i] == b:
            scratch[n] = values[i]
            n += 1
    j = k - cum[b]
    _select(scratch, j, 0, n - 1)
    return np.float64(scratch[j])


@numba.njit(nogil=True, cache=True)
def _reduce_field(values: np.ndarray, m: int, total: float, squares: float, lo: float, hi: float,
                  qs: np.ndarray, base: np.ndarray, quant: np.ndarray, bins: np.ndarray,
                  counts: np.ndarray, scratch: np.ndarray) -> None:  # pragma: no cover - numba
    """Write one field's statistics of one index.

    ``values[:m]`` are the field's finite values (reordered when quantiles are found by
    quickselect); ``bins``, ``counts`` and ``scratch`` are work arrays of at least m,
    ``_HIST_BINS + 1`` and m elements.
    """
    base[4] = m
    if m == 0:
        return
    mean = total / m
    base[0] = mean
    base[1] = np.sqrt(max(squares / m - mean * mean, 0.0))
    base[2] = lo
    base[3] = hi
    if qs.shape[0] == 0:
        return
    if m < _HIST_MIN or not hi > lo:
        _quantiles_select(values, m, qs, quant)
        return
    # One branch-free histogram pass over [lo, hi]; each order statistic is then
    # searched for among the few values of its bin only (quickselect over the whole
    # field mispredicts about every other comparison).
    nb = min(max(m >> 3, 16), _HIST_BINS)
    scale = nb / (np.float64(hi) - np.float64(lo))
    cum = counts[:nb + 1]
    cum[:] = 0
    for i in range(m):
        t = int((np.float64(values[i]) - lo) * scale)
        t = min(t, nb - 1)
        bins[i] = t
        cum[t + 1] += 1
    for b in range(nb):
        cum[b + 1] += cum[b]
    for t in range(qs.shape[0]):
        pos = qs[t] / 100.0 * (m - 1)
        i0 = int(np.floor(pos))
        w = pos - i0
        v0 = _kth(values, m, i0, bins, cum, scratch)
        v1 = v0
        if w > 0 and i0 + 1 < m:
            v1 = _kth(values, m, i0 + 1, bins, cum, scratch)
        quant[t] = v0 * (1.0 - w) + v1 * w


@numba.njit(nogil=True, cache=True)
def _quantiles_select(values: np.ndarray, m: int, qs: np.ndarray,
                      quant: np.ndarray) -> None:  # pragma: no cover - numba
    """Quantiles of ``values[:m]`` by quickselect (reorders the values in place)."""
    # quantiles in increasing order: each selection only looks right of the last
    start = 0
    for t in range(qs.shape[0]):
        pos = qs[t] / 100.0 * (m - 1)
        i0 = int(np.floor(pos))
        w = pos - i0
        _select(values, i0, start, m - 1)
        v0 = np.float64(values[i0])
        v1 = v0
        if w > 0 and i0 + 1 < m:
            v1 = np.float64(values[i0 + 1])
            for j in range(i0 + 2, m):
                v1 = min(v1, np.float64(values[j]))
        quant[t] = v0 * (1.0 - w) + v1 * w
        start = i0
