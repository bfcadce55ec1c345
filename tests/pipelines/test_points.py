"""Point labels: refused unless a footprint rule is given, then read as pixels, hand-checked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from distributed import Client

from regenmap.errors import InputError
from regenmap.geo.grid import GridSpec
from regenmap.geo.sentinel2 import reflectance_to_dn
from regenmap.geo.testing import write_s2_scene
from regenmap.pipelines import extract
from regenmap.pipelines.config import parse_config

X0, Y0 = 500000.0, 5000400.0
GRID = GridSpec("EPSG:32631", Affine(10, 0, X0, 0, -10, Y0), 40, 40)
WHEN = datetime(2023, 4, 10, 10, 46, 29)
#: NIR reflectance = 0.2 + 0.01 * column: each pixel's NDVI is known by its column.
NIR = 0.2 + 0.01 * np.arange(40)[None, :].repeat(40, axis=0)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("points") / "scenes"
    write_s2_scene(folder, tile="31UFQ", when=WHEN, grid10=GRID,
                   bands={"B04": reflectance_to_dn(np.full((40, 40), 0.1)),
                          "B08": reflectance_to_dn(NIR)}, scl=np.full((20, 20), 4, np.uint8))
    return folder


def ndvi(col: int) -> float:
    nir = round((0.2 + 0.01 * col + 0.1) * 1e4) / 1e4 - 0.1  # through the DN encoding
    return (nir - 0.1) / (nir + 0.1)


def run(tmp: Path, scenes: Path, client: Client, **options: object) -> pd.DataFrame:
    # points in geographic coordinates, in pixel (row 5, col 7) and (row 30, col 33)
    utm = gpd.GeoSeries([shapely.Point(X0 + 75, Y0 - 55), shapely.Point(X0 + 335, Y0 - 305)],
                        crs=GRID.crs)
    gpd.GeoDataFrame({"field_id": ["p1", "p2"]}, geometry=utm.to_crs("EPSG:4326"),
                     crs="EPSG:4326").to_file(tmp / "points.gpkg")
    fields = {"path": "points.gpkg", **{k: v for k, v in options.items() if k == "point_pixels"}}
    extract_opts = {"indices": ["NDVI"], "stats": ["mean", "count"], "inner_buffer_px": 0.5,
                    **{k: v for k, v in options.items() if k != "point_pixels"}}
    cfg = parse_config({"out_dir": "out", "fields": fields,
                        "scenes": {"path": str(scenes)}, "extract": extract_opts}, base_dir=tmp)
    out = extract(cfg, client=client)
    obs = pd.concat(pd.read_parquet(p) for p in out["observations"].glob("tile=*.parquet"))
    return obs.set_index("field_id").join(
        pd.read_parquet(out["fields_status"]).set_index("field_id")[["status", "footprint"]])


def test_points_without_a_rule_stop_the_run_and_say_how(tmp_path: Path, scenes: Path,
                                                        client: Client) -> None:
    with pytest.raises(InputError, match=r"no field can be labelled: 2 error.*not a polygon: "
                                         r"to use point labels, set fields.point_pixels"):
        run(tmp_path, scenes, client)


def test_a_one_pixel_point_is_too_small_unless_min_pixels_allows(tmp_path: Path, scenes: Path,
                                                               client: Client) -> None:
    with pytest.raises(InputError, match=r"2 too_small.*1 pixel\(s\).*set it to 1"):
        run(tmp_path, scenes, client, point_pixels=0)
    (tmp_path / "again").mkdir()
    obs = run(tmp_path / "again", scenes, client, point_pixels=0, min_pixels=1)
    assert obs.loc["p1", "n_pixels"] == 1 and obs.loc["p2", "n_pixels"] == 1
    assert obs.loc["p1", "ndvi_mean"] == pytest.approx(ndvi(7), abs=1e-5)
    assert obs.loc["p2", "ndvi_mean"] == pytest.approx(ndvi(33), abs=1e-5)
    assert set(obs["status"]) == {"ok"}
    assert set(obs["footprint"]) == {"point: the pixel it falls in"}


def test_a_buffered_point_reads_the_square_around_it(tmp_path: Path, scenes: Path,
                                                     client: Client) -> None:
    obs = run(tmp_path, scenes, client, point_pixels=1)
    assert obs.loc["p1", "n_pixels"] == 9
    expected = np.mean([ndvi(c) for c in (6, 7, 8)])
    assert obs.loc["p1", "ndvi_mean"] == pytest.approx(expected, abs=1e-5)
    assert set(obs["footprint"]) == {"point: 3 x 3 pixels around the pixel it falls in"}
