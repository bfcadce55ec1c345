"""Burn field polygons into a field-index raster of a grid (pixel-centre rule).

A pixel belongs to a field when its centre lies inside the field's polygon,
after an optional inner (negative) buffer that removes mixed edge pixels.
Overlapping fields each keep all their own pixels: the fields are split into
layers of mutually non-overlapping polygons (greedy colouring); the first layer
is a dense raster, the others become a sparse list of (pixel, field) pairs.
The result is built once per tile and grid and reused for every acquisition.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numba
import numpy as np
import shapely
from rasterio import features

from regenmap.geo.grid import GridSpec


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
        """(n_fields,) int64 count of pixels of each field."""
        flat = self.ids.ravel()
        counts = np.bincount(flat[flat >= 0], minlength=self.n_fields)
        return counts + np.bincount(self.pair_fid, minlength=self.n_fields)

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """(n_fields + 1,) int64 start of each field's pixels in :attr:`pixels` (CSR)."""
        out = np.zeros(self.n_fields + 1, dtype=np.int64)
        np.cumsum(self.n_pixels, out=out[1:])
        return out

    @functools.cached_property
    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and columns (int32) of the pixels grouped by field.

        Field f owns ``rows[offsets[f]:offsets[f+1]]`` (and the same slice of the
        columns), row-major within the field. Built once per tile (a counting sort) so
        that every acquisition visits each field's pixels together, with its values in
        cache.
        """
        return _group_by_field(np.ascontiguousarray(self.ids), self.pair_pix, self.pair_fid,
                               self.offsets)

    @functools.cached_property
    def visit_order(self) -> np.ndarray:
        """(n_fields,) int64 field positions in a cache-friendly visiting order.

        Fields are sorted by the 512-column strip of their first pixel, then top to
        bottom: the raster rows a field needs are still in cache from its neighbours
        (the input order of fields is arbitrary).
        """
        rows, cols = self.pixels
        start = np.minimum(self.offsets[:-1], max(len(rows) - 1, 0))
        # vertical strips of 512 columns, top to bottom within a strip: the rows in use
        # at any time span one strip (a few hundred KiB), not the whole window width
        key = ((cols[start].astype(np.int64) // 512) * (self.grid.height + 1) * self.grid.width
               + rows[start].astype(np.int64) * self.grid.width + cols[start] if len(rows)
               else np.zeros(self.n_fields, np.int64))
        key = np.where(self.n_pixels > 0, key, np.iinfo(np.int64).max)
        return np.argsort(key, kind="stable").astype(np.int64)


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
    return np.asarray(shapely.buffer(geoms, -distance * (1 - 1e-3), join_style="mitre"))


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
    left, right = tree.query(geoms, predicate="intersects")
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
    shrunk = inner_buffer(np.asarray(geoms, dtype=object), buffer)
    ok = ~(shapely.is_missing(shrunk) | shapely.is_empty(shrunk))
    ids = np.full(grid.shape, -1, dtype=np.int32)
    empty_pairs = (np.empty(0, np.int64), np.empty(0, np.int32))
    if grid.width == 0 or grid.height == 0 or not ok.any():
        return FieldRaster(grid, ids, *empty_pairs, n_fields=n)
    pos = np.flatnonzero(ok)
    layers = overlap_layers(shrunk[pos])
    pix_parts, fid_parts = [], []
    for layer in range(int(layers.max()) + 1):
        sel = pos[layers == layer]
        shapes = zip(shrunk[sel], sel.tolist(), strict=True)
        burnt = features.rasterize(shapes, out_shape=grid.shape, transform=grid.transform,
                                   fill=-1, dtype="int32", all_touched=False)
        if layer == 0:
            ids = burnt
        else:
            flat = burnt.ravel()
            where = np.flatnonzero(flat >= 0)
            pix_parts.append(where.astype(np.int64))
            fid_parts.append(flat[where].astype(np.int32))
    if pix_parts:
        return FieldRaster(grid, ids, np.concatenate(pix_parts), np.concatenate(fid_parts), n)
    return FieldRaster(grid, ids, *empty_pairs, n_fields=n)


@numba.njit(nogil=True, cache=True)
def _group_by_field(ids: np.ndarray, pair_pix: np.ndarray, pair_fid: np.ndarray,
                    offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Sort pixels by field with a counting sort (dense layer first, then pairs)."""
    h, w = ids.shape
    pos = offsets[:-1].copy()
    rows = np.empty(offsets[-1], np.int32)
    cols = np.empty(offsets[-1], np.int32)
    for r in range(h):
        for c in range(w):
            f = ids[r, c]
            if f >= 0:
                rows[pos[f]] = r
                cols[pos[f]] = c
                pos[f] += 1
    for k in range(pair_pix.shape[0]):
        f = pair_fid[k]
        rows[pos[f]] = pair_pix[k] // w
        cols[pos[f]] = pair_pix[k] % w
        pos[f] += 1
    return rows, cols
