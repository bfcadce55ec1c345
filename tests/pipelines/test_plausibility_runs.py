"""Wrong scales and offsets stop a run with the cause, instead of giving numbers from nothing."""

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
from regenmap.features.testing import synthetic_observations
from regenmap.geo.grid import GridSpec
from regenmap.geo.sentinel2 import reflectance_to_dn
from regenmap.geo.testing import write_s2_scene
from regenmap.pipelines import extract, features
from regenmap.pipelines.config import parse_config

X0, Y0 = 500000.0, 5000400.0
GRID = GridSpec("EPSG:32631", Affine(10, 0, X0, 0, -10, Y0), 40, 40)


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as c:
        yield c


def harmonized_scene(folder: Path) -> None:
    """A scene in Earth Engine's S2_SR_HARMONIZED encoding (no +1000 DN offset), 2023."""
    def dn(reflectance: float, shape: tuple[int, int]) -> np.ndarray:
        return reflectance_to_dn(np.full(shape, reflectance - 0.1))  # drops the +1000

    write_s2_scene(folder, tile="31UFQ", when=datetime(2023, 6, 1, 10, 46, 29), grid10=GRID,
                   bands={"B02": dn(0.05, (40, 40)), "B04": dn(0.09, (40, 40)),
                          "B08": dn(0.12, (40, 40)), "B11": dn(0.2, (20, 20)),
                          "B12": dn(0.15, (20, 20))},
                   scl=np.full((20, 20), 4, np.uint8))


def test_a_harmonized_stack_read_with_the_offset_rule_is_caught(tmp_path: Path,
                                                                  client: Client) -> None:
    harmonized_scene(tmp_path / "scenes")
    gpd.GeoDataFrame({"field_id": ["a", "b"]},
                     geometry=[shapely.box(X0, Y0 - 200, X0 + 200, Y0),
                               shapely.box(X0 + 200, Y0 - 400, X0 + 400, Y0 - 200)],
                     crs=GRID.crs).to_file(tmp_path / "fields.gpkg")
    data = {"out_dir": "out", "fields": {"path": "fields.gpkg"}, "scenes": {"path": "scenes"},
            "extract": {"indices": ["NDVI", "NDTI"], "stats": ["mean"]}}
    with pytest.raises(InputError, match=r"1 of 1 acquisitions hold implausible values, e\.g\. "
                                         r"NDVI: 100% of 2 values lie outside \[-1, 1\]"):
        extract(parse_config(data, base_dir=tmp_path), client=client)
    # the statuses were written before stopping, and name the problem per acquisition
    scenes = pd.read_parquet(tmp_path / "out" / "scenes_status.parquet")
    assert scenes["reason"].str.contains("implausible values: NDVI").any()
    data["extract"]["max_implausible_share"] = 1.0
    data["out_dir"] = "out2"
    out = extract(parse_config(data, base_dir=tmp_path), client=client)
    assert pd.read_parquet(out["scenes_status"])["severity"].eq("warning").any()


def test_a_user_table_x10000_stops_until_scaled(tmp_path: Path) -> None:
    obs, _ = synthetic_observations(5, n_obs=30, seed=4, cloud_share=0.0)
    table = obs[["field_id", "time"]].assign(NDVI=(obs["ndvi_mean"] * 10000).round())
    table.to_csv(tmp_path / "ndvi.csv", index=False)
    data = {"out_dir": "out", "observations": "ndvi.csv",
            "model": {"labels": {"path": "ndvi.csv"}}}
    with pytest.raises(InputError, match=r"ndvi\.csv: implausible values: NDVI: 100% of 150 "
                                         r"values .* multiplied by 10000: scale them by 0\.0001"):
        features(parse_config(data, base_dir=tmp_path))
    data["observations"] = {"path": "ndvi.csv", "scale": 0.0001}
    with pytest.warns(UserWarning):  # NDTI and BSI are absent: their features are left out
        out = features(parse_config(data, base_dir=tmp_path))
    assert pd.read_parquet(out["features"])["ndvi_max_year"].between(0.5, 1).all()
