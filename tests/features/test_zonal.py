"""Hand-computed zonal statistics on tiny rasters."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine

from regenmap.features.indices import resolve_indices
from regenmap.features.zonal import BASE_STATS, BandInput, quantile_name, zonal_stats
from regenmap.geo.grid import GridSpec
from regenmap.geo.rasterize import rasterize_fields

GRID = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 40), 4, 4)
NDVI = resolve_indices(["NDVI"])


def two_fields() -> np.ndarray:
    # field 0: upper-left 2x2 pixels, field 1: lower-right 2x2 pixels
    return np.array([shapely.box(0, 20, 20, 40), shapely.box(20, 0, 40, 20)], dtype=object)


def bands(red: np.ndarray, nir: np.ndarray) -> dict[str, BandInput]:
    return {"red": BandInput(red.astype(np.uint16), 1e-4, 0.0, 0),
            "nir": BandInput(nir.astype(np.uint16), 1e-4, 0.0, 0)}


def test_two_square_fields_counts_and_mean_ndvi() -> None:
    red = np.full((4, 4), 1000)
    nir = np.array([[3000, 5000, 0, 0], [7000, 9000, 0, 0], [0, 0, 2000, 2000], [0, 0, 4000, 1000]])
    fr = rasterize_fields(two_fields(), GRID)
    res = zonal_stats(fr, bands(red, nir), NDVI, percentiles=[50])
    assert res.n_pixels.tolist() == [4, 4]
    assert res.n_valid.tolist() == [4, 4]
    ndvi0 = [(3 - 1) / 4, (5 - 1) / 6, (7 - 1) / 8, (9 - 1) / 10]
    ndvi1 = [1 / 3, 1 / 3, 3 / 5, 0.0]
    np.testing.assert_allclose(res.stats[("NDVI", "mean")], [np.mean(ndvi0), np.mean(ndvi1)],
                               rtol=1e-6)
    np.testing.assert_allclose(res.stats[("NDVI", "median")],
                               [np.median(ndvi0), np.median(ndvi1)], rtol=1e-6)
    np.testing.assert_allclose(res.stats[("NDVI", "std")], [np.std(ndvi0), np.std(ndvi1)],
                               rtol=1e-5)
    assert res.stats[("NDVI", "min")][1] == 0.0


def test_masked_and_nodata_pixels_are_excluded() -> None:
    red = np.full((4, 4), 1000)
    nir = np.full((4, 4), 3000)
    nir[1, 1] = 9000
    red[0, 1] = 0  # nodata in one band -> pixel invalid for every index
    mask = np.ones((4, 4), bool)
    mask[1, 1] = False  # cloud
    res = zonal_stats(rasterize_fields(two_fields(), GRID), bands(red, nir), NDVI,
                      mask_valid=mask)
    assert res.n_pixels.tolist() == [4, 4]
    assert res.n_valid.tolist() == [2, 4]
    assert res.stats[("NDVI", "mean")][0] == pytest.approx(0.5)
    assert res.stats[("NDVI", "count")][0] == 2


def test_twenty_metre_band_replicated_on_ten_metre_grid() -> None:
    # NDTI from 20 m SWIR given as a 10 m array where each 20 m value fills 2x2 pixels
    s16 = np.kron(np.array([[3000, 1000], [2000, 2000]]), np.ones((2, 2))).astype(np.uint16)
    s22 = np.kron(np.array([[1000, 1000], [1000, 3000]]), np.ones((2, 2))).astype(np.uint16)
    b = {"swir16": BandInput(s16, 1e-4, 0.0, 0), "swir22": BandInput(s22, 1e-4, 0.0, 0)}
    res = zonal_stats(rasterize_fields(two_fields(), GRID), b, resolve_indices(["NDTI"]))
    np.testing.assert_allclose(res.stats[("NDTI", "mean")], [0.5, -0.2], rtol=1e-6)


def test_overlapping_fields_each_get_all_their_pixels() -> None:
    geoms = np.array([shapely.box(0, 0, 30, 40), shapely.box(10, 0, 40, 40)], dtype=object)
    fr = rasterize_fields(geoms, GRID)
    assert fr.n_pixels.tolist() == [12, 12]
    red = np.full((4, 4), 1000)
    nir = np.tile([3000, 5000, 7000, 9000], (4, 1))
    res = zonal_stats(fr, bands(red, nir), NDVI)
    expect0 = np.mean([0.5, 4 / 6, 6 / 8])
    expect1 = np.mean([4 / 6, 6 / 8, 8 / 10])
    np.testing.assert_allclose(res.stats[("NDVI", "mean")], [expect0, expect1], rtol=1e-6)


def test_field_at_raster_edge_and_outside() -> None:
    geoms = np.array([shapely.box(30, 30, 60, 60), shapely.box(100, 100, 120, 120),
                      shapely.Polygon()], dtype=object)
    fr = rasterize_fields(geoms, GRID)
    assert fr.n_pixels.tolist() == [1, 0, 0]
    res = zonal_stats(fr, bands(np.full((4, 4), 1000), np.full((4, 4), 3000)), NDVI)
    assert res.stats[("NDVI", "mean")][0] == pytest.approx(0.5)
    assert np.isnan(res.stats[("NDVI", "mean")][1:]).all()


def test_missing_band_gives_nan_not_a_crash() -> None:
    res = zonal_stats(rasterize_fields(two_fields(), GRID),
                      bands(np.full((4, 4), 1000), np.full((4, 4), 3000)),
                      resolve_indices(["NDVI", "NDTI"]))
    assert np.isnan(res.stats[("NDTI", "mean")]).all()
    assert res.stats[("NDVI", "mean")] == pytest.approx([0.5, 0.5])


def test_inner_buffer_half_pixel_keeps_wholly_inside_pixels() -> None:
    # 3x3-pixel field, pixel aligned: half a pixel inward keeps all 9 (all wholly inside);
    # shifted by a quarter pixel, only the 2x2 wholly inside remain.
    aligned = np.array([shapely.box(0, 10, 30, 40)], dtype=object)
    shifted = np.array([shapely.box(2.5, 7.5, 32.5, 37.5)], dtype=object)
    assert rasterize_fields(aligned, GRID, buffer=5.0).n_pixels.tolist() == [9]
    assert rasterize_fields(shifted, GRID, buffer=5.0).n_pixels.tolist() == [4]


def test_quantiles_match_numpy_linear_rule() -> None:
    rng = np.random.default_rng(1)
    nir = rng.integers(2000, 9000, (4, 4))
    red = rng.integers(500, 1500, (4, 4))
    geoms = np.array([shapely.box(0, 0, 40, 40)], dtype=object)
    res = zonal_stats(rasterize_fields(geoms, GRID), bands(red, nir), NDVI,
                      percentiles=[10, 50, 90])
    ndvi = ((nir - red) / (nir + red)).ravel()
    for q in (10, 50, 90):
        assert res.stats[("NDVI", quantile_name(q))][0] == pytest.approx(np.percentile(ndvi, q),
                                                                         rel=1e-5)


@pytest.mark.parametrize("levels", [3, 40, 5000])
def test_quantiles_of_large_fields_with_ties_match_numpy(levels: int) -> None:
    # 32x32 pixels in one field: more than 64 values, so the histogram-then-select path
    # runs; few distinct levels give many ties, and one outlier stretches the range.
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 320), 32, 32)
    rng = np.random.default_rng(levels)
    nir = 3000 + (rng.integers(0, levels, (32, 32)) * (4000 // levels))
    nir[0, 0] = 60000
    red = np.full((32, 32), 1000)
    fields = np.array([shapely.box(0, 0, 320, 320)], dtype=object)
    res = zonal_stats(rasterize_fields(fields, grid), bands(red, nir), NDVI,
                      percentiles=[10, 50, 90])
    r, n = red * 1e-4, nir * 1e-4
    ndvi = ((n - r) / (n + r)).astype(np.float32).ravel()
    assert res.n_valid.tolist() == [1024]
    for q in (10, 50, 90):
        name = "median" if q == 50 else quantile_name(q)
        np.testing.assert_allclose(res.stats[("NDVI", name)][0], np.percentile(ndvi, q),
                                   rtol=1e-6)


@pytest.mark.parametrize("width", [0.0005, 0.002, 0.01])
def test_binned_quantiles_lie_within_their_precision(width: float) -> None:
    # many fields of every size on one window, some pixels masked: every binned quantile
    # lies within ``width`` of numpy's exact one, and within the field's [min, max]
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 640), 64, 64)
    rng = np.random.default_rng(int(width * 1e4))
    red = rng.integers(500, 1500, (64, 64))
    nir = rng.integers(2000, 3000, (64, 64)) + (np.arange(64) * 40)[None, :]
    valid = rng.random((64, 64)) > 0.1
    fields = np.array([shapely.box(x, y, x + w, y + h) for x, y, w, h in
                       rng.uniform([0, 0, 20, 20], [600, 600, 300, 300], (40, 4))], dtype=object)
    raster = rasterize_fields(fields, grid)
    pcts = [10, 50, 90]
    exact = zonal_stats(raster, bands(red, nir), NDVI, percentiles=pcts, mask_valid=valid,
                        stats=BASE_STATS)
    binned = zonal_stats(raster, bands(red, nir), NDVI, percentiles=pcts, mask_valid=valid,
                         stats=BASE_STATS, quantile_precision=width)
    assert np.array_equal(exact.n_valid, binned.n_valid)
    lo, hi = exact.stats[("NDVI", "min")], exact.stats[("NDVI", "max")]
    for q in pcts:
        name = quantile_name(q)
        e, b = exact.stats[("NDVI", name)], binned.stats[("NDVI", name)]
        assert np.array_equal(np.isnan(e), np.isnan(b))
        ok = ~np.isnan(e)
        assert ok.sum() > 30
        assert np.all(np.abs(b[ok].astype(np.float64) - e[ok]) <= width * (1 + 1e-6))
        assert np.all((b[ok] >= lo[ok]) & (b[ok] <= hi[ok]))
    # the other statistics do not change
    np.testing.assert_array_equal(exact.stats[("NDVI", "mean")], binned.stats[("NDVI", "mean")])
    with pytest.raises(ValueError, match="quantile_precision"):
        zonal_stats(raster, bands(red, nir), NDVI, quantile_precision=0.0)
