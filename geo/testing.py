"""Raster files written the way sensors deliver them.

Factories for tests and benchmarks; not used by the pipeline. Writes tiled,
DEFLATE-compressed GeoTIFFs named like Sentinel-2 L2A band files
(``T31UFQ_20230412T104629_B04_10m.tif``) so that every reader of
:mod:`regenmap.geo.catalog` can be exercised on small real files.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from regenmap.geo.grid import GridSpec
from regenmap.geo.sentinel2 import NODATA, band_filename


def write_raster(path: str | Path, data: np.ndarray, grid: GridSpec, *,
                 nodata: float | None = None, descriptions: list[str] | None = None,
                 crs: bool = True, blocksize: int = 512) -> Path:
    """Write a (bands, y, x) or (y, x) array as a tiled DEFLATE GeoTIFF on ``grid``.

    Parameters
    ----------
    path
        Output file.
    data
        Array of any GDAL dtype; shape must match ``grid``.
    grid
        Grid of the file.
    nodata
        Nodata value to record, if any.
    descriptions
        Per-band descriptions (e.g. dates of a time stack).
    crs
        Write the CRS (False makes a raster without CRS, for tests of that error).
    blocksize
        Tile edge in pixels (multiple of 16).
    """
    arr = data[None] if data.ndim == 2 else data
    if arr.shape[1:] != grid.shape:
        raise ValueError(f"array shape {arr.shape[1:]} does not match grid {grid.shape}")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    bs = min(blocksize, max(16, 16 * (min(grid.shape) // 16)))
    tiled = grid.width >= 16 and grid.height >= 16
    profile = {"driver": "GTiff", "width": grid.width, "height": grid.height,
               "count": arr.shape[0], "dtype": arr.dtype.name, "transform": grid.transform,
               "compress": "deflate", "predictor": 2 if arr.dtype.kind in "iu" else 1}
    if crs:
        profile["crs"] = grid.crs
    if tiled:
        profile.update(tiled=True, blockxsize=bs, blockysize=bs)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(p, "w", **profile) as ds:
        ds.write(arr)
        for i, d in enumerate(descriptions or [], start=1):
            ds.set_band_description(i, d)
    return p


def write_s2_scene(folder: str | Path, *, tile: str, when: datetime, grid10: GridSpec,
                   bands: dict[str, np.ndarray], scl: np.ndarray | None = None,
                   blocksize: int = 512) -> list[Path]:
    """Write one Sentinel-2 L2A acquisition as per-band files, named by :mod:`regenmap.geo.sentinel2`.

    Parameters
    ----------
    folder
        Output folder.
    tile, when
        MGRS tile (``31UFQ``) and acquisition time.
    grid10
        The 10 m grid; 20 m bands and SCL are written on the grid of half its size.
    bands
        Native name (``B04``) -> uint16 DN array on its own grid (10 m for B02/B03/B04/B08,
        20 m for the others), e.g. from :func:`regenmap.geo.sentinel2.reflectance_to_dn`.
    scl
        uint8 scene classification on the 20 m grid, or None.
    """
    out = []
    g20 = GridSpec(grid10.crs, grid10.transform @ Affine.scale(2, 2),
                   grid10.width // 2, grid10.height // 2)
    for name, data in bands.items():
        grid, res = (grid10, 10) if data.shape == grid10.shape else (g20, 20)
        out.append(write_raster(Path(folder) / band_filename(tile, when, name, res), data, grid,
                                nodata=NODATA, blocksize=blocksize))
    if scl is not None:
        out.append(write_raster(Path(folder) / band_filename(tile, when, "SCL", 20), scl, g20,
                                nodata=NODATA, blocksize=blocksize))
    return out
