"""Dates of time stacks: from band descriptions, header-less lists and CSVs, with named errors."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from affine import Affine

from regenmap.errors import InputError
from regenmap.geo.grid import GridSpec
from regenmap.geo.sensors import SensorProfile
from regenmap.geo.stack_dates import band_dates, parse_date_token, read_dates_file
from regenmap.geo.testing import write_raster
from regenmap.geo.time_stack import scan_time_stacks

APR12 = datetime(2023, 4, 12)
G = GridSpec("EPSG:32631", Affine(10, 0, 600000, 0, -10, 5000000), 4, 4)
S2 = SensorProfile.from_mapping(yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "configs" / "sensors" / "sentinel2_l2a.yaml").read_text()))


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-04-12", APR12),
    ("2023-04-12T10:46:29Z", datetime(2023, 4, 12, 10, 46, 29)),
    ("2023-04-12T12:46:29+02:00", datetime(2023, 4, 12, 10, 46, 29)),
    ("20230412", APR12),
    ("2023102", APR12),                                   # MODIS day of year
    ("A2023102", APR12),                                  # MODIS granule date
    ("MOD13Q1_A2023097_h18v04", datetime(2023, 4, 7)),
    ("2023_04_12", APR12),                                # Earth Engine MODIS image id
    ("2023_04_12_NDVI", APR12),
    ("20230412T104629_20230412T104625_T31UFQ", datetime(2023, 4, 12, 10, 46, 29)),  # EE S2 id
    ("LC09_199026_20230412", APR12),                      # EE Landsat id: path/row is no date
    ("NDVI 2023-04-12", APR12),
])
def test_date_tokens_in_descriptions(text: str, expected: datetime) -> None:
    assert parse_date_token(text) == expected


@pytest.mark.parametrize("text", [None, "", "B4", "Band 1", "sur_refl_b01", "199026", "2023366",
                                  "20231341", "1234567"])
def test_texts_without_a_date(text: str | None) -> None:
    assert parse_date_token(text) is None


def stack(folder: Path, n: int, descriptions: list[str] | None = None, name: str = "B04.tif") -> Path:
    data = np.arange(n * 16, dtype=np.uint16).reshape(n, 4, 4) + 1000
    return write_raster(folder / name, data, G, nodata=0, descriptions=descriptions)


def test_headerless_list_csv_and_ordered_lines(tmp_path: Path) -> None:
    f = stack(tmp_path, 3)
    (tmp_path / "dates.txt").write_text("# acquisition dates\n2023-03-01\n\n20230401\n2023121\n")
    assert band_dates(f, 3, (None,) * 3) == [datetime(2023, 3, 1), datetime(2023, 4, 1),
                                             datetime(2023, 5, 1)]
    listed = tmp_path / "list.csv"  # a CSV without header, band numbers out of order
    listed.write_text("2,2023-04-01\n1,2023-03-01\n3,2023-05-01\n")
    assert read_dates_file(listed) == [datetime(2023, 3, 1), datetime(2023, 4, 1),
                                       datetime(2023, 5, 1)]
    table = tmp_path / "table.csv"  # with a header: today's form
    pd.DataFrame({"band": [2, 1], "acquired_date": ["2023-04-01", "2023-03-01"]}).to_csv(
        table, index=False)
    assert read_dates_file(table) == [datetime(2023, 3, 1), datetime(2023, 4, 1)]


def test_descriptions_win_over_sidecars_and_explicit_file_wins_over_descriptions(
        tmp_path: Path) -> None:
    f = stack(tmp_path, 2, ["2023_03_01", "2023_04_01"])
    (tmp_path / "B04.txt").write_text("2020-01-01\n2020-02-01\n")
    assert band_dates(f, 2, ("2023_03_01", "2023_04_01")) == [datetime(2023, 3, 1),
                                                             datetime(2023, 4, 1)]
    assert band_dates(f, 2, ("2023_03_01", "2023_04_01"), tmp_path / "B04.txt")[0] == \
        datetime(2020, 1, 1)


def test_errors_name_the_files_and_the_counts(tmp_path: Path) -> None:
    f = stack(tmp_path, 4)
    with pytest.raises(InputError, match=r"B04.tif: its 4 raster bands do not all hold a date.*"
                                         r"band 1: no description"):
        band_dates(f, 4, (None,) * 4)
    (tmp_path / "dates.txt").write_text("2023-03-01\n2023-04-01\n2023-05-01\n")
    with pytest.raises(InputError, match=r"dates.txt: 3 dates for the 4 raster bands of .*B04.tif"):
        band_dates(f, 4, (None,) * 4)
    bad = tmp_path / "bad.txt"
    bad.write_text("2023-03-01\nsoon\n")
    with pytest.raises(InputError, match=r"bad.txt: line 2 \('soon'\) holds no date"):
        read_dates_file(bad)
    with pytest.raises(InputError, match=r"missing\.txt: dates file not found"):
        band_dates(f, 4, (None,) * 4, tmp_path / "missing.txt")


def test_time_stacks_with_a_txt_list_and_day_of_year_descriptions(tmp_path: Path) -> None:
    stack(tmp_path / "a", 3)
    (tmp_path / "a" / "when.txt").write_text("2023-03-01\n2023-04-01\n2023-05-01\n")
    acqs, problems = scan_time_stacks(tmp_path / "a", S2, dates=tmp_path / "a" / "when.txt")
    assert [a.time for a in acqs] == [datetime(2023, 3, 1), datetime(2023, 4, 1),
                                      datetime(2023, 5, 1)]
    assert acqs[1].assets["red"].band == 2 and acqs[1].assets["red"].scale == 1e-4
    # no SCL stack beside it: recorded as a warning, never silently
    assert any("no quality band stack (SCL)" in p.reason and p.severity == "warning"
               for p in problems)
    stack(tmp_path / "b", 2, ["MOD13Q1.A2023097", "MOD13Q1.A2023113"])
    acqs, _ = scan_time_stacks(tmp_path / "b", S2)
    assert [a.time for a in acqs] == [datetime(2023, 4, 7), datetime(2023, 4, 23)]


def test_a_time_stack_profile_without_dates_in_names_reads_its_own_index_layer(tmp_path: Path) -> None:
    # a user's profile for Earth Engine NDVI stacks: no date group, int16 NDVI x 10000
    profile = SensorProfile.from_mapping({
        "name": "my_ee_ndvi", "layout": "time_stack",
        "filename_pattern": r"^(?P<band>[A-Za-z0-9]+)_stack", "bands": {"B4": "red"},
        "index_layers": {"NDVI": {"aliases": ["ndvi10k"], "scale": 0.0001, "nodata": -32768}}})
    ndvi = np.array([np.full((4, 4), 4200), np.full((4, 4), -32768)], np.int16)
    write_raster(tmp_path / "ndvi10k_stack_2023.tif", ndvi, G,
                 descriptions=["2023_04_07", "2023_04_23"])
    acqs, problems = scan_time_stacks(tmp_path, profile)
    assert problems == []
    assert [a.time for a in acqs] == [datetime(2023, 4, 7), datetime(2023, 4, 23)]
    asset = acqs[0].assets["ndvi"]
    assert (asset.scale, asset.offset, asset.nodata, asset.band) == (1e-4, 0.0, -32768, 1)
