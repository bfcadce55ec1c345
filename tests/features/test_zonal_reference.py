"""The fused row-by-row kernel against a plain NumPy reference on random layouts.

Every field is burnt on its own (so overlaps need no layering), the bands are
brought to the window by explicit NumPy indexing, and the statistics come from
``numpy`` on each field's own pixel list: nothing is shared with the kernel but the
pixel-centre rule of rasterio.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio import features

from regenmap.features.indices import resolve_indices
from regenmap.features.zonal import BandInput, MaskInput, zonal_stats
from regenmap.geo.grid import GridSpec
from regenmap.geo.rasterize import FieldRaster, inner_buffer, rasterize_fields

INDICES = resolve_indices(["NDVI", "NDTI", "NDMI"])
PCTS = [10.0, 50.0, 90.0]
KEEP = np.array([False, False, True, False, True, True, True, False], dtype=bool)  # SCL-like


def random_fields(rng: np.random.Generator, width_m: float, height_m: float, n: int) -> np.ndarray:
    """Boxes and triangles at random, some overlapping, some tall, some outside."""
    out = []
    for i in range(n):
        x0, y0 = rng.uniform(-30, width_m), rng.uniform(-30, height_m)
        w, h = rng.uniform(5, 160), rng.uniform(5, 260 if i % 5 == 0 else 90)
        if i % 3 == 0:
            out.append(shapely.Polygon([(x0, y0), (x0 + w, y0), (x0 + w / 2, y0 + h)]))
        else:
            out.append(shapely.box(x0, y0, x0 + w, y0 + h))
    return np.array(out, dtype=object)


def reference(geoms: np.ndarray, grid: GridSpec, buffer: float, values: dict[str, np.ndarray],
              valid: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    """Per-field statistics from each field's own pixels (float64 math on float32 values)."""
    shrunk = inner_buffer(geoms, buffer)
    out: dict[tuple[str, str], np.ndarray] = {}
    n = len(geoms)
    stats = ["mean", "std", "min", "max", "count", "p10", "median", "p90"]
    for idx in values:
        for s in stats:
            out[(idx, s)] = np.zeros(n) if s == "count" else np.full(n, np.nan)
    out[("", "n_pixels")] = np.zeros(n)
    out[("", "n_valid")] = np.zeros(n)
    for f, g in enumerate(shrunk):
        if g is None or g.is_empty:
            continue
        member = features.rasterize([(g, 1)], out_shape=grid.shape, transform=grid.transform,
                                    fill=0, dtype="uint8").astype(bool)
        out[("", "n_pixels")][f] = member.sum()
        ok = member & valid
        out[("", "n_valid")][f] = ok.sum()
        for idx, arr in values.items():
            v = arr[ok]
            v = v[np.isfinite(v)].astype(np.float64)
            out[(idx, "count")][f] = len(v)
            if len(v) == 0:
                continue
            out[(idx, "mean")][f] = v.mean()
            out[(idx, "std")][f] = v.std()
            out[(idx, "min")][f] = v.min()
            out[(idx, "max")][f] = v.max()
            for q, name in zip(PCTS, ["p10", "median", "p90"], strict=True):
                out[(idx, name)][f] = np.quantile(v, q / 100)
    return out


def random_window(seed: int, h: int, w: int) -> tuple[np.random.Generator, FieldRaster,
                                                       np.ndarray, Callable[..., tuple[
                                                           dict[str, BandInput], MaskInput]]]:
    """A random h x w window: its rng, field raster, 20 m SCL codes, and its strips.

    ``strip(r0, r1, codes=None)`` gives the bands (red, nir at 10 m, swir16 at 20 m) and
    the mask (``codes`` instead of the SCL codes when given) of rows r0:r1.
    """
    rng = np.random.default_rng(seed)
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 10 * h), w, h)
    raster = rasterize_fields(random_fields(rng, 10 * w, 10 * h, 30), grid)
    red = rng.integers(0, 4000, (h, w)).astype(np.uint16)
    nir = rng.integers(1, 6000, (h, w)).astype(np.uint16)
    swir = rng.integers(1, 3000, ((h + 1) // 2, (w + 1) // 2)).astype(np.uint16)
    scl = rng.integers(0, 8, swir.shape).astype(np.uint8)
    rows, cols = np.arange(h) // 2, np.arange(w) // 2

    def strip(r0: int, r1: int, codes: np.ndarray | None = None
              ) -> tuple[dict[str, BandInput], MaskInput]:
        return ({"red": BandInput(red[r0:r1], 1e-4, 0.0, 0),
                 "nir": BandInput(nir[r0:r1], 1e-4, 0.0, 0),
                 "swir16": BandInput(swir, 1e-4, 0.0, 0, rows[r0:r1], cols)},
                MaskInput(scl if codes is None else codes, KEEP, rows[r0:r1], cols))

    return rng, raster, scl, strip


@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_numpy_on_random_layouts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(20, 70)), int(rng.integers(20, 70))
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 10 * h), w, h)
    geoms = random_fields(rng, 10 * w, 10 * h, int(rng.integers(5, 40)))
    # 10 m red/nir (uint16, nodata 0), 20 m swir16 (float32 with NaN), 20 m quality codes
    red = rng.integers(0, 4000, (h, w)).astype(np.uint16)
    red[rng.random((h, w)) < 0.05] = 0
    nir = rng.integers(1, 6000, (h, w)).astype(np.uint16)
    nir[:, 3] = red[:, 3]  # NDVI exactly 0 on a column
    hc, wc = (h + 1) // 2, (w + 1) // 2
    swir = rng.uniform(0.0, 0.5, (hc, wc)).astype(np.float32)
    swir[rng.random((hc, wc)) < 0.05] = np.nan
    swir22 = rng.integers(0, 3000, (hc, wc)).astype(np.uint16)
    swir22[0, 0] = 0
    scl = rng.integers(-1, 10, (hc, wc)).astype(np.int16)  # -1 and 8, 9: beyond the table
    rows, cols = np.arange(h) // 2, np.arange(w) // 2
    bands = {"red": BandInput(red, 1e-4, -0.1, 0), "nir": BandInput(nir, 1e-4, -0.1, 0),
             "swir16": BandInput(swir, 1.0, 0.0, None, rows, cols),
             "swir22": BandInput(swir22, 1e-4, 0.0, 0, rows, cols)}
    mask = MaskInput(scl, KEEP, rows, cols)
    buffer = 5.0 if seed % 2 else 0.0

    raster = rasterize_fields(geoms, grid, buffer=buffer)
    assert seed in (2, 5) or len(raster.pair_pix) > 0  # these layouts have overlaps
    res = zonal_stats(raster, bands, INDICES, mask=mask, percentiles=PCTS)

    # reference: bands on the window, float64 formulas, float32 values
    r = red * 1e-4 - 0.1
    n = nir * 1e-4 - 0.1
    s1 = swir[np.ix_(rows, cols)].astype(np.float64)
    s2 = swir22[np.ix_(rows, cols)] * 1e-4
    code = scl[np.ix_(rows, cols)]
    valid = ((code >= 0) & (code < len(KEEP)) & KEEP[np.clip(code, 0, len(KEEP) - 1)]
             & (red != 0) & (nir != 0) & np.isfinite(s1) & (swir22[np.ix_(rows, cols)] != 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {"NDVI": ((n - r) / (n + r)).astype(np.float32),
                  "NDTI": ((s1 - s2) / (s1 + s2)).astype(np.float32),
                  "NDMI": ((n - s1) / (n + s1)).astype(np.float32)}
    ref = reference(geoms, grid, buffer * (1 - 1e-3), values, valid)

    np.testing.assert_array_equal(res.n_pixels, ref[("", "n_pixels")])
    np.testing.assert_array_equal(res.n_valid, ref[("", "n_valid")])
    assert res.n_valid.sum() > 0
    for (idx, stat), expected in ref.items():
        if not idx:
            continue
        got = res.stats[(idx, stat)].astype(np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"{idx} {stat}")
        np.testing.assert_allclose(got, expected, rtol=2e-6, atol=2e-7, equal_nan=True,
                                   err_msg=f"{idx} {stat}")


def test_min_max_left_out_unless_asked() -> None:
    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 40), 4, 4)
    fr = rasterize_fields(np.array([shapely.box(0, 0, 40, 40)], dtype=object), grid)
    b = {"red": BandInput(np.full((4, 4), 1000, np.uint16), 1e-4, 0.0, 0),
         "nir": BandInput(np.arange(16, dtype=np.uint16).reshape(4, 4) * 100 + 2000, 1e-4, 0.0, 0)}
    lean = zonal_stats(fr, b, resolve_indices(["NDVI"]), percentiles=[], stats=["mean", "std"])
    full = zonal_stats(fr, b, resolve_indices(["NDVI"]), percentiles=[])
    assert ("NDVI", "min") not in lean.stats and ("NDVI", "min") in full.stats
    assert lean.stats[("NDVI", "mean")][0] == full.stats[("NDVI", "mean")][0]
    assert full.stats[("NDVI", "min")][0] == pytest.approx((2000 - 1000) / 3000, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 3])
def test_strips_give_the_same_statistics_as_the_whole_window(seed: int) -> None:
    from regenmap.features.zonal import ZonalPass

    h = 57
    rng, raster, _, strip = random_window(seed, h, 41)
    whole = zonal_stats(raster, *strip(0, h)[:1], INDICES, mask=strip(0, h)[1], percentiles=PCTS)
    zp = ZonalPass(raster, INDICES, percentiles=PCTS)
    edges = [0, *sorted(rng.choice(np.arange(1, h), 6, replace=False).tolist()), h]
    for r0, r1 in itertools.pairwise(edges):
        bands, mask = strip(r0, r1)
        zp.feed(r0, bands, mask=mask)
    parts = zp.result()
    np.testing.assert_array_equal(parts.n_valid, whole.n_valid)
    for key, value in whole.stats.items():
        np.testing.assert_array_equal(parts.stats[key], value, err_msg=str(key))
    with pytest.raises(ValueError, match="out of order"):
        zp.feed(3, *strip(3, 5)[:1], mask=strip(3, 5)[1])


def test_strips_without_any_band_or_mask() -> None:
    from regenmap.features.zonal import ZonalPass

    grid = GridSpec("EPSG:32631", Affine(10, 0, 0, 0, -10, 100), 6, 10)
    raster = rasterize_fields(np.array([shapely.box(0, 0, 60, 100)], dtype=object), grid)
    zp = ZonalPass(raster, resolve_indices(["NDTI"]), percentiles=[50])
    for r0 in range(0, 10, 4):  # a sensor without SWIR and without a quality band
        zp.feed(r0, {}, height=min(4, 10 - r0))
    res = zp.result()
    assert res.n_pixels.tolist() == [60] and res.n_valid.tolist() == [60]
    assert np.isnan(res.stats[("NDTI", "mean")][0]) and res.stats[("NDTI", "count")][0] == 0


@pytest.mark.parametrize("seed", [1, 4])
def test_skipped_rows_count_as_fully_masked_rows(seed: int) -> None:
    """``ZonalPass.skip`` gives what feeding the same rows with every pixel masked gives."""
    from regenmap.features.zonal import ZonalPass

    h = 61
    rng, raster, scl, strip = random_window(seed, h, 37)
    edges = [0, *sorted(rng.choice(np.arange(1, h), 7, replace=False).tolist()), h]
    cloudy = {i for i in range(len(edges) - 1) if i % 2 == 1}  # every other strip
    stats = ("mean", "std", "min", "max", "count")
    fed, skipped = (ZonalPass(raster, INDICES, percentiles=PCTS, stats=stats) for _ in range(2))
    for i, (r0, r1) in enumerate(itertools.pairwise(edges)):
        # code 0 (dropped) on the cloudy strips
        bands, mask = strip(r0, r1, np.zeros_like(scl) if i in cloudy else None)
        fed.feed(r0, bands, mask=mask)
        if i in cloudy:
            skipped.skip(r0, r1 - r0)
        else:
            skipped.feed(r0, bands, mask=mask)  # the same rows, unmasked
    a, b = fed.result(), skipped.result()
    assert a.n_valid.sum() > 0 and (a.n_valid < a.n_pixels).any()
    np.testing.assert_array_equal(b.n_valid, a.n_valid)
    for key, value in a.stats.items():
        np.testing.assert_array_equal(b.stats[key], value, err_msg=str(key))
    with pytest.raises(ValueError, match="out of order"):
        skipped.skip(0, 3)
