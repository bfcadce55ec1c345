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
    unlike = why.str.startswith(("unlike the training data", "this run's"))
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
    "class (conventional vs reduced tillage) is labelled as that class; per-field OOD and "
    "class-conditional distances do not separate it, and in this region pair an accurate "
    "held-out region's class mix moved further than the run's (docs/models.md)"))
def test_a_class_never_seen_in_training_does_not_pass_as_a_known_one(
        cases: tuple[Path, pd.DataFrame]) -> None:
    _, table = cases
    row = table[(table["case"] == "unseen_class") & (table["target"] == "tillage")].iloc[0]
    assert (row["run_flagged"] and row["labelled_share"] == 0) or (
        row["accuracy_ok"] >= row["card_accuracy"] - 0.05)


def test_an_unseen_class_that_moves_the_class_mix_beyond_the_held_out_regions_is_withheld(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # Region pair 31/32: the run's predicted mix (reduced swollen by conventional fields)
    # lies beyond every accurate held-out region's, so the run is flagged and withheld.
    root = tmp_path_factory.mktemp("shift-31-32")
    built = build(root, seeds=(31, 32))
    table = outcomes(root, {"unseen_class": built["unseen_class"]})
    row = table[table["target"] == "tillage"].iloc[0]
    assert row["run_flagged"] and row["labelled_share"] == 0
    assert row["mix_score"] > row["mix_threshold"]
    pred = pd.read_parquet(built["unseen_class"] / "predictions.parquet")
    why = pred.loc[pred["tillage_status"] == "uncertain", "tillage_why"]
    # Fields withheld for their own low confidence or OOD keep that reason; the rest
    # (the labels the run would have given) name the class mix.
    why = why[~why.str.startswith(("confidence", "unlike the training data"))]
    assert len(why) > 100
    assert why.str.contains(r"mix of predicted classes \(no_till \d+% \(held out: \d+%\), "
                            r"reduced \d+%", regex=True).all()
