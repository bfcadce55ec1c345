"""Unit tests of the simulator's parts with hand-computable answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from affine import Affine

from regenmap.errors import ConfigError
from regenmap.geo.simulate import simulate_region
from regenmap.geo.simulate.landscape import build_landscape
from regenmap.geo.simulate.noise import SmoothNoise
from regenmap.geo.simulate.params import FIRST_FIELD_LABEL, LABEL_GRASS, SPECTRA_DRY
from regenmap.geo.simulate.phenology import abundance_table, air_temperature_c, field_fractions
from regenmap.geo.simulate.raster import (
    chunk_mix,
    mix_abundances,
    pixel_cover,
    render_chunk,
    scene_classification,
    top_labels,
)
from regenmap.geo.simulate.region import acquisition_days
from regenmap.geo.simulate.sky import draw_sky, outside_swath


def test_top_labels_counts_and_order() -> None:
    sub = np.array([[7, 7, 7, 7],
                    [1, 2, 2, 3],
                    [4, 4, 9, 9],
                    [5, 6, 5, 5]], dtype=np.uint16)
    labels, counts = top_labels(sub, k=3)
    assert counts.tolist() == [[4, 0, 0], [2, 1, 1], [2, 2, 0], [3, 1, 0]]
    assert labels[0, 0] == 7 and labels[1, 0] == 2 and set(labels[1, 1:]) == {1, 3}
    assert set(labels[2, :2]) == {4, 9} and labels[3, :2].tolist() == [5, 6]


def test_pixel_cover_gives_area_fractions_of_edge_pixels() -> None:
    # 4x4 pixels of 10 m; a field from 5 m to 35 m in x and y: edge pixels are half covered,
    # corner pixels a quarter, the inner 2x2 fully.
    transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 40.0)
    field = shapely.box(5.0, 5.0, 35.0, 35.0)
    cover = pixel_cover([([field], [FIRST_FIELD_LABEL])], transform=transform, width=4, height=4,
                        supersample=4, fill=LABEL_GRASS, chunk_rows=2, dtype=np.uint16)
    frac = np.where(cover.labels == FIRST_FIELD_LABEL, cover.fractions, 0.0).sum(axis=2)
    expected = np.array([[0.25, 0.5, 0.5, 0.25],
                         [0.5, 1.0, 1.0, 0.5],
                         [0.5, 1.0, 1.0, 0.5],
                         [0.25, 0.5, 0.5, 0.25]])
    np.testing.assert_allclose(frac, expected)
    np.testing.assert_allclose(cover.fractions.sum(axis=2), 1.0)


def test_mixed_pixel_abundances_are_area_weighted() -> None:
    transform = Affine(10.0, 0.0, 0.0, 0.0, -10.0, 20.0)
    field = shapely.box(5.0, 0.0, 20.0, 20.0)  # covers half of column 0, all of column 1
    cover = pixel_cover([([field], [FIRST_FIELD_LABEL])], transform=transform, width=2,
                        height=2, supersample=4, fill=LABEL_GRASS, chunk_rows=2,
                        dtype=np.uint16)
    abundance = np.zeros((FIRST_FIELD_LABEL + 1, 3), dtype=np.float32)
    abundance[LABEL_GRASS] = [1.0, 0.0, 0.0]
    abundance[FIRST_FIELD_LABEL] = [0.0, 0.2, 0.8]
    ab = mix_abundances(chunk_mix(cover, slice(0, 2)), abundance).reshape(3, 2, 2)
    np.testing.assert_allclose(ab[:, :, 0], [[0.5, 0.5], [0.1, 0.1], [0.4, 0.4]], atol=1e-6)
    np.testing.assert_allclose(ab[:, :, 1], [[0.0, 0.0], [0.2, 0.2], [0.8, 0.8]], atol=1e-6)


def test_smooth_noise_is_identical_in_chunks_and_about_unit_variance() -> None:
    noise = SmoothNoise.create(np.random.default_rng(5), x0=0.0, y0=2000.0, width_m=2000.0,
                               height_m=2000.0, scale_m=200.0, octaves=3)
    xs = np.arange(5.0, 2000.0, 10.0)
    ys = np.arange(1995.0, 0.0, -10.0)
    whole = noise.on_grid(xs, ys)
    parts = np.vstack([noise.on_grid(xs, ys[:77]), noise.on_grid(xs, ys[77:])])
    np.testing.assert_array_equal(whole, parts)
    assert 0.6 < whole.std() < 1.4 and abs(whole.mean()) < 0.3
    # neighbours 10 m apart are strongly correlated: the field is smooth
    assert np.corrcoef(whole[:, :-1].ravel(), whole[:, 1:].ravel())[0, 1] > 0.9


def test_scene_classification_priorities() -> None:
    z = np.zeros((1, 6), dtype=np.float32)
    cloud = np.array([[0.0, 0.0, 0.0, 0.1, 0.3, 0.9]], dtype=np.float32)
    shadow = np.array([[0.0, 0.0, 0.8, 0.0, 0.0, 0.0]], dtype=np.float32)
    ndvi = np.array([[0.7, 0.1, 0.7, 0.7, 0.7, 0.7]])
    scl = scene_classification(cloud=cloud, shadow=shadow, cirrus=z, ndvi=ndvi,
                               water=np.zeros((1, 6), bool), nodata=np.zeros((1, 6), bool),
                               cirrus_flag=0.0)
    assert scl.tolist() == [[4, 5, 3, 7, 8, 9]]


def test_swath_edge_is_a_tilted_line_and_makes_nodata() -> None:
    bounds = (0.0, 0.0, 1000.0, 1000.0)
    rng = np.random.default_rng(0)
    sky = draw_sky(rng, doy=180.0, wetness=0.2, bounds=bounds)
    sky = type(sky)(**{**sky.__dict__, "swath_edge": (500.0, 500.0, 1.0),
                       "threshold": float("inf"), "cirrus": None})
    xs = np.arange(10.0, 1000.0, 20.0)
    ys = np.arange(990.0, 0.0, -20.0)
    out = outside_swath(sky, xs, ys)
    assert out[:, -1].all() and not out[:, 0].any()
    # the edge leans: further east at the top (north) than at the bottom
    first_out = out.argmax(axis=1)
    assert first_out[0] > first_out[-1]
    # a render of an all-grass chunk: DN 0 and SCL 0 exactly beyond the edge
    cover = pixel_cover([], transform=Affine(10.0, 0.0, 0.0, 0.0, -10.0, 1000.0), width=100,
                        height=100, supersample=2, fill=LABEL_GRASS, chunk_rows=100,
                        dtype=np.uint16)
    ab = abundance_table(np.zeros((1, 0, 3), np.float32), np.array([180.0]), np.ones(0),
                         np.zeros(0))[0]
    xs10 = np.arange(5.0, 1000.0, 10.0)
    ys10 = np.arange(995.0, 0.0, -10.0)
    dn = render_chunk(mix_abundances(chunk_mix(cover, slice(0, 100)), ab),
                      np.ones((3, 100, 100), np.float32), sky, xs10, ys10,
                      np.random.default_rng(1))
    nodata20 = dn["SCL"] == 0
    np.testing.assert_array_equal(nodata20, out)
    np.testing.assert_array_equal(dn["B11"] == 0, out)
    np.testing.assert_array_equal(dn["B04"] == 0, np.kron(out, np.ones((2, 2), bool)))
    # clear grass in June is vegetation
    assert (dn["SCL"][~out] == 4).mean() > 0.95


def test_fractions_follow_practices() -> None:
    doy = np.arange(3.0, 366.0, 5.0)
    crop = np.array(["winter_wheat"] * 300)
    tillage = np.repeat(["conventional", "reduced", "no_till"], 100)
    cover = np.tile(["bare", "bare", "bare", "cover_crop"], 75)
    frac, season = field_fractions(np.random.default_rng(2), doy, crop, tillage, cover)
    assert frac.shape == (doy.size, 300, 3)
    np.testing.assert_allclose(frac.sum(axis=2), 1.0, atol=1e-5)
    assert (frac >= 0).all()
    # 60 days after harvest, bare fields: residue no-till > reduced > conventional
    t_idx = np.clip(np.searchsorted(doy, season.harvest + 60), 0, doy.size - 1)
    npv = frac[t_idx, np.arange(300), 1]
    bare = cover == "bare"
    by = {t: npv[bare & (tillage == t)].mean() for t in ("conventional", "reduced", "no_till")}
    assert by["no_till"] > by["reduced"] > by["conventional"]
    # cover crops are green in November, bare fields are not
    nov = np.searchsorted(doy, 315)
    assert frac[nov, ~bare, 0].mean() > 0.4 > frac[nov, bare, 0].mean() + 0.2
    # wheat peaks in late spring
    assert frac[np.searchsorted(doy, 140), :, 0].mean() > 0.8


def test_air_temperature_is_temperate() -> None:
    t = air_temperature_c(np.array([15.0, 200.0]))
    assert 1.0 < t[0] < 5.0 and 17.0 < t[1] < 20.0


def test_landscape_fields_are_separated_from_roads() -> None:
    bounds = (0.0, 0.0, 1920.0, 1920.0)
    land = build_landscape(np.random.default_rng(4), bounds=bounds, target_fields=60,
                           block_m=700.0)
    fields = land.fields
    assert 30 <= fields.size <= 120
    area = shapely.area(fields) / 1e4
    assert (area >= 0.5).all() and (area <= 80.0).all()
    assert shapely.is_valid(fields).all()
    roads = shapely.union_all(np.concatenate([land.roads, land.tracks]))
    assert shapely.area(shapely.intersection(fields, roads)).sum() < 1e-6 * area.sum() * 1e4
    assert shapely.within(fields, shapely.box(*bounds).buffer(1.0)).all()


def test_endmember_ndti_ordering() -> None:
    def ndti(s: np.ndarray) -> float:
        return float((s[4] - s[5]) / (s[4] + s[5]))
    gv, npv, soil = SPECTRA_DRY[0], SPECTRA_DRY[1], SPECTRA_DRY[2]
    assert ndti(npv) > ndti(soil) + 0.08  # residue vs soil (Daughtry et al. 2005)
    assert (gv[3] - gv[2]) / (gv[3] + gv[2]) > 0.8  # green canopy NDVI


def test_acquisition_calendar() -> None:
    days = acquisition_days(73)
    assert days[0] == 3 and np.all(np.diff(days) == 5)
    assert acquisition_days(10).size == 10


@pytest.mark.parametrize(("kwargs", "match"), [({"size": "huge"}, "unknown size"),
                                               ({"n_dates": 0}, "n_dates")])
def test_bad_options_raise_config_error(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        simulate_region(tmp_path, **kwargs)
