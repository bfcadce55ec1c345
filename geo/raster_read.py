"""Read one band of one acquisition over a window, on a target grid.

Only the window that covers the target grid is decoded. A band on a coarser
grid (Sentinel-2 20 m SWIR, the SCL mask) is brought to the target grid by the
nearest rule: each target pixel takes the source pixel containing its centre,
so values are never mixed. Pixels of the target outside the source raster get
the band's nodata value (NaN for float bands, or a float copy when the band has
no nodata value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from regenmap.errors import CRSError, InputError
from regenmap.geo.catalog import Asset
from regenmap.geo.grid import GridSpec, index_map

#: How coarser bands meet the target grid; written to the outputs' provenance.
RESAMPLING_RULE = "nearest: each target pixel takes the source pixel containing its centre"


def read_asset(asset: Asset, target: GridSpec, *, threads: int = 1) -> np.ndarray:
    """Read ``asset`` on ``target`` (same CRS), decoding only the covering window.

    Parameters
    ----------
    asset
        Band to read.
    target
        Grid (usually a tile window of the acquisition's finest grid).
    threads
        GDAL decode threads (``GDAL_NUM_THREADS``).

    Returns
    -------
    numpy.ndarray
        (target.height, target.width) array of the file's dtype with raw values
        (no scale/offset applied); float32 with NaN outside the source when the
        band has no nodata value.

    Raises
    ------
    CRSError
        If the asset and the target grid are in different CRSs.
    InputError
        If the file cannot be read (missing, truncated, corrupt block); names the file and band.
    """
    src = asset.grid
    if not src.same_crs(target):
        raise CRSError(f"band {asset.band} is in {src.crs}, not in the acquisition's CRS "
                       f"{target.crs}", path=asset.href)
    window = src.window_of_bounds(target.bounds)
    aligned = (src.res == target.res and _is_integer_offset(src, target))
    if window.width == 0 or window.height == 0:
        data = np.empty((0, 0), dtype=np.float32)
    else:
        data = _read_window(asset, window, threads)
    if aligned and data.shape == target.shape:
        return data
    rows, cols = index_map(target, src.window_grid(window))
    inside = (rows >= 0)[:, None] & (cols >= 0)[None, :]
    if data.size:
        out = data[np.maximum(rows, 0)][:, np.maximum(cols, 0)]
    else:
        out = np.zeros(target.shape, dtype=np.float32)
    if not inside.all():
        if asset.nodata is not None and not np.issubdtype(out.dtype, np.floating):
            out[~inside] = asset.nodata
        else:
            out = out.astype(np.float32, copy=False)
            out[~inside] = np.nan
    return out


def read_native(asset: Asset, target: GridSpec, *, threads: int = 1, fill: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read the part of ``asset`` under ``target`` at its own resolution, with index maps.

    Cheaper than :func:`read_asset` for coarser bands: nothing is replicated; the
    caller looks up ``data[rows[r], cols[c]]`` for target pixel (r, c).

    Parameters
    ----------
    asset, target, threads
        As in :func:`read_asset`.
    fill
        Value for target pixels outside the raster; the band's nodata (NaN for float
        bands) if None. Integer data without nodata become float32 with NaN there.

    Returns
    -------
    data
        2-D raw values of the covering window, plus one extra row and column holding
        ``fill`` when part of the target lies outside the raster.
    rows, cols
        int64 (target.height,) and (target.width,) indices into ``data``.
    """
    return _native(asset, target, fill, lambda w: _read_window(asset, w, threads))


class BandReader:
    """Keeps the band files of one task open while it reads them strip by strip.

    A strip that needs part of a block (a 20 m band under a 10 m strip) then takes the
    block from GDAL's block cache, not from a second decode. Use as a context manager.

    Parameters
    ----------
    threads
        GDAL decode threads (``GDAL_NUM_THREADS``).
    cache_mb
        GDAL block cache while reading (MiB): large enough for a row of blocks of every
        band, small enough that it does not hold a whole tile.
    """

    def __init__(self, *, threads: int = 1, cache_mb: int = 64):
        self._env = rasterio.Env(GDAL_NUM_THREADS=str(threads),
                                 GDAL_CACHEMAX=cache_mb * 1024 * 1024)
        self._open: dict[str, Any] = {}

    def __enter__(self) -> BandReader:
        self._env.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()
        self._env.__exit__(*exc)

    def read_native(self, asset: Asset, target: GridSpec, *, fill: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :func:`read_native`, from the file opened once."""
        return _native(asset, target, fill, lambda w: self._read(asset, w))

    def _read(self, asset: Asset, window: Window) -> np.ndarray:
        try:
            ds = self._open.get(asset.href)
            if ds is None:
                ds = self._open[asset.href] = rasterio.open(asset.href)
            return _read_band(ds, asset, window)
        except RasterioError as err:
            raise InputError(f"cannot read band {asset.band} window {window.flatten()}: {err}. "
                             "The file may be truncated or corrupt; re-download it.",
                             path=asset.href) from None


def _native(asset: Asset, target: GridSpec, fill: float | None,
            read: Callable[[Window], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = asset.grid
    if not src.same_crs(target):
        raise CRSError(f"band {asset.band} is in {src.crs}, not in the acquisition's CRS "
                       f"{target.crs}", path=asset.href)
    window = src.window_of_bounds(target.bounds)
    if window.width == 0 or window.height == 0:
        value = fill if fill is not None else asset.nodata
        return (np.full((1, 1), np.nan if value is None else value, dtype=np.float32),
                np.zeros(target.height, np.int64), np.zeros(target.width, np.int64))
    data = read(window)
    rows, cols = index_map(target, src.window_grid(window))
    if (rows >= 0).all() and (cols >= 0).all():
        return data, rows, cols
    value = fill if fill is not None else asset.nodata
    if value is None or (np.issubdtype(data.dtype, np.integer)
                         and not np.can_cast(np.min_scalar_type(value), data.dtype)):
        data = data.astype(np.float32 if value is None else np.int32)
        value = np.nan if value is None else value
    data = np.pad(data, ((0, 1), (0, 1)), constant_values=value)
    rows[rows < 0] = data.shape[0] - 1
    cols[cols < 0] = data.shape[1] - 1
    return data, rows, cols


def _read_band(ds: Any, asset: Asset, window: Window) -> np.ndarray:
    if asset.band > ds.count:
        raise InputError(f"band {asset.band} requested but the file has {ds.count}",
                         path=asset.href)
    return np.asarray(ds.read(asset.band, window=window))


def _read_window(asset: Asset, window: Window, threads: int) -> np.ndarray:
    try:
        with rasterio.Env(GDAL_NUM_THREADS=str(threads)), rasterio.open(asset.href) as ds:
            return _read_band(ds, asset, window)
    except RasterioError as err:
        raise InputError(f"cannot read band {asset.band} window {window.flatten()}: {err}. The file "
                         "may be truncated or corrupt; re-download it.", path=asset.href) from None


def _is_integer_offset(src: GridSpec, target: GridSpec) -> bool:
    dx = (target.transform.c - src.transform.c) / src.res[0]
    dy = (target.transform.f - src.transform.f) / src.res[1]
    return abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6
