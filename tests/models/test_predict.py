"""Per-field trust: probabilities, confidence, withheld statuses, reasons, OOD and drift."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest

from regenmap.errors import ModelError
from regenmap.models.predict import predict_target
from regenmap.schema import FieldStatus


def test_columns_probabilities_and_confidence(tillage_model, data):
    feats, _ = data
    out = predict_target(tillage_model, feats)
    classes = tillage_model.classes
    p = out[[f"tillage_p_{c}" for c in classes]].to_numpy(np.float64)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out["tillage_conf"], p.max(axis=1), atol=1e-6)
    srt = np.sort(p, axis=1)
    np.testing.assert_allclose(out["tillage_margin"], srt[:, -1] - srt[:, -2], atol=1e-5)
    assert list(out["field_id"]) == list(feats["field_id"])
    ok = out["tillage_status"] == "ok"
    assert ok.mean() > 0.8
    assert (out.loc[ok, "tillage"] == np.asarray(classes)[p[ok.to_numpy()].argmax(axis=1)]).all()
    # the why text names features, the field's value, the training median and the class
    # each pushes towards, e.g. "ndti_min_bare = 2.1 (training median 1.4) -> no_till; ..."
    reason = (r"[\w ]+ = ([-\d.e+]+|missing) \(training median [-\d.e+]+\) -> "
              r"(conventional|reduced|no_till)")
    assert all(re.fullmatch(rf"{reason}(; {reason}){{0,2}}", w)
               for w in out.loc[ok, "tillage_why"])
    assert out["tillage_ood"].between(0, 1).all()


def test_uncertain_fields_get_no_label_but_keep_probabilities(tillage_model, data):
    feats, _ = data
    out = predict_target(tillage_model, feats, confidence_threshold=0.99)
    unc = out["tillage_status"] == FieldStatus.UNCERTAIN
    assert unc.sum() > 10
    assert out.loc[unc, "tillage"].isna().all()
    assert (out.loc[unc, "tillage_conf"] < 0.99).all()
    assert out.loc[unc, "tillage_why"].str.startswith("confidence ").all()
    assert out.loc[unc, "tillage_why"].str.contains("below 0.99: leaning").all()
    assert out.loc[unc, "tillage_why"].str.contains(r"leaning \w+ over \w+").all()


def test_upstream_status_and_quality_flags_withhold_labels(tillage_model, data):
    feats, _ = data
    feats = feats.assign(flag_few_obs=np.float32(0.0))
    feats.loc[5, "flag_few_obs"] = 1.0
    status = pd.DataFrame({
        "field_id": ["F0000", "F0001", "F0002", "GHOST"],
        "status": ["too_small", "error", "ok", "too_small"],
        "reason": ["2 pixels after the inner buffer (minimum 3)", "invalid geometry", "", None],
    })
    out = predict_target(tillage_model, feats, field_status=status,
                         flags=["flag_few_obs", "flag_absent"]).set_index("field_id")
    assert out.loc["F0000", "tillage_status"] == "too_small"
    assert out.loc["F0000", "tillage_why"] == "2 pixels after the inner buffer (minimum 3)"
    assert out.loc["F0001", "tillage_status"] == "error"
    assert out.loc["F0002", "tillage_status"] in ("ok", "uncertain")
    assert out.loc["F0005", "tillage_status"] == "no_data"
    assert "flag_few_obs" in out.loc["F0005", "tillage_why"]
    # a field known upstream but absent from the features is kept, never dropped
    assert out.loc["GHOST", "tillage_status"] == "too_small"
    for fid in ("F0000", "F0001", "F0005", "GHOST"):
        assert pd.isna(out.loc[fid, "tillage"])
        assert np.isnan(out.loc[fid, "tillage_conf"])
    assert len(out) == len(feats) + 1


def test_fields_with_too_few_features_are_no_data(tillage_model, data):
    feats, _ = data
    thin = feats.copy()
    thin.loc[0, ["ndti_min_bare", "ndti_drop", "ndvi_int_intercrop", "bsi_mean"]] = np.nan
    out = predict_target(tillage_model, thin, min_feature_share=0.5)
    assert out.loc[0, "tillage_status"] == "no_data"
    assert out.loc[0, "tillage_why"].startswith("only 33% of the model's features")


def test_out_of_distribution_fields_and_drift(tillage_model, data):
    feats, _ = data
    same = predict_target(tillage_model, feats)
    rep = same.attrs["drift"]["tillage"]
    assert rep["warning"] is None and rep["max_psi"] < 0.1
    shifted = feats.copy()
    shifted["ndti_min_bare"] += 50.0
    out = predict_target(tillage_model, shifted)
    assert (out["tillage_ood"] > 0.5).all()  # the most important feature is outside its range
    assert (out["tillage_status"] == "uncertain").all()
    assert out["tillage"].isna().all()
    assert out["tillage_why"].str.startswith("unlike the training data").all()
    rep = out.attrs["drift"]["tillage"]
    assert rep["drifted"] == ["ndti_min_bare"]
    assert "ndti_min_bare (PSI" in rep["warning"]


def test_bad_status_table(tillage_model, data):
    feats, _ = data
    with pytest.raises(ModelError, match=r"unknown status value\(s\) \['cloudy'\]"):
        predict_target(tillage_model, feats,
                       field_status=pd.DataFrame({"field_id": ["F0000"], "status": ["cloudy"]}))
    with pytest.raises(ModelError, match=r"lacks column\(s\) \['status'\]"):
        predict_target(tillage_model, feats, field_status=pd.DataFrame({"field_id": ["F0000"]}))


def test_reasons_explain_the_margin_over_the_runner_up(tillage_model, data):
    from regenmap.models.explain import contributions, margin_contributions, runner_up

    feats, _ = data
    x = feats.drop(columns="field_id").to_numpy(np.float32)[:50]
    raw = tillage_model.raw_scores(x)
    top, second = runner_up(tillage_model.predict_proba(x))
    contrib = contributions(tillage_model.booster, x, len(tillage_model.classes))
    margins = margin_contributions(contrib, top, second)
    bias = contrib[np.arange(50), top, -1] - contrib[np.arange(50), second, -1]
    rows = np.arange(50)
    # the margin's contributions and bias add up to the raw-score margin of the two classes
    np.testing.assert_allclose(margins.sum(axis=1) + bias, raw[rows, top] - raw[rows, second],
                               atol=1e-6)
    assert (raw[rows, top] >= raw[rows, second]).all()


def test_a_run_whose_predicted_class_mix_is_unlike_the_held_out_one_is_withheld(
        tillage_model, data):
    feats, _ = data
    first = predict_target(tillage_model, feats)
    top = first["tillage"].value_counts().index[0]
    # Held out, every class was predicted equally often; the threshold allows a little.
    k = len(tillage_model.classes)
    model = copy.copy(tillage_model)
    model.decision = {**tillage_model.decision, "mix_threshold": 0.02,
                      "mix_reference": {c: 100 for c in tillage_model.classes}}
    one_class = feats[(first["tillage"] == top).to_numpy()]
    out = predict_target(model, one_class)
    mix = out.attrs["drift"]["tillage"]["class_mix"]
    assert mix["flagged"] and mix["shares"][top] == pytest.approx(1.0)
    assert mix["reference_shares"][top] == pytest.approx(1 / k)
    assert (out["tillage_status"] == FieldStatus.UNCERTAIN).all()
    assert out["tillage_why"].str.contains("mix of predicted classes").all()
    assert out["tillage_why"].str.contains(f"{top} 100% \\(held out: 33%\\)").all()
    # The same model on a mix like the held-out one labels as usual.
    balanced = pd.concat([feats[(first["tillage"] == c).to_numpy()].head(40)
                          for c in tillage_model.classes])
    kept = predict_target(model, balanced)
    assert not kept.attrs["drift"]["tillage"]["class_mix"]["flagged"]
    # Held-out folds all closer than noise give a negative threshold; a run within
    # sampling noise of the reference is still never flagged.
    model.decision = {**model.decision, "mix_threshold": -0.02}
    noisy = predict_target(model, balanced).attrs["drift"]["tillage"]["class_mix"]
    assert not noisy["flagged"] and noisy["noise_floor"] > 0
    assert (kept["tillage_status"] == FieldStatus.OK).mean() > 0.8
