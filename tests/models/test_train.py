"""Training: reproducibility, class handling, weights, early stopping, held-out skill."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from regenmap.models.evaluate import cross_validate
from regenmap.models.options import CVOptions, EvaluationOptions, LabelledFields, TrainOptions
from regenmap.models.params import resolve_params
from regenmap.models.train import class_weights, train_target


def test_same_seed_same_booster_and_probabilities(data, series, fast):
    feats, _ = data
    a = train_target(
        LabelledFields.of(feats, series["tillage"], target="tillage", groups=series["region"]),
        replace(fast, seed=3),
    )
    b = train_target(
        LabelledFields.of(feats, series["tillage"], target="tillage", groups=series["region"]),
        replace(fast, seed=3),
    )
    assert a.booster.model_to_string() == b.booster.model_to_string()
    x = feats.drop(columns="field_id").to_numpy(np.float32)
    np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x))
    assert a.provenance["model_id"] == b.provenance["model_id"]


def test_classes_are_the_label_strings_and_unlabelled_fields_are_not_trained(tillage_model, series):
    m = tillage_model
    assert m.classes == tuple(sorted(("conventional", "reduced", "no_till")))
    n_lab = int(series["tillage"].notna().sum())
    assert m.training["n_labelled"] == n_lab
    assert m.training["n_unlabelled"] == 300 - n_lab
    assert sum(m.training["class_counts"].values()) == n_lab
    assert m.training["n_groups"] == 6
    assert "held-out spatial fold" in m.training["early_stopping"]
    assert set(m.training["size_class_counts"]) <= {"<2 ha", "2-10 ha", "10-50 ha", ">50 ha"}


def test_declared_classes_fix_the_order(data, series, fast):
    feats, _ = data
    order = ["no_till", "reduced", "conventional"]
    m = train_target(
        LabelledFields.of(feats, series["tillage"], target="tillage", classes=order, groups=series["region"]),
        fast,
    )
    assert m.classes == tuple(order)


def test_balanced_weights_by_hand():
    y = np.array([0, 0, 0, 1])  # 4 samples, 2 classes -> 4/(2*3), 4/(2*1)
    np.testing.assert_allclose(class_weights(y, 2, "balanced"), [2 / 3, 2 / 3, 2 / 3, 2.0])
    np.testing.assert_allclose(class_weights(y, 2, "none"), np.ones(4))


def test_params_defaults_are_overridden_but_determinism_is_forced():
    with pytest.warns(UserWarning, match="deterministic"):
        tp = resolve_params(
            TrainOptions(lightgbm={"num_leaves": 5, "deterministic": False}, num_boost_round=7, seed=4),
            n_rows=100,
        )
    assert tp.booster["num_leaves"] == 5
    assert tp.booster["deterministic"] is True
    assert tp.booster["seed"] == 4
    assert tp.booster["num_threads"] == 1  # small data
    assert tp.num_boost_round == 7
    assert resolve_params(None, n_rows=50_000).booster["num_threads"] == 2
    assert resolve_params(TrainOptions(lightgbm={"num_threads": 3}), n_rows=10).booster["num_threads"] == 3


def test_global_importance_ranks_the_informative_feature_first(tillage_model):
    ranked = sorted(tillage_model.importance, key=lambda k: -tillage_model.importance[k])
    assert ranked[0] == "ndti_min_bare"
    assert tillage_model.importance["ndti_min_bare"] > 3 * tillage_model.importance["noise_a"]


def test_spatial_cross_validation_skill_on_separable_data(data, series, fast):
    feats, _ = data
    rep = cross_validate(
        LabelledFields.of(
            feats,
            series["tillage"],
            target="tillage",
            groups=series["region"],
            group_name="region",
            area_ha=series["area_ha"],
        ),
        fast,
        CVOptions(n_folds=3),
        EvaluationOptions(n_bootstrap=200),
    )
    ov = rep["overall"]
    assert rep["strategy"] == "spatial"
    assert ov["accuracy"] > 0.85
    assert ov["ci"]["accuracy"][0] <= ov["accuracy"] <= ov["ci"]["accuracy"][1]
    assert set(rep["disaggregated"]["factors"]) == {"region", "size_class"}
    # every region is held out exactly once
    held = [g for f in rep["folds"] for g in f["groups"]]
    assert sorted(held) == [f"R{i}" for i in range(6)]
    assert rep["disaggregated"]["worst"]["gap"] <= 0


def test_random_folds_only_on_request_and_recorded(data, series, fast):
    feats, _ = data
    rep = cross_validate(
        LabelledFields.of(feats, series["winter_cover"], target="winter_cover", groups=None),
        fast,
        CVOptions(n_folds=3, random_folds=True),
        EvaluationOptions(n_bootstrap=50),
    )
    assert rep["strategy"] == "random"
    assert any("random k-fold" in n for n in rep["notes"])


def test_binary_target_trains_and_labels_are_positional_when_index_is_range(fast, synth):
    feats, lab = synth(200, seed=2)
    m = train_target(
        LabelledFields.of(feats, lab["winter_cover"], target="winter_cover", groups=lab["region"]), fast
    )
    assert m.classes == ("bare", "cover_crop")
    assert m.training["n_labelled"] == int(pd.notna(lab["winter_cover"]).sum())


def test_labels_without_features_are_recorded(data, series, fast):
    feats, _ = data
    m = train_target(
        LabelledFields.of(feats.iloc[10:], series["tillage"], target="tillage", groups=series["region"]), fast
    )
    n_gone = int(series["tillage"].iloc[:10].notna().sum())
    assert m.training["n_labelled_without_features"] == n_gone
    assert m.training["labelled_without_features_examples"][0] == "F0000"


def test_small_search_picks_a_grid_point_by_spatial_cv(data, series, fast):
    from regenmap.models.search import search_params

    feats, _ = data
    res = search_params(
        LabelledFields.of(feats, series["winter_cover"], target="winter_cover", groups=series["region"]),
        fast,
        CVOptions(n_folds=3),
        grid={"num_leaves": [3, 7]},
    )
    assert [r["params"]["num_leaves"] for r in res["results"]] == [3, 7]
    best = min(res["results"], key=lambda r: r["log_loss"])
    assert res["best"] == best["params"]
    assert all(r["accuracy"] > 0.8 for r in res["results"])


def test_binary_targets_report_ranking_metrics(data, series, fast):
    feats, _ = data
    rep = cross_validate(LabelledFields.of(feats, series["winter_cover"], target="winter_cover",
                                           groups=series["region"]), fast, CVOptions(n_folds=3))
    ranking = rep["overall"]["ranking"]
    assert ranking["positive_class"] == "cover_crop"
    assert 0.9 < ranking["roc_auc"] <= 1 and ranking["average_precision"] > ranking["positive_share"]
    tri = cross_validate(LabelledFields.of(feats, series["tillage"], target="tillage",
                                           groups=series["region"]), fast, CVOptions(n_folds=3))
    assert "ranking" not in tri["overall"]
