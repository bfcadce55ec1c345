"""A tile's fields file and its field-index cache: reused when sound, rebuilt when not."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine

from regenmap.errors import InputError
from regenmap.features import tile_cache
from regenmap.features.observe import TileRaster, build_tile_raster, tile_fields
from regenmap.features.tile_cache import (
    cached_tile_raster,
    index_key,
    load_index,
    read_tile_fields,
    write_tile_fields,
)
from regenmap.geo.grid import GridSpec
from regenmap.schema import FIELD_ID, STATUS

GRID = GridSpec("EPSG:32631", Affine(10, 0, 500000, 0, -10, 5300000), 40, 40)


def fields() -> gpd.GeoDataFrame:
    x0, y0 = 500000, 5300000
    geoms = [shapely.box(x0 + 10 * i, y0 - 10 * i - 80, x0 + 10 * i + 120, y0 - 10 * i)
             for i in range(0, 30, 6)]
    return gpd.GeoDataFrame({FIELD_ID: [f"f{i}" for i in range(len(geoms))],
                             STATUS: ["ok"] * len(geoms)}, geometry=geoms, crs=GRID.crs)


def assert_same(a: TileRaster, b: TileRaster) -> None:
    np.testing.assert_array_equal(a.members, b.members)
    np.testing.assert_array_equal(a.raster.n_pixels, b.raster.n_pixels)
    assert a.raster.grid == b.raster.grid
    for name in a.raster.scan_plan.__dataclass_fields__:
        assert np.array_equal(getattr(a.raster.scan_plan, name),
                              getattr(b.raster.scan_plan, name)), name
    np.testing.assert_array_equal(a.coverage.sat, b.coverage.sat)


def test_tile_fields_file_round_trip(tmp_path: Path) -> None:
    f = fields()
    tf = tile_fields(f, "r0_c0", np.arange(len(f)), f.geometry.to_crs("EPSG:4326"))
    path = write_tile_fields(tmp_path / "t.parquet", tf)
    back = read_tile_fields(path)
    assert back.tile_id == "r0_c0" and back.crs == tf.crs
    assert back.field_ids.tolist() == tf.field_ids.tolist()
    assert [bytes(b) for b in back.wkb] == [bytes(b) for b in tf.wkb]
    assert len(read_tile_fields(path, geometry=False).wkb) == 0
    with pytest.raises(InputError, match=r"t2\.parquet"):
        read_tile_fields(tmp_path / "t2.parquet")


def test_cache_is_reused_and_keyed(tmp_path: Path) -> None:
    f = fields()
    tf = tile_fields(f, "r0_c0", np.arange(len(f)))
    built = build_tile_raster(tf, GRID, 0.5)
    first = cached_tile_raster(tf, GRID, 0.5, tmp_path)
    assert_same(first, built)
    (cached,) = tmp_path.glob("field-index-*.npz")
    stamp = cached.stat().st_mtime_ns
    again = cached_tile_raster(tf, GRID, 0.5, tmp_path)
    assert_same(again, built)
    assert cached.stat().st_mtime_ns == stamp  # read, not written again
    # another buffer, grid or set of fields is another key
    key = index_key(tf, GRID, 0.5)
    assert index_key(tf, GRID, 1.0) != key
    assert index_key(tf, GridSpec(GRID.crs, GRID.transform, 41, 40), 0.5) != key
    other = tile_fields(f, "r0_c0", np.arange(len(f) - 1))
    assert index_key(other, GRID, 0.5) != key
    assert load_index(cached, index_key(other, GRID, 0.5)) is None


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_cache_is_rebuilt(tmp_path: Path, damage: str,
                                  caplog: pytest.LogCaptureFixture) -> None:
    f = fields()
    tf = tile_fields(f, "r0_c0", np.arange(len(f)))
    built = cached_tile_raster(tf, GRID, 0.5, tmp_path)
    (cached,) = tmp_path.glob("field-index-*.npz")
    data = bytearray(cached.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # one byte of an array changed: the checksum catches it
        at = data.index(b"plan_run_c0.npy")
        data[at - 40] ^= 0xFF
    else:
        data = bytearray(b"not a cache file")
    cached.write_bytes(bytes(data))
    assert load_index(cached, index_key(tf, GRID, 0.5)) is None
    assert "damaged" in caplog.text
    again = cached_tile_raster(tf, GRID, 0.5, tmp_path)
    assert_same(again, built)
    assert load_index(cached, index_key(tf, GRID, 0.5)) is not None  # written anew


def test_checksum_covers_every_array(tmp_path: Path) -> None:
    f = fields()
    tf = tile_fields(f, "r0_c0", np.arange(len(f)))
    raster = build_tile_raster(tf, GRID, 0.5)
    key = index_key(tf, GRID, 0.5)
    path = tile_cache.save_index(tmp_path / "x.npz", key, raster)
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    data["plan_seg_fid"] = data["plan_seg_fid"].copy()
    data["plan_seg_fid"][0] += 1
    np.savez(path, **data)
    assert load_index(path, key) is None
