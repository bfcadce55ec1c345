"""The built-in profiles of users' products read their real file layouts with the right values.

Each test writes a few small GeoTIFFs named exactly as the product (or its usual
download tool) names them, catalogues them with the profile and reads the bands
through :func:`regenmap.geo.stack.read_stack`, which applies the same scale,
offset, nodata and quality rules as the extraction. The expected values are
worked out by hand from the DNs written.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine

from regenmap.errors import ConfigError
from regenmap.geo.catalog import scan_band_files
from regenmap.geo.grid import GridSpec
from regenmap.geo.sensors import SensorProfile
from regenmap.geo.stack import read_stack
from regenmap.geo.testing import write_raster
from regenmap.geo.time_stack import scan_time_stacks

SENSORS = Path(__file__).resolve().parents[2] / "configs" / "sensors"
#: MODIS sinusoidal projection (sphere of radius 6371007.181 m).
SINU = "+proj=sinu +R=6371007.181 +nadgrids=@null +wktext +units=m"
#: A 2x2 block of 250 m MODIS pixels near 48.5 N, 2.0 E (tile h18v04).
X0, Y0 = 146_000.0, 5_393_000.0
UTM = GridSpec("EPSG:32631", Affine(30, 0, 600000, 0, -30, 5000000), 2, 2)


def load(name: str) -> SensorProfile:
    path = SENSORS / f"{name}.yaml"
    return SensorProfile.from_mapping(yaml.safe_load(path.read_text()), source=str(path))


def sinu_grid(res: float) -> GridSpec:
    n = round(500 / res)
    return GridSpec(SINU, Affine(res, 0, X0, 0, -res, Y0), n, n)


def values(acqs, bands):  # type: ignore[no-untyped-def]
    """(time, y, x) physical values of ``bands`` on the first acquisition's finest grid."""
    grid = acqs[0].grid_for(bands)
    return read_stack(acqs, grid, bands)


# --------------------------------------------------------------------------- MODIS MOD13Q1
def test_mod13q1_appeears_files_ndvi_reflectance_and_pixel_reliability(tmp_path: Path) -> None:
    g = sinu_grid(250.0)

    def layer(name: str, doy: str, data: list[list[int]], dtype: str) -> None:
        write_raster(tmp_path / f"MOD13Q1.061__250m_16_days_{name}_doy{doy}_aid0001.tif",
                     np.array(data, dtype=dtype), g)

    for doy in ("2023097", "2023113"):
        layer("NDVI", doy, [[5000, -3000], [8000, 2500]], "int16")
        layer("EVI", doy, [[3000, -3000], [6000, 1500]], "int16")
        layer("red_reflectance", doy, [[1000, -1000], [500, 1500]], "int16")
        layer("NIR_reflectance", doy, [[3000, -1000], [4500, 2500]], "int16")
        layer("VI_Quality", doy, [[0, 0], [0, 0]], "uint16")  # not read: not in the pattern
    # pixel reliability: 0 good, 1 marginal (kept), 3 cloudy, 2 snow, -1 fill
    layer("pixel_reliability", "2023097", [[0, 0], [1, 3]], "int8")
    layer("pixel_reliability", "2023113", [[2, -1], [0, 0]], "int8")
    acqs, problems = scan_band_files(tmp_path, load("modis_mod13q1"))
    assert problems == []
    assert [a.time for a in acqs] == [datetime(2023, 4, 7), datetime(2023, 4, 23)]
    assert set(acqs[0].assets) == {"ndvi", "evi", "red", "nir"}
    ds = values(acqs, ["ndvi", "evi", "red", "nir"])
    ndvi, red = ds["ndvi"].to_numpy(), ds["red"].to_numpy()
    # 2023-04-07: DN x 0.0001; fill -3000 -> NaN; cloudy (3) -> NaN; marginal (1) kept
    np.testing.assert_allclose(ndvi[0], [[0.5, np.nan], [0.8, np.nan]], atol=1e-6)
    np.testing.assert_allclose(red[0], [[0.1, np.nan], [0.05, np.nan]], atol=1e-6)
    np.testing.assert_allclose(ds["evi"].to_numpy()[0], [[0.3, np.nan], [0.6, np.nan]], atol=1e-6)
    # 2023-04-23: snow/ice (2) and fill (-1) dropped, good pixels kept
    np.testing.assert_allclose(ndvi[1], [[np.nan, np.nan], [0.8, 0.25]], atol=1e-6)
    np.testing.assert_allclose(ds["nir"].to_numpy()[1], [[np.nan, np.nan], [0.45, 0.25]], atol=1e-6)


# --------------------------------------------------------------------------- MODIS MOD09
def test_mod09ga_and_mod09a1_state_bits_on_their_own_grids(tmp_path: Path) -> None:
    # bands on a fine grid, the daily state QA on one twice as coarse (500 m and 1 km in the product)
    g500 = GridSpec(SINU, Affine(250, 0, X0, 0, -250, Y0), 4, 4)
    g1km = GridSpec(SINU, Affine(500, 0, X0, 0, -500, Y0), 2, 2)
    red = np.array([[1000] * 4, [1200] * 4, [-28672, 500, 500, 500], [500] * 4], np.int16)
    for band, data in (("sur_refl_b01_1", red), ("sur_refl_b02_1", red * 3)):
        data = np.where(red == -28672, -28672, data).astype(np.int16)
        write_raster(tmp_path / f"MOD09GA.061_{band}_doy2023101_aid0001.tif", data, g500)
    # state_1km: clear (0); cloudy (01); "not set, assumed clear" (11) + land (bit 3); shadow (bit 2)
    state = np.array([[0b0000, 0b01], [0b1011, 0b100]], np.uint16)
    write_raster(tmp_path / "MOD09GA.061_state_1km_1_doy2023101_aid0001.tif", state, g1km)
    # MOD09A1 (8-day): 500 m state; bits 8-9 cirrus average (10) drops, small (01) does not
    for band, dn in (("sur_refl_b01", 800), ("sur_refl_b02", 3000), ("sur_refl_b05", 1)):
        write_raster(tmp_path / f"MOD09A1.061_{band}_doy2023097_aid0001.tif",
                     np.full((4, 4), dn, np.int16), g500)
    state500 = np.zeros((4, 4), np.uint16)
    state500[0, :2] = 0b10 << 8
    state500[0, 2:] = 0b01 << 8
    state500[3, 3] = 65535  # fill
    write_raster(tmp_path / "MOD09A1.061_sur_refl_state_500m_doy2023097_aid0001.tif", state500,
                 g500)
    acqs, problems = scan_band_files(tmp_path, load("modis_mod09"))
    assert problems == []  # sur_refl_b05 does not match the pattern: not read
    assert [a.time for a in acqs] == [datetime(2023, 4, 7), datetime(2023, 4, 11)]
    ds = values(acqs, ["red", "nir"])
    red8, red1 = ds["red"].to_numpy()
    expected8 = np.full((4, 4), 0.08, np.float32)
    expected8[0, :2] = np.nan
    expected8[3, 3] = np.nan
    np.testing.assert_allclose(red8, expected8, atol=1e-6)
    # daily: each 1 km state pixel covers 2x2 reflectance pixels (nearest rule)
    expected1 = np.array([[0.1, 0.1, np.nan, np.nan], [0.12, 0.12, np.nan, np.nan],
                          [np.nan, 0.05, np.nan, np.nan], [0.05, 0.05, np.nan, np.nan]])
    np.testing.assert_allclose(red1, expected1, atol=1e-6)
    np.testing.assert_allclose(ds["nir"].to_numpy()[1][1, 0], 0.36, atol=1e-6)


# --------------------------------------------------------------------------- HLS v2.0
def hls(folder: Path, product: str, when: str, bands: dict[str, int], fmask: list[list[int]]) -> None:
    stem = f"HLS.{product}.T31UFQ.{when}.v2.0"
    for band, dn in bands.items():
        data = np.full((2, 2), dn, np.int16)
        data[1, 1] = -9999
        write_raster(folder / f"{stem}.{band}.tif", data, UTM, nodata=-9999)
    write_raster(folder / f"{stem}.Fmask.tif", np.array(fmask, np.uint8), UTM, nodata=255)
    for angle in ("SZA", "VZA"):  # angle bands are not read
        write_raster(folder / f"{stem}.{angle}.tif", np.zeros((2, 2), np.uint16), UTM)


def test_hls_s30_and_l30_day_of_year_names_nir_and_fmask(tmp_path: Path) -> None:
    # S30: B8A is the NIR adjusted to OLI; B08 (broad NIR) is left alone
    hls(tmp_path, "S30", "2023101T104629", {"B04": 800, "B08": 5000, "B8A": 3200, "B11": 2000},
        [[0b00100000, 0b00000010], [0b01000000, 0]])  # water kept, cloud, aerosol low kept
    hls(tmp_path, "L30", "2023102T103041", {"B04": 900, "B05": 3000, "B06": 2100, "B10": 2900},
        [[0b00001000, 0b00000100], [0b00010000, 255]])  # shadow, adjacent, snow, fill
    s30, problems = scan_band_files(tmp_path, load("hls_s30"))
    assert problems == []
    assert [a.time for a in s30] == [datetime(2023, 4, 11, 10, 46, 29)] and s30[0].tile == "31UFQ"
    assert set(s30[0].assets) == {"red", "nir", "swir16"}
    ds = values(s30, ["red", "nir"])
    np.testing.assert_allclose(ds["nir"].to_numpy()[0], [[0.32, np.nan], [0.32, np.nan]], atol=1e-6)
    np.testing.assert_allclose(ds["red"].to_numpy()[0], [[0.08, np.nan], [0.08, np.nan]], atol=1e-6)
    l30, problems = scan_band_files(tmp_path, load("hls_l30"))
    assert problems == []  # B10 (thermal) does not match the pattern: not read
    assert [a.time for a in l30] == [datetime(2023, 4, 12, 10, 30, 41)]
    assert set(l30[0].assets) == {"red", "nir", "swir16"}
    ds = values(l30, ["nir"])
    assert np.isnan(ds["nir"].to_numpy()).all()  # every pixel flagged or fill
    both = values(s30 + l30, ["red"])["valid"].to_numpy()
    assert both.tolist() == [[[True, False], [True, True]], [[False, False], [False, False]]]


# --------------------------------------------------------------------------- Earth Engine S2
def test_ee_s2_sr_harmonized_multiband_by_description_without_offset(tmp_path: Path) -> None:
    # after 25 January 2022, yet no -0.1 offset: the harmonized collection removed it
    data = np.array([np.full((2, 2), v) for v in (500, 1500, 3500, 4)], np.uint16)
    data[3, 0, 1] = 9   # SCL cloud high probability
    data[1, 1, 1] = 0   # nodata
    write_raster(tmp_path / "20230412T104629_20230412T104625_T31UFQ.tif", data, UTM,
                 descriptions=["B2", "B4", "B8", "SCL"])
    other = np.array([np.full((2, 2), v) for v in (1200, 3000, 0, 7)], np.uint16)
    other[2, 0, 0] = 1 << 10  # QA60 opaque clouds
    write_raster(tmp_path / "s2_20230422.tif", other, UTM, descriptions=["B4", "B8", "QA60", "AOT"])
    acqs, problems = scan_band_files(tmp_path, load("ee_s2_sr_harmonized"))
    assert [a.time for a in acqs] == [datetime(2023, 4, 12), datetime(2023, 4, 22)]
    assert acqs[0].tile == "31UFQ" and acqs[0].mask_spec.band == "SCL"
    assert acqs[1].mask_spec.band == "QA60" and acqs[1].assets["red"].band == 1
    assert acqs[0].assets["red"].offset == 0.0 and acqs[0].assets["red"].scale == 1e-4
    assert [(p.severity, "AOT" in p.reason) for p in problems] == [("warning", True)]
    ds = values(acqs, ["red", "nir"])
    np.testing.assert_allclose(ds["red"].to_numpy()[0], [[0.15, np.nan], [0.15, np.nan]], atol=1e-6)
    np.testing.assert_allclose(ds["nir"].to_numpy()[1], [[np.nan, 0.3], [0.3, 0.3]], atol=1e-6)


def test_ee_s2_time_stack_dates_from_image_ids(tmp_path: Path) -> None:
    ids = ["20230412T104629_20230412T104625_T31UFQ", "20230417T104621_20230417T104907_T31UFQ"]
    write_raster(tmp_path / "B4.tif", np.array([np.full((2, 2), 1000), np.full((2, 2), 2000)],
                                               np.uint16), UTM, descriptions=ids)
    write_raster(tmp_path / "B8.tif", np.array([np.full((2, 2), 4000), np.full((2, 2), 3000)],
                                               np.uint16), UTM, descriptions=ids)
    write_raster(tmp_path / "QA60.tif", np.array([np.zeros((2, 2)), np.full((2, 2), 1 << 11)],
                                                 np.uint16), UTM, descriptions=ids)
    acqs, problems = scan_time_stacks(tmp_path, load("ee_s2_sr_harmonized"))
    assert problems == []
    assert [a.time for a in acqs] == [datetime(2023, 4, 12, 10, 46, 29),
                                      datetime(2023, 4, 17, 10, 46, 21)]
    ds = values(acqs, ["red", "nir"])
    np.testing.assert_allclose(ds["red"].to_numpy()[0], 0.1, atol=1e-6)
    assert np.isnan(ds["nir"].to_numpy()[1]).all()  # QA60 bit 11 cirrus


# --------------------------------------------------------------------------- Earth Engine Landsat
def test_ee_landsat_c2_l2_scale_offset_and_qa_pixel(tmp_path: Path) -> None:
    dn = np.array([np.full((2, 2), 10000), np.full((2, 2), 20000), np.full((2, 2), 1 << 6)],
                  np.uint16)
    dn[2, 0, 0] |= 1 << 3  # cloud
    dn[2, 1, 1] |= 1 << 7  # water: kept
    write_raster(tmp_path / "LC09_199026_20230412.tif", dn, UTM,
                 descriptions=["SR_B4", "SR_B5", "QA_PIXEL"])
    acqs, problems = scan_band_files(tmp_path, load("ee_landsat_c2_l2"))
    assert problems == [] and acqs[0].tile == "199026" and acqs[0].time == datetime(2023, 4, 12)
    ds = values(acqs, ["red", "nir"])
    # 10000 x 0.0000275 - 0.2 = 0.075 ; 20000 x 0.0000275 - 0.2 = 0.35
    np.testing.assert_allclose(ds["red"].to_numpy()[0], [[np.nan, 0.075], [0.075, 0.075]], atol=1e-6)
    np.testing.assert_allclose(ds["nir"].to_numpy()[0], [[np.nan, 0.35], [0.35, 0.35]], atol=1e-6)


def test_multiband_without_descriptions_or_time_stack_profile_as_band_files(tmp_path: Path) -> None:
    write_raster(tmp_path / "LC09_199026_20230412.tif", np.ones((3, 2, 2), np.uint16), UTM)
    acqs, problems = scan_band_files(tmp_path, load("ee_landsat_c2_l2"))
    assert acqs == []
    assert "no raster band description names a band" in problems[0].reason
    stack = SensorProfile.from_mapping({"name": "stacks", "layout": "time_stack",
                                        "bands": {"SR_B4": "red"}})
    with pytest.raises(ConfigError, match=r"layout 'time_stack'.*time stacks"):
        scan_band_files(tmp_path, stack)
