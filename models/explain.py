"""Explanations: per-field signed feature contributions and global importance.

Contributions are LightGBM's ``pred_contrib`` (TreeSHAP) values in raw score
(log-odds) units of each class: a field's raw score for a class is the sum of
its feature contributions plus the expected value.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np


def contributions(booster: lgb.Booster, values: np.ndarray, n_classes: int,
                  num_iteration: int | None = None) -> np.ndarray:
    """Return signed contributions of every feature to every class.

    Parameters
    ----------
    booster
        A multi-class LightGBM booster.
    values
        float32 features (n_fields, n_features).
    n_classes
        Number of classes of the booster.
    num_iteration
        Rounds to use (all if None).

    Returns
    -------
    numpy.ndarray
        float64 (n_fields, n_classes, n_features + 1); the last slot is the bias.
    """
    n, f = values.shape
    if n == 0:
        return np.zeros((0, n_classes, f + 1))
    raw = booster.predict(values, pred_contrib=True, num_iteration=num_iteration)
    return np.asarray(raw, dtype=np.float64).reshape(n, n_classes, f + 1)


def global_importance(contrib: np.ndarray) -> np.ndarray:
    """Mean absolute contribution of each feature over fields and classes.

    Parameters
    ----------
    contrib
        Output of :func:`contributions`, (n_fields, n_classes, n_features + 1).

    Returns
    -------
    numpy.ndarray
        float64 (n_features,), raw-score units.
    """
    if contrib.shape[0] == 0:
        return np.zeros(contrib.shape[2] - 1)
    return np.abs(contrib[:, :, :-1]).mean(axis=(0, 1))


def why_texts(contrib: np.ndarray, predicted: np.ndarray, names: tuple[str, ...],
              *, top: int = 3) -> list[str]:
    """Short text of the features that pushed each field towards its predicted class.

    Parameters
    ----------
    contrib
        (n_fields, n_classes, n_features + 1) from :func:`contributions`.
    predicted
        int array (n_fields,) of predicted class indices.
    names
        Feature names.
    top
        Features listed per field, by absolute contribution.

    Returns
    -------
    list of str
        E.g. ``"ndti_min_bare +0.82; ndvi_int_intercrop -0.31"``.
    """
    out: list[str] = []
    if contrib.shape[0] == 0:
        return out
    rows = contrib[np.arange(contrib.shape[0]), predicted, :-1]
    order = np.argsort(-np.abs(rows), axis=1, kind="stable")[:, :top]
    for i in range(rows.shape[0]):
        parts = [f"{names[j]} {rows[i, j]:+.2f}" for j in order[i] if rows[i, j] != 0.0]
        out.append("; ".join(parts) if parts else "no single feature stands out")
    return out
