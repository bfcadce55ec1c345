"""A model folder is checked file by file (SHA-256) before anything in it is parsed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from damage import flip_one_byte, truncate

from regenmap.errors import ModelError, SchemaError
from regenmap.models.artifact import file_record, load_model, read_verified, save_model
from regenmap.models.data import check_classes, clean_labels


@pytest.fixture()
def model_dir(tillage_model, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    return save_model(tillage_model, tmp_path / "m")


def test_metadata_records_the_checksum_of_every_file(model_dir: Path) -> None:
    meta = json.loads((model_dir / "metadata.json").read_text())
    assert meta["schema"] == "regenmap.model/2"
    assert set(meta["files"]) == {"booster.txt", "reference.json"}
    for name, record in meta["files"].items():
        assert record == file_record(model_dir / name)
    assert load_model(model_dir).booster.num_trees() > 0


def edit_a_leaf_value(path: Path) -> None:
    text = path.read_text()
    line = re.search(r"^leaf_value=(\S+)", text, flags=re.M)
    assert line is not None
    path.write_text(text.replace(line.group(0), f"leaf_value={float(line.group(1)) + 0.5!r}", 1))


@pytest.mark.parametrize("name,damage,detail", [
    ("booster.txt", truncate, "were written)"),
    ("booster.txt", flip_one_byte, "same size, different content"),
    ("booster.txt", edit_a_leaf_value, "truncated, damaged or edited"),
    ("reference.json", truncate, "were written)"),
])
def test_a_damaged_or_edited_file_is_refused_naming_it(model_dir: Path, name: str, damage,  # type: ignore[no-untyped-def]
                                                       detail: str) -> None:
    damage(model_dir / name)
    with pytest.raises(SchemaError) as caught:
        load_model(model_dir)
    message = str(caught.value)
    assert message.startswith(f"{model_dir / name}: this file changed since the model was written")
    assert detail in message and "Retrain" in message


def test_damaged_metadata_is_a_schema_error(model_dir: Path) -> None:
    truncate(model_dir / "metadata.json")
    with pytest.raises(SchemaError, match=r"metadata\.json: the model metadata is damaged or "
                                          "truncated"):
        load_model(model_dir)


def test_a_file_without_a_recorded_checksum_is_not_trusted(model_dir: Path) -> None:
    (model_dir / "notes.json").write_text("{}")
    with pytest.raises(SchemaError, match=r"notes\.json: metadata\.json records no checksum"):
        read_verified(model_dir, "notes.json")


def test_extra_files_are_recorded(tillage_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "m"
    d.mkdir()
    (d / "cv.json").write_text('{"folds": []}')
    save_model(tillage_model, d, extra_files=["cv.json"])
    assert read_verified(d, "cv.json") == b'{"folds": []}'
    (d / "cv.json").write_text('{"folds": [1]}')
    with pytest.raises(SchemaError, match=r"cv\.json: this file changed"):
        read_verified(d, "cv.json")


# ----------------------------------------------------------------------------- label classes
def labels(values: dict[str, int]) -> pd.Series:
    return pd.Series([v for v, n in values.items() for _ in range(n)], dtype=object)


def test_a_spelling_variant_of_a_class_is_an_error_with_did_you_mean() -> None:
    raw = labels({"no_till": 95, "reduced": 100, "conventional": 110, "No-Till ": 3})
    with pytest.raises(ModelError) as caught:
        clean_labels(raw, target="tillage")
    message = str(caught.value)
    assert "differ only in case, spaces or hyphens" in message
    assert "'No-Till' (3 fields, did you mean 'no_till' (95 fields)?)" in message
    assert "model.classes.tillage" in message


def test_undeclared_distinct_classes_are_counted() -> None:
    counts = check_classes(labels({"bare": 5, "cover_crop": 7}), target="winter_cover")
    assert counts == {"cover_crop": 7, "bare": 5}


def test_a_declared_class_spelled_otherwise_gets_its_hint() -> None:
    with pytest.raises(ModelError, match=r"'No-Till' \(2 fields, did you mean 'no_till'\?\)"):
        clean_labels(labels({"no_till": 4, "No-Till": 2}), target="tillage",
                     classes=["conventional", "reduced", "no_till"])
