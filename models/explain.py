"""Explanations: per-field signed feature contributions and global importance.

Contributions are TreeSHAP values (path-dependent, as LightGBM's ``pred_contrib``)
in raw score (log-odds) units of each class: a field's raw score for a class is the
sum of its feature contributions plus the expected value. They are computed by the
compiled engine of :mod:`regenmap.models.treeshap` (the same values to ~1e-14, with
15-25 times less CPU); ``engine="lightgbm"`` gives LightGBM's own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from regenmap.schema import FIELD_ID

if TYPE_CHECKING:
    from regenmap.models.train import TrainedModel


def contributions(booster: lgb.Booster, values: np.ndarray, n_classes: int,
                  num_iteration: int | None = None, *, engine: str = "compiled",
                  threads: int | None = None) -> np.ndarray:
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
        Rounds to use (LightGBM's default if None: the best iteration, else all).
    engine
        ``"compiled"``: :mod:`regenmap.models.treeshap` (the same TreeSHAP values with
        15-25 times less CPU, on ``threads``; LightGBM is used for boosters it does not
        cover: categorical splits, linear trees, paths through more than 60 distinct
        features); ``"lightgbm"``: LightGBM's own ``pred_contrib`` (the reference).
    threads
        Threads of the compiled engine (all available cores if None).

    Returns
    -------
    numpy.ndarray
        float64 (n_fields, n_classes, n_features + 1); the last slot is the bias.
    """
    n, f = values.shape
    if n == 0:
        return np.zeros((0, n_classes, f + 1))
    if engine not in ("compiled", "lightgbm"):
        raise ValueError(f"unknown engine {engine!r}: 'compiled' or 'lightgbm'")
    if engine == "compiled":
        from regenmap.models.treeshap import forest_of, tree_shap

        forest = forest_of(booster, num_iteration)
        if forest is not None and forest.n_classes == n_classes:
            return tree_shap(forest, values, threads=threads)
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


def top_features(scores: np.ndarray, top: int) -> np.ndarray:
    """Columns of the ``top`` largest absolute scores of each row, largest first.

    The same columns, in the same order, as ``np.argsort(-np.abs(scores), axis=1,
    kind="stable")[:, :top]`` wherever the order matters (ties broken by the lower
    column), from a partial sort: O(columns) per row instead of O(columns log columns).
    Ties at zero are left in any order (zero contributions are never named).

    Parameters
    ----------
    scores
        (n, f) e.g. margin contributions.
    top
        Columns wanted per row.

    Returns
    -------
    numpy.ndarray
        int (n, min(top, f)).
    """
    a = np.abs(scores)
    n, f = a.shape
    k = min(top, f)
    if k == 0 or n == 0:
        return np.zeros((n, k), dtype=np.int64)
    if k == f:
        return np.argsort(-a, axis=1, kind="stable")
    part = np.argpartition(-a, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(a, part, axis=1)
    # by decreasing value, then increasing column (np.lexsort: last key first)
    order = np.take_along_axis(part, np.lexsort((part, -vals), axis=1), axis=1)
    kth = vals.min(axis=1)
    tied = (kth > 0) & ((a >= kth[:, None]).sum(axis=1) > k)
    if tied.any():  # the k-th value is shared: take the lowest columns, as a stable sort
        order[tied] = np.argsort(-a[tied], axis=1, kind="stable")[:, :k]
    return order


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
    n = margins.shape[0]
    if n == 0:
        return []
    # Per feature, once: its label and unit, and the training median in words.
    head = [f"{labels[name][0]} = " for name in names]
    whole = [labels[name][1] in ("days", "count", "flag") for name in names]
    ref = [f" (training median {_value_text(m, labels[name][1])})" if m is not None else ""
           for name, m in zip(names, medians, strict=True)]
    order = top_features(margins, top)
    rows = np.arange(n)[:, None]
    picked = margins[rows, order]
    shown = np.asarray(values, dtype=np.float64)[rows, order]
    cols, pushes, nums = order.tolist(), (picked > 0).tolist(), shown.tolist()
    named = (picked != 0).tolist()
    out: list[str] = []
    for i in range(n):
        parts = []
        for j, up, v, keep in zip(cols[i], pushes[i], nums[i], named[i], strict=True):
            if not keep:
                continue
            text = ("missing" if not math.isfinite(v) else
                    f"{v:.0f}" if whole[j] else f"{v:.3g}")
            parts.append(f"{head[j]}{text}{ref[j]} -> {top_class[i] if up else second_class[i]}")
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
