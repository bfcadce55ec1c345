"""Field rasters: centre rule, inner buffer, overlap layers."""

from __future__ import annotations

import numpy as np
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
