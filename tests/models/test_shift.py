"""Run-level shift and per-field OOD thresholds, on constructed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from regenmap.models.drift import build_reference
from regenmap.models.shift import (
    attribution_drift,
    calibrate_ood,
    calibrate_shift,
    is_instrumentation,
    shift_score,
)

NAMES = ("ndti_p10_s1", "ndvi_max_s2", "obs_n_valid")


def _data(rng: np.random.Generator, n: int, shift: float = 0.0, obs_shift: float = 0.0
          ) -> np.ndarray:
    x = rng.normal(size=(n, 3))
    x[:, 0] += shift
    x[:, 2] += obs_shift
    return x.astype(np.float32)


def test_a_sample_of_the_training_distribution_scores_near_zero_at_any_size() -> None:
    rng = np.random.default_rng(0)
    train = _data(rng, 2000)
    ref = build_reference(train, NAMES)
    small, _ = shift_score(ref, _data(rng, 60), NAMES, None, n_reference=2000)
    large, _ = shift_score(ref, _data(rng, 20000), NAMES, None, n_reference=2000)
    # PSI alone of 60 fields is about 9 / 60 = 0.15 from noise; the excess is near zero.
    assert small < 0.08 and large < 0.02


def test_a_shift_of_the_features_that_matter_scores_and_instrumentation_does_not() -> None:
    rng = np.random.default_rng(1)
    ref = build_reference(_data(rng, 2000), NAMES)
    weights = np.array([1.0, 0.0, 1.0])
    shifted, excess = shift_score(ref, _data(rng, 500, shift=1.0), NAMES, weights,
                                  n_reference=2000)
    cloudier, _ = shift_score(ref, _data(rng, 500, obs_shift=3.0), NAMES, weights,
                              n_reference=2000)
    assert shifted > 0.5 and cloudier < 0.05
    assert "obs_n_valid" not in excess and excess["ndti_p10_s1"] > 0.5
    assert is_instrumentation("obs_n_valid") and is_instrumentation("flag_few_obs")
    assert not is_instrumentation("ndti_p10_s1")


def test_the_threshold_is_the_largest_shift_the_evaluation_shows_was_handled() -> None:
    folds = [{"fold": 0, "shift_score": 0.20, "accuracy": 0.84},
             {"fold": 1, "shift_score": 0.45, "accuracy": 0.81},   # drop 0.04: handled
             {"fold": 2, "shift_score": 0.60, "accuracy": 0.70},   # drop 0.15: not
             {"fold": 3, "shift_score": 0.10, "accuracy": 0.88}]
    got = calibrate_shift(folds, overall_accuracy=0.85)
    assert got["threshold"] == pytest.approx(0.45)
    assert "fold 1" in got["rationale"] and "2 (score 0.600" in got["rationale"]
    none = calibrate_shift([{"fold": 0, "shift_score": 0.3, "accuracy": 0.5}], 0.85)
    assert none["threshold"] is None and "no shift the model handles" in none["rationale"]


def test_the_ood_threshold_is_where_held_out_fields_became_less_accurate() -> None:
    # 100 fields score 0 (90 % right), 30 score 0.2 (50 % right), 30 score 0.3 (50 % right).
    scores = np.r_[np.zeros(100), np.full(30, 0.2), np.full(30, 0.3)]
    correct = np.r_[np.arange(100) < 90, np.arange(30) < 15, np.arange(30) < 15]
    overall = float(correct.mean())
    got = calibrate_ood(scores, correct, overall, min_count=20, ceiling=0.5)
    assert got["threshold"] == pytest.approx(0.2)
    assert got["n_above"] == 60 and got["accuracy_above"] == pytest.approx(0.5)
    flat = calibrate_ood(scores, np.ones(160, dtype=bool), 1.0, ceiling=0.5)
    assert flat["threshold"] == 0.5 and "kept" in flat["rationale"]


def test_attribution_drift_ranks() -> None:
    train = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}
    same = attribution_drift(train, dict(train))
    assert same["spearman"] == pytest.approx(1.0) and same["moved"] == []
    flipped = attribution_drift(train, {"a": 0.5, "b": 1.0, "c": 2.0, "d": 3.0})
    assert flipped["spearman"] == pytest.approx(-1.0)
    assert flipped["moved"][0]["feature"] in {"a", "d"}
