"""The sampling loop end to end on the small simulated region, through the console script.

design -> simulated visit (the simulator's true labels) -> import -> assess -> next ->
visit -> import -> retrain on the collected labels; and imports that must be refused.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import yaml
from scripts import console_script
from sim_jobs import make_job, shared_root

from regenmap.geo.simulate.visit import simulated_visit
from regenmap.pipelines.job import run

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script("regenmap"), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """A run trained on 60 random fields of the small region; its config and the truth."""
    root = shared_root(tmp_path_factory)
    cfg = make_job(root, "sampling", tile_size_px=2048,
                   cluster={"n_workers": 1, "processes": False})
    truth = pyogrio.read_dataframe(root / "region" / "fields.gpkg", layer="fields",
                                   read_geometry=False)
    labels = truth.sample(60, random_state=0)[["field_id", "tillage", "winter_cover"]]
    labels.to_csv(root / "labels60.csv", index=False)
    data = yaml.safe_load(cfg.read_text())
    data["model"]["labels"] = {"path": str(root / "labels60.csv")}
    # Few labels: leaves of 5 fields, so the model learns something from 60 of them.
    data["model"]["lightgbm"] = {"min_data_in_leaf": 5, "num_leaves": 7}
    cfg.write_text(yaml.safe_dump(data))
    run(cfg, quiet=True)
    return cfg, Path(data["out_dir"]), truth


@pytest.fixture(scope="module")
def design(job: tuple[Path, Path, pd.DataFrame]) -> Path:
    cfg, out, _ = job
    done = _cli("sample", "design", str(cfg), "--n", "60", "--seed", "3")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "60 fields in" in done.stdout
    return out / "sampling" / "design"


def test_design_files_for_the_field_team(job, design):
    _, _out, truth = job
    form = pd.read_csv(design / "design.csv", dtype=str)
    assert len(form) == 60 and form["field_id"].is_unique
    assert set(form["field_id"]) <= set(truth["field_id"])
    assert {"tillage", "winter_cover", "outcome", "observer", "visit_date", "method",
            "lon", "lat", "stratum", "inclusion_prob", "cluster", "visit_order"} <= set(form)
    assert form["tillage"].isna().all()  # the form is empty
    # Visit orders run 1..n within each cluster.
    for _, part in form.groupby("cluster"):
        assert sorted(part["visit_order"].astype(int)) == list(range(1, len(part) + 1))
    layer = pyogrio.read_dataframe(design / "design.gpkg", layer="sample")
    assert len(layer) == 60 and layer.crs is not None
    info = json.loads((design / "sample.json").read_text())
    strata = pd.DataFrame(info["strata"])
    assert strata["n"].sum() == 60
    # Inclusion probability of each field = n_h / N_h of its stratum.
    sample = pd.read_parquet(design / "sample.parquet").merge(
        strata[["stratum", "N_eligible", "n"]], on="stratum")
    np.testing.assert_allclose(sample["inclusion_prob"], sample["n"] / sample["N_eligible"])


def test_visit_import_assess_next_and_retrain(job, design, tmp_path):
    cfg, out, _truth = job
    form = pd.read_csv(design / "design.csv", dtype=str)
    filled = simulated_visit(form, out.parent / "region" / "fields.gpkg", no_access=0.1, seed=1)
    filled.to_csv(tmp_path / "design_filled.csv", index=False)
    n_visited = int((filled["outcome"] == "labelled").sum())
    done = _cli("sample", "import", str(cfg), str(tmp_path / "design_filled.csv"))
    assert done.returncode == 0, done.stderr + done.stdout
    assert f"{n_visited} labelled fields imported from sample design" in done.stdout
    labels = pd.read_parquet(out / "sampling" / "labels.parquet")
    imported = labels[labels["sample"] == "design"]
    assert len(imported) == n_visited
    assert (imported["observer"] == "simulator").all() and (imported["method"] == "remote").all()
    assert (imported["purpose"] == "accuracy").all()
    # The configured labels were copied in first, with their provenance; a field labelled
    # there and visited again keeps one row, the visit's.
    configured = set(pd.read_csv(out.parent / "labels60.csv")["field_id"])
    again = configured & set(imported["field_id"])
    assert (labels["method"] == "configured labels").sum() == 60 - len(again)
    assert len(labels) == len(configured | set(imported["field_id"]))

    done = _cli("assess", str(cfg))
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads((out / "sampling" / "design" / "assessment.json").read_text())
    fields = pyogrio.read_dataframe(out.parent / "region" / "fields.gpkg", layer="fields",
                                    read_geometry=False)
    total = fields["area_ha"].sum()
    for target in ("tillage", "winter_cover"):
        e = result["targets"][target]
        assert e["n_labelled"] == n_visited
        # Calibrated to the mapped areas: the class areas add up to the whole area.
        assert sum(a["value"] for a in e["area"].values()) == pytest.approx(total, rel=1e-9)
        assert sum(e["mapped_area_ha"].values()) == pytest.approx(total, rel=1e-9)
        assert 0 <= e["overall_accuracy"]["value"] <= 1
        assert any("non-response" in n for n in e["notes"])
    table = pyogrio.read_dataframe(out / "practices.gpkg", layer="assessment")
    assert set(table["target"]) == {"tillage", "winter_cover"}
    assert (out / "sampling" / "design" / "assessment.html").is_file()

    done = _cli("sample", "next", str(cfg), "--budget", "20", "--clusters", "2")
    assert done.returncode == 0, done.stderr + done.stdout
    chosen = pd.read_parquet(out / "sampling" / "next" / "sample.parquet")
    assert len(chosen) == 20 and set(chosen["cluster"]) == {1, 2}
    assert not chosen["field_id"].isin(labels["field_id"]).any()  # never a labelled field
    assert chosen["reason"].str.startswith("uncertainty ").all()
    nxt = pd.read_csv(out / "sampling" / "next" / "next.csv", dtype=str)
    simulated_visit(nxt, out.parent / "region" / "fields.gpkg").to_csv(tmp_path / "next.csv",
                                                                       index=False)
    done = _cli("sample", "import", str(cfg), str(tmp_path / "next.csv"),
                "--observer", "team B")
    assert done.returncode == 0, done.stderr + done.stdout

    data = yaml.safe_load(cfg.read_text())
    data["model"]["labels"] = {"path": str(out / "sampling" / "labels.parquet")}
    retrain = cfg.with_name("sampling_retrain.yaml")
    retrain.write_text(yaml.safe_dump(data))
    done = _cli("train", str(retrain))
    assert done.returncode == 0, done.stderr + done.stdout
    meta = json.loads((out / "model" / "tillage" / "metadata.json").read_text())
    n_all = len(pd.read_parquet(out / "sampling" / "labels.parquet"))
    # Every collected label is used, or counted among the samples prediction would withhold.
    training = meta["training"]
    assert training["n_labelled"] + training.get("n_labelled_withheld", 0) == n_all


@pytest.mark.parametrize(("edit", "message"), [
    (lambda f: f.assign(tillage=["zero_till", *f["tillage"].iloc[1:]]),
     "column 'tillage' holds unknown class(es) ['zero_till']"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "fields appear more than once"),
    (lambda f: f.assign(field_id=["F99999", *f["field_id"].iloc[1:]]), "unknown field ids ['F99999']"),
])
def test_bad_imports_are_refused_with_the_reason(job, design, tmp_path, edit, message):
    cfg, out, _ = job
    form = pd.read_csv(design / "design.csv", dtype=str)
    bad = edit(simulated_visit(form, out.parent / "region" / "fields.gpkg"))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    before = (out / "sampling" / "labels.parquet").stat().st_mtime_ns \
        if (out / "sampling" / "labels.parquet").is_file() else None
    done = _cli("sample", "import", str(cfg), str(tmp_path / "bad.csv"))
    assert done.returncode == 3, done.stdout
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    after = (out / "sampling" / "labels.parquet").stat().st_mtime_ns \
        if (out / "sampling" / "labels.parquet").is_file() else None
    assert after == before  # nothing written


def test_fields_outside_the_design_are_refused(job, design, tmp_path):
    cfg, out, truth = job
    form = pd.read_csv(design / "design.csv", dtype=str)
    outside = sorted(set(truth["field_id"]) - set(form["field_id"]))[0]
    bad = simulated_visit(form, out.parent / "region" / "fields.gpkg")
    bad.loc[0, "field_id"] = outside
    bad.to_csv(tmp_path / "outside.csv", index=False)
    done = _cli("sample", "import", str(cfg), str(tmp_path / "outside.csv"), "--sample", "design")
    assert done.returncode == 3
    # Units are field x season (the map has a season column): the key names both.
    season = str(form["season"].iloc[0])
    assert f"fields ['{outside}@{season}'] are not in sample 'design'" in " ".join(
        done.stderr.split())


def test_a_returned_geopackage_is_imported_like_the_csv(job, design, tmp_path):
    cfg, out, _ = job
    layer = pyogrio.read_dataframe(design / "design.gpkg", layer="sample")
    filled = simulated_visit(layer, out.parent / "region" / "fields.gpkg", observer="team C",
                             method="field visit")
    # A team edits the GeoPackage in QGIS; here the filled layer is written to a copy.
    pyogrio.write_dataframe(filled, tmp_path / "returned.gpkg", layer="sample", driver="GPKG")
    done = _cli("sample", "import", str(cfg), str(tmp_path / "returned.gpkg"), "--replace")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "60 labelled fields imported from sample design" in done.stdout
    labels = pd.read_parquet(out / "sampling" / "labels.parquet")
    rows = labels[labels["sample"] == "design"]
    assert len(rows) == 60 and set(rows["observer"]) == {"team C"}
    assert set(rows["method"]) == {"field visit"}
