"""Labels stay honest when the data move: shifted regions are flagged, harmless years are not.

The cases are built by ``tests/support/shift_cases.py`` (two small simulated regions,
real extraction, training and prediction through the pipeline's stages).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from shift_cases import TARGETS, build, outcomes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("shift")
    built = build(root)
    return root, outcomes(root, built)


def _kept_share(folder: Path, target: str, season: str | None = None) -> float:
    """Share of the fields confident enough to label that the OOD and shift checks kept."""
    pred = pd.read_parquet(folder / "predictions.parquet")
    if season is not None:
        pred = pred[pred["season"].astype(str) == season]
    why = pred[f"{target}_why"].fillna("")
    unlike = why.str.startswith(("unlike the training data", "this run's fields differ"))
    ok = pred[f"{target}_status"] == "ok"
    return float(ok.sum() / max(int(ok.sum() + unlike.sum()), 1))


@pytest.mark.parametrize("case", ["fresh_region", "ndti_plus_0.02", "ndti_plus_0.05",
                                  "indices_x0.8", "new_year"])
def test_labels_given_are_as_accurate_as_the_card_says_or_the_run_is_withheld(
        cases: tuple[Path, pd.DataFrame], case: str) -> None:
    _, table = cases
    for _, row in table[table["case"] == case].iterrows():
        honest = (row["accuracy_ok"] >= row["card_accuracy"] - 0.05
                  if row["labelled_share"] > 0 else True)
        withheld = row["run_flagged"] and row["labelled_share"] == 0
        assert honest or withheld, row.to_dict()


@pytest.mark.parametrize("case", ["ndti_plus_0.05", "indices_x0.8"])
def test_harmful_shifts_are_flagged_and_name_the_shifted_features(
        cases: tuple[Path, pd.DataFrame], case: str) -> None:
    root, table = cases
    rows = table[(table["case"] == case)]
    assert rows["run_flagged"].all() and (rows["labelled_share"] == 0).all()
    pred = pd.read_parquet(root / f"B-{case}" / "predictions.parquet")
    why = pred.loc[pred["tillage_status"] == "uncertain", "tillage_why"]
    assert why.str.contains("differ from the training data more than any held-out region").any()
    assert why.str.contains(r"most shifted: \w+ \(PSI \+", regex=True).any()


def test_a_harmless_new_year_and_a_fresh_region_keep_their_labels(
        cases: tuple[Path, pd.DataFrame]) -> None:
    root, table = cases
    for case in ("new_year", "fresh_region"):
        assert not table.loc[table["case"] == case, "run_flagged"].any()
    for target in TARGETS:
        assert _kept_share(root / "A-out", target, season="2024") >= 0.8
        assert _kept_share(root / "B-out", target) >= 0.8
    # Fewer or cloudier scenes move the observation counts, which raise no warning.
    import json

    for folder in ("A-out", "B-out"):
        drift = json.loads((root / folder / "drift.json").read_text())["drift"]
        for target in TARGETS:
            assert drift[target]["warning"] is None
            assert any(f.startswith("obs_") for f in drift[target]["instrumentation_drifted"])


@pytest.mark.xfail(strict=True, reason=(
    "known limitation: a class never seen in training whose signature overlaps a known "
    "class (conventional vs reduced tillage) is labelled as that class; neither per-field "
    "OOD, class-conditional distances nor run-level shift separate it (docs/models.md)"))
def test_a_class_never_seen_in_training_does_not_pass_as_a_known_one(
        cases: tuple[Path, pd.DataFrame]) -> None:
    _, table = cases
    row = table[(table["case"] == "unseen_class") & (table["target"] == "tillage")].iloc[0]
    assert (row["run_flagged"] and row["labelled_share"] == 0) or (
        row["accuracy_ok"] >= row["card_accuracy"] - 0.05)
