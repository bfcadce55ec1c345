"""Per-field zonal statistics of spectral indices, fused with the index arithmetic.

The hot path of extraction. For one tile window and one acquisition it takes
the raw band arrays (as decoded, any dtype), the quality-mask verdict and the
field raster, and returns per field: ``n_pixels``, ``n_valid`` and, for every
index, mean, std, count (min and max on request) and quantiles over the valid
pixels.

One generated numba kernel walks the window row by row (the field raster's
:class:`~regenmap.geo.rasterize.ScanPlan`, built once per tile); the window may come
in horizontal strips (:class:`ZonalPass`), the kernel's running totals carry over:

1. per row, a plain loop over the columns decodes the quality mask through a
   lookup table, scales the bands, evaluates every index formula (inlined) and
   adds each value to per-column running totals (sum, sum of squares, count;
   min and max when asked). The loop has no per-pixel branch and no field
   lookup, so LLVM vectorises it. Bands on coarser grids (Sentinel-2 20 m) are
   looked up through row and column index maps (nearest rule), expanded once per
   source row, never materialised on the window;
2. where a field's vertical run of pixels in a column ends, that column's totals
   are added to the field and reset (sparse events, precomputed per tile);
3. when the pass leaves a field's last row, its statistics are final. Quantiles
   need the values themselves: index values of the last rows a field can span
   stay in a ring buffer, from which the field's values are gathered and its
   quantiles found as exact order statistics without sorting (a histogram of the
   values over [min, max], a monotone binning, tells which bin holds each wanted
   rank; only that bin's values are searched by quickselect).

A pixel is *valid* when the mask keeps it and every band the indices need has
data there (not nodata, not NaN). An index value that is not finite (division
by zero) is left out of that index's statistics only. Statistics are computed
from the float32 index values (so min <= quantiles <= max holds exactly), summed
in float64. Quantiles use linear interpolation between order statistics (NumPy's
default); std is the population standard deviation (ddof=0).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from regenmap.cachedir import cache_root
from regenmap.errors import OutputError
from regenmap.features.indices import SpectralIndex
from regenmap.geo.rasterize import FieldIndex, FieldRaster
from regenmap.io import write_text_atomic

_LOAD_LOCK = threading.Lock()
_log = logging.getLogger(__name__)

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


class ZonalPass:
    """Per-field statistics of one acquisition, fed strip by strip down the window.

    The window may arrive in horizontal strips (rows ``r0:r0 + h``, top to bottom, each
    row once), so that only a strip of each band is in memory and each strip is reduced
    while still in cache after decoding; :func:`zonal_stats` feeds the whole window at once.

    Parameters
    ----------
    fields
        Field raster (or its :class:`~regenmap.geo.rasterize.FieldIndex`) of the window.
    indices
        Indices to compute.
    percentiles
        Quantiles in percent (0-100) to compute; 50 is reported as ``median``.
    stats
        Statistics of :data:`BASE_STATS` wanted; mean, std and count always come (they
        cost nothing extra), min and max only when named here.
    quantile_precision
        None (default): quantiles are exact order statistics. A positive width (index
        units): quantiles are read from a histogram of bins that wide, each value placed
        by its rank within its bin, so they lie within that width of the exact ones, and
        within the field's [min, max]; a field whose range needs more bins than
        max(64, twice its values), or more than 8192, gets exact quantiles.
    """

    def __init__(self, fields: FieldRaster | FieldIndex, indices: Sequence[SpectralIndex], *,
                 percentiles: Sequence[float] = (50.0,), stats: Sequence[str] = BASE_STATS,
                 quantile_precision: float | None = None):
        if quantile_precision is not None and not quantile_precision > 0:
            raise ValueError(f"quantile_precision={quantile_precision}: give a positive width "
                             "in index units, or None for exact quantiles")
        self.fields = fields
        self.precision = 0.0 if quantile_precision is None else float(quantile_precision)
        self.indices = list(indices)
        self.qs = np.asarray(sorted(set(float(q) for q in percentiles)), dtype=np.float64)
        self.minmax = "min" in stats or "max" in stats
        self.next_row = 0
        self.used: list[str] | None = None
        n_idx, nf = len(self.indices), fields.n_fields
        width = fields.grid.width
        self.base = np.full((len(BASE_STATS), n_idx, nf), np.nan, dtype=np.float32)
        self.quant = np.full((len(self.qs), n_idx, nf), np.nan, dtype=np.float32)
        self.n_valid = np.zeros(nf, np.int64)
        # running totals per column (sum, sum of squares; counts; min, max) and per field
        self.colf = np.zeros((2 * n_idx, width))
        self.coln = np.zeros((n_idx + 1, width), np.int64)
        self.colm = np.empty((2 * n_idx, width), np.float32)
        self.colm[0::2], self.colm[1::2] = np.inf, -np.inf
        self.fsum = np.zeros((n_idx, 2, nf))
        self.fcount = np.zeros((n_idx, nf), np.int64)
        self.fext = np.empty((n_idx, 2, nf))
        self.fext[:, 0], self.fext[:, 1] = np.inf, -np.inf
        plan = fields.scan_plan
        quantiles = len(self.qs) > 0
        self.ring = np.empty((n_idx, plan.span if quantiles else 1, width), np.float32)
        # the ring slot of each run's row, once per pass (no division per run and field)
        self.run_slot = (np.asarray(plan.run_row, np.int64) % max(plan.span, 1)).astype(np.int32)
        longest = int(np.max(fields.n_pixels, initial=1)) if quantiles else 1
        self.vals = np.empty(longest, np.float32)
        self.bins = np.empty(longest, np.int32)
        self.scratch = np.empty(longest, np.float32)
        self.counts = np.empty(2 * _HIST_BINS + 4, np.int64)

    def feed(self, r0: int, bands: dict[str, BandInput], *, mask: MaskInput | None = None,
             mask_valid: np.ndarray | None = None, height: int | None = None) -> None:
        """Add window rows ``r0:r0 + h`` (h: the strip's height).

        Parameters
        ----------
        r0
            First window row of the strip; strips come top to bottom without gaps.
        bands
            Common band name (or precomputed index name, lower-case) -> band on the
            strip (index maps, if any, have h rows and the window's columns). Indices
            whose bands are absent get NaN statistics; every strip has the same bands.
        mask
            Undecoded quality band of the strip with its lookup table; all pixels are
            kept when it and ``mask_valid`` are None.
        mask_valid
            (h, width) bool, True where the pixel is usable (instead of ``mask``).
        height
            The strip's height h; taken from the inputs' shapes when None (then a strip
            with no band and no mask runs to the bottom of the window).
        """
        width = self.fields.grid.width
        any_band = next(iter(bands.values()), None)
        if height is not None:
            h = height
        elif mask is not None and mask.rows is not None:
            h = len(mask.rows)
        elif mask is not None:
            h = mask.data.shape[0]
        elif mask_valid is not None:
            h = np.shape(mask_valid)[0]
        elif any_band is not None:
            h = len(any_band.rows) if any_band.rows is not None else any_band.data.shape[0]
        else:
            h = self.fields.grid.height - r0
        if r0 != self.next_row or r0 + h > self.fields.grid.height:
            raise ValueError(f"strip rows {r0}:{r0 + h} out of order (next row {self.next_row}, "
                             f"window height {self.fields.grid.height})")
        self.next_row = r0 + h
        shape = (h, width)
        used, formulas = _plan(bands, self.indices)
        if self.used is None:
            self.used = used
        elif used != self.used:
            raise ValueError(f"strip bands {used} differ from the first strip's {self.used}")
        if mask is None:
            mask = (MaskInput(np.ones((1, 1), np.uint8), np.array([False, True]),
                              np.zeros(h, np.int64), np.zeros(width, np.int64))
                    if mask_valid is None
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
        if h == 0 or width == 0:
            return
        kernel = _kernel(tuple(used), tuple(formulas), tuple(direct), self.minmax,
                         len(self.qs) > 0, binned=self.precision > 0)
        self._run(kernel, r0, h, mask, mrows, mcols, params, args)

    def skip(self, r0: int, height: int) -> None:
        """Add window rows ``r0:r0 + height`` in which no pixel is usable.

        The same as feeding them with every pixel masked, without touching the pixels
        (a strip under cloud everywhere, say): fields ending there are completed from
        the rows fed before.
        """
        if r0 != self.next_row or r0 + height > self.fields.grid.height:
            raise ValueError(f"strip rows {r0}:{r0 + height} out of order (next row "
                             f"{self.next_row}, window height {self.fields.grid.height})")
        self.next_row = r0 + height
        if height == 0 or self.fields.grid.width == 0:
            return
        n_idx = len(self.indices)
        kernel = _kernel((), ("np.nan",) * n_idx, (True,), self.minmax, len(self.qs) > 0,
                         empty=True, binned=self.precision > 0)
        none = np.zeros(0, np.int64)
        self._run(kernel, r0, height, MaskInput(np.zeros((1, 1), np.uint8), np.zeros(1, bool)),
                  none, none, np.zeros((0, 3)), [])

    def _run(self, kernel: Any, r0: int, h: int, mask: MaskInput, mrows: np.ndarray,
             mcols: np.ndarray, params: np.ndarray, args: list[np.ndarray]) -> None:
        plan = self.fields.scan_plan
        kernel(r0, h, plan.seg_ptr, plan.seg_col, plan.seg_fid, plan.pair_ptr, plan.pair_col,
               plan.pair_fid, plan.run_ptr, self.run_slot, plan.run_c0, plan.run_c1,
               plan.done_ptr, plan.done_fid, self.fields.grid.width,
               np.ascontiguousarray(mask.data), mrows, mcols,
               np.ascontiguousarray(mask.keep, np.bool_), params, self.qs, self.n_valid,
               self.base, self.quant, self.colf, self.coln, self.colm, self.fsum, self.fcount,
               self.fext, self.ring, self.vals, self.bins, self.scratch, self.counts,
               self.precision, *args)

    def result(self) -> ZonalResult:
        """Return the statistics once every row of the window has been fed."""
        if self.next_row != self.fields.grid.height:
            raise ValueError(f"rows {self.next_row}:{self.fields.grid.height} not fed yet")
        n_pixels = np.asarray(self.fields.n_pixels, dtype=np.int64)
        self.base[BASE_STATS.index("count")][:, n_pixels == 0] = 0
        out: dict[tuple[str, str], np.ndarray] = {}
        for k, idx in enumerate(self.indices):
            for j, name in enumerate(BASE_STATS):
                if name in ("mean", "std", "count") or self.minmax:
                    out[(idx.name, name)] = self.base[j, k]
            for j, q in enumerate(self.qs):
                out[(idx.name, quantile_name(q))] = self.quant[j, k]
        return ZonalResult(n_pixels=n_pixels, n_valid=self.n_valid, stats=out)


def zonal_stats(fields: FieldRaster | FieldIndex, bands: dict[str, BandInput],
                indices: Sequence[SpectralIndex], *, mask_valid: np.ndarray | None = None,
                mask: MaskInput | None = None, percentiles: Sequence[float] = (50.0,),
                stats: Sequence[str] = BASE_STATS,
                quantile_precision: float | None = None) -> ZonalResult:
    """Compute per-field statistics of ``indices`` for one acquisition (whole window).

    Parameters
    ----------
    fields
        Field raster (or its :class:`~regenmap.geo.rasterize.FieldIndex`) on the same window
        as the bands.
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
    percentiles, stats, quantile_precision
        As in :class:`ZonalPass`.

    Returns
    -------
    ZonalResult
    """
    zp = ZonalPass(fields, indices, percentiles=percentiles, stats=stats,
                   quantile_precision=quantile_precision)
    height = fields.grid.height
    if mask is None and mask_valid is None:
        mask = MaskInput(np.ones((1, 1), np.uint8), np.array([False, True]),
                         np.zeros(height, np.int64), np.zeros(fields.grid.width, np.int64))
    zp.feed(0, bands, mask=mask, mask_valid=mask_valid)
    return zp.result()


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
    if rows.size and cols.size and (rows.min() < 0 or rows.max() >= data.shape[0] or cols.min() < 0
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
def _kernel(used: tuple[str, ...], formulas: tuple[str, ...], direct: tuple[bool, ...],
            minmax: bool, quantiles: bool, empty: bool = False, binned: bool = False) -> Any:
    """Generate and compile the fused mask + index + statistics kernel for one index set.

    ``direct[j]`` says band j is on the window itself (no index maps needed); the last
    entry is for the mask. ``minmax`` and ``quantiles`` switch their bookkeeping on.
    ``empty`` makes the kernel for rows without a usable pixel: it only flushes the
    column totals and completes the fields ending there. ``binned`` reads quantiles from
    histograms of bins ``precision`` wide (a kernel argument; :func:`_field_quantiles_binned`).
    """
    args = ", ".join(f"b{j}, r{j}, c{j}" for j in range(len(used)))
    n_idx = len(formulas)
    minmax = minmax or quantiles  # the quantile search bins values over [min, max]
    mapped = [j for j in range(len(used)) if not direct[j]]
    lines: list[str] = []

    def emit(level: int, *code: str) -> None:
        lines.extend(" " * (4 * level) + c for c in code)

    for j in range(len(used)):
        emit(1, f"sc{j} = params[{j}, 0]", f"of{j} = params[{j}, 1]", f"nd{j} = params[{j}, 2]")
    for j in mapped:
        emit(1, f"e{j} = np.empty(width, np.float64)", f"src{j} = -1")
    emit(1, "em = np.empty(width, np.bool_)", "srcm = -1")
    # per-column running totals and per-field totals of each index (state kept between
    # strips by the caller)
    for k in range(n_idx):
        emit(1, f"cs{k} = colf[{2 * k}]", f"cq{k} = colf[{2 * k + 1}]", f"cn{k} = coln[{k}]")
        if minmax:
            emit(1, f"clo{k} = colm[{2 * k}]", f"chi{k} = colm[{2 * k + 1}]")
    emit(1, "cv = coln[N_IDX]", "fs = fsum[:, 0, :]", "fq = fsum[:, 1, :]", "fn = fcount",
         "flo = fext[:, 0, :]", "fhi = fext[:, 1, :]")
    emit(1, "for rl in range(strip):", "    r = row0 + rl")
    if empty:  # no usable pixel: the ring's rows of the strip hold NaN, nothing is added
        emit(2, "slot = r % hr")
        if quantiles:
            emit(2, "for k in range(N_IDX):", "    ring[k, slot, :] = nan32")
    else:
        for j in mapped:  # coarse bands: expand a source row once, when it changes
            emit(2, f"if r{j}[rl] != src{j}:", f"    src{j} = r{j}[rl]", f"    row = b{j}[src{j}]",
                 "    for c in range(width):", f"        v = row[c{j}[c]]",
                 f"        e{j}[c] = np.float64(v) * sc{j} + of{j} "
                 f"if (v == v) & (v != nd{j}) else np.nan")
        if direct[-1]:
            emit(2, "mrow = mask[rl]", "for c in range(width):", "    code = mrow[c]",
                 "    inside = (code >= 0) & (code < nkeep)",
                 "    em[c] = inside & keep[code if inside else 0]")
        else:
            emit(2, "if mr[rl] != srcm:", "    srcm = mr[rl]", "    mrow = mask[srcm]",
                 "    for c in range(width):", "        code = mrow[mc[c]]",
                 "        inside = (code >= 0) & (code < nkeep)",
                 "        em[c] = inside & keep[code if inside else 0]")
        emit(2, "slot = r % hr")
        for k in range(n_idx):
            emit(2, f"x{k}row = ring[{k}, slot]")
        for j in range(len(used)):
            if direct[j]:
                emit(2, f"d{j} = b{j}[rl]")
        emit(2, "for c in range(width):")
        good = ["em[c]"]
        for j, name in enumerate(used):
            if direct[j]:
                emit(3, f"v{j} = d{j}[c]", f"g{j} = (v{j} == v{j}) & (v{j} != nd{j})",
                     f"{name} = np.float64(v{j}) * sc{j} + of{j}")
            else:
                emit(3, f"{name} = e{j}[c]", f"g{j} = {name} == {name}")
            good.append(f"g{j}")
        emit(3, f"good = {' & '.join(good)}", "okrow[c] = good")
        for k, f in enumerate(formulas):
            emit(3, f"x = np.float32({f})", f"x{k}row[c] = x if good & np.isfinite(x) else nan32")
        # Running totals in separate loops: one loop writing every array would need more
        # run-time alias checks than LLVM makes, and would not be vectorised.
        emit(2, "for c in range(width):", "    cv[c] += okrow[c]")
        for k in range(n_idx):
            emit(2, "for c in range(width):", f"    x = x{k}row[c]", "    fin = x == x",
                 "    y = np.float64(x) if fin else 0.0", f"    cs{k}[c] += y",
                 f"    cq{k}[c] += y * y", f"    cn{k}[c] += fin")
            if minmax:
                emit(2, "for c in range(width):", f"    x = x{k}row[c]", f"    lo = clo{k}[c]",
                     f"    clo{k}[c] = x if x < lo else lo", f"    hi = chi{k}[c]",
                     f"    chi{k}[c] = x if x > hi else hi")
        # pixels of overlapping fields (extra layers): one by one
        emit(2, "for p in range(pair_ptr[r], pair_ptr[r + 1]):", "    c = pair_col[p]",
             "    f = pair_fid[p]", "    n_valid[f] += okrow[c]")
        for k in range(n_idx):
            emit(3, f"x = x{k}row[c]", "if x == x:", f"    fs[{k}, f] += np.float64(x)",
                 f"    fq[{k}, f] += np.float64(x) * np.float64(x)", f"    fn[{k}, f] += 1")
            if minmax:
                emit(4, f"flo[{k}, f] = min(flo[{k}, f], np.float64(x))",
                     f"fhi[{k}, f] = max(fhi[{k}, f], np.float64(x))")
    # vertical runs ending on this row: add the column totals to their field
    emit(2, "for e in range(seg_ptr[r], seg_ptr[r + 1]):", "    c = seg_col[e]",
         "    f = seg_fid[e]", "    if f >= 0:", "        n_valid[f] += cv[c]")
    for k in range(n_idx):
        emit(4, f"fs[{k}, f] += cs{k}[c]", f"fq[{k}, f] += cq{k}[c]", f"fn[{k}, f] += cn{k}[c]")
        if minmax:
            emit(4, f"flo[{k}, f] = min(flo[{k}, f], np.float64(clo{k}[c]))",
                 f"fhi[{k}, f] = max(fhi[{k}, f], np.float64(chi{k}[c]))")
    emit(3, "cv[c] = 0")
    for k in range(n_idx):
        emit(3, f"cs{k}[c] = 0.0", f"cq{k}[c] = 0.0", f"cn{k}[c] = 0")
        if minmax:
            emit(3, f"clo{k}[c] = np.inf", f"chi{k}[c] = -np.inf")
    # fields whose last row this is: final statistics
    emit(2, "for i in range(done_ptr[r], done_ptr[r + 1]):", "    f = done_fid[i]",
         "    for k in range(N_IDX):")
    emit(4, "m = fn[k, f]", "base[4, k, f] = m", "if m == 0:", "    continue",
         "mean = fs[k, f] / m", "base[0, k, f] = mean",
         "base[1, k, f] = np.sqrt(max(fq[k, f] / m - mean * mean, 0.0))")
    if minmax:
        emit(4, "base[2, k, f] = flo[k, f]", "base[3, k, f] = fhi[k, f]")
    if quantiles:
        emit(4, "n = _copy_runs(flat[k], hr, width, run_ptr[f], run_ptr[f + 1], run_slot, run_c0, "
             "run_c1, vals)")
        if binned:
            emit(4, "_field_quantiles_binned(vals, n, m, flo[k, f], fhi[k, f], qs, quant[:, k, f], "
                 "bins, counts, scratch, precision)")
        else:
            emit(4, "_field_quantiles(vals, n, m, flo[k, f], fhi[k, f], qs, quant[:, k, f], bins, "
                 "counts, scratch)")
    src = f"""import numba
import numpy as np

from regenmap.features.zonal import (_HIST_BINS, _copy_runs, _field_quantiles,
                                     _field_quantiles_binned)

# Generated by regenmap.features.zonal for bands {used} (on the window: {direct[:-1]}),
# mask on the window: {direct[-1]}, indices {list(formulas)}, min/max: {minmax},
# quantiles: {quantiles} (binned: {binned}), rows without a usable pixel: {empty}.

N_IDX = {n_idx}


@numba.njit(error_model="numpy", nogil=True, cache=True)
def kernel(row0, strip, seg_ptr, seg_col, seg_fid, pair_ptr, pair_col, pair_fid, run_ptr, run_slot,
           run_c0, run_c1, done_ptr, done_fid, width, mask, mr, mc, keep, params, qs, n_valid,
           base, quant, colf, coln, colm, fsum, fcount, fext, ring, vals, bins, scratch, counts,
           precision, {args}):
    nkeep = keep.shape[0]
    nan32 = np.float32(np.nan)
    hr = ring.shape[1]
    flat = ring.reshape((N_IDX, hr * width))
    okrow = np.empty(width, np.bool_)
""" + "\n".join(lines) + "\n"
    return _load_kernel(src)


@numba.njit(nogil=True, cache=True)
def _copy_runs(ring: np.ndarray, hr: int, width: int, t0: int, t1: int, run_slot: np.ndarray,
               run_c0: np.ndarray, run_c1: np.ndarray, out: np.ndarray) -> int:  # pragma: no cover
    """Copy one field's values (NaN where invalid) from the ring of recent rows to ``out``.

    ``ring`` is one index's ring buffer, flat: row slot s starts at ``s * width``;
    ``run_slot[t]`` is the slot of run t's row. Returns the number of values copied (the
    field's pixels).
    """
    n = np.intp(0)
    for t in range(t0, t1):
        start = np.intp(run_slot[t]) * width + np.intp(run_c0[t])
        length = np.intp(run_c1[t] - run_c0[t])
        src = ring[start:start + length]
        dst = out[n:n + length]
        for i in range(length):  # a plain copy (vectorised); NaN are skipped later
            dst[i] = src[i]
        n += length
    return int(n)


def _is_direct(data: np.ndarray, rows: np.ndarray, cols: np.ndarray,
               shape: tuple[int, int]) -> bool:
    """Whether index maps are the identity (the input is on the window itself)."""
    return (data.shape == shape and bool(np.array_equal(rows, np.arange(shape[0])))
            and bool(np.array_equal(cols, np.arange(shape[1]))))


def _kernel_cache_dir() -> Path | None:
    """Folder for generated kernel modules (numba caches their machine code beside them)."""
    folder = cache_root() / "kernels"
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
    name = f"regenmap_zonal_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name].kernel
    folder = _kernel_cache_dir()
    path = None if folder is None else _cached_source(folder / f"zonal_{digest}.py", src)
    module = _module_from_source(name, src, "<regenmap.zonal kernel>" if path is None else str(path))
    sys.modules[name] = module
    return module.kernel


def _cached_source(path: Path, src: str) -> Path | None:
    """Make ``path`` hold exactly ``src``; return it, or None if it cannot be trusted or written.

    The cached file is compared with the source generated in this process before it is
    used: a file that differs (edited, planted, damaged) is replaced and reported. Only
    ``src`` is ever executed; the file is there for numba's cache, which keys its machine
    code on the file's path, size and time (a replaced file is compiled afresh).
    """
    try:
        cached = path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        cached = ""
    if cached == src:
        return path
    if cached is not None:
        _log.warning("cached zonal kernel %s differs from the generated source (edited or "
                     "damaged); it is replaced and not used", path)
    try:
        write_text_atomic(path, src)
    except OutputError as err:
        _log.warning("zonal kernel not cached (%s); compiling it in memory", err)
        return None
    return path


def _module_from_source(name: str, src: str, filename: str) -> types.ModuleType:
    """Execute generated source as module ``name``, its code attributed to ``filename``."""
    module = types.ModuleType(name)
    module.__file__ = filename
    exec(compile(src, filename, "exec"), module.__dict__)
    return module


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
def _bin_of_rank(cum: np.ndarray, k: int) -> int:  # pragma: no cover - numba
    """Find the bin b holding the k-th smallest value: ``cum[b] <= k < cum[b + 1]``."""
    lo_b = 0
    hi_b = cum.shape[0] - 2
    while lo_b < hi_b:  # last bin b with cum[b] <= k
        mid = (lo_b + hi_b + 1) // 2
        if cum[mid] <= k:
            lo_b = mid
        else:
            hi_b = mid - 1
    return lo_b


@numba.njit(nogil=True, cache=True)
def _field_quantiles(values: np.ndarray, n: int, m: int, lo: float, hi: float, qs: np.ndarray,
                     quant: np.ndarray, bins: np.ndarray, counts: np.ndarray,
                     scratch: np.ndarray) -> None:  # pragma: no cover - numba
    """Write the quantiles ``qs`` (percent, ascending) of one field's values to ``quant``.

    ``values[:n]`` hold the field's m finite values, in [lo, hi], and n - m NaN (left
    out); they may be reordered. ``bins``, ``counts`` and ``scratch`` are work arrays of
    at least n, ``2 * _HIST_BINS + 4`` and n elements.

    Exact order statistics without sorting: a histogram of the values over [lo, hi]
    (a monotone binning, so it never breaks the order) tells which bin holds each
    wanted rank, and only that bin's values are searched by quickselect (quickselect
    over the whole field mispredicts about every other comparison).
    """
    if m == 0:
        return
    if m < _HIST_MIN or not hi > lo:
        if n > m:  # move the finite values to the front
            j = 0
            for i in range(n):
                v = values[i]
                values[j] = v
                j += v == v
        _quantiles_select(values, m, qs, quant)
        return
    # about two values per bin: the bin holding a wanted rank is searched by quickselect,
    # and fields' values are seldom spread evenly over [min, max] (measured: with eight
    # per bin, a quarter of a 200-pixel field's values shared the median's bin)
    nb = min(max(m >> 1, 16), _HIST_BINS)
    scale = nb / (hi - lo)
    cum = counts[:nb + 2]  # bin nb holds the NaN, after every finite value
    odd = counts[nb + 2:2 * nb + 4]
    cum[:] = 0
    odd[:] = 0
    lo32 = np.float32(lo)
    scale32 = np.float32(scale)
    top = np.int32(nb - 1)
    for i in range(n):
        v = values[i]
        bins[i] = min(np.int32((v - lo32) * scale32), top) if v == v else np.int32(nb)
    # neighbouring pixels often share a bin: two count arrays, so that consecutive
    # increments do not wait on each other through memory
    half = n >> 1
    for i in range(half):
        cum[bins[2 * i] + 1] += 1
        odd[bins[2 * i + 1] + 1] += 1
    if n & 1:
        cum[bins[n - 1] + 1] += 1
    for b in range(nb + 1):
        cum[b + 1] += cum[b] + odd[b + 1]
    for t in range(qs.shape[0]):
        pos = qs[t] / 100.0 * (m - 1)
        i0 = int(np.floor(pos))
        w = pos - i0
        i1 = i0 + 1 if w > 0 and i0 + 1 < m else i0
        b0 = _bin_of_rank(cum, i0)
        b1 = _bin_of_rank(cum, i1)
        k = 0
        for i in range(n):  # the values of bins b0..b1 (usually one bin)
            scratch[k] = values[i]
            k += (bins[i] >= b0) & (bins[i] <= b1)
        j = i0 - cum[b0]
        _select(scratch, j, 0, k - 1)
        v0 = np.float64(scratch[j])
        v1 = v0
        if i1 > i0:  # the next order statistic: the least value right of j
            v1 = np.float64(scratch[j + 1])
            for i in range(j + 2, k):
                v1 = min(v1, np.float64(scratch[i]))
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


@numba.njit(nogil=True, cache=True)
def _field_quantiles_binned(values: np.ndarray, n: int, m: int, lo: float, hi: float,
                            qs: np.ndarray, quant: np.ndarray, bins: np.ndarray,
                            counts: np.ndarray, scratch: np.ndarray,
                            width: float) -> None:  # pragma: no cover - numba
    """Quantiles ``qs`` of one field's values from a histogram of bins ``width`` wide.

    One pass counts the m finite values of ``values[:n]`` (NaN left out) into bins of
    ``width`` from ``lo``; the order statistic of rank k, in bin b holding c values of
    which it is the j-th, is taken as ``lo + (b + (j + 0.5) / c) * width`` (clipped to
    [lo, hi]): within ``width`` of the exact one, since both lie in bin b. Quantiles
    interpolate these as the exact path does. Fields needing more bins than
    ``max(64, 2 m)`` or ``2 * _HIST_BINS`` get exact quantiles (:func:`_field_quantiles`).
    """
    if m == 0:
        return
    if not hi > lo:
        for t in range(qs.shape[0]):
            quant[t] = lo
        return
    nbf = np.ceil((hi - lo) / width)
    if nbf > max(64, 2 * m) or nbf > 2 * _HIST_BINS:
        _field_quantiles(values, n, m, lo, hi, qs, quant, bins, counts, scratch)
        return
    nb = max(int(nbf), 1)
    cum = counts[:nb + 1]
    cum[:] = 0
    inv = 1.0 / width
    top = nb - 1
    for i in range(n):
        v = values[i]
        if v == v:
            cum[min(int((np.float64(v) - lo) * inv), top) + 1] += 1
    for b in range(nb):
        cum[b + 1] += cum[b]
    for t in range(qs.shape[0]):
        pos = qs[t] / 100.0 * (m - 1)
        i0 = int(np.floor(pos))
        w = pos - i0
        i1 = i0 + 1 if w > 0 and i0 + 1 < m else i0
        b0 = _bin_of_rank(cum, i0)
        c0 = cum[b0 + 1] - cum[b0]
        v0 = lo + (b0 + (i0 - cum[b0] + 0.5) / c0) * width
        b1 = _bin_of_rank(cum, i1)
        c1 = cum[b1 + 1] - cum[b1]
        v1 = lo + (b1 + (i1 - cum[b1] + 0.5) / c1) * width
        v = v0 * (1.0 - w) + v1 * w
        quant[t] = min(max(v, lo), hi)
