"""Read one band of one acquisition over a window, on a target grid.

Only the window that covers the target grid is decoded. A band on a coarser
grid (Sentinel-2 20 m SWIR, the SCL mask) is brought to the target grid by the
nearest rule: each target pixel takes the source pixel containing its centre,
so values are never mixed. Pixels of the target outside the source raster get
the band's nodata value (NaN for float bands, or a float copy when the band has
no nodata value).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from regenmap.errors import CRSError, InputError
from regenmap.geo.catalog import Asset
from regenmap.geo.grid import GridSpec, index_map
from regenmap.geo.pixel_need import PixelNeed
from regenmap.geo.tiff_blocks import BlockDecoder, DecodeError, block_layout

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
    return _native(asset, target, fill, lambda w, _r, _c: _read_window(asset, w, threads))


class BandReader:
    """Keeps the band files of one task open while it reads them strip by strip.

    A strip that needs part of a block (a 20 m band under a 10 m strip) then takes the
    block from GDAL's block cache, not from a second decode. Given a
    :class:`~regenmap.geo.pixel_need.PixelNeed`, blocks holding no needed pixel (no
    field, or every field pixel masked) are not decoded: their pixels read as 0, which
    no statistic uses. Use as a context manager.

    Parameters
    ----------
    threads
        GDAL decode threads (``GDAL_NUM_THREADS``).
    cache_mb
        GDAL block cache while reading (MiB): large enough for a row of blocks of every
        band, small enough that it does not hold a whole tile.
    direct
        Decode DEFLATE and uncompressed GeoTIFF blocks straight from the file
        (:mod:`regenmap.geo.tiff_blocks`; the same values as GDAL's, in less time); other
        files, and blocks that do not decode, are read by GDAL. False: GDAL reads all.

    Attributes
    ----------
    units_read, units_skipped
        Block units (whole blocks, at least :data:`MIN_UNIT_PX` on a side) decoded and
        left undecoded so far, over every read given a need.
    """

    def __init__(self, *, threads: int = 1, cache_mb: int = 64, direct: bool = True):
        self._env = rasterio.Env(GDAL_NUM_THREADS=str(threads),
                                 GDAL_CACHEMAX=cache_mb * 1024 * 1024)
        self._open: dict[str, Any] = {}
        self._direct = direct
        self._decoders: dict[tuple[str, int], BlockDecoder | None] = {}
        self.units_read = 0
        self.units_skipped = 0

    def __enter__(self) -> BandReader:
        self._env.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for ds in self._open.values():
            ds.close()
        self._open.clear()
        for dec in self._decoders.values():
            if dec is not None:
                dec.close()
        self._decoders.clear()
        self._env.__exit__(*exc)

    def read_native(self, asset: Asset, target: GridSpec, *, fill: float | None = None,
                    need: PixelNeed | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :func:`read_native`, from the file opened once.

        Parameters
        ----------
        asset, target, fill
            As in :func:`read_native`.
        need
            Which pixels of ``target`` are needed; the file's blocks under none of them
            are not decoded (their pixels are 0). Everything is read when None.
        """
        return _native(asset, target, fill, lambda w, rows, cols: self._read(asset, w, rows,
                                                                             cols, need))

    def _read(self, asset: Asset, window: Window, rows: np.ndarray, cols: np.ndarray,
              need: PixelNeed | None) -> np.ndarray:
        try:
            ds = self._open.get(asset.href)
            if ds is None:
                ds = self._open[asset.href] = rasterio.open(asset.href)
            if need is None:
                return self._band(ds, asset, window)
            return self._read_needed(ds, asset, window, rows, cols, need)
        except RasterioError as err:
            failure = _error_text(err)
        # raised outside the handler: no rasterio error attached (see regenmap.errors)
        raise InputError(f"cannot read band {asset.band} window {window.flatten()}: {failure}. "
                         "The file may be truncated or corrupt; re-download it.", path=asset.href)

    def _read_needed(self, ds: Any, asset: Asset, window: Window, rows: np.ndarray,
                     cols: np.ndarray, need: PixelNeed) -> np.ndarray:
        if asset.band > ds.count:
            return _read_band(ds, asset, window)  # raises the clear error
        row_edges, col_edges, needed = needed_units(window, ds.block_shapes[asset.band - 1],
                                                    rows, cols, need)
        self.units_read += int(needed.sum())
        self.units_skipped += int(needed.size - needed.sum())
        if needed.all():
            return self._band(ds, asset, window)
        out = np.zeros((int(window.height), int(window.width)), dtype=ds.dtypes[asset.band - 1])
        for i in range(needed.shape[0]):
            r0, r1 = int(row_edges[i]), int(row_edges[i + 1])
            j = 0
            while j < needed.shape[1]:  # one read per run of needed units along the row
                if not needed[i, j]:
                    j += 1
                    continue
                k = j
                while k < needed.shape[1] and needed[i, k]:
                    k += 1
                c0, c1 = int(col_edges[j]), int(col_edges[k])
                part = Window(int(window.col_off) + c0, int(window.row_off) + r0, c1 - c0,
                              r1 - r0)
                out[r0:r1, c0:c1] = self._band(ds, asset, part)
                j = k
        return out

    def _band(self, ds: Any, asset: Asset, window: Window) -> np.ndarray:
        """Decode a window of the asset's band: straight from the file when it can, else GDAL."""
        key = (asset.href, asset.band)
        if key not in self._decoders:
            layout = block_layout(ds, asset.band) if self._direct else None
            self._decoders[key] = BlockDecoder(layout) if layout is not None else None
        decoder = self._decoders[key]
        if decoder is not None:
            try:
                return decoder.read(window)
            except DecodeError:
                decoder.close()  # GDAL reads this file from now on, and names what is wrong
                self._decoders[key] = None
        return _read_band(ds, asset, window)


def _native(asset: Asset, target: GridSpec, fill: float | None,
            read: Callable[[Window, np.ndarray, np.ndarray], np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = asset.grid
    if not src.same_crs(target):
        raise CRSError(f"band {asset.band} is in {src.crs}, not in the acquisition's CRS "
                       f"{target.crs}", path=asset.href)
    window = src.window_of_bounds(target.bounds)
    if window.width == 0 or window.height == 0:
        value = fill if fill is not None else asset.nodata
        return (np.full((1, 1), np.nan if value is None else value, dtype=np.float32),
                np.zeros(target.height, np.int64), np.zeros(target.width, np.int64))
    rows, cols = index_map(target, src.window_grid(window))
    data = read(window, rows, cols)
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


#: Smallest edge (pixels) of the unit a reader decides to decode or skip: whole blocks,
#: grouped when the file's blocks are smaller (striped GeoTIFFs), so reads stay few.
MIN_UNIT_PX = 256


def needed_units(window: Window, block: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                 need: PixelNeed) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which block-aligned units of a file window hold a pixel ``need`` asks for.

    Parameters
    ----------
    window
        The file window being read (file pixels).
    block
        The file's block shape (rows, columns).
    rows, cols
        int64 maps from target (strip) row/column to window row/column, -1 outside.
    need
        Which target pixels are needed.

    Returns
    -------
    row_edges, col_edges
        int64 unit edges in window pixels (units are ``[row_edges[i], row_edges[i + 1])``...).
    needed
        (len(row_edges) - 1, len(col_edges) - 1) bool.
    """
    row_edges = _unit_edges(int(window.row_off), int(window.height), block[0])
    col_edges = _unit_edges(int(window.col_off), int(window.width), block[1])
    row_spans = [_target_span(rows, a, b) for a, b in itertools.pairwise(row_edges)]
    col_spans = [_target_span(cols, a, b) for a, b in itertools.pairwise(col_edges)]
    needed = np.zeros((len(row_spans), len(col_spans)), dtype=bool)
    for i, (r0, r1) in enumerate(row_spans):
        for j, (c0, c1) in enumerate(col_spans):
            needed[i, j] = need.any(r0, r1, c0, c1)
    return row_edges, col_edges, needed


def _unit_edges(offset: int, length: int, block: int) -> np.ndarray:
    """Edges (window pixels) of units of whole blocks, at least :data:`MIN_UNIT_PX` long."""
    unit = max(1, block) * max(1, -(-MIN_UNIT_PX // max(1, block)))
    first = (-offset) % unit or unit
    return np.array([0, *range(first, length, unit), length], dtype=np.int64)


def _target_span(index: np.ndarray, a: int, b: int) -> tuple[int, int]:
    """Target positions whose source index lies in ``[a, b)``, as one span (empty: 0, 0)."""
    hit = np.flatnonzero((index >= a) & (index < b))
    return (int(hit[0]), int(hit[-1]) + 1) if hit.size else (0, 0)


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
        failure = _error_text(err)
    raise InputError(f"cannot read band {asset.band} window {window.flatten()}: {failure}. The file "
                     "may be truncated or corrupt; re-download it.", path=asset.href)


def _error_text(err: BaseException) -> str:
    """Return a rasterio error's message with GDAL's own, which rasterio keeps as its cause."""
    text = str(err)
    inner = err.__cause__ or err.__context__
    if inner is not None and str(inner) and str(inner) not in text:
        text = text.replace(" See previous exception for details.", "").removesuffix(".")
        text = f"{text} ({str(inner).removesuffix('.')})"
    return text.removesuffix(".")


def _is_integer_offset(src: GridSpec, target: GridSpec) -> bool:
    dx = (target.transform.c - src.transform.c) / src.res[0]
    dy = (target.transform.f - src.transform.f) / src.res[1]
    return abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6


def mask_codes(data: np.ndarray) -> np.ndarray:
    """Quality-band values as integer codes, ``-1`` where there is none (NaN, outside the raster).

    Parameters
    ----------
    data
        Raw quality band, any dtype (float bands carry NaN outside the source raster).

    Returns
    -------
    numpy.ndarray
        int32 array of the same shape: the code, or -1 (never usable).
    """
    if np.issubdtype(data.dtype, np.floating):
        return np.where(np.isfinite(data), data, -1).astype(np.int32)
    return data.astype(np.int32, copy=False)


def usable_pixels(codes: np.ndarray, lookup: np.ndarray) -> np.ndarray:
    """Whether each pixel's quality code keeps it (the extraction kernel's rule, in NumPy).

    Parameters
    ----------
    codes
        int32 codes from :func:`mask_codes` (-1 = none).
    lookup
        (65536,) bool table of :meth:`regenmap.geo.sensors.MaskSpec.valid_lookup`.

    Returns
    -------
    numpy.ndarray
        bool array of ``codes``' shape; False for -1 and codes outside the table.
    """
    inside = (codes >= 0) & (codes < lookup.shape[0])
    out = np.zeros(codes.shape, dtype=bool)
    out[inside] = lookup[codes[inside]]
    return out


def to_reflectance(raw: np.ndarray, asset: Asset) -> np.ndarray:
    """Physical values of a raw band: ``raw * scale + offset`` in float32, NaN at nodata.

    This is the rule the extraction kernel applies pixel by pixel
    (:class:`regenmap.features.zonal.BandInput`); tests hold the two together.

    Parameters
    ----------
    raw
        Raw values as read (:func:`read_asset`).
    asset
        The band: its ``scale``, ``offset`` and ``nodata``.

    Returns
    -------
    numpy.ndarray
        float32 array of ``raw``'s shape (surface reflectance for optical bands).
    """
    values = raw.astype(np.float32) * np.float32(asset.scale) + np.float32(asset.offset)
    if asset.nodata is not None:
        values[raw == asset.nodata] = np.nan
    return values
