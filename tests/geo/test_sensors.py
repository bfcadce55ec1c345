"""Sensor profiles: the shipped YAML files validate; names, offsets and masks decode as documented."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from regenmap.errors import ConfigError
from regenmap.geo.sensors import SensorProfile

SENSORS = Path(__file__).resolve().parents[2] / "configs" / "sensors"


def load(name: str) -> SensorProfile:
    path = SENSORS / f"{name}.yaml"
    return SensorProfile.from_mapping(yaml.safe_load(path.read_text()), source=str(path))


def test_sentinel2_names_offset_and_scl() -> None:
    s2 = load("sentinel2_l2a")
    parts = s2.parse_filename("T31UFQ_20230412T104629_B04_10m.tif")
    assert parts == {"tile": "31UFQ", "date": "20230412T104629", "band": "B04"}
    assert s2.parse_filename("T31UFQ_20230412T104629_SCL_20m.jp2")["band"] == "SCL"
    assert s2.parse_filename("notes.txt") is None
    assert s2.match_band("B8A") == "nir08" and s2.match_band("b11") == "swir16"
    assert s2.match_band("SCL") == "__mask__"
    assert s2.offset_at(datetime(2021, 6, 1)) == 0.0
    assert s2.offset_at(datetime(2022, 6, 1)) == -0.1
    assert s2.offset_at(datetime(2022, 6, 1), baseline="N0301") == 0.0  # baseline wins over date
    lut = s2.mask.valid_lookup()
    assert lut[[4, 5, 6, 7]].all()
    assert not lut[[0, 1, 3, 8, 9, 10, 11]].any()


def test_landsat_qa_bits() -> None:
    ls = load("landsat_c2_l2")
    name = "LC09_L2SP_199026_20230412_20230414_02_T1_SR_B4.TIF"
    assert ls.parse_filename(name) == {"tile": "199026", "date": "20230412", "band": "SR_B4"}
    assert ls.match_band("SR_B5") == "nir" and ls.match_band("QA_PIXEL") == "__mask__"
    assert (ls.scale, ls.offset) == (2.75e-5, -0.2)
    lut = ls.mask.valid_lookup()
    clear = 1 << 6
    assert lut[clear] and lut[clear | 1 << 7]  # water is kept
    for bit in (0, 1, 2, 3, 4, 5):
        assert not lut[clear | 1 << bit]


def test_generic_profile_is_multiband() -> None:
    g = load("generic_4band")
    assert g.layout == "multiband"
    assert [b.index for b in g.bands] == [1, 2, 3, 4]
    assert g.common_names == ("blue", "green", "red", "nir")


def test_user_profile_in_yaml_and_clear_errors() -> None:
    good = {"name": "mine", "layout": "band_files", "filename_pattern": r"(?P<date>\d{8})_(?P<band>\w+)",
            "bands": {"R": "red", "NIR": {"common_name": "nir"}},
            "mask": {"band": "QA", "kind": "classes", "invalid": {"cloud": 2}}}
    p = SensorProfile.from_mapping(good)
    assert p.match_band("nir") == "nir" and not p.mask.valid_lookup()[2]
    with pytest.raises(ConfigError, match="did you mean 'bands'"):
        SensorProfile.from_mapping({**good, "bandz": {}})
    with pytest.raises(ConfigError, match="did you mean red"):
        SensorProfile.from_mapping({**good, "bands": {"R": "redd"}})
    with pytest.raises(ConfigError, match="named group"):
        SensorProfile.from_mapping({**good, "filename_pattern": r"(?P<date>\d{8})"})
    with pytest.raises(ConfigError, match="'kind'"):
        SensorProfile.from_mapping({**good, "mask": {"band": "QA"}})
    assert np.asarray(p.mask.valid_lookup()).dtype == bool


def test_time_stack_profile_needs_no_date_group_and_band_layouts_say_why() -> None:
    stack = SensorProfile.from_mapping({"name": "ee_ndvi", "layout": "time_stack",
                                        "bands": {"B4": "red", "B8": "nir"}})
    assert stack.layout == "time_stack" and stack.filename_pattern is None
    assert stack.parse_filename("B4.tif") is None
    named = SensorProfile.from_mapping({"name": "s", "layout": "time_stack",
                                        "filename_pattern": r"^(?P<band>B\d+)_stack",
                                        "bands": {"B4": "red"}})
    assert named.parse_filename("B4_stack.tif") == {"band": "B4"}
    with pytest.raises(ConfigError, match=r"\['date'\].*use layout: time_stack"):
        SensorProfile.from_mapping({"name": "s", "layout": "band_files",
                                    "filename_pattern": r"(?P<band>B\d+)", "bands": {"B4": "red"}})
    with pytest.raises(ConfigError, match=r"\['date'\] for layout 'multiband'"):
        SensorProfile.from_mapping({"name": "s", "layout": "multiband", "filename_pattern": "x",
                                    "bands": {"B4": "red"}})
    with pytest.raises(ConfigError, match="layout must be one of band_files, multiband, time_stack"):
        SensorProfile.from_mapping({"name": "s", "layout": "stack", "bands": {"B4": "red"}})


def test_bit_fields_index_layers_band_scaling_and_mask_alternatives() -> None:
    p = SensorProfile.from_mapping({
        "name": "p", "scale": 0.0001, "nodata": -28672, "filename_pattern": r"(?P<date>\d{7})_(?P<band>\w+)",
        "date_format": "%Y%j",
        "bands": {"b1": "red", "t10": {"common_name": "lwir11", "scale": 0.01, "nodata": -9999}},
        "index_layers": {"ndvi": {"aliases": ["250m_16_days_NDVI"], "scale": 0.0001, "nodata": -3000}},
        "mask": [{"band": "state", "kind": "bits",
                  "invalid": {"cloudy_or_mixed": {"bits": [0, 1], "values": [1, 2]}, "shadow": 2}},
                 {"band": "QA60", "kind": "bits", "invalid": {"opaque": 10}}]})
    assert p.parse_date("2023102") == datetime(2023, 4, 12)
    when = datetime(2023, 4, 12)
    assert p.scaling("red", when) == (0.0001, 0.0, -28672)
    assert p.scaling("lwir11", when) == (0.01, 0.0, -9999)
    assert p.scaling("ndvi", when) == (0.0001, 0.0, -3000)
    assert p.scaling("evi", when) == (1.0, 0.0, None)  # not declared: used as it is
    assert p.match_band("250m_16_days_ndvi") == "ndvi" and p.index_layer("NDVI").name == "NDVI"
    assert p.match_band("QA60") == "__mask__" and p.match_mask("qa60").band == "QA60"
    assert [m.band for m in p.masks] == ["state", "QA60"]
    lut = p.mask.valid_lookup()
    # cloud state 00 clear and 11 "not set, assumed clear" are kept; 01 cloudy, 10 mixed dropped
    assert lut[0b00] and lut[0b11] and not lut[0b01] and not lut[0b10]
    assert not lut[0b100] and lut[1 << 3]  # bit 2 shadow dropped, land/water bits kept
    with pytest.raises(ConfigError, match=r"do not fit in bits 0-1 \(0..3\)"):
        SensorProfile.from_mapping({"name": "p", "bands": {"b1": "red"}, "mask": {
            "band": "q", "kind": "bits", "invalid": {"x": {"bits": [0, 1], "values": [4]}}}})
    with pytest.raises(ConfigError, match="index layer 'NDVI' must be a mapping"):
        SensorProfile.from_mapping({"name": "p", "bands": {"b1": "red"},
                                    "index_layers": {"NDVI": {"scael": 1}}})
    with pytest.raises(ConfigError, match="band 'b1' has unknown key"):
        SensorProfile.from_mapping({"name": "p", "bands": {"b1": {"common_name": "red", "sacle": 1}}})
