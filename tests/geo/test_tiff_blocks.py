"""Blocks decoded straight from GeoTIFF files: bit for bit what GDAL returns, or left to GDAL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from regenmap.errors import InputError
from regenmap.geo.catalog import Asset
from regenmap.geo.grid import GridSpec
from regenmap.geo.pixel_need import Coverage, PixelNeed
from regenmap.geo.raster_read import BandReader
from regenmap.geo.rasterize import rasterize_fields
from regenmap.geo.tiff_blocks import BlockDecoder, DecodeError, block_layout

HEIGHT, WIDTH = 203, 157  # not a multiple of any block size: partial edge blocks


def _write(path: Path, data: np.ndarray, **options: Any) -> Path:
    count = 1 if data.ndim == 2 else data.shape[0]
    profile = {"driver": "GTiff", "width": data.shape[-1], "height": data.shape[-2],
               "count": count, "dtype": data.dtype.name, "crs": "EPSG:32631",
               "transform": Affine(10, 0, 0, 0, -10, 2030), **options}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data if data.ndim == 3 else data[None])
    return path


def _data(dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype) if dtype.startswith("float") else np.iinfo(dtype)
    if dtype.startswith("float"):
        return rng.normal(0, 1e3, (HEIGHT, WIDTH)).astype(dtype)
    # wide values, so that differences wrap around the type
    return rng.integers(info.min, info.max, (HEIGHT, WIDTH), endpoint=True).astype(dtype)


WINDOWS = [Window(0, 0, WIDTH, HEIGHT), Window(5, 17, 100, 150), Window(31, 31, 2, 2),
           Window(WIDTH - 1, HEIGHT - 1, 1, 1), Window(0, 40, WIDTH, 1)]

LAYOUTS = [
    {"tiled": True, "blockxsize": 32, "blockysize": 16, "compress": "deflate", "predictor": 2},
    {"tiled": True, "blockxsize": 16, "blockysize": 16, "compress": "deflate"},
    {"tiled": True, "blockxsize": 64, "blockysize": 32},  # uncompressed
    {"blockysize": 7, "compress": "deflate", "predictor": 2},  # strips
    {"blockysize": 1, "compress": "deflate"},
    {"blockysize": 10},  # uncompressed strips
]


@pytest.mark.parametrize("options", LAYOUTS)
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "float32"])
def test_windows_decode_as_gdal_decodes_them(tmp_path: Path, options: dict[str, Any],
                                             dtype: str) -> None:
    if dtype.startswith("float") and options.get("predictor") == 2:
        pytest.skip("horizontal differencing of floats is not a GDAL option")
    data = _data(dtype)
    path = _write(tmp_path / "band.tif", data, **options)
    with rasterio.open(path) as ds:
        layout = block_layout(ds, 1)
        assert layout is not None
        decoder = BlockDecoder(layout)
        try:
            for window in WINDOWS:
                got = decoder.read(window)
                assert got.dtype == ds.dtypes[0]
                np.testing.assert_array_equal(got, ds.read(1, window=window))
        finally:
            decoder.close()


def test_band_interleaved_files_decode_each_band(tmp_path: Path) -> None:
    data = np.stack([_data("uint16", seed) for seed in range(3)])
    path = _write(tmp_path / "bands.tif", data, tiled=True, blockxsize=32, blockysize=32,
                  compress="deflate", predictor=2, interleave="band")
    with rasterio.open(path) as ds:
        for band in (1, 2, 3):
            layout = block_layout(ds, band)
            assert layout is not None
            decoder = BlockDecoder(layout)
            np.testing.assert_array_equal(decoder.read(WINDOWS[1]), ds.read(band, window=WINDOWS[1]))
            decoder.close()


@pytest.mark.parametrize("options", [
    {"compress": "lzw"},
    {"compress": "zstd"},
    {"compress": "deflate", "predictor": 3},  # floating-point predictor
    {"compress": "deflate", "endianness": "big"},
    {"tiled": True, "blockxsize": 32, "blockysize": 32, "sparse_ok": True},
])
def test_files_it_does_not_decode_are_left_to_gdal(tmp_path: Path, options: dict[str, Any]
                                                   ) -> None:
    data = _data("float32")
    if options.get("sparse_ok"):
        data[:64, :64] = 0  # blocks of nodata only are not written
        options = {**options, "nodata": 0}
    path = _write(tmp_path / "band.tif", data, **options)
    with rasterio.open(path) as ds:
        assert block_layout(ds, 1) is None


def test_pixel_interleaved_bands_are_left_to_gdal(tmp_path: Path) -> None:
    data = np.stack([_data("uint8", seed) for seed in range(3)])
    path = _write(tmp_path / "rgb.tif", data, compress="deflate", interleave="pixel")
    with rasterio.open(path) as ds:
        assert block_layout(ds, 1) is None


def _asset(path: Path, band: int = 1) -> Asset:
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 2030), WIDTH, HEIGHT)
    return Asset(href=str(path), band=band, grid=grid, scale=1.0, offset=0.0, nodata=0)


def test_reader_reads_the_same_with_and_without_direct_decoding(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    import regenmap.geo.raster_read as rr

    monkeypatch.setattr(rr, "MIN_UNIT_PX", 32)
    data = _data("uint16")
    path = _write(tmp_path / "band.tif", data, tiled=True, blockxsize=32, blockysize=32,
                  compress="deflate", predictor=2)
    asset = _asset(path)
    grid = asset.grid
    field = shapely.box(0, 2030 - 400, 500, 2030)  # rows 0-39, columns 0-49
    cov = Coverage.of_index(rasterize_fields(np.array([field], dtype=object), grid).index(),
                            cell=8)
    outs = []
    for direct in (True, False):
        with BandReader(direct=direct) as reader:
            got = []
            # strips whose edges cut blocks: a block under two strips is decoded once
            for r0, r1 in [(0, 50), (50, 120), (120, HEIGHT)]:
                strip = grid.window_grid(Window(0, r0, WIDTH, r1 - r0))
                got.append(reader.read_native(asset, strip)[0])
                got.append(reader.read_native(asset, strip, need=PixelNeed(cov, row0=r0))[0])
        outs.append(got)
    for a, b in zip(*outs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_damaged_block_is_left_to_gdal_which_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "band.tif", _data("uint16"), tiled=True, blockxsize=32,
                  blockysize=32, compress="deflate", predictor=2)
    with rasterio.open(path) as ds:
        layout = block_layout(ds, 1)
        assert layout is not None
    raw = bytearray(path.read_bytes())
    start = int(layout.offsets[0, 0])
    raw[start:start + int(layout.sizes[0, 0])] = b"\x00" * int(layout.sizes[0, 0])
    path.write_bytes(bytes(raw))
    decoder = BlockDecoder(layout)
    with pytest.raises(DecodeError):
        decoder.read(Window(0, 0, 10, 10))
    decoder.close()
    asset = _asset(path)
    with BandReader() as reader, pytest.raises(InputError, match=r"band\.tif"):
        reader.read_native(asset, asset.grid)
