"""Sentinel-2 L2A conventions: names and DNs written here are read back by the sensor profile."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from regenmap.geo import sentinel2 as s2
from regenmap.geo.sensors import SensorProfile

PROFILE = Path(__file__).resolve().parents[2] / "configs" / "sensors" / "sentinel2_l2a.yaml"
WHEN = datetime(2023, 4, 12, 10, 46, 29)


@pytest.fixture(scope="module")
def profile() -> SensorProfile:
    return SensorProfile.from_mapping(yaml.safe_load(PROFILE.read_text()), source=str(PROFILE))


@pytest.mark.parametrize(("tile", "when", "band", "res", "expected"), [
    ("31UFQ", WHEN, "B04", None, "T31UFQ_20230412T104629_B04_10m.tif"),
    ("T31UFQ", "20230412T104629", "B04", None, "T31UFQ_20230412T104629_B04_10m.tif"),
    ("31UFQ", WHEN, "SCL", None, "T31UFQ_20230412T104629_SCL_20m.tif"),
    ("31UFQ", WHEN, "B8A", None, "T31UFQ_20230412T104629_B8A_20m.tif"),
    ("31UFQ", WHEN, "B01", None, "T31UFQ_20230412T104629_B01_60m.tif"),
    ("31UGQ", WHEN, "B11", 10, "T31UGQ_20230412T104629_B11_10m.tif"),
])
def test_band_filename__cases(tile: str, when: datetime | str, band: str, res: int | None,
                              expected: str) -> None:
    assert s2.band_filename(tile, when, band, res) == expected


@pytest.mark.parametrize(("tile", "when", "band"), [
    ("UFQ", WHEN, "B04"), ("31UFQ", "2023-04-12", "B04"), ("31UFQ", WHEN, "B13")])
def test_band_filename__rejects_malformed_parts(tile: str, when: datetime | str,
                                                band: str) -> None:
    with pytest.raises(ValueError, match=r"not"):
        s2.band_filename(tile, when, band)


def test_band_resolutions_agree_with_the_sensor_profile(profile: SensorProfile) -> None:
    for spec in profile.bands:
        assert s2.band_resolution(spec.native) == spec.resolution_m, spec.native
    assert profile.mask is not None and s2.band_resolution(profile.mask.band) == 20


def test_written_names_are_parsed_by_the_sensor_profile(profile: SensorProfile) -> None:
    for band in s2.RESOLUTION_M:
        parts = profile.parse_filename(s2.band_filename("31UFQ", WHEN, band))
        assert parts == {"tile": "31UFQ", "date": "20230412T104629", "band": band}
        assert profile.parse_date(parts["date"]) == WHEN


def test_reflectance_to_dn__clip_rule_and_nodata() -> None:
    dn = s2.reflectance_to_dn(np.array([0.0, 0.25, -0.1, -0.5, 7.0, np.nan, np.inf, -np.inf]))
    assert dn.dtype == np.uint16
    # a valid reflectance never encodes to nodata 0; only NaN does
    assert dn.tolist() == [1000, 3500, 1, 1, 65535, s2.NODATA, 65535, 1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_reflectance_to_dn__keeps_shape_for_any_input_dtype(dtype: type) -> None:
    dn = s2.reflectance_to_dn(np.zeros((3, 4), dtype=dtype))
    assert dn.shape == (3, 4) and dn.dtype == np.uint16 and (dn == 1000).all()
    assert s2.reflectance_to_dn(0.05).tolist() == 1500  # scalars too


def test_dn_round_trip_matches_the_profile_decoding(profile: SensorProfile) -> None:
    refl = np.round(np.random.default_rng(0).uniform(-0.05, 1.2, 1000), 4)
    dn = s2.reflectance_to_dn(refl)
    np.testing.assert_allclose(s2.dn_to_reflectance(dn), refl, atol=1e-9)
    # the reader's scale and baseline-04.00 offset decode the same values
    decoded = dn * profile.scale + profile.offset_at(WHEN)
    np.testing.assert_allclose(decoded, refl, atol=1e-9)
    assert profile.nodata == s2.NODATA
    assert np.isnan(s2.dn_to_reflectance(np.array([s2.NODATA]))).all()


def test_dn_constants_are_the_l2a_metadata_values() -> None:
    assert (s2.BOA_ADD_OFFSET, s2.BOA_QUANTIFICATION_VALUE) == (-1000, 10000)
