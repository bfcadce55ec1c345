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
    mix_noise_floor,
    mix_score,
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


def test_the_class_mix_score_is_psi_beyond_sampling_noise() -> None:
    # 100 vs 1000 samples, shares 0.7/0.3 against 0.5/0.5:
    # PSI = 0.2 ln(1.4) + (-0.2) ln(0.6) = 0.0673 + 0.1022 = 0.1695; noise = 1 x (0.01 + 0.001).
    got = mix_score(np.array([70, 30]), np.array([500, 500]))
    assert got == pytest.approx(0.2 * np.log(1.4) - 0.2 * np.log(0.6) - 0.011, abs=1e-9)
    assert mix_score(np.array([50, 50]), np.array([500, 500])) == pytest.approx(-0.011)
    # A class absent from the run is floored at half a sample, so the score stays finite.
    absent = mix_score(np.array([100, 0]), np.array([500, 500]))
    assert np.isfinite(absent) and absent > 1.0
    assert mix_score(np.array([0, 0]), np.array([5, 5])) == 0.0


def test_a_mix_within_sampling_noise_is_never_beyond_the_floor() -> None:
    # chi-square 95 % with 1 degree of freedom is 3.8415: (3.8415 - 1) x (1/100 + 1/1000).
    assert mix_noise_floor(2, 100, 1000) == pytest.approx(2.8415 * 0.011, abs=1e-4)
    assert mix_noise_floor(1, 100, 1000) == 0.0
    rng = np.random.default_rng(3)
    ref = np.array([300, 400, 300])
    draws = [mix_score(rng.multinomial(200, ref / ref.sum()), ref) for _ in range(2000)]
    beyond = np.mean(np.array(draws) > mix_noise_floor(3, 200, int(ref.sum())))
    assert 0.02 < beyond < 0.08


def test_the_class_mix_threshold_comes_from_the_accurate_folds() -> None:
    folds = [{"fold": 0, "mix_score": 0.02, "accuracy": 0.84},
             {"fold": 1, "mix_score": 0.30, "accuracy": 0.70},   # drop 0.15: not handled
             {"fold": 2, "mix_score": 0.05, "accuracy": 0.83}]
    got = calibrate_shift(folds, 0.85, key="mix_score", what="class-mix score")
    assert got["threshold"] == pytest.approx(0.05)
    assert got["rationale"].startswith("largest class-mix score among held-out folds")


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
