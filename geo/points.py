"""Point labels as pixel footprints: the pixel a point falls in, or a square around it.

Survey teams and pixel-sample label sets give points, not parcels. A point's
footprint depends on the raster it is read from, so it is made on each
acquisition grid: the cell containing the point, grown by ``pixels`` cells on
every side (a (2N+1) x (2N+1) square).
"""

from __future__ import annotations

import numpy as np
import shapely

from regenmap.geo.grid import GridSpec

#: shapely type ids of points and multipoints.
_POINT, _MULTIPOINT = 0, 4


def is_point(geoms: np.ndarray) -> np.ndarray:
    """Whether each geometry is a (multi)point (bool array of ``geoms``' shape)."""
    types = shapely.get_type_id(np.asarray(geoms, dtype=object))
    return (types == _POINT) | (types == _MULTIPOINT)


def footprint_text(pixels: int) -> str:
    """How a point is read, in words (recorded per sample)."""
    side = 2 * pixels + 1
    return "point: the pixel it falls in" if pixels == 0 else \
        f"point: {side} x {side} pixels around the pixel it falls in"


def point_cells(geoms: np.ndarray, grid: GridSpec, *, pixels: int, pad: float = 0.0
                ) -> np.ndarray:
    """Replace points by the square of cells of ``grid`` around them.

    Parameters
    ----------
    geoms
        (n,) shapely geometries in ``grid``'s CRS; polygons are returned as they are.
    grid
        The acquisition grid (or a window of it: the lattice is the same).
    pixels
        Cells added on every side of the cell containing the point (0: that cell alone).
    pad
        Outward margin in CRS units added to each square, so that an inner buffer of the
        same size (applied to every field when burning) gives back the square exactly.

    Returns
    -------
    numpy.ndarray
        (n,) geometries: squares (polygons, cell-aligned, plus ``pad``) for the points.
        A multipoint is read at its centroid.
    """
    out = np.array(geoms, dtype=object, copy=True)
    sel = np.flatnonzero(is_point(out) & ~shapely.is_empty(out))
    if sel.size == 0:
        return out
    pts = shapely.centroid(out[sel])
    t = grid.transform
    col = np.floor((shapely.get_x(pts) - t.c) / t.a)
    row = np.floor((shapely.get_y(pts) - t.f) / t.e)
    x0 = t.c + (col - pixels) * t.a - pad
    x1 = t.c + (col + pixels + 1) * t.a + pad
    y0 = t.f + (row - pixels) * t.e + pad
    y1 = t.f + (row + pixels + 1) * t.e - pad
    out[sel] = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1),
                           np.maximum(y0, y1))
    return out
