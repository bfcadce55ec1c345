"""Tile plan properties: each field in exactly one tile; statistics independent of the tiling."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from regenmap.features.indices import resolve_indices
from regenmap.features.observe import TileFields, build_tile_raster
from regenmap.features.zonal import BandInput, zonal_stats
from regenmap.geo.grid import GridSpec
from regenmap.pipelines.tiling import plan_tiles, tile_edge_px

GRID = GridSpec("EPSG:32631", Affine(10, 0, 1000, 0, -10, 2000), 64, 48)
RNG = np.random.default_rng(7)
RED = RNG.integers(500, 1500, GRID.shape).astype(np.uint16)
NIR = RNG.integers(2000, 6000, GRID.shape).astype(np.uint16)
NIR[RNG.random(GRID.shape) < 0.05] = 0  # scattered nodata
NDVI = resolve_indices(["NDVI"])

boxes = st.tuples(st.floats(900, 1700), st.floats(1450, 2100), st.floats(3, 250), st.floats(3, 250))


def field_table(specs: list[tuple[float, float, float, float]]) -> gpd.GeoDataFrame:
    geoms = [shapely.box(x, y - h, x + w, y) for x, y, w, h in specs]
    return gpd.GeoDataFrame({"field_id": [f"f{i}" for i in range(len(geoms))]}, geometry=geoms,
                            crs=GRID.crs)


def stats_by_tile(fields: gpd.GeoDataFrame, tile_size_px: int) -> dict[str, tuple[int, float]]:
    plan = plan_tiles(fields.geometry, GRID, tile_size_px)
    out: dict[str, tuple[int, float]] = {}
    for tile in plan.tiles:
        sub = fields.iloc[tile.rows]
        tf = TileFields(tile.id, sub["field_id"].to_numpy().astype(str),
                        shapely.to_wkb(sub.geometry.to_numpy()), GRID.crs)
        tr = build_tile_raster(tf, GRID, inner_buffer_px=0.5)
        win = tr.raster.grid
        r0 = round((GRID.transform.f - win.transform.f) / 10)
        c0 = round((win.transform.c - GRID.transform.c) / 10)
        sl = np.s_[r0:r0 + win.height, c0:c0 + win.width]
        res = zonal_stats(tr.raster, {"red": BandInput(RED[sl], 1e-4, 0, 0),
                                      "nir": BandInput(NIR[sl], 1e-4, 0, 0)}, NDVI)
        for k, pos in enumerate(tr.members):
            fid = tf.field_ids[pos]
            assert fid not in out, f"{fid} in two tiles"
            out[fid] = (int(res.n_valid[k]), float(res.stats[("NDVI", "mean")][k]))
    return out


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(boxes, min_size=1, max_size=25), st.integers(16, 80))
@example(specs=[(900.0, 1521.0, 100.0, 3.0)], tile_size_px=16)  # field lost to the buffer
def test_every_field_in_one_tile_and_stats_independent_of_tiling(
        specs: list[tuple[float, float, float, float]], tile_size_px: int) -> None:
    fields = field_table(specs)
    plan = plan_tiles(fields.geometry, GRID, tile_size_px)
    owned = np.concatenate([t.rows for t in plan.tiles])
    assert sorted(owned.tolist()) == list(range(len(fields)))
    tiled = stats_by_tile(fields, tile_size_px)
    whole = stats_by_tile(fields, 10_000)  # one tile holds everything
    assert tiled.keys() == whole.keys()
    for fid, (n, mean) in whole.items():
        assert tiled[fid][0] == n
        np.testing.assert_equal(tiled[fid][1], mean)


def test_tile_ids_follow_the_reference_lattice() -> None:
    fields = field_table([(1005, 1995, 10, 10), (1165, 1995, 10, 10), (1005, 1835, 10, 10)])
    plan = plan_tiles(fields.geometry, GRID, 16)
    assert [t.id for t in plan.tiles] == ["r0_c0", "r0_c1", "r1_c0"]
    assert plan.size == 160


def test_tile_edge_splits_the_grid_into_the_fewest_equal_tiles() -> None:
    def grid(n: int) -> GridSpec:
        return GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 0), n, n)

    assert tile_edge_px(grid(5000), 5120) == 5120  # fits: one tile, no seam
    assert tile_edge_px(grid(5000), 4096) == 2560  # two equal tiles, not 4096 + 904
    assert tile_edge_px(grid(10980), 5120) == 3840  # Sentinel-2 tile: 3 x 3
    assert tile_edge_px(grid(100), 16) == 15  # small tiles: not rounded
    assert tile_edge_px(grid(5000), 5000) == 5000  # never above the limit


def test_a_grid_that_fits_is_one_tile() -> None:
    fields = field_table([(1000 + 60 * i, 1990 - 40 * i, 30, 30) for i in range(10)])
    assert len(plan_tiles(fields.geometry, GRID, 64).tiles) == 1
    assert len(plan_tiles(fields.geometry, GRID, 32).tiles) > 1
