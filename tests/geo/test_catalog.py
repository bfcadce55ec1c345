"""Scene catalog from band files, and window reads on the finest grid."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from affine import Affine
from rasterio.windows import Window

from regenmap.errors import CRSError, InputError
from regenmap.geo.catalog import scan_band_files
from regenmap.geo.grid import GridSpec, index_map
from regenmap.geo.raster_read import read_asset
from regenmap.geo.sensors import SensorProfile
from regenmap.geo.testing import write_raster, write_s2_scene

S2 = SensorProfile.from_mapping(yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "configs" / "sensors" / "sentinel2_l2a.yaml").read_text()))
G10 = GridSpec("EPSG:32631", Affine(10, 0, 600000, 0, -10, 5000000), 8, 8)
WHEN = datetime(2023, 4, 12, 10, 46, 29)


def scene(folder: Path, when: datetime = WHEN, scl: bool = True) -> None:
    b20 = np.arange(16, dtype=np.uint16).reshape(4, 4) + 1000
    write_s2_scene(folder, tile="31UFQ", when=when, grid10=G10,
                   bands={"B04": np.full((8, 8), 1500, np.uint16), "B11": b20},
                   scl=np.full((4, 4), 4, np.uint8) if scl else None)


def test_band_files_group_by_date_and_tile(tmp_path: Path) -> None:
    scene(tmp_path)
    scene(tmp_path, datetime(2021, 4, 12, 10, 46, 29))
    (tmp_path / "README.txt").write_text("not a raster")
    write_raster(tmp_path / "T31UFQ_20230412T104629_B99_10m.tif", np.ones((8, 8), np.uint16), G10)
    acqs, problems = scan_band_files(tmp_path, S2)
    assert [a.id for a in acqs] == ["sentinel2_l2a_31UFQ_20210412T104629",
                                    "sentinel2_l2a_31UFQ_20230412T104629"]
    new = acqs[1]
    assert set(new.assets) == {"red", "swir16"} and new.mask is not None
    assert new.assets["red"].offset == -0.1 and acqs[0].assets["red"].offset == 0.0
    assert new.assets["swir16"].grid.res == (20.0, 20.0)
    assert new.grid_for(["red", "swir16"]) == G10
    assert any("B99" in p.reason and p.severity == "warning" for p in problems)


def test_missing_scl_skips_the_acquisition_with_a_reason(tmp_path: Path) -> None:
    scene(tmp_path, scl=False)
    acqs, problems = scan_band_files(tmp_path, S2)
    assert acqs == []
    assert "SCL is missing" in problems[0].reason and problems[0].fatal


def test_unreadable_and_crsless_files_are_named(tmp_path: Path) -> None:
    scene(tmp_path)
    bad = tmp_path / "T31UFQ_20230412T104629_B08_10m.tif"
    bad.write_bytes(b"II*\x00garbage")
    nocrs = tmp_path / "T31UFQ_20230412T104629_B02_10m.tif"
    write_raster(nocrs, np.ones((8, 8), np.uint16), G10, crs=False)
    acqs, problems = scan_band_files(tmp_path, S2)
    reasons = {Path(p.path).name: p.reason for p in problems}
    assert "cannot open raster" in reasons[bad.name]
    assert "no CRS" in reasons[nocrs.name]
    assert set(acqs[0].assets) == {"red", "swir16"}
    with pytest.raises(InputError, match="no file name matches"):
        scan_band_files(tmp_path / "..", SensorProfile.from_mapping(
            {"name": "x", "bands": {"b": "red"}, "filename_pattern": r"(?P<date>\d{12})(?P<band>Q)"}))
    with pytest.raises(CRSError):
        GridSpec("EPSG:32631", Affine(10, 1, 0, 0, -10, 0), 2, 2)


def test_twenty_metre_band_read_by_nearest_on_a_ten_metre_window(tmp_path: Path) -> None:
    scene(tmp_path)
    acq = scan_band_files(tmp_path, S2)[0][0]
    window = G10.window_grid(Window(1, 2, 4, 3))
    got = read_asset(acq.assets["swir16"], window)
    b20 = np.arange(16).reshape(4, 4) + 1000
    expect = np.kron(b20, np.ones((2, 2), int))[2:5, 1:5]
    np.testing.assert_array_equal(got, expect)
    assert got.dtype == np.uint16
    # a window hanging over the raster edge is filled with nodata
    edge = G10.window_grid(Window(6, 6, 4, 4))
    edge_grid = GridSpec(G10.crs, edge.transform, 4, 4)
    red = read_asset(acq.assets["red"], edge_grid)
    assert (red[:2, :2] == 1500).all() and (red[2:, :] == 0).all() and (red[:, 2:] == 0).all()


def test_grid_windows_and_index_map() -> None:
    w = G10.window_of_bounds((600015, 4999935, 600035, 4999985))
    assert (w.col_off, w.row_off, w.width, w.height) == (1, 1, 3, 6)
    assert G10.window_of_bounds((0, 0, 1, 1)).width == 0
    g20 = GridSpec(G10.crs, G10.transform @ Affine.scale(2), 4, 4)
    rows, cols = index_map(G10, g20)
    assert rows.tolist() == cols.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert G10.bounds == (600000, 4999920, 600080, 5000000)
