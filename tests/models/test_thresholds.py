"""Decision thresholds from held-out evidence, on constructed curves with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from regenmap.errors import ConfigError, ModelError
from regenmap.models.options import EvaluationOptions
from regenmap.models.thresholds import choose_threshold, lowest_threshold


def test_lowest_threshold_on_a_hand_made_curve() -> None:
    # confidences 0.9 .. 0.5; correct, correct, wrong, correct, wrong
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, False, True, False])
    assert lowest_threshold(conf, correct, 1.0) == 0.8       # 2/2
    assert lowest_threshold(conf, correct, 0.75) == 0.6      # 3/4 at >= 0.6
    assert lowest_threshold(conf, correct, 0.6) == 0.5       # 3/5
    assert lowest_threshold(conf, correct, 0.61) == 0.6
    assert lowest_threshold(conf[2:3], correct[2:3], 0.5) is None


def test_ties_are_taken_together() -> None:
    conf = np.array([0.9, 0.7, 0.7, 0.7])
    correct = np.array([True, True, False, False])
    # >= 0.7 holds all four (2/4); a threshold cannot split the tie at 0.7
    assert lowest_threshold(conf, correct, 0.6) == 0.9


def test_choice_is_cross_fitted_and_reported() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    conf = rng.uniform(0.34, 1.0, n)
    y_true = np.zeros(n, dtype=int)
    correct = rng.random(n) < conf  # calibrated: accuracy at confidence c is c
    proba = np.column_stack([conf, (1 - conf) / 2, (1 - conf) / 2])
    pred_wrong = ~correct
    proba[pred_wrong] = proba[pred_wrong][:, [1, 0, 2]]  # top class becomes class 1
    folds = rng.integers(0, 5, n)
    choice = choose_threshold(proba, y_true, folds, target_accuracy=0.85)
    assert choice.reachable and choice.rule == "target_accuracy"
    # for calibrated scores uniform on [1/3, 1], the mean of [t, 1] is 0.85 at t = 0.70
    assert choice.threshold == pytest.approx(0.70, abs=0.04)
    assert choice.accuracy == pytest.approx(0.85, abs=0.03)
    assert choice.coverage == pytest.approx((1 - 0.70) / (1 - 0.34), abs=0.06)
    assert "85%" in choice.rationale


def test_unreachable_target_withholds_every_label() -> None:
    proba = np.array([[0.6, 0.4]] * 10)
    y = np.array([0, 1] * 5)
    choice = choose_threshold(proba, y, np.arange(10) % 2, target_accuracy=0.9)
    assert not choice.reachable and choice.threshold > 1 and choice.coverage == 0
    assert "no threshold reaches" in choice.rationale


def test_thresholds_that_withhold_nothing_are_refused() -> None:
    proba = np.array([[0.6, 0.4], [0.3, 0.7]])
    with pytest.raises(ModelError, match=r"'winter_cover': a confidence threshold of 0.5 "
                                         r"withholds nothing with 2 classes"):
        choose_threshold(proba, np.array([0, 1]), np.array([0, 1]), threshold=0.5,
                         target="winter_cover")
    fixed = choose_threshold(proba, np.array([0, 1]), np.array([0, 1]), threshold=0.65)
    assert fixed.rule == "fixed" and fixed.coverage == 0.5 and fixed.accuracy == 1.0
    with pytest.raises(ConfigError, match="target_accuracy"):
        EvaluationOptions(target_accuracy=0.0)
