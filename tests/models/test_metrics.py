"""Metrics, intervals, calibration and coverage on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score

from regenmap.models.calibration import apply_calibration, fit_calibration, softmax
from regenmap.models.metrics import (
    _from_confusion,
    bootstrap_intervals,
    confusion_counts,
    coverage_curve,
    disaggregate,
    point_metrics,
    reliability,
)

C3 = ("a", "b", "c")


def test_point_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    m = point_metrics(y, p, C3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0,
                                                 "f1": 0.8, "support": 2})
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_confusion_arithmetic_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 4, 500))
    m = _from_confusion(confusion_counts(y, p, 4)[None])
    assert m["accuracy"][0] == pytest.approx(np.mean(y == p))
    assert m["balanced_accuracy"][0] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["macro_f1"][0] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["kappa"][0] == pytest.approx(cohen_kappa_score(y, p))


def test_bootstrap_interval_brackets_and_narrows_with_n():
    rng = np.random.default_rng(2)
    widths = []
    for n in (100, 2500):
        y = rng.integers(0, 3, n)
        p = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
        ci = bootstrap_intervals(y, p, C3, n_boot=400, seed=0)
        acc = np.mean(y == p)
        assert ci["accuracy"][0] <= acc <= ci["accuracy"][1]
        widths.append(ci["accuracy"][1] - ci["accuracy"][0])
        assert len(ci["confusion_rate"]) == 3
    # the width of a proportion's interval shrinks like 1/sqrt(n): 5x here
    assert widths[1] < widths[0] / 3


def test_reliability_and_ece_by_hand():
    # two bins: conf 0.9 (2 fields, 1 right) and conf 0.6 (2 fields, both right)
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    rel = reliability(proba, y, n_bins=10)
    assert rel["ece"] == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6))
    assert [b["n"] for b in rel["bins"]] == [2, 2]


def test_coverage_curve_is_monotone():
    proba = np.array([[0.95, 0.05], [0.7, 0.3], [0.55, 0.45], [0.4, 0.6]])
    y = np.array([0, 1, 0, 1])
    cov = coverage_curve(proba, y, thresholds=np.array([0.0, 0.6, 0.9]))
    assert [c["coverage"] for c in cov] == [1.0, 0.75, 0.25]
    assert [c["accuracy"] for c in cov] == [0.75, pytest.approx(2 / 3), 1.0]


def test_disaggregation_flags_the_worst_group():
    y = np.array([0, 1] * 50)
    p = y.copy()
    region = np.array(["north"] * 50 + ["south"] * 50, dtype=object)
    p[50:60] = 1 - p[50:60]  # 10 errors in the south
    size = np.array(["<2 ha", "2-10 ha"] * 50, dtype=object)
    d = disaggregate(y, p, ("x", "z"), {"region": region, "size_class": size}, min_count=20,
                     n_boot=50)
    assert d["worst"]["factor"] == "region" and d["worst"]["group"] == "south"
    assert d["worst"]["gap"] == pytest.approx(0.8 - 0.9)
    assert list(d["factors"]["size_class"]) == ["<2 ha", "2-10 ha"]  # ordered by size
    assert "north & <2 ha" in d["intersections"]["region x size_class"]


def test_temperature_calibration_cools_overconfident_scores():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 2000)
    logits = rng.normal(size=(2000, 3))
    logits[np.arange(2000), y] += 1.0
    raw = logits * 4  # 4x overconfident
    cal = fit_calibration(raw, y, "temperature")
    assert cal["temperature"] == pytest.approx(4.0, rel=0.25)
    before = reliability(softmax(raw), y)["ece"]
    after = reliability(apply_calibration(raw, cal), y)["ece"]
    assert after < before / 2
    iso = fit_calibration(raw, y, "isotonic")
    p = apply_calibration(raw, iso)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
