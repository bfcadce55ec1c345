"""Explanations: per-field signed feature contributions and global importance.

Contributions are LightGBM's ``pred_contrib`` (TreeSHAP) values in raw score
(log-odds) units of each class: a field's raw score for a class is the sum of
its feature contributions plus the expected value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from regenmap.schema import FIELD_ID

if TYPE_CHECKING:
    from regenmap.models.train import TrainedModel


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


def top_contributions(model: TrainedModel, values: np.ndarray, ids: Sequence[str], *,
                      top: int = 8) -> pd.DataFrame:
    """Return the features that pushed each field most towards its predicted class.

    Parameters
    ----------
    model
        A trained (or loaded) model.
    values
        float32 (n_fields, n_features) features in ``model.feature_names`` order.
    ids
        (n_fields,) field ids.
    top
        Features listed per field, by absolute contribution.

    Returns
    -------
    pandas.DataFrame
        One row per (field, feature): ``field_id``, ``predicted`` (class), ``probability``,
        ``feature``, ``value`` (the field's feature value), ``contribution`` (TreeSHAP, raw
        log-odds units towards the predicted class; positive = for it), sorted by field
        then decreasing absolute contribution.
    """
    proba = model.predict_proba(values)
    predicted = proba.argmax(axis=1)
    contrib = contributions(model.booster, values, len(model.classes))
    rows: list[dict[str, Any]] = []
    for i, fid in enumerate(ids):
        c = contrib[i, predicted[i], :-1]
        for j in np.argsort(-np.abs(c), kind="stable")[:top]:
            rows.append({FIELD_ID: str(fid), "predicted": model.classes[predicted[i]],
                         "probability": float(proba[i, predicted[i]]),
                         "feature": model.feature_names[j], "value": float(values[i, j]),
                         "contribution": float(c[j])})
    return pd.DataFrame(rows)
