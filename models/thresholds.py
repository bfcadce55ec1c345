"""Decision thresholds chosen from held-out evidence: when a label is given, when withheld.

A label is given only when the model's confidence reaches a threshold; below it
the field is ``uncertain`` and needs a visit. The threshold is chosen on the
out-of-fold (held-out) predictions so that the labels given reach a target
accuracy, and the choice is itself cross-fitted: the threshold chosen on all
folds but one is applied to that fold, so the coverage and accuracy reported
are measured on fields the choice never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from regenmap.errors import ModelError


def lowest_threshold(conf: np.ndarray, correct: np.ndarray, target: float) -> float | None:
    """Find the lowest confidence threshold whose covered fields reach ``target`` accuracy.

    Parameters
    ----------
    conf
        (n,) float confidence (top-class probability) of each held-out field.
    correct
        (n,) bool, True where the top class is the true class.
    target
        Accuracy (0-1) the fields with ``conf >= threshold`` must reach.

    Returns
    -------
    float or None
        The threshold (one of the confidences), or None when no threshold reaches the
        target (then every field would be withheld).
    """
    if conf.size == 0:
        return None
    order = np.argsort(-conf, kind="stable")
    c, ok = conf[order], correct[order].astype(np.float64)
    acc = np.cumsum(ok) / np.arange(1, ok.size + 1)
    # a threshold covers every field with the same confidence: only the last of ties counts
    last_of_tie = np.r_[c[1:] != c[:-1], True]
    good = np.flatnonzero((acc >= target) & last_of_tie)
    return float(c[good[-1]]) if good.size else None


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold and the held-out evidence for it.

    Attributes
    ----------
    threshold
        Confidence at or above which a label is given (chosen on every held-out field).
    rule
        ``target_accuracy`` (chosen to reach ``target``) or ``fixed`` (given).
    target
        Target accuracy, or None for a fixed threshold.
    coverage, accuracy
        Share of held-out fields labelled and their accuracy, cross-fitted: each fold's
        fields judged with the threshold chosen on the other folds.
    n
        Held-out fields.
    reachable
        False when no threshold reaches the target (every label is then withheld).
    rationale
        The choice in words (model card and report).
    """

    threshold: float
    rule: str
    target: float | None
    coverage: float
    accuracy: float | None
    n: int
    reachable: bool
    rationale: str

    def as_dict(self) -> dict[str, Any]:
        """Return the choice as plain data."""
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThresholdChoice:
        """Rebuild from :meth:`as_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def check_threshold(threshold: float, n_classes: int, *, target: str) -> None:
    """Refuse a fixed threshold that cannot withhold anything (<= 1/k for k classes).

    Raises
    ------
    ModelError
        Naming the target, its number of classes and the smallest useful value.
    """
    if threshold <= 1.0 / n_classes:
        raise ModelError(
            f"target '{target}': a confidence threshold of {threshold:g} withholds nothing with "
            f"{n_classes} classes (the top class always has at least {1 / n_classes:.3g}); use "
            f"a threshold above {1 / n_classes:.3g}, or a target accuracy to choose it from the "
            "held-out predictions")


def choose_threshold(proba: np.ndarray, y: np.ndarray, folds: np.ndarray, *,
                     target_accuracy: float | None = None, threshold: float | None = None,
                     target: str = "this target") -> ThresholdChoice:
    """Choose the decision threshold of a target from its held-out predictions.

    Parameters
    ----------
    proba
        (n, k) out-of-fold (calibrated) probabilities of the labelled fields.
    y
        (n,) true class indices.
    folds
        (n,) fold of each field (the cross-fitting of the choice follows them).
    target_accuracy
        Accuracy (0-1) the labels given must reach; the threshold is the lowest that does.
    threshold
        A fixed threshold instead (checked to be above 1/k); its coverage and accuracy
        are reported the same way.
    target
        Target name for messages.

    Returns
    -------
    ThresholdChoice

    Raises
    ------
    ModelError
        Without a target or a threshold, or for a fixed threshold <= 1/k.
    """
    k = proba.shape[1]
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    n = len(y)
    if threshold is not None:
        check_threshold(threshold, k, target=target)
        kept = conf >= threshold
        acc = float(correct[kept].mean()) if kept.any() else None
        return ThresholdChoice(float(threshold), "fixed", None, float(kept.mean()) if n else 0.0,
                               acc, n, True, f"fixed confidence threshold {threshold:.3f}: "
                               f"{kept.mean():.0%} of held-out fields labelled"
                               + (f", {acc:.1%} of them correctly" if acc is not None else ""))
    if target_accuracy is None:
        raise ModelError("give a target accuracy or a fixed confidence threshold")
    chosen = lowest_threshold(conf, correct, target_accuracy)
    kept = np.zeros(n, dtype=bool)
    for f in np.unique(folds):
        test = folds == f
        t = lowest_threshold(conf[~test], correct[~test], target_accuracy)
        if t is not None:
            kept[test] = conf[test] >= t
    coverage = float(kept.mean()) if n else 0.0
    acc = float(correct[kept].mean()) if kept.any() else None
    if chosen is None:
        best = float(correct.mean()) if n else float("nan")
        return ThresholdChoice(1.0 + 1e-9, "target_accuracy", target_accuracy, 0.0, None, n,
                               False, f"no threshold reaches the target accuracy "
                               f"{target_accuracy:.0%} on the held-out fields (all of them "
                               f"together: {best:.1%}); every label is withheld as uncertain")
    realised = f"{acc:.1%}" if acc is not None else "n/a"
    return ThresholdChoice(
        chosen, "target_accuracy", target_accuracy, coverage, acc, n, True,
        f"lowest confidence at which the held-out fields labelled reach {target_accuracy:.0%} "
        f"accuracy: {chosen:.3f}. Chosen fold by fold on the other folds, it labels "
        f"{coverage:.0%} of held-out fields with {realised} accuracy; the rest are uncertain.")
