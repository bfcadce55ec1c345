"""Scanline fill of polygons straight from their coordinate arrays (pixel-centre rule).

The fields of a tile become horizontal pixel spans without any intermediate
format: the rings' coordinates come out of shapely as flat float64 arrays
(:func:`polygon_rings`), are mapped to pixel space with the inverse of the grid's
affine transform, and a compiled scanline pass (:func:`polygon_spans`) finds, for
every pixel row, where each polygon's edges cross the row's centre line.

The rule is the one GDAL applies when it burns polygons with ``all_touched``
off (the rule extraction used when it went through ``rasterio.features.rasterize``),
so the pixels are the same, including the cases decided by floating point:

* every ring of a (multi)polygon takes part in one even-odd fill;
* a row ``y`` is tested at its centre line ``y + 0.5`` (pixel units); a
  non-horizontal edge crosses it when its lower end is at or above the line and
  its upper end below it (half-open, so a vertex is counted once), at
  ``x = (yc - y1) * (x2 - x1) / (y2 - y1) + x1`` rounded with ``floor(x + 0.5)``;
* crossings sorted along the row pair up into spans ``[x_a, x_b)``: a pixel is
  burnt when its centre lies in ``(x_a - 0.5, x_b - 0.5]``, i.e. its centre is inside;
* an edge lying exactly on a row's centre line also burns the pixels between its
  ends (rounded the same way) when it runs towards smaller x with the ring taken
  clockwise in CRS coordinates (whatever the ring's own orientation): on a
  north-up grid, the pixels whose centres lie on a polygon's lower edge are in;
* rows run from ``int(min y)`` to ``int(max y)`` of the polygon's vertices (C
  truncation), clipped to the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import shapely

from regenmap.geo.grid import GridSpec


@dataclass(frozen=True)
class Rings:
    """Polygon rings in pixel coordinates of a grid.

    Attributes
    ----------
    x, y
        (n_points,) float64 column and row coordinates (pixel units; pixel (r, c) spans
        ``[c, c + 1) x [r, r + 1)``), rings closed (last point repeats the first).
    ring_ptr
        (n_rings + 1,) int64: ring k's points are ``ring_ptr[k]:ring_ptr[k + 1]``.
    ccw
        (n_rings,) bool: the ring runs counter-clockwise in CRS coordinates.
    geom_ptr
        (n_geoms + 1,) int64: geometry g's rings are ``geom_ptr[g]:geom_ptr[g + 1]``
        (exterior and interior rings of every part; none for empty geometries).
    """

    x: np.ndarray
    y: np.ndarray
    ring_ptr: np.ndarray
    ccw: np.ndarray
    geom_ptr: np.ndarray


def polygon_rings(geoms: np.ndarray, grid: GridSpec) -> Rings:
    """Return the rings of polygons as flat pixel-coordinate arrays of ``grid``.

    Parameters
    ----------
    geoms
        (n,) shapely geometries in the grid's CRS; polygonal parts of each are used
        (Polygon, MultiPolygon, the polygons of a GeometryCollection); None and empty
        geometries get no ring.
    grid
        The grid whose pixel space the coordinates are mapped to.

    Returns
    -------
    Rings
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    present = ~shapely.is_missing(geoms)
    kinds = shapely.get_type_id(geoms[present])
    if np.all(kinds == 3):
        # polygons only (fields usually are): each is its own part; get_parts would copy
        # every one of them (0.2 s at 100,000 fields)
        parts, part_of = geoms[present], np.flatnonzero(present)
    else:
        parts, part_of = shapely.get_parts(geoms[present], return_index=True)
        part_of = np.flatnonzero(present)[part_of]
        polys = shapely.get_type_id(parts) == 3  # nested collections are flattened once only
        parts, part_of = parts[polys], part_of[polys]
    rings, ring_of = shapely.get_rings(parts, return_index=True)
    coords, point_of = shapely.get_coordinates(rings, return_index=True)
    ring_ptr = np.zeros(len(rings) + 1, np.int64)
    np.cumsum(np.bincount(point_of, minlength=len(rings)), out=ring_ptr[1:])
    geom_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(part_of[ring_of], minlength=n), out=geom_ptr[1:])
    px, py = to_pixel(coords[:, 0], coords[:, 1], grid)
    return Rings(px, py, ring_ptr, np.asarray(shapely.is_ccw(rings), bool), geom_ptr)


def to_pixel(x: np.ndarray, y: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Map CRS coordinates to pixel coordinates (float64 column, row) of ``grid``.

    Computed as GDAL applies an inverse geotransform (``c0 + x * cx`` with
    ``c0 = -origin / size`` and ``cx = 1 / size``), so that coordinates falling exactly
    on a pixel centre land on it as they do in GDAL.
    """
    t = grid.transform
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if t.b == 0 and t.d == 0 and t.a != 0 and t.e != 0:
        return -t.c / t.a + x * (1.0 / t.a), -t.f / t.e + y * (1.0 / t.e)
    inv = ~t
    return inv.c + x * inv.a + y * inv.b, inv.f + x * inv.d + y * inv.e


def polygon_spans(rings: Rings, order: np.ndarray, height: int, width: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Burn polygons into spans of pixels, polygon by polygon in ``order``.

    Parameters
    ----------
    rings
        Rings of the polygons (:func:`polygon_rings`).
    order
        int64 geometry positions to burn, in order.
    height, width
        Grid size; spans are clipped to it.

    Returns
    -------
    row, c0, c1, geom
        int32 arrays of equal length: pixels ``[c0, c1)`` of ``row`` belong to geometry
        ``geom``; spans of one geometry come together, geometries in ``order``. Spans of
        one geometry may overlap one another (an edge on a row's centre line).
    """
    return _spans(rings.x, rings.y, rings.ring_ptr, rings.ccw, rings.geom_ptr,
                  np.asarray(order, np.int64), int(height), int(width))


@numba.njit(nogil=True, cache=True)
def reserve(a: np.ndarray, n: int, extra: int) -> np.ndarray:  # pragma: no cover - numba
    """Return ``a``, or a larger copy of its first ``n`` values, with room for ``extra`` more.

    Called once per row or polygon, not per value: each call costs reference counting.
    """
    if n + extra <= a.shape[0]:
        return a
    out = np.empty(max(2 * a.shape[0], n + extra, 16), a.dtype)
    out[:n] = a[:n]
    return out


@numba.njit(nogil=True, cache=True)
def _spans(px: np.ndarray, py: np.ndarray, ring_ptr: np.ndarray, ccw: np.ndarray,
           geom_ptr: np.ndarray, order: np.ndarray, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    cap = 1024
    s_row = np.empty(cap, np.int32)
    s_c0 = np.empty(cap, np.int32)
    s_c1 = np.empty(cap, np.int32)
    s_geom = np.empty(cap, np.int32)
    ns = 0
    x_row = np.empty(256, np.int64)  # crossings of one polygon: row, then rounded x
    x_col = np.empty(256, np.int64)
    for k in range(order.shape[0]):
        g = order[k]
        r_first, r_last = geom_ptr[g], geom_ptr[g + 1]
        if r_first == r_last:
            continue
        p0, p1 = ring_ptr[r_first], ring_ptr[r_last]
        lo_y = py[p0]
        hi_y = py[p0]
        for i in range(p0 + 1, p1):
            lo_y = min(lo_y, py[i])
            hi_y = max(hi_y, py[i])
        if not (hi_y >= 0.0 and lo_y < height):  # wholly above or below the grid
            continue
        miny = max(int(lo_y), 0)  # int() truncates towards zero, as a C cast
        maxy = min(int(hi_y), height - 1)
        if miny > maxy:
            continue
        nx = 0
        # room for one span per edge on a centre line
        s_row = reserve(s_row, ns, p1 - p0)
        s_c0 = reserve(s_c0, ns, p1 - p0)
        s_c1 = reserve(s_c1, ns, p1 - p0)
        s_geom = reserve(s_geom, ns, p1 - p0)
        for r in range(r_first, r_last):
            a, b = ring_ptr[r], ring_ptr[r + 1]
            for i in range(a, b):
                i1 = b - 1 if i == a else i - 1
                y1, y2 = py[i1], py[i]
                if y1 == y2:
                    # an edge on a row's centre line burns its own pixels when it runs
                    # towards smaller x, rings taken clockwise in CRS coordinates
                    back = px[i] < px[i1] if not ccw[r] else px[i1] < px[i]
                    if back:
                        yr = np.floor(y1)
                        if yr + 0.5 == y1 and miny <= yr <= maxy:
                            h0 = int(np.floor(min(px[i], px[i1]) + 0.5))
                            h1 = int(np.floor(max(px[i], px[i1]) + 0.5))
                            c0 = max(h0, 0)
                            c1 = min(h1, width)
                            if c1 > c0:
                                s_row[ns] = int(yr)
                                s_c0[ns] = c0
                                s_c1[ns] = c1
                                s_geom[ns] = g
                                ns += 1
                    continue
                if y1 < y2:
                    ya, yb, xa, xb = y1, y2, px[i1], px[i]
                else:
                    ya, yb, xa, xb = y2, y1, px[i], px[i1]
                # rows whose centre line yc satisfies ya <= yc < yb
                if ya > maxy + 0.5 or not yb > miny + 0.5:
                    continue
                x_row = reserve(x_row, nx, maxy - miny + 1)
                x_col = reserve(x_col, nx, maxy - miny + 1)
                if ya <= miny + 0.5:
                    y = miny
                else:
                    y = int(np.ceil(ya - 0.5))
                    if (y - 1) + 0.5 >= ya:
                        y -= 1
                    if y + 0.5 < ya:
                        y += 1
                while y <= maxy:
                    yc = y + 0.5
                    if not yc < yb:
                        break
                    xi = (yc - ya) * (xb - xa) / (yb - ya) + xa
                    xr = np.floor(xi + 0.5)
                    # clamping keeps the order and every span's clipped extent
                    xc = -1 if xr < -1.0 else (width + 1 if xr > width + 1.0 else int(xr))
                    x_row[nx] = y
                    x_col[nx] = xc
                    nx += 1
                    y += 1
        if nx == 0:
            continue
        key = (x_row[:nx] - miny) * (width + 3) + (x_col[:nx] + 1)
        key.sort()
        s_row = reserve(s_row, ns, nx // 2 + 1)
        s_c0 = reserve(s_c0, ns, nx // 2 + 1)
        s_c1 = reserve(s_c1, ns, nx // 2 + 1)
        s_geom = reserve(s_geom, ns, nx // 2 + 1)
        j = 0
        while j + 1 < nx:
            row = key[j] // (width + 3)
            if key[j + 1] // (width + 3) != row:  # an odd crossing count: skip it
                j += 1
                continue
            xa_i = key[j] % (width + 3) - 1
            xb_i = key[j + 1] % (width + 3) - 1
            j += 2
            if xa_i <= width - 1 and xb_i > 0:
                c0 = max(xa_i, 0)
                c1 = min(xb_i, width)
                if c1 > c0:
                    s_row[ns] = row + miny
                    s_c0[ns] = c0
                    s_c1[ns] = c1
                    s_geom[ns] = g
                    ns += 1
    return s_row[:ns].copy(), s_c0[:ns].copy(), s_c1[:ns].copy(), s_geom[:ns].copy()
