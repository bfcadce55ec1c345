"""Users' own series, start to finish: long format, other indices, no geometry, sparse dates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from regenmap.errors import ModelError
from regenmap.features.testing import synthetic_observations
from regenmap.pipelines import run

FAST = {"n_bootstrap": 20, "n_folds": 3, "group_column": None, "random_folds": True,
        "training": {"num_boost_round": 40, "early_stopping_rounds": 5},
        "lightgbm": {"num_leaves": 7, "min_data_in_leaf": 5},
        # NBR, not NDTI, carries the residue signal here: tillage needs no NDTI
        "withhold_flags": {"all": ["flag_few_obs"]}}


def two_seasons_long(folder: Path, *, n_obs: int = 60, same_dates: bool = False) -> None:
    """NBR and kNDVI only, one row per (field, date, variable), and labels per season.

    With ``same_dates`` every field is seen on the same dates, every 16 days from April
    (like a sparse satellite series): the first and last quarters have no observation.
    """
    frames, labels = [], []
    for year, seed in ((2022, 1), (2023, 2)):
        obs, truth = synthetic_observations(90, n_obs=n_obs, start=f"{year}-01-01", seed=seed,
                                            cloud_share=0.0)
        if same_dates:
            dates = pd.Timestamp(f"{year}-04-01") + pd.to_timedelta(16 * np.arange(n_obs), "D")
            obs["time"] = np.tile(dates.to_numpy(), len(obs) // n_obs)
        ndvi, ndti = obs["ndvi_mean"].to_numpy(), obs["ndti_mean"].to_numpy()
        for name, values in (("kNDVI", np.tanh(ndvi ** 2)), ("NBR", 0.5 * ndvi + 2.0 * ndti)):
            frames.append(pd.DataFrame({"plot": obs["field_id"], "date": obs["time"].dt.date,
                                        "variable": name, "value": values}))
        frames.append(pd.DataFrame({"plot": obs["field_id"], "date": obs["time"].dt.date,
                                    "variable": "comment", "value": "ok"}))
        labels.append(truth.assign(season=str(year))[["field_id", "season", "tillage"]])
    pd.concat(frames).to_csv(folder / "series.csv", index=False)
    pd.concat(labels).to_csv(folder / "labels.csv", index=False)


def job(folder: Path, **model: object) -> Path:
    config = {"name": "own", "out_dir": "out",
              "observations": {"path": "series.csv", "id_column": "plot"},
              "model": {"targets": ["tillage"],
                        "labels": {"path": "labels.csv", "id_column": "field_id"},
                        **FAST, **model}}
    path = folder / "job.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_long_table_of_other_indices_runs_start_to_finish_without_geometry(tmp_path: Path
                                                                          ) -> None:
    two_seasons_long(tmp_path)
    result = run(job(tmp_path), quiet=True)
    out = tmp_path / "out"
    assert "extract" not in result.outputs and set(result.outputs["predict"]) == {"predictions"}
    assert not (out / "practices.gpkg").exists()
    features = pd.read_parquet(out / "features.parquet")
    assert {"nbr_mean_year", "kndvi_p90_s2", "phen_pos_day"} <= set(features.columns)
    assert sorted(features["season"].unique()) == ["2022", "2023"]
    # phenology read kNDVI when there is no NDVI
    assert features["phen_pos_day"].notna().mean() > 0.9
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert len(predictions) == 180 and predictions["tillage"].notna().mean() > 0.9
    report = json.loads((out / "evaluation" / "tillage.json").read_text())
    assert report["overall"]["accuracy"] > 0.6  # NBR carries the residue signal
    assert report["year_transfer"]["trained_on"] == {"2022": ["2023"], "2023": ["2022"]}


def test_a_ten_date_series_trains_leaving_empty_windows_out(tmp_path: Path) -> None:
    two_seasons_long(tmp_path, n_obs=10, same_dates=True)
    run(job(tmp_path, min_label_share=0.0, withhold_flags={}), quiet=True)
    meta = json.loads((tmp_path / "out" / "model" / "tillage" / "metadata.json").read_text())
    assert meta["training"]["n_labelled"] == 180
    dropped = meta["training"]["dropped_features"]
    assert {"kndvi_mean_s1", "nbr_p90_s4"} <= set(dropped)  # no date in those quarters
    assert meta["features"] and not set(dropped) & set(meta["features"])
    card = (tmp_path / "out" / "model" / "tillage" / "model_card.md").read_text()
    assert "were left out because no labelled sample has a value" in card


def test_few_observations_leave_too_few_samples_and_stop_the_run(tmp_path: Path) -> None:
    two_seasons_long(tmp_path, n_obs=6)
    with pytest.raises(ModelError, match=r"only \d of its 180 labelled samples can be used.*"
                                         r"flag_few_obs"):
        run(job(tmp_path), quiet=True)
