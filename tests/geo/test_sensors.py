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
