"""A two-year simulated job with labels per season, from scenes to the GeoPackage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyogrio
import pytest
import yaml

from regenmap.pipelines import run

N_DATES = 24


@pytest.fixture(scope="module")
def two_year_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from regenmap.geo.simulate import simulate_region

    root = tmp_path_factory.mktemp("seasons")
    simulate_region(root / "region", size="small", seed=5, n_dates=N_DATES, years=2)
    config = {
        "name": "two-years", "out_dir": "out", "seed": 0,
        "fields": {"path": "region/fields.gpkg", "layer": "fields"},
        "scenes": {"path": "region/scenes", "sensor": "sentinel2_l2a"},
        "extract": {"indices": ["NDVI", "NDTI", "BSI"], "stats": ["mean"], "tile_size_px": 2048},
        "model": {"labels": {"path": "region/labels.csv", "season_column": "season"},
                  "group_column": "region", "n_bootstrap": 20, "n_folds": 3,
                  "training": {"num_boost_round": 60, "early_stopping_rounds": 10}},
        "outputs": {"maps": False},
        "cluster": {"n_workers": 1, "processes": False},
    }
    (root / "job.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    run(root / "job.yaml", quiet=True)
    return root


def test_every_field_is_described_and_labelled_in_both_seasons(two_year_run: Path) -> None:
    out = two_year_run / "out"
    labels = pd.read_csv(two_year_run / "region" / "labels.csv")
    features = pd.read_parquet(out / "features.parquet")
    per_field = features.groupby("field_id")["season"].apply(lambda s: ",".join(sorted(s)))
    assert (per_field == "2023,2024").all()
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert len(predictions) == len(labels) == 2 * labels["field_id"].nunique()
    # the practices changed between the years for some fields, and the labels follow them
    changed = labels.pivot(index="field_id", columns="season", values="tillage")
    assert (changed[2023] != changed[2024]).sum() > 10


def test_geopackage_shows_the_latest_season_and_keeps_every_season(two_year_run: Path) -> None:
    gpkg = two_year_run / "out" / "practices.gpkg"
    layers = dict(pyogrio.list_layers(gpkg))
    assert {"fields", "fields_by_season"} <= set(layers)
    fields = pyogrio.read_dataframe(gpkg, layer="fields", read_geometry=False)
    assert set(fields["season"]) == {"2024"}
    seasons = pyogrio.read_dataframe(gpkg, layer="fields_by_season", read_geometry=False)
    assert sorted(seasons["season"].unique()) == ["2023", "2024"]
    assert len(seasons) == 2 * len(fields)
    styles = pyogrio.read_dataframe(gpkg, layer="layer_styles", read_geometry=False)
    assert "fields_by_season" in set(styles["f_table_name"])


def test_skill_per_season_and_across_years(two_year_run: Path) -> None:
    report = json.loads((two_year_run / "out" / "evaluation" / "tillage.json").read_text())
    assert set(report["disaggregated"]["factors"]) >= {"region", "season"}
    transfer = report["year_transfer"]
    assert transfer["trained_on"] == {"2023": ["2024"], "2024": ["2023"]}
    assert 0 < transfer["mean_accuracy"] <= 1
    card = (two_year_run / "out" / "model" / "tillage" / "model_card.md").read_text()
    assert "Across years" in card and "2024" in card
