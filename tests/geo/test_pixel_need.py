"""Which pixels extraction needs: coverage cells, mask lookups, and block-unit reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine

from regenmap.geo.catalog import Asset
from regenmap.geo.grid import GridSpec
from regenmap.geo.pixel_need import Coverage, PixelNeed, kept
from regenmap.geo.raster_read import BandReader, read_native
from regenmap.geo.rasterize import rasterize_fields
from regenmap.geo.testing import write_raster

GRID = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 2000), 150, 200)


def test_coverage_cells_match_the_field_pixels() -> None:
    rng = np.random.default_rng(0)
    geoms = []
    for _ in range(12):
        x, y = rng.uniform(0, 1500), rng.uniform(0, 2000)
        geoms.append(shapely.box(x, y, x + rng.uniform(10, 400), y + rng.uniform(10, 300)))
    raster = rasterize_fields(np.array(geoms, dtype=object), GRID)
    inside = raster.ids >= 0
    cov = Coverage.of_index(raster.index(), cell=16)
    for _ in range(400):
        r0, c0 = rng.integers(0, 200), rng.integers(0, 150)
        r1, c1 = r0 + rng.integers(0, 60), c0 + rng.integers(0, 60)
        truth = bool(inside[r0:r1, c0:c1].any())
        # whole cells: never a miss, and exact on cell-aligned rectangles
        rr, cc = slice(r0 // 16 * 16, -(-min(r1, 200) // 16) * 16), slice(c0 // 16 * 16,
                                                                          -(-min(c1, 150) // 16) * 16)
        cells = bool(inside[rr, cc].any()) if r1 > r0 and c1 > c0 else False
        assert cov.any(r0, min(r1, 200), c0, min(c1, 150)) == cells
        assert cells or not truth
    assert not Coverage.of_index(rasterize_fields(np.array([], dtype=object), GRID).index()).any(
        0, 200, 0, 150)


def test_kept_drops_codes_outside_the_table() -> None:
    keep = np.array([False, True, True, False])
    for dtype in (np.uint8, np.uint16, np.int32):
        codes = np.array([[0, 1, 2], [3, 4, 200]], dtype=dtype)
        assert kept(codes, keep).tolist() == [[False, True, True], [False, False, False]]
    assert kept(np.array([-1, 1], np.int32), keep).tolist() == [False, True]


def test_need_combines_coverage_and_mask() -> None:
    raster = rasterize_fields(np.array([shapely.box(0, 1000, 500, 2000)], dtype=object), GRID)
    cov = Coverage.of_index(raster.index(), cell=10)  # field: rows 0-99, columns 0-49
    # strip = window rows 100-199: no field at all
    assert not PixelNeed(cov, row0=100).any(0, 100, 0, 150)
    need = PixelNeed(cov, row0=0)
    assert need.any(0, 10, 0, 10) and not need.any(0, 100, 60, 150)
    codes = np.full((100, 75), 4, np.uint8)  # a 20 m mask under the first 100 rows
    codes[:, :10] = 9  # cloud over window columns 0-19
    masked = need.with_mask(codes, np.array([False] * 4 + [True] + [False] * 5),
                            np.arange(100) // 2, np.arange(150) // 2)
    assert not masked.any(0, 100, 0, 20)  # field pixels, all under cloud
    assert masked.any(0, 100, 0, 21)
    assert not masked.any(0, 100, 60, 150)  # clear, but no field


def _asset(path: Path, grid: GridSpec) -> Asset:
    return Asset(href=str(path), band=1, grid=grid, scale=1.0, offset=0.0, nodata=0)


@pytest.mark.parametrize("blocksize", [16, None])
def test_reader_decodes_only_needed_block_units(tmp_path: Path, blocksize: int | None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import regenmap.geo.raster_read as rr

    monkeypatch.setattr(rr, "MIN_UNIT_PX", 32)
    data = np.random.default_rng(1).integers(1, 5000, GRID.shape).astype(np.uint16)
    path = tmp_path / "band.tif"
    if blocksize is None:  # striped (untiled) GeoTIFF: one-row blocks, grouped into units
        import rasterio

        with rasterio.open(path, "w", driver="GTiff", width=150, height=200, count=1,
                           dtype="uint16", crs=GRID.crs, transform=GRID.transform,
                           blockysize=1) as ds:
            ds.write(data, 1)
    else:
        write_raster(path, data, GRID, nodata=0, blocksize=blocksize)
    asset = _asset(path, GRID)
    field = shapely.box(0, 2000 - 300, 400, 2000)  # rows 0-29, columns 0-39
    cov = Coverage.of_index(rasterize_fields(np.array([field], dtype=object), GRID).index(),
                            cell=8)
    target = GRID.window_grid(rr.Window(0, 0, 150, 100))
    with BandReader() as reader:
        got, _, _ = reader.read_native(asset, target, need=PixelNeed(cov, row0=0))
        assert reader.units_skipped > 0 and reader.units_read > 0
        full, _, _ = read_native(asset, target)
        assert reader.read_native(asset, target)[0].tolist() == full.tolist()  # no need: all
    np.testing.assert_array_equal(got[:30, :40], full[:30, :40])  # every field pixel read
    # units of 32 px: rows 0-31 of columns 0-63 (tiled) or of every column (striped)
    assert (got != 0).sum() == 32 * (64 if blocksize else 150)
