"""The compiled TreeSHAP engine against LightGBM's own, and the fast reasons against the
previous implementation (kept here as the reference)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from regenmap.features.dictionary import feature_specs, short_labels
from regenmap.models import explain, treeshap
from regenmap.models.explain import (
    contributions,
    margin_contributions,
    reason_texts,
    runner_up,
    top_features,
)


def _reference_value_text(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return "missing"
    if unit in ("days", "count", "flag"):
        return f"{value:.0f}"
    return f"{value:.3g}"


def reference_reason_texts(margins: np.ndarray, values: np.ndarray, names: Sequence[str],
                           top_class: Sequence[str], second_class: Sequence[str],
                           medians: Sequence[float | None], *, top: int = 3) -> list[str]:
    """The previous implementation of :func:`reason_texts` (a full sort per field)."""
    labels = short_labels(list(names))
    out: list[str] = []
    order = np.argsort(-np.abs(margins), axis=1, kind="stable")[:, :top]
    for i in range(margins.shape[0]):
        parts = []
        for j in order[i]:
            if margins[i, j] == 0.0:
                continue
            label, unit = labels[names[j]]
            median = medians[j]
            ref = (f" (training median {_reference_value_text(median, unit)})"
                   if median is not None else "")
            towards = top_class[i] if margins[i, j] > 0 else second_class[i]
            parts.append(f"{label} = {_reference_value_text(float(values[i, j]), unit)}"
                         f"{ref} -> {towards}")
        out.append("; ".join(parts) if parts else "no single feature stands out")
    return out


def _data(n: int, f: int, k: int, seed: int, *, zeros: bool = False
          ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(size=(n, f)).astype(np.float32)
    x[:, : min(f, 6)] += y[:, None].astype(np.float32)
    x[rng.random((n, f)) < 0.08] = np.nan
    if zeros:
        x[rng.random((n, f)) < 0.1] = 0.0
    x[:, 1] = np.round(x[:, 1])  # repeated thresholds on one feature
    return x, y


def _booster(x: np.ndarray, y: np.ndarray, k: int, rounds: int = 20, **params: object
             ) -> lgb.Booster:
    base: dict[str, object] = {"num_leaves": 15, "min_data_in_leaf": 5, "learning_rate": 0.2,
                               "verbosity": -1, "num_threads": 1, "seed": 0}
    base |= ({"objective": "multiclass", "num_class": k} if k > 2 else {"objective": "binary"})
    return lgb.train(base | params, lgb.Dataset(x, y), rounds)


@pytest.mark.parametrize("params", [
    {},                                       # missing values as NaN
    {"zero_as_missing": True},                # missing type "zero"
    {"use_missing": False},                   # missing type "none": NaN read as 0
    {"num_leaves": 63, "min_data_in_leaf": 2, "feature_fraction": 0.5},  # deep paths
])
def test_compiled_contributions_equal_lightgbm(params: dict[str, object]) -> None:
    x, y = _data(600, 12, 3, 1, zeros=True)
    booster = _booster(x, y, 3, **params)
    got = contributions(booster, x, 3)
    ref = contributions(booster, x, 3, engine="lightgbm")
    assert got.shape == ref.shape == (600, 3, 13)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert ((got == 0) == (ref == 0)).all()


def test_closed_form_without_tables_and_other_boosters(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(400, 10, 3, 2)
    booster = _booster(x, y, 3, num_leaves=40, min_data_in_leaf=2)
    ref = contributions(booster, x, 3, engine="lightgbm")
    monkeypatch.setattr(treeshap, "TABLE_BYTES", 0)  # every leaf in closed form, per row
    forest = treeshap._build(booster.model_to_string())
    assert forest is not None and (forest.table_start < 0).all() and forest.max_d >= 6
    np.testing.assert_allclose(treeshap.tree_shap(forest, x, threads=2), ref,
                               rtol=1e-9, atol=1e-12)
    # binary booster; a best iteration and an explicit num_iteration; float64 input
    xb, yb = _data(300, 8, 2, 3)
    binary = _booster(xb, yb, 2, rounds=15)
    binary.best_iteration = 9
    for it in (None, 4):
        np.testing.assert_allclose(
            contributions(binary, xb.astype(np.float64), 1, num_iteration=it),
            contributions(binary, xb, 1, num_iteration=it, engine="lightgbm"),
            rtol=1e-9, atol=1e-12)
    assert contributions(binary, xb[:0], 1).shape == (0, 1, 9)
    with pytest.raises(ValueError, match="unknown engine"):
        contributions(binary, xb, 1, engine="shap")


def test_categorical_splits_are_left_to_lightgbm() -> None:
    x, y = _data(500, 6, 3, 4)
    x[:, 0] = np.arange(500) % 5
    y = np.where(np.arange(500) % 7 == 0, y, np.array([0, 2, 1, 2, 0])[np.arange(500) % 5])
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbosity": -1,
                         "min_data_in_leaf": 5, "min_data_per_group": 5, "cat_smooth": 1,
                         "num_threads": 1},
                        lgb.Dataset(x, y, categorical_feature=[0]), 10)
    assert "cat_threshold" in booster.model_to_string()
    assert treeshap.forest_of(booster) is None
    np.testing.assert_array_equal(contributions(booster, x, 3),
                                  contributions(booster, x, 3, engine="lightgbm"))


def test_stumps_and_very_long_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(300, 5, 3, 7)
    stumps = _booster(x, y, 3, rounds=5, min_gain_to_split=1e12)  # no split at all
    forest = treeshap.forest_of(stumps)
    assert forest is not None and len(forest.tree_class) == 0
    np.testing.assert_allclose(contributions(stumps, x, 3),
                               contributions(stumps, x, 3, engine="lightgbm"), atol=1e-12)
    booster = _booster(x, y, 3, rounds=5)
    monkeypatch.setattr(treeshap, "MAX_PATH_FEATURES", 1)  # as if paths were too long
    assert treeshap._build(booster.model_to_string()) is None
    monkeypatch.setattr(treeshap, "_CACHE", treeshap.weakref.WeakKeyDictionary())
    np.testing.assert_array_equal(contributions(booster, x, 3),
                                  contributions(booster, x, 3, engine="lightgbm"))


def test_top_features_is_the_stable_sort() -> None:
    rng = np.random.default_rng(5)
    scores = rng.integers(-4, 5, size=(2000, 9)).astype(np.float64)  # many ties, zeros
    full = np.argsort(-np.abs(scores), axis=1, kind="stable")
    for k in (1, 3, 9, 12):
        got = top_features(scores, k)
        want = full[:, :k]
        a = np.abs(scores)
        # same columns wherever the score is not zero (zeros are never named)
        nonzero = np.take_along_axis(a, want, axis=1) > 0
        np.testing.assert_array_equal(np.where(nonzero, got, -1), np.where(nonzero, want, -1))
    assert top_features(scores[:0], 3).shape == (0, 3)


def test_fast_reasons_equal_the_previous_implementation() -> None:
    specs = feature_specs(["ndvi", "ndti"])
    names = [s.name for s in specs if s.unit in ("days", "count", "flag")][:4]
    names += [s.name for s in specs if s.unit not in ("days", "count", "flag")][:10]
    names += ["made_up_a", "made_up_b"]
    x, y = _data(1500, len(names), 3, 6, zeros=True)
    x[:, 0] = np.round(np.abs(x[:, 0]) * 30)  # a count-like feature, with NaNs kept
    booster = _booster(x, y, 3, rounds=30)
    classes = np.array(["no_till", "reduced", "conventional"], dtype=object)
    proba = booster.predict(x)
    top, second = runner_up(proba)
    medians: list[float | None] = [float(np.nanmedian(x[:, j])) for j in range(len(names))]
    medians[3] = None
    args = (x, names, classes[top].tolist(), classes[second].tolist(), medians)
    before = reference_reason_texts(margin_contributions(
        contributions(booster, x, 3, engine="lightgbm"), top, second), *args)
    after = reason_texts(margin_contributions(contributions(booster, x, 3), top, second),
                         *args)
    assert after == before
    assert any("missing" in t for t in before) and any(" -> reduced" in t for t in before)
    for k in (1, 5, len(names) + 2):
        m = margin_contributions(contributions(booster, x[:200], 3), top[:200], second[:200])
        sub = (x[:200], *args[1:])
        assert reason_texts(m, *sub, top=k) == reference_reason_texts(m, *sub, top=k)
    assert reason_texts(np.zeros((2, len(names))), x[:2], *args[1:]) == [
        "no single feature stands out"] * 2


def test_predict_target_why_equals_the_previous_path(tillage_model, data,  # type: ignore[no-untyped-def]
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from regenmap.models import predict

    feats, _ = data
    fast = predict.predict_target(tillage_model, feats, confidence_threshold=0.0)
    monkeypatch.setattr(predict, "contributions", partial(explain.contributions,
                                                          engine="lightgbm"))
    monkeypatch.setattr(predict, "reason_texts", reference_reason_texts)
    slow = predict.predict_target(tillage_model, feats, confidence_threshold=0.0)
    pd.testing.assert_series_equal(fast["tillage_why"], slow["tillage_why"])
