"""Raster grids as immutable value objects: CRS, affine transform and size.

A :class:`GridSpec` says where every pixel of a raster lies; a window of it is
again a :class:`GridSpec`. Grids are compared by value, so acquisitions that
share a grid share the per-tile field-id rasters built on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from regenmap.errors import CRSError


@dataclass(frozen=True)
class GridSpec:
    """A north-up raster grid.

    Attributes
    ----------
    crs
        Coordinate reference system, as WKT or an authority string (``EPSG:32631``).
    transform
        Affine transform from (col, row) pixel corners to CRS coordinates.
    width, height
        Size in pixels (x, y).
    """

    crs: str
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.transform.b != 0 or self.transform.d != 0:
            raise CRSError("rotated or sheared rasters are not supported; warp them north-up "
                           "first (e.g. gdalwarp)")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"negative grid size {self.width}x{self.height}")

    @classmethod
    def from_dataset(cls, dataset: object, *, path: str | None = None) -> GridSpec:
        """Build the grid of an open rasterio dataset.

        Raises
        ------
        CRSError
            If the raster has no CRS (the message names ``path``).
        """
        crs = getattr(dataset, "crs", None)
        if crs is None:
            raise CRSError("raster has no CRS; assign one (e.g. `gdal_edit.py -a_srs EPSG:32631`)",
                           path=path or getattr(dataset, "name", None))
        return cls(crs=crs_string(crs), transform=dataset.transform,  # type: ignore[attr-defined]
                   width=int(dataset.width), height=int(dataset.height))  # type: ignore[attr-defined]

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def resolution(self) -> float:
        """Pixel edge in CRS units (the larger of x and y)."""
        return max(self.res)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)``, the (y, x) shape of arrays on this grid."""
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` in CRS units."""
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (self.width, self.height)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    @property
    def rasterio_crs(self) -> CRS:
        """The CRS as a rasterio object."""
        return CRS.from_user_input(self.crs)

    def window_of_bounds(self, bounds: tuple[float, float, float, float]) -> Window:
        """Return the smallest pixel window covering ``bounds``, clipped to the grid.

        The window may be empty (width or height 0) when ``bounds`` lies outside.
        """
        inv = ~self.transform
        xmin, ymin, xmax, ymax = bounds
        cols, rows = zip(*(inv @ (x, y) for x in (xmin, xmax) for y in (ymin, ymax)), strict=True)
        c0 = max(0, math.floor(min(cols) + 1e-9))
        r0 = max(0, math.floor(min(rows) + 1e-9))
        c1 = min(self.width, math.ceil(max(cols) - 1e-9))
        r1 = min(self.height, math.ceil(max(rows) - 1e-9))
        return Window(c0, r0, max(0, c1 - c0), max(0, r1 - r0))

    def window_grid(self, window: Window) -> GridSpec:
        """Return the grid of a pixel window of this grid."""
        col, row = int(window.col_off), int(window.row_off)
        return GridSpec(crs=self.crs, transform=self.transform @ Affine.translation(col, row),
                        width=int(window.width), height=int(window.height))

    def same_crs(self, other: GridSpec) -> bool:
        """Whether both grids are in the same CRS."""
        return self.crs == other.crs or self.rasterio_crs == other.rasterio_crs

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Return x (width,) and y (height,) float64 coordinates of pixel centres."""
        t = self.transform
        xs = t.c + t.a * (np.arange(self.width) + 0.5)
        ys = t.f + t.e * (np.arange(self.height) + 0.5)
        return xs, ys


def crs_string(crs: object) -> str:
    """Return a stable string of a CRS: ``EPSG:<code>`` when it has one, else WKT."""
    c = CRS.from_user_input(crs)
    epsg = c.to_epsg(confidence_threshold=100)
    return f"EPSG:{epsg}" if epsg else c.to_wkt()


def index_map(target: GridSpec, source: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """Map each target pixel centre to the source pixel that contains it (nearest rule).

    Both grids must share a CRS. Indices outside the source are ``-1``.

    Returns
    -------
    rows, cols
        int64 arrays of shape (target.height,) and (target.width,) with source
        row and column indices.
    """
    xs, ys = target.pixel_centres()
    inv = ~source.transform
    cols = np.floor(inv.a * xs + inv.c).astype(np.int64)
    rows = np.floor(inv.e * ys + inv.f).astype(np.int64)
    cols[(cols < 0) | (cols >= source.width)] = -1
    rows[(rows < 0) | (rows >= source.height)] = -1
    return rows, cols
