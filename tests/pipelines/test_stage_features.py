"""The features stage: from extracted observations or a user's own series to the features table."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from regenmap.errors import InputError
from regenmap.features.dictionary import feature_dictionary
from regenmap.features.testing import synthetic_observations
from regenmap.features.timegrid import MissingIndexWarning
from regenmap.io import parquet_meta as read_provenance
from regenmap.pipelines import features
from regenmap.pipelines.config import load_config, parse_config
from regenmap.schema import FEATURES_SCHEMA


def config(tmp_path: Path, **extra: object):  # type: ignore[no-untyped-def]
    data = {"out_dir": "out", "fields": {"path": "fields.gpkg"}, **extra}
    return parse_config(data, base_dir=tmp_path)


def band_csv(path: Path) -> None:
    """Sentinel-2 band names, a 'date' column and an 'ID' column, as exported elsewhere."""
    t = pd.date_range("2023-01-03", "2023-12-28", freq="6D")
    rows = []
    for f in range(4):
        x = np.exp(-(((t.day_of_year - 150 - 10 * f) / 35.0) ** 2))
        red, nir = 0.09 - 0.06 * x, 0.22 + 0.3 * x
        rows.append(pd.DataFrame({"ID": f"p{f}", "Date": t.strftime("%d %b %Y"), "B04": red,
                                  "B08": nir, "B02": 0.05, "B11": 0.25 - 0.05 * x,
                                  "B12": 0.2 - 0.06 * x, "crop": "wheat"}))
    pd.concat(rows).to_csv(path, index=False)


def test_user_csv_with_bands_enters_at_observations(tmp_path: Path) -> None:
    band_csv(tmp_path / "series.csv")
    cfg = config(tmp_path, observations="series.csv", fields={"path": "f.gpkg", "id_column": "ID"})
    path = features(cfg)["features"]
    assert path == tmp_path / "out" / "features.parquet"
    f = pd.read_parquet(path)
    assert f["field_id"].tolist() == ["p0", "p1", "p2", "p3"]
    extra = read_provenance(path)["features"]["extra_series"]
    assert extra == ["blue", "nir", "red", "swir16", "swir22"]  # the bands are series too
    assert list(f.columns[2:]) == feature_dictionary(extra)["name"].tolist()
    # NDVI computed from B04/B08: the summer peak is (0.52 - 0.03) / (0.52 + 0.03)
    assert f["phen_peak"].iloc[0] == pytest.approx((0.52 - 0.03) / 0.55, abs=0.03)
    assert f["ndti_mean_year"].notna().all() and f["bsi_mean_year"].notna().all()
    prov = read_provenance(path)
    assert prov["schema"] == FEATURES_SCHEMA
    assert prov["config_hash"] == cfg.hash()
    assert prov["inputs"] == [str(tmp_path / "series.csv")]
    assert prov["features"]["step_days"] == 10 and list(prov["features"]["seasons"]) == ["2023"]
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_user_index_table_without_swir_from_yaml(tmp_path: Path) -> None:
    t = pd.date_range("2023-01-01", periods=60, freq="6D")
    pd.DataFrame({"field_id": "a", "time": t, "NDVI": np.linspace(0.2, 0.8, 60)}).to_parquet(
        tmp_path / "ndvi.parquet")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "out_dir": "o", "fields": {"path": "f.gpkg"}, "observations": "ndvi.parquet",
        "features": {"step_days": 16, "composite": "median"}}))
    with pytest.warns(UserWarning) as caught:
        path = features(tmp_path / "run.yaml")["features"]
    assert any("no observation has BSI, EVI, NDMI, NDTI" in str(w.message) for w in caught)
    missing = sorted(str(w.message).split("'")[1] for w in caught
                     if isinstance(w.message, MissingIndexWarning))
    assert missing == ["bsi", "ndti"]
    f = pd.read_parquet(path)
    assert f["ndvi_max_year"].item() == pytest.approx(0.8, abs=0.02)
    assert f["flag_no_ndti"].item() == 1
    provenance = read_provenance(path)
    assert provenance["features"]["composite"] == "median"
    # features of indices no observation carries are left out of the job's table, and recorded
    absent = provenance["absent_indices"]
    assert sorted(absent) == ["bsi", "evi", "ndmi", "ndti"]
    assert not any(c.startswith(("ndti_", "bsi_", "evi_")) for c in f.columns)
    assert set(absent["ndti"]) <= set(feature_dictionary()["name"])


def test_observations_folder_from_extract(tmp_path: Path) -> None:
    obs, _ = synthetic_observations(30, n_obs=50, seed=2)
    folder = tmp_path / "out" / "observations"
    folder.mkdir(parents=True)
    ids = obs["field_id"].unique()
    obs[obs["field_id"].isin(ids[:10])].to_parquet(folder / "tile=0.parquet")
    obs[~obs["field_id"].isin(ids[:10])].to_parquet(folder / "tile=1.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = features(config(tmp_path))["features"]
    meta = json.loads(pq.read_schema(path).metadata[b"regenmap"])
    assert len(meta["inputs"]) == 2
    assert len(pd.read_parquet(path)) == 30


def test_missing_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="regenmap extract"):
        features(config(tmp_path))
    (tmp_path / "bad.csv").write_text("field_id,value\na,1\n")
    with pytest.raises(InputError, match=r"bad\.csv.*time column"):
        features(config(tmp_path, observations="bad.csv"))
    (tmp_path / "nobands.csv").write_text("field_id,date,crop\na,2023-01-01,wheat\n")
    with pytest.raises(InputError, match="no numeric series"):
        features(config(tmp_path, observations="nobands.csv"))


def test_load_config_path_is_accepted(tmp_path: Path) -> None:
    band_csv(tmp_path / "s.csv")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "out_dir": "o", "fields": {"path": "f.gpkg", "id_column": "ID"}, "observations": "s.csv"}))
    assert features(load_config(tmp_path / "c.yaml"))["features"].is_file()
