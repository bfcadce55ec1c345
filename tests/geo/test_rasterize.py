"""Field rasters: centre rule, inner buffer, overlap layers."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from regenmap.geo.grid import GridSpec
from regenmap.geo.rasterize import overlap_layers, rasterize_fields

GRID = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 60), 6, 6)


def test_touching_fields_share_a_layer_overlapping_do_not() -> None:
    geoms = np.array([shapely.box(0, 0, 30, 60), shapely.box(30, 0, 60, 60),
                      shapely.box(20, 20, 40, 40)], dtype=object)
    assert overlap_layers(geoms).tolist() == [0, 0, 1]
    fr = rasterize_fields(geoms, GRID)
    assert fr.n_pixels.tolist() == [18, 18, 4]
    assert len(fr.pair_pix) == 4
    # the overlapping field keeps the pixels it shares with both neighbours
    rows, cols = np.divmod(fr.pair_pix, 6)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(2, 2), (2, 3), (3, 2), (3, 3)]


def test_buffer_can_empty_a_small_field() -> None:
    geoms = np.array([shapely.box(0, 50, 10, 60), shapely.box(10, 10, 50, 50)], dtype=object)
    assert rasterize_fields(geoms, GRID, buffer=5.0).n_pixels.tolist() == [1, 16]
    assert rasterize_fields(geoms, GRID, buffer=10.0).n_pixels.tolist() == [0, 4]


def test_geometry_steps_split_over_threads_give_the_same_result(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # 6000 boxes, some overlapping: inner buffer and overlap layers in 1 and 3 threads
    from regenmap.geo import rasterize

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 5000, (6000, 2))
    geoms = np.array(shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 40, xy[:, 1] + 30), dtype=object)
    monkeypatch.setattr(rasterize, "GEOMETRY_THREADS", 1)
    one = (rasterize.inner_buffer(geoms, 5.0), rasterize.overlap_layers(geoms))
    monkeypatch.setattr(rasterize, "GEOMETRY_THREADS", 3)
    monkeypatch.setattr(rasterize.os, "cpu_count", lambda: 4)
    three = (rasterize.inner_buffer(geoms, 5.0), rasterize.overlap_layers(geoms))
    assert shapely.equals_exact(one[0], three[0], tolerance=0).all()
    np.testing.assert_array_equal(one[1], three[1])
    assert one[1].max() >= 1
