"""End to end: `regenmap demo` on the small simulated region, through the real console script."""

import json
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from scripts import console_script

from regenmap.schema import FIELD_ID, confidence_column, proba_column, status_column

pytestmark = pytest.mark.slow

TARGETS = {"tillage": 3, "winter_cover": 2}


#: An unusual umask, so that a file written with a fixed mode would show.
UMASK = 0o027
_STDERR: dict[Path, str] = {}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    exe = console_script("regenmap")
    done = subprocess.run([exe, "demo", "--out", str(out), "--quiet"], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "COLUMNS": "160"},
                          preexec_fn=lambda: os.umask(UMASK))
    assert done.returncode == 0, done.stderr + done.stdout
    _STDERR[out] = done.stderr
    return out, done.stdout


def test_every_output_honours_the_umask(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    want_file, want_dir = 0o666 & ~UMASK, 0o777 & ~UMASK  # what open() and mkdir() give
    wrong = [f"{p.relative_to(out)} {stat.S_IMODE(p.stat().st_mode):o}" for p in out.rglob("*")
             if stat.S_IMODE(p.stat().st_mode) != (want_dir if p.is_dir() else want_file)]
    assert not wrong, f"not {want_file:o}/{want_dir:o}: {wrong}"
    assert len(list(out.rglob("*"))) > 40


def test_quiet_standard_error_is_json_lines_ending_with_the_outcome(
        demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    lines = _STDERR[out].splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    assert events[0]["event"] == "start"
    last = events[-1]
    assert (last["event"], last["stage"], last["status"], last["exit_code"]) == (
        "finished", "run", "ok", 0)
    assert set(last["metrics"]) == set(TARGETS)
    assert all(0 < v["macro_f1"] <= 1 for v in last["metrics"].values())
    paths = [Path(p) for stage in last["outputs"].values() for p in stage.values()]
    assert out / "practices.gpkg" in paths and out / "report.html" in paths
    assert all(p.exists() for p in paths)
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["read"] == summary["acquisitions"] > 50 and summary["failed"] == 0


def test_geopackage_has_one_styled_row_per_field(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    gpkg = out / "practices.gpkg"
    assert "fields" in pyogrio.list_layers(gpkg)[:, 0]
    result = pyogrio.read_dataframe(gpkg, layer="fields")
    fields = pyogrio.read_dataframe(out / "region" / "fields.gpkg", layer="fields")
    assert result.crs == fields.crs
    assert result[FIELD_ID].is_unique
    assert set(result[FIELD_ID]) == set(fields[FIELD_ID])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_probabilities_are_distributions(demo_run: tuple[Path, str], target: str) -> None:
    out, _ = demo_run
    result = pyogrio.read_dataframe(out / "practices.gpkg", layer="fields", read_geometry=False)
    probas = result[[c for c in result.columns if c.startswith(proba_column(target, ""))]]
    assert probas.shape[1] == TARGETS[target]
    labelled = result[status_column(target)].isin(["ok", "uncertain"]).to_numpy()
    assert labelled.mean() > 0.8, "most demo fields should get a label"
    p = probas.to_numpy(dtype=float)[labelled]
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    conf = result[confidence_column(target)].to_numpy(dtype=float)[labelled]
    np.testing.assert_allclose(conf, p.max(axis=1), atol=1e-5)


def test_heldout_skill_clearly_above_chance(demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    assert "held-out" in stdout
    for target in TARGETS:
        metadata = json.loads((out / "model" / target / "metadata.json").read_text())
        assert "macro_f1" in json.dumps(metadata)
    from regenmap.pipelines.config import load_config
    from regenmap.pipelines.summary import heldout_metrics

    found = heldout_metrics(load_config(out / "demo.yaml"))
    for target, n_classes in TARGETS.items():
        # a uniform guess has a macro-F1 of about 1 / n_classes
        assert found[target]["macro_f1"] > 1 / n_classes + 0.2, (target, found[target])


def test_rerun_does_nothing_and_says_so(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    exe = console_script("regenmap")
    before = (out / "practices.gpkg").stat().st_mtime_ns
    done = subprocess.run([exe, "run", str(out / "demo.yaml"), "--quiet"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {e["event"] for e in events} >= {"skipped", "nothing-to-do"}
    assert (out / "practices.gpkg").stat().st_mtime_ns == before


def test_map_tells_which_fields_were_trained_on_and_what_features_mean(
        demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    gpkg = out / "practices.gpkg"
    result = pyogrio.read_dataframe(gpkg, layer="fields", read_geometry=False)
    assert result["tillage_in_training"].all()  # every demo field is labelled
    dictionary = pyogrio.read_dataframe(gpkg, layer="feature_dictionary")
    assert {"name", "unit", "description", "used_by"} <= set(dictionary.columns)
    # every feature a reason names is in the dictionary table
    ok = result[result["tillage_status"] == "ok"]
    assert len(ok) > 50
    assert ok["tillage_why"].str.contains(" -> ").all()
    # the summary states the held-out operating point, not in-sample counts as skill
    assert "labelled at the threshold" in stdout and "held out" in stdout


def test_adoption_areas_with_intervals_in_table_summary_and_report(
        demo_run: tuple[Path, str]) -> None:
    out, stdout = demo_run
    table = pyogrio.read_dataframe(out / "practices.gpkg", layer="adoption_areas")
    truth_cols = ["field_id", "region", *TARGETS]
    region = pyogrio.read_dataframe(out / "region" / "fields.gpkg", read_geometry=False)[truth_cols]
    mapped = pyogrio.read_dataframe(out / "practices.gpkg", layer="fields", read_geometry=False)
    region = region.merge(mapped[["field_id", "area_ha"]], on="field_id")  # areas as mapped
    total = float(region["area_ha"].sum())
    for target, k in TARGETS.items():
        whole = table[(table["target"] == target) & (table["domain"] == "all")]
        assert len(whole) == k
        # Shares of the assessed area add up to one and each interval holds its estimate.
        assert whole["share"].sum() == pytest.approx(1.0)
        assert (whole["area_ci_low_ha"] <= whole["area_ha"]).all()
        assert (whole["area_ha"] <= whole["area_ci_high_ha"]).all()
        assert whole["assessed_ha"].iloc[0] == pytest.approx(total, rel=1e-6)
        # Every demo field is labelled: the simulator's class areas lie in the intervals.
        truth = region.groupby(target)["area_ha"].sum()
        for _, row in whole.iterrows():
            assert row["area_ci_low_ha"] <= truth[row["class"]] <= row["area_ci_high_ha"]
        # Per region too, and the regions add up to the whole.
        regions = table[(table["target"] == target) & (table["domain"] != "all")]
        assert set(regions["domain"]) == {f"region={r}" for r in region["region"].unique()}
        assert regions["area_ha"].sum() == pytest.approx(whole["area_ha"].sum(), rel=1e-6)
    assert "adoption: area per class corrected for held-out errors" in stdout
    assert "need a field visit" in stdout
    report = (out / "report.html").read_text()
    assert "<h2>Headline</h2>" in report and "Expected accuracy of the labels given" in report


def test_shared_artifacts_name_paths_relative_to_the_output_folder(
        demo_run: tuple[Path, str]) -> None:
    import sqlite3

    out, _ = demo_run
    shared = [out / "report.html", out / "drift.json", *sorted(out.glob("evaluation/*.json")),
              *sorted(out.glob("model/*/model_card.*")), *sorted(out.glob("model/*/datasheet.*")),
              *sorted(out.glob("model/*/metadata.json"))]
    assert len(shared) > 10
    for path in shared:
        assert str(out) not in path.read_text(), path
    with sqlite3.connect(out / "practices.gpkg") as db:
        for table in ("run", "adoption_areas", "feature_dictionary"):
            rows = db.execute(f'SELECT * FROM "{table}"').fetchall()
            assert rows and not any(str(out) in str(v) for r in rows for v in r), table


def test_datasheet_and_card_are_filled_from_the_demo_configuration(
        demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    sheet = json.loads((out / "model" / "tillage" / "datasheet.json").read_text())
    assert sheet["missing"] == [] and sheet["numbers"]["n_fields"] == 315
    assert len(sheet["numbers"]["label_file"]["sha256"]) == 64
    card = json.loads((out / "model" / "tillage" / "model_card.json").read_text())
    assert card["missing"] == [] and card["training_data"]["datasheet"] == "datasheet.html"
    assert card["training_data"]["label_source"] == "region/fields.gpkg"
