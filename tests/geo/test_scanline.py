"""The compiled scanline fill burns exactly the pixels GDAL burns (rasterio.features.rasterize).

The reference below is the way extraction built its field raster before the
scanline fill: overlap layers, each burnt by GDAL in input order, the first as a
dense id raster, the others as (pixel, field) pairs. Inputs are random and awkward
polygons: stars, holes, multipolygons, thin slivers, shared edges, pixel-aligned
boxes whose edges run through pixel centres (where floating point decides),
fields partly outside the grid, empty ones, inner buffers, north-up and
south-up grids.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio import features

from regenmap.geo.grid import GridSpec
from regenmap.geo.rasterize import (
    FieldRaster,
    field_index,
    inner_buffer,
    overlap_layers,
    rasterize_fields,
)
from regenmap.geo.scanline import polygon_rings, polygon_spans


def gdal_raster(geoms: np.ndarray, grid: GridSpec, buffer: float) -> FieldRaster:
    """Field raster as burnt by GDAL through rasterio (the rule the scanline reproduces)."""
    n = len(geoms)
    shrunk = inner_buffer(np.asarray(geoms, dtype=object), buffer)
    ok = ~(shapely.is_missing(shrunk) | shapely.is_empty(shrunk))
    ids = np.full(grid.shape, -1, np.int32)
    pix, fid = [np.empty(0, np.int64)], [np.empty(0, np.int32)]
    if ok.any():
        pos = np.flatnonzero(ok)
        layers = overlap_layers(shrunk[pos])
        for layer in range(int(layers.max()) + 1):
            sel = pos[layers == layer]
            burnt = features.rasterize(zip(shrunk[sel], sel.tolist(), strict=True),
                                       out_shape=grid.shape, transform=grid.transform, fill=-1,
                                       dtype="int32", all_touched=False)
            if layer == 0:
                ids = burnt
            else:
                flat = burnt.ravel()
                where = np.flatnonzero(flat >= 0)
                pix.append(where.astype(np.int64))
                fid.append(flat[where].astype(np.int32))
    return FieldRaster(grid, ids, np.concatenate(pix), np.concatenate(fid), n)


def awkward_fields(rng: np.random.Generator, grid: GridSpec) -> np.ndarray:
    """Random polygons of every awkward kind around (and partly outside) ``grid``."""
    res = grid.resolution
    t = grid.transform
    h, w = grid.height, grid.width
    out: list[shapely.Geometry | None] = []
    for _ in range(int(rng.integers(1, 12))):
        cx = t.c + rng.uniform(-0.2, 1.2) * w * res
        cy = t.f + np.sign(t.e) * rng.uniform(-0.2, 1.2) * h * res
        kind = int(rng.integers(0, 7))
        if kind == 0:  # star polygon (overlaps others)
            n = int(rng.integers(3, 12))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = rng.uniform(0.5, 15, n) * res
            out.append(shapely.Polygon(np.c_[cx + rad * np.cos(ang),
                                             cy + rad * np.sin(ang)]).buffer(0))
        elif kind == 1:  # pixel-aligned box, edges on pixel edges or through centres
            x0 = t.c + (int(rng.integers(-3, w)) + float(rng.choice([0, 0.5]))) * res
            y0 = t.f - (int(rng.integers(-3, h)) + float(rng.choice([0, 0.5]))) * res
            bw, bh = rng.integers(1, 10, 2) * res / float(rng.choice([1, 2]))
            out.append(shapely.box(x0, y0 - bh, x0 + bw, y0, ccw=bool(rng.random() < 0.5)))
        elif kind == 2:  # a hole whose edges run through pixel centres
            x0 = t.c + int(rng.integers(0, w)) * res
            y0 = t.f - int(rng.integers(0, h)) * res
            outer = shapely.box(x0, y0 - 12 * res, x0 + 12 * res, y0)
            out.append(outer.difference(shapely.box(x0 + 3.5 * res, y0 - 8.5 * res,
                                                    x0 + 8 * res, y0 - 3 * res)))
        elif kind == 3:
            a = shapely.box(cx, cy, cx + 3.5 * res, cy + 2.5 * res)
            b = shapely.box(cx + 5 * res, cy, cx + 9 * res, cy + 4.5 * res)
            out.append(shapely.MultiPolygon([a, b]))
        elif kind == 4:  # thin sliver
            out.append(shapely.Polygon([(cx, cy), (cx + 20 * res, cy + 0.3 * res),
                                        (cx + 20 * res, cy + 0.6 * res)]))
        elif kind == 5:  # a row of boxes sharing edges that run through pixel centres
            x0 = t.c + (int(rng.integers(0, w)) + 0.5) * res
            y0 = t.f - (int(rng.integers(0, h)) + 0.5) * res
            out += [shapely.box(x0 + i * 3 * res, y0 - 3 * res, x0 + (i + 1) * 3 * res, y0)
                    for i in range(4)]
        else:
            out.append(shapely.Polygon() if rng.random() < 0.5 else None)
    return np.array(out, dtype=object)


def assert_same(got: FieldRaster, ref: FieldRaster) -> None:
    np.testing.assert_array_equal(got.ids, ref.ids)
    order = np.argsort(ref.pair_pix, kind="stable")  # pixel order, layers in order
    np.testing.assert_array_equal(got.pair_pix, ref.pair_pix[order])
    np.testing.assert_array_equal(got.pair_fid, ref.pair_fid[order])


@pytest.mark.parametrize("seed", range(8))
def test_scanline_burns_the_pixels_gdal_burns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(3, 50, 2))
        res = float(rng.choice([10.0, 20.0, 1.0, 0.3]))
        ox = float(rng.choice([0.0, 499980.0, 12.5]))
        oy = float(rng.choice([5300040.0, 77.7, 0.0]))
        north_up = rng.random() < 0.8
        grid = GridSpec("EPSG:32631", Affine(res, 0, ox, 0, -res if north_up else res, oy), w, h)
        geoms = awkward_fields(rng, grid)
        buffer = float(rng.choice([0.0, 0.5 * res, 0.3 * res]))
        ref = gdal_raster(geoms, grid, buffer)
        assert_same(rasterize_fields(geoms, grid, buffer=buffer), ref)
        # the index built row by row, without an id raster, is the raster's own index
        got, want = field_index(geoms, grid, buffer=buffer), ref.index()
        np.testing.assert_array_equal(got.n_pixels, want.n_pixels)
        for name in want.scan_plan.__dataclass_fields__:
            a, b = getattr(got.scan_plan, name), getattr(want.scan_plan, name)
            assert np.array_equal(a, b), name


def test_edge_through_pixel_centres_decided_as_gdal_does() -> None:
    # lower edges through a row of centres are in, upper edges and apexes out,
    # whichever way the rings run
    grid = GridSpec("EPSG:32631", Affine(1, 0, 0, 0, -1, 0), 12, 12)

    def poly(pts: list[tuple[float, float]]) -> shapely.Polygon:
        return shapely.Polygon([(x, -y) for x, y in pts])  # (column, row) -> CRS

    shapes = [poly([(2.5, 4), (6, 4), (6, 4.5), (2.5, 4.5)]),
              poly([(2.5, 4.5), (6, 4.5), (6, 4), (2.5, 4)]),
              poly([(2, 2), (8, 2), (5, 4.5)]),
              poly([(0, 2), (6, 2), (6, 6), (3, 6), (3, 4.5), (0, 4.5)])]
    for shape in shapes:
        geoms = np.array([shape], dtype=object)
        assert_same(rasterize_fields(geoms, grid), gdal_raster(geoms, grid, 0.0))
    assert rasterize_fields(np.array(shapes[:1], dtype=object), grid).n_pixels.tolist() == [3]


def test_rings_of_multipolygons_holes_and_collections() -> None:
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 100), 10, 10)
    with_hole = shapely.box(0, 0, 50, 50).difference(shapely.box(10, 10, 20, 20))
    multi = shapely.MultiPolygon([shapely.box(60, 60, 70, 70), shapely.box(80, 80, 90, 90)])
    mixed = shapely.GeometryCollection([shapely.box(0, 60, 10, 70), shapely.LineString([(0, 0),
                                                                                          (5, 5)])])
    rings = polygon_rings(np.array([with_hole, None, multi, shapely.Polygon(), mixed],
                                   dtype=object), grid)
    assert np.diff(rings.geom_ptr).tolist() == [2, 0, 2, 0, 1]
    assert rings.ring_ptr[-1] == len(rings.x) == 25  # 5 closed rings of 5 points
    # pixel coordinates: x = 90 m is column 9, y = 90 m is row 1 (the grid starts at y = 100 m)
    assert rings.x.max() == 9.0 and rings.y.min() == 1.0
    _, c0, c1, geom = polygon_spans(rings, np.arange(5), grid.height, grid.width)
    pixels = np.bincount(geom, weights=c1 - c0, minlength=5)
    assert pixels.tolist() == [24, 0, 2, 0, 1]
