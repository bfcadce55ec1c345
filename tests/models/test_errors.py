"""Bad input fails early with messages naming what is wrong and how to fix it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from regenmap.errors import ConfigError, InputError, ModelError, SchemaError
from regenmap.models.artifact import load_model, save_model
from regenmap.models.evaluate import cross_validate
from regenmap.models.options import CVOptions, LabelledFields, TrainOptions
from regenmap.models.predict import predict_target
from regenmap.models.train import train_target


def test_misspelled_class_is_named_with_a_suggestion(data, series, fast):
    feats, _ = data
    labels = series["tillage"].copy()
    labels.iloc[:3] = "reducd"
    with pytest.raises(
        ModelError,
        match=r"unknown class.*'reducd' \(3 fields, did you mean "
        r"'reduced'\?\)",
    ):
        train_target(
            LabelledFields.of(
                feats,
                labels,
                target="tillage",
                classes=["conventional", "reduced", "no_till"],
                groups=series["region"],
            ),
            fast,
        )


def test_declared_class_without_labels(data, series, fast):
    feats, _ = data
    with pytest.raises(ModelError, match=r"declared class\(es\) \['strip_till'\] have no"):
        train_target(
            LabelledFields.of(
                feats,
                series["tillage"],
                target="tillage",
                classes=["conventional", "reduced", "no_till", "strip_till"],
            ),
            fast,
        )


def test_class_with_too_few_samples_for_the_folds(data, series, fast):
    feats, _ = data
    labels = series["tillage"].copy()
    labels.iloc[:2] = "strip_till"
    with pytest.raises(
        ModelError,
        match=r"too few labelled fields for 3 folds \('strip_till' "
        r"has 2\)",
    ):
        cross_validate(
            LabelledFields.of(feats, labels, target="tillage", groups=series["region"]),
            fast,
            CVOptions(n_folds=3),
        )


def test_empty_feature_columns_are_left_out_and_named(data, series, fast):
    feats, _ = data
    sparse = feats.assign(ndvi_empty=np.float32(np.nan))
    model = train_target(LabelledFields.of(sparse, series["tillage"], target="tillage"), fast)
    assert "ndvi_empty" not in model.feature_names
    assert model.training["dropped_features"] == ["ndvi_empty"]
    rep = cross_validate(LabelledFields.of(sparse, series["tillage"], target="tillage",
                                           groups=series["region"]), fast, CVOptions(n_folds=3))
    assert any("1 feature(s) left out" in n and "ndvi_empty" in n for n in rep["notes"])
    empty = feats[["field_id"]].assign(a=np.float32(np.nan), b=np.float32(np.nan))
    with pytest.raises(ModelError, match="every one of the 2 feature columns is empty"):
        train_target(LabelledFields.of(empty, series["tillage"], target="tillage"), fast)


def test_samples_prediction_would_withhold_are_left_out_and_counted(data, series, fast):
    feats, _ = data
    labels = series["tillage"]
    exclude = pd.Series("", index=labels.index, dtype=object)
    exclude.iloc[:40] = "withheld: feature-quality flag flag_few_obs is set"
    data_ = LabelledFields.of(feats, labels, target="tillage", exclude=exclude)
    model = train_target(data_, fast)
    n_out = int(labels.iloc[:40].notna().sum())
    assert model.training["n_labelled"] == int(labels.notna().sum()) - n_out
    assert model.training["labelled_withheld"] == {
        "withheld: feature-quality flag flag_few_obs is set": n_out}
    exclude.iloc[:] = "too_small: 1 pixel"
    with pytest.raises(ModelError, match=r"only 0 of its \d+ labelled samples can be used"):
        train_target(LabelledFields.of(feats, labels, target="tillage", exclude=exclude), fast)
    exclude.iloc[:200] = "too_small: 1 pixel"
    exclude.iloc[200:] = ""
    with pytest.raises(ModelError, match=r"\(minimum 50%\)"):
        train_target(LabelledFields.of(feats, labels, target="tillage", exclude=exclude),
                     replace(fast, min_label_share=0.5))


def test_feature_table_missing_model_features(tillage_model, data):
    feats, _ = data
    with pytest.raises(
        ModelError,
        match=r"lacks 2 of the model's 6 features: 'ndti_drop', "
        r"'noise_a'",
    ):
        predict_target(tillage_model, feats.drop(columns=["ndti_drop", "noise_a"]))


def test_incompatible_model_schema(tillage_model, tmp_path):
    d = save_model(tillage_model, tmp_path / "m")
    meta = json.loads((d / "metadata.json").read_text())
    meta["schema"] = "regenmap.model/0"
    (d / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match=r"model schema 'regenmap.model/0' is incompatible"):
        load_model(d)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(InputError, match=r"metadata\.json is missing"):
        load_model(tmp_path)


def test_single_class_and_no_labels(data, series, fast):
    feats, _ = data
    one = series["tillage"].where(series["tillage"] == "reduced")
    with pytest.raises(ModelError, match="at least two are needed"):
        train_target(LabelledFields.of(feats, one, target="tillage"), fast)
    none = series["tillage"].where(series["tillage"] == "nothing")
    with pytest.raises(ModelError, match="no field of the features table has a label"):
        train_target(LabelledFields.of(feats, none, target="tillage"), fast)


def test_duplicate_field_ids(data, series, fast):
    feats, _ = data
    dup = feats.copy()
    dup.loc[1, "field_id"] = dup.loc[0, "field_id"]
    with pytest.raises(ModelError, match=r"duplicate field_id values \['F0000'\]"):
        train_target(LabelledFields.of(dup, series["tillage"], target="tillage"), fast)


def test_spatial_cv_needs_groups_and_more_than_one(data, series, fast):
    feats, _ = data
    with pytest.raises(ModelError, match="spatial cross-validation needs groups"):
        cross_validate(LabelledFields.of(feats, series["tillage"], target="tillage", groups=None), fast)
    one = series["region"].map(lambda _: "all")
    with pytest.raises(ModelError, match="all labelled fields are in one spatial group"):
        cross_validate(LabelledFields.of(feats, series["tillage"], target="tillage", groups=one), fast)


def test_bad_loop_option():
    with pytest.raises(ConfigError, match="class_weight must be 'balanced' or 'none'"):
        TrainOptions(class_weight="auto")  # type: ignore[arg-type]


def test_misspelled_lightgbm_parameter_is_refused_not_ignored():
    # LightGBM itself only logs "Unknown parameter" (hidden at verbosity -1) and goes on.
    with pytest.raises(
        ConfigError,
        match=r"unknown LightGBM parameter\(s\) 'num_leave' "
        r"\(did you mean 'num_leaves'",
    ):
        TrainOptions(lightgbm={"num_leave": 3})
    assert TrainOptions(lightgbm={"num_leaves": 3, "max_leaves": 4}).lightgbm["num_leaves"] == 3


def test_identifier_and_person_columns_are_not_features(data, series, fast):
    feats, _ = data
    for column in ("farm_id", "owner_age", "region"):
        bad = feats.assign(**{column: np.arange(len(feats), dtype=np.float32)})
        with pytest.raises(ModelError, match=rf"'{column}' look like an identifier, a person or "
                                             "the group column"):
            train_target(LabelledFields.of(bad, series["tillage"], target="tillage",
                                           groups=series["region"], group_name="region"), fast)
