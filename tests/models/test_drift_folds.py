"""Reference distributions, PSI, OOD scores and spatial blocks on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from regenmap.errors import ModelError
from regenmap.models.data import size_class
from regenmap.models.drift import build_reference, ood_scores, psi
from regenmap.models.folds import fold_ids, spatial_blocks


def test_psi_zero_on_same_data_and_large_on_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 2)).astype(np.float32)
    ref = build_reference(x, ("a", "b"))
    assert sum(ref["a"]["proportions"]) == pytest.approx(1.0)
    same = psi(ref, x, ("a", "b"))
    assert same["a"] == pytest.approx(0.0, abs=1e-9)
    y = x.copy()
    y[:, 1] += 2.0
    shifted = psi(ref, y, ("a", "b"))
    assert shifted["a"] == pytest.approx(0.0, abs=1e-9) and shifted["b"] > 1.0
    z = x.copy()
    z[:2500, 0] = np.nan  # half missing where training had none
    assert psi(ref, z, ("a", "b"))["a"] > 0.25


def test_ood_score_weights_features_by_importance():
    x = np.tile(np.linspace(0, 1, 1001, dtype=np.float32)[:, None], (1, 2))
    ref = build_reference(x, ("a", "b"))
    fields = np.array([[0.5, 0.5], [5.0, 0.5], [0.5, 5.0], [np.nan, 5.0], [np.nan, np.nan]],
                      dtype=np.float32)
    s = ood_scores(ref, fields, ("a", "b"), weights=np.array([3.0, 1.0]))
    np.testing.assert_allclose(s[:4], [0.0, 0.75, 0.25, 1.0])
    assert np.isnan(s[4])


def test_spatial_blocks_by_hand():
    b = spatial_blocks(np.array([0.0, 999.0, 1000.0, -1.0]), np.array([0.0, 0.0, 2500.0, 0.0]),
                       block_size_m=1000.0)
    assert b.tolist() == ["b0_0", "b0_0", "b1_2", "b-1_0"]
    with pytest.raises(ModelError, match="block_size_m must be > 0"):
        spatial_blocks(np.zeros(1), np.zeros(1), block_size_m=0)


def test_folds_keep_groups_whole_and_shrink_to_group_count():
    rng = np.random.default_rng(1)
    groups = np.array([f"g{i % 4}" for i in range(200)], dtype=object)
    y = rng.integers(0, 2, 200)
    folds, notes = fold_ids(y, groups, n_folds=5, seed=0, target="t")
    assert len(np.unique(folds)) == 4
    assert "only 4 spatial groups" in notes[0]
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1


def test_size_classes():
    assert size_class(np.array([0.5, 2.0, 9.99, 10.0, 60.0, np.nan])).tolist() == [
        "<2 ha", "2-10 ha", "2-10 ha", "10-50 ha", ">50 ha", "unknown"]
