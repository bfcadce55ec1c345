"""Burn field polygons into a field index of a grid (pixel-centre rule).

A pixel belongs to a field when its centre lies inside the field's polygon,
after an optional inner (negative) buffer that removes mixed edge pixels.
Overlapping fields each keep all their own pixels: the fields are split into
layers of mutually non-overlapping polygons (greedy colouring); the first layer
is a dense raster (a later field takes a pixel two fields of one layer share
only on their common edge), the others become a sparse list of (pixel, field)
pairs. The polygons are burnt straight from their coordinates by a compiled
scanline fill (:mod:`regenmap.geo.scanline`, GDAL's rule), and
:func:`field_index` turns the spans row by row into the :class:`FieldIndex` a
zonal pass needs, never holding an id raster of the window. The result is built
once per tile and grid and reused for every acquisition.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numba
import numpy as np
import shapely

from regenmap.geo.grid import GridSpec
from regenmap.geo.scanline import polygon_rings, polygon_spans, reserve

T = TypeVar("T")


@dataclass(frozen=True)
class FieldRaster:
    """Which pixels of a grid belong to which field.

    Attributes
    ----------
    grid
        The grid the ids are on (a window of an acquisition's grid).
    ids
        (height, width) int32, position of the field in the caller's list, -1 for none.
    pair_pix, pair_fid
        Extra memberships of overlapping fields: flat pixel index (int64) and
        field position (int32), equal length.
    n_fields
        Number of fields the positions refer to.
    """

    grid: GridSpec
    ids: np.ndarray
    pair_pix: np.ndarray
    pair_fid: np.ndarray
    n_fields: int

    @functools.cached_property
    def n_pixels(self) -> np.ndarray:
        """(n_fields,) int64 count of pixels of each field (from the runs of the scan plan)."""
        plan = self.scan_plan
        field_of_run = np.repeat(np.arange(self.n_fields), np.diff(plan.run_ptr))
        lengths = plan.run_c1.astype(np.int64) - plan.run_c0
        return np.bincount(field_of_run, weights=lengths, minlength=self.n_fields).astype(np.int64)

    def index(self) -> FieldIndex:
        """Return the :class:`FieldIndex`: what a zonal pass needs, without the id raster."""
        return FieldIndex(self.grid, self.n_fields, self.n_pixels, self.scan_plan)

    @functools.cached_property
    def scan_plan(self) -> ScanPlan:
        """Index of the raster for a row-by-row pass (see :class:`ScanPlan`), built once."""
        return build_scan_plan(self)


def inner_buffer(geoms: np.ndarray, distance: float) -> np.ndarray:
    """Shrink polygons by ``distance`` CRS units (0 leaves them as they are).

    Parameters
    ----------
    geoms
        (n,) shapely geometries.
    distance
        Non-negative inner buffer in the geometries' CRS units.
    """
    if distance <= 0:
        return geoms
    # A hair (0.1 %) less than asked, so that a pixel centre lying exactly on the shrunken
    # boundary (pixel-aligned fields) is kept: with half a pixel, the kept pixels are
    # those lying wholly inside a straight-edged field, the same on every side.
    width = -distance * (1 - 1e-3)
    parts = _in_threads(lambda a, b: shapely.buffer(geoms[a:b], width, join_style="mitre"),
                        len(geoms))
    return np.concatenate([np.asarray(p, dtype=object) for p in parts]) if parts else geoms


#: Threads the geometry steps of a field index (inner buffer, overlap search) use: they
#: run in GEOS without the GIL, and while the first tile's index is built the other
#: workers have nothing to do yet.
GEOMETRY_THREADS = 2
#: Fewest polygons worth splitting over threads.
_SPLIT_MIN = 2000


def _in_threads(fn: Callable[[int, int], T], n: int) -> list[T]:
    """Return ``[fn(a, b), ...]`` over consecutive slices of ``range(n)``, run in threads."""
    k = max(1, min(GEOMETRY_THREADS, os.cpu_count() or 1, n // _SPLIT_MIN))
    edges = np.linspace(0, n, k + 1).astype(int).tolist()
    if k == 1:
        return [fn(0, n)] if n else []
    with ThreadPoolExecutor(k) as pool:
        return list(pool.map(lambda ab: fn(*ab), itertools.pairwise(edges)))


def overlap_layers(geoms: np.ndarray) -> np.ndarray:
    """Assign each polygon a layer so that polygons of one layer do not overlap.

    Polygons that only touch (share an edge) may share a layer. Greedy colouring
    in input order; almost all fields get layer 0.

    Returns
    -------
    numpy.ndarray
        (n,) int32 layer numbers.
    """
    n = len(geoms)
    layers = np.zeros(n, dtype=np.int32)
    if n < 2:
        return layers
    tree = shapely.STRtree(geoms)
    pairs = _in_threads(lambda a, b: tree.query(geoms[a:b], predicate="intersects")
                        + np.array([[a], [0]]), n)
    left, right = np.concatenate(pairs, axis=1)
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return layers
    interior = shapely.relate_pattern(geoms[left], geoms[right], "T********")
    left, right = left[interior], right[interior]
    if len(left) == 0:
        return layers
    neighbours: dict[int, list[int]] = {}
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    for i in sorted(neighbours):
        used = {int(layers[j]) for j in neighbours[i] if j < i}
        layer = 0
        while layer in used:
            layer += 1
        layers[i] = layer
    return layers


def rasterize_fields(geoms: np.ndarray, grid: GridSpec, *, buffer: float = 0.0) -> FieldRaster:
    """Build the field raster of ``geoms`` (already in ``grid``'s CRS) on ``grid``.

    The id raster is what tests and small windows look at; extraction builds only the
    :class:`FieldIndex` (:func:`field_index`), which holds the same pixels.

    Parameters
    ----------
    geoms
        (n,) shapely polygons in the grid's CRS; empty or None entries get no pixel.
    grid
        Target grid (a tile window).
    buffer
        Inner buffer in CRS units, applied before burning.

    Returns
    -------
    FieldRaster
        Positions refer to ``geoms``.
    """
    n = len(geoms)
    ids = np.full(grid.shape, -1, dtype=np.int32)
    spans = _layered_spans(geoms, grid, buffer)
    out = _build_plan(*spans, grid.height, grid.width, n, ids)
    pair_ptr, pair_col, pair_fid = out[3], out[4], out[5]
    rows = np.repeat(np.arange(grid.height, dtype=np.int64), np.diff(pair_ptr))
    return FieldRaster(grid, ids, rows * grid.width + pair_col, pair_fid, n)


def field_index(geoms: np.ndarray, grid: GridSpec, *, buffer: float = 0.0) -> FieldIndex:
    """Build the :class:`FieldIndex` of ``geoms`` (already in ``grid``'s CRS) on ``grid``.

    The same pixels as :func:`rasterize_fields`, built row by row from the polygons'
    spans without an id raster of the grid.

    Parameters
    ----------
    geoms
        (n,) shapely polygons in the grid's CRS; empty or None entries get no pixel.
    grid
        Target grid (a tile window).
    buffer
        Inner buffer in CRS units, applied before burning.

    Returns
    -------
    FieldIndex
        Positions refer to ``geoms``.
    """
    n = len(geoms)
    spans = _layered_spans(geoms, grid, buffer)
    (seg_ptr, seg_col, seg_fid, pair_ptr, pair_col, pair_fid, run_ptr, run_row, run_c0,
     run_c1) = _build_plan(*spans, grid.height, grid.width, n, np.empty((0, 0), np.int32))
    done_ptr, done_fid, span = _completions(run_ptr, run_row, grid.height)
    plan = ScanPlan(seg_ptr, seg_col, seg_fid, pair_ptr, pair_col, pair_fid, run_ptr, run_row,
                    run_c0, run_c1, done_ptr, done_fid, span)
    return FieldIndex(grid, n, _run_pixels(run_ptr, run_c0, run_c1, n), plan)


def _run_pixels(run_ptr: np.ndarray, run_c0: np.ndarray, run_c1: np.ndarray,
                n_fields: int) -> np.ndarray:
    """(n_fields,) int64 pixels of each field, from its runs."""
    field_of_run = np.repeat(np.arange(n_fields), np.diff(run_ptr))
    lengths = run_c1.astype(np.int64) - run_c0
    return np.bincount(field_of_run, weights=lengths, minlength=n_fields).astype(np.int64)


def _layered_spans(geoms: np.ndarray, grid: GridSpec, buffer: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Spans (row, c0, c1, field) of the buffered polygons and the overlap layer of each field."""
    n = len(geoms)
    shrunk = inner_buffer(np.asarray(geoms, dtype=object), buffer)
    ok = ~(shapely.is_missing(shrunk) | shapely.is_empty(shrunk))
    if grid.width == 0 or grid.height == 0 or not ok.any():
        none = np.empty(0, np.int32)
        return none, none, none, none, np.full(n, -1, np.int32)
    pos = np.flatnonzero(ok)
    layer = np.full(n, -1, np.int32)
    layer[pos] = overlap_layers(shrunk[pos])
    # each layer is burnt in input order; a later field of a layer wins a shared pixel
    row, c0, c1, fid = polygon_spans(polygon_rings(shrunk, grid), pos, grid.height, grid.width)
    return row, c0, c1, fid, layer


@numba.njit(nogil=True, cache=True)
def _build_plan(s_row: np.ndarray, s_c0: np.ndarray, s_c1: np.ndarray, s_fid: np.ndarray,
                layer: np.ndarray, height: int, width: int, n_fields: int, ids: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                           np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                           np.ndarray]:  # pragma: no cover - numba
    """Paint the spans row by row into the index arrays of a :class:`ScanPlan`.

    Layer 0 is painted in span order into one row (later spans win); its vertical
    segment ends come from comparing each row with the next, its runs from the row.
    Each other layer is painted the same way into a scratch row and gives (pixel, field)
    pairs, ordered by column then layer. ``ids``, when (height, width), receives layer 0.
    Returns seg_ptr, seg_col, seg_fid, pair_ptr, pair_col, pair_fid, run_ptr, run_row,
    run_c0, run_c1 (runs grouped by field, rows ascending; in a row, layer 0's runs by
    column, then the pairs).
    """
    ns = s_row.shape[0]
    by_row = np.zeros(height + 1, np.int64)
    for s in range(ns):
        by_row[s_row[s] + 1] += 1
    for r in range(height):
        by_row[r + 1] += by_row[r]
    fill = by_row[:-1].copy()
    order = np.empty(ns, np.int64)
    for s in range(ns):
        order[fill[s_row[s]]] = s
        fill[s_row[s]] += 1
    keep_ids = ids.shape[0] == height and ids.shape[1] == width
    prev = np.full(width, -1, np.int32)
    cur = np.full(width, -1, np.int32)
    scratch = np.full(width, -1, np.int32)
    seg_ptr = np.zeros(height + 1, np.int64)
    seg_col = np.empty(1024, np.int32)
    seg_fid = np.empty(1024, np.int32)
    nseg = 0
    pair_ptr = np.zeros(height + 1, np.int64)
    pair_col = np.empty(16, np.int32)
    pair_fid = np.empty(16, np.int32)
    npair = 0
    rr_row = np.empty(1024, np.int32)  # runs in row order
    rr_c0 = np.empty(1024, np.int32)
    rr_c1 = np.empty(1024, np.int32)
    rr_fid = np.empty(1024, np.int32)
    nrun = 0
    e_col = np.empty(16, np.int32)
    e_fid = np.empty(16, np.int32)
    for r in range(height):
        # at most one segment end and one run per column of the row
        seg_col = reserve(seg_col, nseg, width)
        seg_fid = reserve(seg_fid, nseg, width)
        rr_row = reserve(rr_row, nrun, width)
        rr_c0 = reserve(rr_c0, nrun, width)
        rr_c1 = reserve(rr_c1, nrun, width)
        rr_fid = reserve(rr_fid, nrun, width)
        cur[:] = -1
        top = 0
        for t in range(by_row[r], by_row[r + 1]):
            s = order[t]
            f = s_fid[s]
            if layer[f] == 0:
                cur[s_c0[s]:s_c1[s]] = f
            else:
                top = max(top, layer[f])
        if keep_ids:
            ids[r] = cur
        if r > 0:  # vertical segments of the row above end where the field changes
            for c in range(width):
                if prev[c] != cur[c]:
                    seg_col[nseg] = c
                    seg_fid[nseg] = prev[c]
                    nseg += 1
            seg_ptr[r] = nseg
        c = 0
        while c < width:
            f = cur[c]
            if f < 0:
                c += 1
                continue
            start = c
            while c < width and cur[c] == f:
                c += 1
            rr_row[nrun] = r
            rr_c0[nrun] = start
            rr_c1[nrun] = c
            rr_fid[nrun] = f
            nrun += 1
        ne = 0
        if top:
            e_col = reserve(e_col, 0, width * top)
            e_fid = reserve(e_fid, 0, width * top)
        for lay in range(1, top + 1):
            lo = width
            hi = 0
            for t in range(by_row[r], by_row[r + 1]):
                s = order[t]
                f = s_fid[s]
                if layer[f] == lay:
                    scratch[s_c0[s]:s_c1[s]] = f
                    lo = min(lo, s_c0[s])
                    hi = max(hi, s_c1[s])
            for c in range(lo, hi):
                if scratch[c] >= 0:
                    e_col[ne] = c
                    e_fid[ne] = scratch[c]
                    ne += 1
                    scratch[c] = -1
        if ne:
            pair_col = reserve(pair_col, npair, ne)
            pair_fid = reserve(pair_fid, npair, ne)
            rr_row = reserve(rr_row, nrun, ne)
            rr_c0 = reserve(rr_c0, nrun, ne)
            rr_c1 = reserve(rr_c1, nrun, ne)
            rr_fid = reserve(rr_fid, nrun, ne)
            by_col = np.argsort(e_col[:ne], kind="mergesort")  # stable: layers stay in order
            for k in range(ne):
                c = e_col[by_col[k]]
                f = e_fid[by_col[k]]
                pair_col[npair] = c
                pair_fid[npair] = f
                npair += 1
                rr_row[nrun] = r
                rr_c0[nrun] = c
                rr_c1[nrun] = c + 1
                rr_fid[nrun] = f
                nrun += 1
        pair_ptr[r + 1] = npair
        prev, cur = cur, prev
    if height > 0:  # every column's segment ends on the last row
        seg_col = reserve(seg_col, nseg, width)
        seg_fid = reserve(seg_fid, nseg, width)
        for c in range(width):
            seg_col[nseg] = c
            seg_fid[nseg] = prev[c]
            nseg += 1
        seg_ptr[height] = nseg
    # runs grouped by field (a counting sort keeps each field's runs in row order)
    run_ptr = np.zeros(n_fields + 1, np.int64)
    for k in range(nrun):
        run_ptr[rr_fid[k] + 1] += 1
    for f in range(n_fields):
        run_ptr[f + 1] += run_ptr[f]
    at = run_ptr[:-1].copy()
    run_row = np.empty(nrun, np.int32)
    run_c0 = np.empty(nrun, np.int32)
    run_c1 = np.empty(nrun, np.int32)
    for k in range(nrun):
        j = at[rr_fid[k]]
        at[rr_fid[k]] += 1
        run_row[j] = rr_row[k]
        run_c0[j] = rr_c0[k]
        run_c1[j] = rr_c1[k]
    return (seg_ptr, seg_col[:nseg].copy(), seg_fid[:nseg].copy(), pair_ptr,
            pair_col[:npair].copy(), pair_fid[:npair].copy(), run_ptr, run_row, run_c0, run_c1)


@dataclass(frozen=True)
class ScanPlan:
    """Index of a field raster for a row-by-row pass over a tile window.

    Built once per tile and grid (:attr:`FieldRaster.scan_plan`) and reused for every
    acquisition. A pass goes down the rows; per-column running totals are added into
    their field when the field's vertical run of pixels in that column ends, so the
    per-pixel work is a plain, vectorisable loop over the row.

    Attributes
    ----------
    seg_ptr, seg_col, seg_fid
        Ends of vertical segments of the dense layer: segment ends of row r are
        ``seg_ptr[r]:seg_ptr[r+1]`` (int64 (height+1,)); their column (int32) and field
        position (int32, -1 for pixels outside every field).
    pair_ptr, pair_col, pair_fid
        Pixels of the extra (overlap) layers by row, as above.
    run_ptr, run_row, run_c0, run_c1
        Horizontal runs of each field's pixels, field by field (``run_ptr`` int64
        (n_fields+1,)), rows ascending; a run covers columns ``run_c0:run_c1`` (int32).
    done_ptr, done_fid
        Fields whose last row is r: ``done_fid[done_ptr[r]:done_ptr[r+1]]``.
    span
        Most rows one field spans (at least 1): rows a pass keeps to revisit a field.
    """

    seg_ptr: np.ndarray
    seg_col: np.ndarray
    seg_fid: np.ndarray
    pair_ptr: np.ndarray
    pair_col: np.ndarray
    pair_fid: np.ndarray
    run_ptr: np.ndarray
    run_row: np.ndarray
    run_c0: np.ndarray
    run_c1: np.ndarray
    done_ptr: np.ndarray
    done_fid: np.ndarray
    span: int


def build_scan_plan(raster: FieldRaster) -> ScanPlan:
    """Build the :class:`ScanPlan` of ``raster`` (see :attr:`FieldRaster.scan_plan`)."""
    ids = np.ascontiguousarray(raster.ids)
    height, width = ids.shape
    seg_ptr, seg_col, seg_fid = _segment_ends(ids)
    order = np.argsort(raster.pair_pix, kind="stable")
    pair_pix = raster.pair_pix[order]
    pair_fid = raster.pair_fid[order].astype(np.int32)
    pair_ptr = np.zeros(height + 1, np.int64)
    if width:
        np.cumsum(np.bincount(pair_pix // width, minlength=height)[:height], out=pair_ptr[1:])
    pair_col = (pair_pix % max(width, 1)).astype(np.int32)
    run_ptr, run_row, run_c0, run_c1 = _field_runs(ids, pair_ptr, pair_col, pair_fid,
                                                   raster.n_fields)
    done_ptr, done_fid, span = _completions(run_ptr, run_row, height)
    return ScanPlan(seg_ptr, seg_col, seg_fid, pair_ptr, pair_col, pair_fid, run_ptr, run_row,
                    run_c0, run_c1, done_ptr, done_fid, span)


@numba.njit(nogil=True, cache=True)
def _segment_ends(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Per row, the columns where a vertical run of one id ends (the id changes below)."""
    h, w = ids.shape
    ptr = np.zeros(h + 1, np.int64)
    for r in range(h):
        n = 0
        for c in range(w):
            n += r == h - 1 or ids[r + 1, c] != ids[r, c]
        ptr[r + 1] = ptr[r] + n
    col = np.empty(ptr[h], np.int32)
    fid = np.empty(ptr[h], np.int32)
    k = 0
    for r in range(h):
        for c in range(w):
            if r == h - 1 or ids[r + 1, c] != ids[r, c]:
                col[k] = c
                fid[k] = ids[r, c]
                k += 1
    return ptr, col, fid


@numba.njit(nogil=True, cache=True)
def _field_runs(ids: np.ndarray, pair_ptr: np.ndarray, pair_col: np.ndarray,
                pair_fid: np.ndarray, n_fields: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Horizontal runs of each field's pixels, grouped by field, rows ascending.

    Runs of the dense layer start where the id changes along a row; each pixel of an
    extra (overlap) layer is a run of its own. A counting sort by field keeps each
    field's runs in row order.
    """
    h, w = ids.shape
    ptr = np.zeros(n_fields + 1, np.int64)
    for r in range(h):  # runs per field
        line = ids[r]
        for c in range(w):
            f = line[c]
            if f >= 0 and (c == 0 or line[c - 1] != f):
                ptr[f + 1] += 1
        for p in range(pair_ptr[r], pair_ptr[r + 1]):
            ptr[pair_fid[p] + 1] += 1
    for f in range(n_fields):
        ptr[f + 1] += ptr[f]
    pos = ptr[:-1].copy()
    run_row = np.empty(ptr[n_fields], np.int32)
    run_c0 = np.empty(ptr[n_fields], np.int32)
    run_c1 = np.empty(ptr[n_fields], np.int32)
    for r in range(h):
        line = ids[r]
        for c in range(w):
            f = line[c]
            if f >= 0 and (c == 0 or line[c - 1] != f):
                stop = c + 1
                while stop < w and line[stop] == f:
                    stop += 1
                j = pos[f]
                pos[f] += 1
                run_row[j] = r
                run_c0[j] = c
                run_c1[j] = stop
        for p in range(pair_ptr[r], pair_ptr[r + 1]):
            f = pair_fid[p]
            j = pos[f]
            pos[f] += 1
            run_row[j] = r
            run_c0[j] = pair_col[p]
            run_c1[j] = pair_col[p] + 1
    return ptr, run_row, run_c0, run_c1


@numba.njit(nogil=True, cache=True)
def _completions(run_ptr: np.ndarray, run_row: np.ndarray, height: int
                 ) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover
    """Fields by last row, and the most rows one field spans."""
    n_fields = run_ptr.shape[0] - 1
    last = np.full(n_fields, -1, np.int64)
    span = 1
    for f in range(n_fields):
        if run_ptr[f + 1] > run_ptr[f]:
            lo = height
            hi = -1
            for t in range(run_ptr[f], run_ptr[f + 1]):
                lo = min(lo, run_row[t])
                hi = max(hi, run_row[t])
            last[f] = hi
            span = max(span, hi - lo + 1)
    ptr = np.zeros(height + 1, np.int64)
    for f in range(n_fields):
        if last[f] >= 0:
            ptr[last[f] + 1] += 1
    for r in range(height):
        ptr[r + 1] += ptr[r]
    pos = ptr[:-1].copy()
    fid = np.empty(ptr[height], np.int32)
    for f in range(n_fields):
        if last[f] >= 0:
            fid[pos[last[f]]] = f
            pos[last[f]] += 1
    return ptr, fid, span


@dataclass(frozen=True)
class FieldIndex:
    """What a row-by-row zonal pass needs of a :class:`FieldRaster`, without the id raster.

    About 10x smaller than the raster (runs and segment ends instead of one int32 per
    pixel); this is what extraction keeps per tile and grid and ships between workers.

    Attributes
    ----------
    grid
        The window the plan refers to.
    n_fields
        Number of fields positions refer to.
    n_pixels
        (n_fields,) int64 pixels of each field.
    scan_plan
        The raster's :class:`ScanPlan`.
    """

    grid: GridSpec
    n_fields: int
    n_pixels: np.ndarray
    scan_plan: ScanPlan
