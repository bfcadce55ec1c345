"""Datasheets: counted numbers by hand, the label makers' answers, and visible gaps."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from regenmap.models.datasheet import (
    QUESTIONS,
    DatasheetText,
    datasheet_blocks,
    datasheet_numbers,
    size_class,
    write_datasheet,
)


@pytest.fixture
def labels(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    rows = pd.DataFrame({
        "field_id": ["a", "a", "b", "c", "d"],
        "season": ["2022", "2023", "2023", "2023", "2023"],
        "tillage": ["no_till", "reduced", "no_till", None, "conventional"],
        "group": ["N", "N", "N", "S", "S"],
        "area_ha": [1.5, 1.5, 12.0, 3.0, 60.0],
        "owner_name": ["x", "x", "y", "z", "w"],
    })
    path = tmp_path / "labels.csv"
    rows.to_csv(path, index=False)
    return rows, path


def test_numbers_are_counted_from_the_labels(labels: tuple[pd.DataFrame, Path]) -> None:
    rows, path = labels
    n = datasheet_numbers(rows, targets=["tillage", "winter_cover"], label_file=path,
                          label_file_name="labels.csv", group_name="region",
                          scene_dates=("2022-09-01", "2023-08-31"),
                          training={"tillage": {"n_labelled": 3,
                                                "labelled_withheld": {"no_data: few obs": 1}}},
                          columns=list(rows.columns))
    assert n["label_file"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert n["label_file"]["rows"] == 5 and n["n_fields"] == 4
    assert n["seasons"] == {"2022": 1, "2023": 4}
    # Areas per field, counted once though field a has two seasons.
    assert n["area_ha"]["total"] == pytest.approx(1.5 + 12 + 3 + 60)
    assert n["area_ha"]["median_field"] == pytest.approx(7.5)
    assert n["size_classes"] == {"<2 ha": 1, "10-50 ha": 1, "2-10 ha": 1, ">50 ha": 1}
    t = n["targets"]["tillage"]
    assert t["class_counts"] == {"no_till": 2, "reduced": 1, "conventional": 1}
    assert t["missing_share"] == pytest.approx(0.2)
    assert t["by_season"]["2023"] == {"conventional": 1, "no_till": 1, "reduced": 1}
    assert t["by_group"]["S"] == {"conventional": 1, "no_till": 0, "reduced": 0}
    assert t["used_for_training"] == 3 and t["left_out"] == {"no_data: few obs": 1}
    assert n["targets"]["winter_cover"] == {"present": False}
    assert n["personal_columns"] == ["owner_name"]
    assert n["scene_dates"] == ["2022-09-01", "2023-08-31"]


def test_size_classes_edges() -> None:
    got = size_class(pd.Series([0.5, 2.0, 9.99, 10.0, 50.0, None]))
    assert got.tolist() == ["<2 ha", "2-10 ha", "2-10 ha", "10-50 ha", ">50 ha", "unknown"]


def test_unanswered_questions_are_visible_gaps(labels: tuple[pd.DataFrame, Path],
                                               tmp_path: Path) -> None:
    rows, path = labels
    n = datasheet_numbers(rows, targets=["tillage"], label_file=path, label_file_name="labels.csv",
                          columns=list(rows.columns))
    text = DatasheetText(motivation="Verify claims of the 2023 programme.",
                         collection="Field visits by two agronomists, May 2023.")
    assert set(text.missing()) == set(QUESTIONS) - {"motivation", "collection"}
    md = "\n".join(str(b.content) for b in datasheet_blocks(n, text, name="job"))
    assert "**Incomplete**" in md and "Verify claims of the 2023 programme." in md
    assert "_Not given._" in md and "model.labels.datasheet.maintenance" in md
    assert "`owner_name`" in md  # personal-looking columns are named
    paths = write_datasheet(tmp_path / "out", n, text, name="job")
    stored = json.loads(paths["json"].read_text())
    assert stored["missing"] == text.missing() and stored["numbers"]["n_samples"] == 5
    html = paths["html"].read_text()
    assert "Datasheet: training labels of job" in html and "<table" in html
    complete = DatasheetText(**{k: "answered" for k in QUESTIONS})
    assert complete.missing() == []
    blocks = datasheet_blocks(n, complete, name="job")
    assert not any("Incomplete" in str(b.content) for b in blocks)
