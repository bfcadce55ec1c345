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


def runner_up(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top and second class of each row of probabilities ((n,) int arrays each)."""
    order = np.argsort(-proba, axis=1, kind="stable")
    second = order[:, 1] if proba.shape[1] > 1 else order[:, 0]
    return order[:, 0], second


def margin_contributions(contrib: np.ndarray, top: np.ndarray, second: np.ndarray
                         ) -> np.ndarray:
    """Each feature's contribution to the margin of the top class over the runner-up.

    Parameters
    ----------
    contrib
        (n, k, f + 1) from :func:`contributions`.
    top, second
        (n,) class indices.

    Returns
    -------
    numpy.ndarray
        float64 (n, f), raw-score (log-odds) units; positive pushes towards ``top``.
    """
    rows = np.arange(contrib.shape[0])
    return contrib[rows, top, :-1] - contrib[rows, second, :-1]


def _value_text(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return "missing"
    if unit in ("days", "count", "flag"):
        return f"{value:.0f}"
    return f"{value:.3g}"


def reason_texts(margins: np.ndarray, values: np.ndarray, names: Sequence[str],
                 top_class: Sequence[str], second_class: Sequence[str],
                 medians: Sequence[float | None], *, top: int = 3) -> list[str]:
    """Reasons in words: the features that most set the label apart from the runner-up.

    Parameters
    ----------
    margins
        (n, f) from :func:`margin_contributions`.
    values
        (n, f) the fields' feature values.
    names
        (f,) feature names.
    top_class, second_class
        (n,) class names of the label and of the runner-up.
    medians
        (f,) training median of each feature (None when unknown).
    top
        Features named per field, by absolute contribution to the margin.

    Returns
    -------
    list of str
        E.g. ``"Minimum NDTI in the fallow window = 0.081 (training median 0.052) ->
        no_till; ..."``: each feature's description, the field's value, the training
        median, and the class it pushes towards.
    """
    from regenmap.features.dictionary import short_labels

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
            ref = f" (training median {_value_text(median, unit)})" if median is not None else ""
            towards = top_class[i] if margins[i, j] > 0 else second_class[i]
            parts.append(f"{label} = {_value_text(float(values[i, j]), unit)}{ref} -> {towards}")
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
