"""Per-field zonal statistics of spectral indices, fused with the index arithmetic.

The hot path of extraction. For one tile window and one acquisition it takes
the raw band arrays (as decoded, any dtype), the quality-mask verdict and the
field raster, and returns per field: ``n_pixels``, ``n_valid`` and, for every
index, mean, std, min, max, count and quantiles over the valid pixels.

Two numba passes, no float rasters:

1. a kernel generated for the set of indices (their formulas inlined) counts
   pixels per field and writes each valid field pixel's index values straight
   into a per-field contiguous buffer (CSR layout);
2. a fixed kernel reduces each field's segment (sorting it only when a quantile
   is asked for).

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
        (height, width) raw values as decoded (uint16, float32...).
    scale, offset
        reflectance = data * scale + offset.
    nodata
        Raw value meaning "no data", or None (NaN always means no data).
    """

    data: np.ndarray
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None


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
                *, mask_valid: np.ndarray | None = None, percentiles: Sequence[float] = (50.0,),
                ) -> ZonalResult:
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
        (height, width) bool or uint8, True where the quality mask keeps the pixel; all kept if None.
    percentiles
        Quantiles in percent (0-100) to compute; 50 is reported as ``median``.

    Returns
    -------
    ZonalResult
    """
    shape = fields.grid.shape
    used, formulas = _plan(bands, indices)
    for name in used:
        if bands[name].data.shape != shape:
            raise ValueError(f"band {name} has shape {bands[name].data.shape}, window is {shape}")
    mvalid = (np.ones(shape, np.uint8) if mask_valid is None
              else np.ascontiguousarray(mask_valid, dtype=np.uint8))
    params = np.array([[bands[n].scale, bands[n].offset,
                        np.nan if bands[n].nodata is None else bands[n].nodata] for n in used],
                      dtype=np.float64).reshape(len(used), 3)
    kernel = _kernel(tuple(used), tuple(formulas))
    arrays = tuple(np.ascontiguousarray(bands[n].data).ravel() for n in used)
    n_pixels, n_valid, offsets, vals = kernel(
        np.ascontiguousarray(fields.ids).ravel(), fields.pair_pix, fields.pair_fid,
        fields.n_fields, mvalid.ravel(), params, *arrays)
    qs = np.asarray(sorted(set(float(q) for q in percentiles)), dtype=np.float64)
    n_idx = len(indices)
    base = np.full((len(BASE_STATS), n_idx, fields.n_fields), np.nan, dtype=np.float32)
    quant = np.full((len(qs), n_idx, fields.n_fields), np.nan, dtype=np.float32)
    _segment_stats(offsets, vals, qs, base, quant)
    stats: dict[tuple[str, str], np.ndarray] = {}
    for k, idx in enumerate(indices):
        for s, name in enumerate(BASE_STATS):
            stats[(idx.name, name)] = base[s, k]
        for j, q in enumerate(qs):
            stats[(idx.name, quantile_name(q))] = quant[j, k]
    return ZonalResult(n_pixels=n_pixels, n_valid=n_valid, stats=stats)


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
def _kernel(used: tuple[str, ...], formulas: tuple[str, ...]) -> Any:
    """Generate and compile the fused count + index + scatter kernel for one index set."""
    args = ", ".join(f"b{j}" for j in range(len(used)))
    checks = "\n".join(
        f"        v = b{j}[i]\n        if v != v or v == params[{j}, 2]:\n            ok = False"
        for j in range(len(used)))
    loads = "\n".join(
        f"    {name} = np.float64(b{j}[i]) * params[{j}, 0] + params[{j}, 1]"
        for j, name in enumerate(used))
    puts = "\n".join(
        f"    x = {f}\n    vals[{k}, p] = x if np.isfinite(x) else np.nan"
        for k, f in enumerate(formulas))
    src = f"""import numba
import numpy as np


@numba.njit(error_model="numpy", inline="always", cache=True)
def put(vals, p, i, params, {args}):
{loads or '    pass'}
{puts or '    pass'}


@numba.njit(error_model="numpy", nogil=True, cache=True)
def kernel(ids, pair_pix, pair_fid, n_fields, mvalid, params, {args}):
    npix = ids.shape[0]
    n_pixels = np.zeros(n_fields, np.int64)
    n_valid = np.zeros(n_fields, np.int64)
    valid = np.zeros(npix, np.uint8)
    for i in range(npix):
        f = ids[i]
        ok = mvalid[i] != 0
{checks}
        if ok:
            valid[i] = 1
        if f >= 0:
            n_pixels[f] += 1
            if ok:
                n_valid[f] += 1
    for k in range(pair_pix.shape[0]):
        f = pair_fid[k]
        n_pixels[f] += 1
        if valid[pair_pix[k]] != 0:
            n_valid[f] += 1
    offsets = np.zeros(n_fields + 1, np.int64)
    for f in range(n_fields):
        offsets[f + 1] = offsets[f] + n_valid[f]
    vals = np.empty(({len(formulas)}, offsets[n_fields]), np.float32)
    pos = offsets[:n_fields].copy()
    for i in range(npix):
        f = ids[i]
        if f >= 0 and valid[i] != 0:
            p = pos[f]
            pos[f] = p + 1
            put(vals, p, i, params, {args})
    for k in range(pair_pix.shape[0]):
        i = pair_pix[k]
        if valid[i] != 0:
            f = pair_fid[k]
            p = pos[f]
            pos[f] = p + 1
            put(vals, p, i, params, {args})
    return n_pixels, n_valid, offsets, vals
"""
    return _load_kernel(src)


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
    digest = hashlib.sha256(f"{numba.__version__}\n{src}".encode()).hexdigest()[:20]
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


@numba.njit(parallel=True, nogil=True, cache=True)
def _segment_stats(offsets: np.ndarray, vals: np.ndarray, qs: np.ndarray,
                   base: np.ndarray, quant: np.ndarray) -> None:  # pragma: no cover - numba
    n_idx = vals.shape[0]
    n_fields = offsets.shape[0] - 1
    nq = qs.shape[0]
    for f in numba.prange(n_fields):
        a = offsets[f]
        b = offsets[f + 1]
        buf = np.empty(b - a, np.float64)
        for k in range(n_idx):
            m = 0
            total = 0.0
            lo = np.inf
            hi = -np.inf
            for j in range(a, b):
                v = vals[k, j]
                if v == v:
                    buf[m] = v
                    m += 1
                    total += v
                    lo = min(lo, v)
                    hi = max(hi, v)
            base[4, k, f] = m
            if m == 0:
                continue
            mean = total / m
            ss = 0.0
            for j in range(m):
                d = buf[j] - mean
                ss += d * d
            base[0, k, f] = mean
            base[1, k, f] = np.sqrt(ss / m)
            base[2, k, f] = lo
            base[3, k, f] = hi
            if nq > 0:
                s = np.sort(buf[:m])
                for t in range(nq):
                    pos = qs[t] / 100.0 * (m - 1)
                    i0 = int(np.floor(pos))
                    i1 = min(i0 + 1, m - 1)
                    w = pos - i0
                    quant[t, k, f] = s[i0] * (1.0 - w) + s[i1] * w
