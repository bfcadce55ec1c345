"""Classification metrics with bootstrap intervals, calibration and coverage.

Point estimates come from :mod:`sklearn.metrics`; the bootstrap re-derives the
same metrics from resampled confusion matrices (vectorised), giving 95 %
percentile intervals. The bootstrap resamples fields, which ignores spatial
correlation of errors: intervals are a lower bound of the true uncertainty.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

from regenmap.models.data import group_sort_key

SCALARS = ("accuracy", "balanced_accuracy", "macro_f1", "kappa")


def point_metrics(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Overall, per-class and confusion-matrix metrics of one set of predictions.

    Parameters
    ----------
    y, pred
        int arrays (n,) of true and predicted class indices.
    classes
        Class names, indexed by those integers.

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``kappa``,
        ``per_class`` (precision, recall, f1, support) and ``confusion``
        (rows = true, columns = predicted, counts).
    """
    labels = list(range(len(classes)))
    if len(y) == 0:
        return {"n": 0, **dict.fromkeys(SCALARS, None)}
    prec, rec, f1, sup = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    single = len(np.unique(np.concatenate([y, pred]))) < 2
    return {
        "n": len(y),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": _balanced(y, pred),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "kappa": None if single else float(cohen_kappa_score(y, pred, labels=labels)),
        "per_class": {c: {"precision": float(prec[k]), "recall": float(rec[k]),
                          "f1": float(f1[k]), "support": int(sup[k])}
                      for k, c in enumerate(classes)},
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
    }


def ranking_metrics(proba: np.ndarray, y: np.ndarray, classes: tuple[str, ...]
                    ) -> dict[str, Any] | None:
    """ROC AUC and average precision of a binary target (the second class is "positive").

    Parameters
    ----------
    proba
        (n, 2) probabilities.
    y
        (n,) true class indices.
    classes
        The two class names.

    Returns
    -------
    dict or None
        ``positive_class``, ``roc_auc``, ``average_precision`` and the positive share
        (the average precision of a random ranking); None unless the target has two
        classes, both present.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    if proba.shape[1] != 2 or len(np.unique(y)) < 2:
        return None
    score = proba[:, 1]
    positive = (y == 1).astype(int)
    return {"positive_class": classes[1], "roc_auc": float(roc_auc_score(positive, score)),
            "average_precision": float(average_precision_score(positive, score)),
            "positive_share": float(positive.mean())}


def _balanced(y: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes absent from a subgroup
        return float(balanced_accuracy_score(y, pred))


def _from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of a stack of confusion matrices (b, k, k) -> arrays of shape (b,) / (b, k)."""
    n = cm.sum(axis=(1, 2)).astype(float)
    diag = np.diagonal(cm, axis1=1, axis2=2).astype(float)
    rows = cm.sum(axis=2).astype(float)
    cols = cm.sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(rows > 0, diag / rows, np.nan)
        precision = np.where(cols > 0, diag / cols, 0.0)
        f1 = np.where(precision + np.nan_to_num(recall) > 0,
                      2 * precision * recall / (precision + recall), 0.0)
        f1 = np.where((rows == 0) & (cols == 0), np.nan, np.nan_to_num(f1))
        acc = diag.sum(axis=1) / n
        pe = (rows * cols).sum(axis=1) / n**2
        kappa = np.where(pe < 1, (acc - pe) / (1 - pe), np.nan)
        row_norm = cm / np.where(rows > 0, rows, 1.0)[:, :, None]
    return {
        "accuracy": acc,
        "balanced_accuracy": np.nanmean(recall, axis=1),
        "macro_f1": np.mean(np.nan_to_num(f1), axis=1),
        "kappa": kappa,
        "precision": precision,
        "recall": recall,
        "f1": np.nan_to_num(f1),
        "confusion_rate": row_norm,
    }


def confusion_counts(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrix (k, k) of int counts, rows = true class, columns = predicted."""
    code = y.astype(np.int64) * k + pred.astype(np.int64)
    return np.bincount(code, minlength=k * k).reshape(k, k)


def _macro_f1_present(m: dict[str, np.ndarray], y: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the classes present in a subgroup (true or predicted)."""
    present = np.union1d(np.unique(y), np.unique(pred))
    return float(np.mean(m["f1"][0][present])) if present.size else float("nan")


def _resampled_confusions(y: np.ndarray, pred: np.ndarray, k: int, *, n_boot: int, seed: int,
                          clusters: np.ndarray | None) -> np.ndarray:
    """(n_boot, k, k) confusion matrices of resamples of the fields, or of whole clusters."""
    rng = np.random.default_rng(seed)
    n = len(y)
    code = y.astype(np.int64) * k + pred.astype(np.int64)
    cms = np.empty((n_boot, k, k), dtype=np.int64)
    if clusters is None:
        chunk = max(1, min(n_boot, 20_000_000 // max(n, 1)))
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            idx = rng.integers(0, n, size=(b, n))
            flat = code[idx] + (np.arange(b) * k * k)[:, None]
            cms[start:start + b] = np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)
        return cms
    # resample whole clusters (e.g. regions): each draw sums the confusion counts of the
    # clusters drawn, so errors that come together in a region stay together
    names, which = np.unique(np.asarray(clusters, dtype=object).astype(str), return_inverse=True)
    per = np.zeros((len(names), k * k), dtype=np.int64)
    np.add.at(per, (which, code), 1)
    draws = rng.multinomial(len(names), np.full(len(names), 1 / len(names)), size=n_boot)
    return (draws @ per).reshape(n_boot, k, k)


def bootstrap_intervals(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...], *,
                        n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                        clusters: np.ndarray | None = None) -> dict[str, Any]:
    """Percentile bootstrap intervals of the metrics of :func:`point_metrics`.

    Parameters
    ----------
    y, pred
        int arrays (n,) of true and predicted class indices.
    classes
        Class names.
    n_boot
        Bootstrap resamples.
    seed
        Resampling seed.
    level
        Coverage of the intervals.
    clusters
        (n,) cluster of each field (e.g. its region): whole clusters are resampled, which
        keeps spatially correlated errors together (wider, more honest intervals when
        errors cluster). Fields are resampled one by one if None.

    Returns
    -------
    dict
        ``{metric: [lo, hi]}`` for the scalars, ``per_class`` ``{class: {metric: [lo, hi]}}``
        and ``confusion_rate`` (row-normalised confusion matrix) ``[[[lo, hi]]]``.
    """
    k = len(classes)
    if len(y) == 0 or n_boot < 1:
        return {}
    cms = _resampled_confusions(y, pred, k, n_boot=n_boot, seed=seed, clusters=clusters)
    m = _from_confusion(cms)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def ci(a: np.ndarray) -> list[float | None]:
        a = a[np.isfinite(a)]
        return [float(v) for v in np.percentile(a, q)] if a.size else [None, None]

    out: dict[str, Any] = {s: ci(m[s]) for s in SCALARS}
    out["per_class"] = {c: {s: ci(m[s][:, j]) for s in ("precision", "recall", "f1")}
                        for j, c in enumerate(classes)}
    out["confusion_rate"] = [[ci(m["confusion_rate"][:, i, j]) for j in range(k)]
                             for i in range(k)]
    out["n_boot"] = n_boot
    out["level"] = level
    out["resampled"] = "fields" if clusters is None else "clusters"
    return out


def reliability(proba: np.ndarray, y: np.ndarray, *, n_bins: int = 10) -> dict[str, Any]:
    """Reliability curve and expected calibration error of the top-class probability.

    Parameters
    ----------
    proba
        float (n, k) predicted probabilities.
    y
        int (n,) true class indices.
    n_bins
        Equal-width confidence bins on [0, 1].

    Returns
    -------
    dict
        ``bins``: list of {lo, hi, n, confidence, accuracy}; ``ece``: sum over bins of
        (n_bin / n) * |accuracy - confidence|; ``brier``: multi-class Brier score.
    """
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = which == b
        nb = int(sel.sum())
        if nb == 0:
            continue
        c, a = float(conf[sel].mean()), float(correct[sel].mean())
        ece += nb / len(y) * abs(a - c)
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": nb,
                     "confidence": c, "accuracy": a})
    onehot = np.eye(proba.shape[1])[y]
    return {"bins": bins, "ece": float(ece),
            "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))}


def coverage_curve(proba: np.ndarray, y: np.ndarray,
                   thresholds: np.ndarray | None = None) -> list[dict[str, float | None]]:
    """Share of fields labelled and their accuracy as the confidence threshold rises.

    Returns
    -------
    list of dict
        Per threshold: ``threshold``, ``coverage`` (share with confidence >= threshold),
        ``accuracy`` among them (None when none is covered), ``n``.
    """
    ts = np.round(np.arange(0.0, 1.0, 0.05), 2) if thresholds is None else thresholds
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    out: list[dict[str, float | None]] = []
    for t in ts:
        sel = conf >= t
        out.append({"threshold": float(t), "coverage": float(sel.mean()) if len(y) else 0.0,
                    "accuracy": float(correct[sel].mean()) if sel.any() else None,
                    "n": float(sel.sum())})
    return out


def _group_entry(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...], *,
                 overall: float, n_boot: int, seed: int, min_count: int) -> dict[str, Any]:
    """Metrics of one subgroup: accuracy and per-class error rates with intervals."""
    nb = len(y)
    m = _from_confusion(confusion_counts(y, pred, len(classes))[None])
    acc = float(m["accuracy"][0])
    ci = bootstrap_intervals(y, pred, classes, n_boot=n_boot, seed=seed)
    per_class: dict[str, Any] = {}
    for j, c in enumerate(classes):
        support, predicted = int((y == j).sum()), int((pred == j).sum())
        recall = float(m["recall"][0, j]) if support else None
        precision = float(m["precision"][0, j]) if predicted else None
        pc = ci.get("per_class", {}).get(c, {})
        per_class[c] = {
            "support": support, "predicted": predicted,
            "recall": recall, "recall_ci": pc.get("recall") if support else None,
            "fnr": None if recall is None else 1 - recall,
            "precision": precision, "precision_ci": pc.get("precision") if predicted else None,
            "fdr": None if precision is None else 1 - precision,
        }
    acc_ci = ci.get("accuracy")
    ranked = nb >= min_count
    below = bool(ranked and acc_ci and acc_ci[1] is not None and acc_ci[1] < overall)
    return {"n": nb, "accuracy": acc, "accuracy_ci": acc_ci,
            "balanced_accuracy": float(m["balanced_accuracy"][0]),
            "macro_f1": _macro_f1_present(m, y, pred), "gap": acc - overall,
            "ranked": ranked, "flagged": below, "per_class": per_class}


def _factor_gaps(groups: dict[str, Any], classes: tuple[str, ...]) -> dict[str, Any]:
    """Differences and ratios between the ranked groups of one factor (largest gaps)."""
    ranked = {g: e for g, e in groups.items() if e["ranked"]}
    if len(ranked) < 2:
        return {}

    def spread(values: list[float]) -> dict[str, float | None]:
        lo, hi = min(values), max(values)
        return {"difference": hi - lo, "ratio": lo / hi if hi > 0 else None}

    out: dict[str, Any] = {"accuracy": spread([e["accuracy"] for e in ranked.values()])}
    for c in classes:
        for rate in ("recall", "precision"):
            vals = [e["per_class"][c][rate] for e in ranked.values()
                    if e["per_class"][c][rate] is not None]
            if len(vals) >= 2:
                out[f"{rate}_{c}"] = spread(vals)
    return out


def disaggregate(y: np.ndarray, pred: np.ndarray, classes: tuple[str, ...],
                 by: dict[str, np.ndarray], *, min_count: int = 20, n_boot: int = 200,
                 seed: int = 0) -> dict[str, Any]:
    """Metrics per subgroup, per factor and for pairs of factors, with per-class error rates.

    For each subgroup: accuracy with a bootstrap interval and, per class, the recall and
    its complement the false-negative rate (a practice done but not recognised: the
    farmer denied) and the precision and its complement the false-discovery rate (a
    practice recognised but not done: paid without it), with intervals. A ranked subgroup
    whose accuracy interval lies entirely below the overall accuracy is flagged.

    Parameters
    ----------
    y, pred
        int (n,) true and predicted class indices.
    classes
        Class names.
    by
        Factor name -> subgroup label per field (n,), e.g. ``{"region": ..., "crop": ...}``.
    min_count
        Subgroups smaller than this are listed with their counts but not ranked or flagged.
    n_boot
        Bootstrap resamples for each subgroup's intervals.
    seed
        Bootstrap seed.

    Returns
    -------
    dict
        ``factors``: {factor: {group: entry}}; ``intersections``: same keyed ``"a x b"``;
        ``gaps``: {factor: difference and ratio of accuracy, recall and precision per class
        across its ranked groups}; ``flagged``: every flagged subgroup, worst first;
        ``worst``: the ranked subgroup with the lowest accuracy.
    """
    overall = float(np.mean(y == pred)) if len(y) else float("nan")
    def summarise(labels: np.ndarray) -> dict[str, Any]:
        return {str(g): _group_entry(y[labels == g], pred[labels == g], classes,
                                     overall=overall, n_boot=n_boot, seed=seed,
                                     min_count=min_count)
                for g in sorted(set(labels.tolist()), key=group_sort_key)}

    factors = {name: summarise(np.asarray(labels, dtype=object).astype(str))
               for name, labels in by.items()}
    inter: dict[str, Any] = {}
    names = list(by)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            combo = np.array([f"{u} & {v}" for u, v in zip(by[a], by[b], strict=True)],
                             dtype=object)
            inter[f"{a} x {b}"] = summarise(combo)
    every = [(e["accuracy"], f, g, e) for table in (factors, inter) for f, groups in table.items()
             for g, e in groups.items() if e["ranked"]]
    flagged = [{"factor": f, "group": g, "n": e["n"], "accuracy": a,
                "accuracy_ci": e["accuracy_ci"], "gap": a - overall}
               for a, f, g, e in sorted(every, key=lambda t: t[0]) if e["flagged"]]
    worst = None
    if every:
        acc, factor, group, entry = min(every, key=lambda t: t[0])
        worst = {"factor": factor, "group": group, "n": entry["n"], "accuracy": acc,
                 "overall_accuracy": overall, "gap": acc - overall}
    return {"factors": factors, "intersections": inter,
            "gaps": {f: _factor_gaps(g, classes) for f, g in factors.items()},
            "flagged": flagged, "worst": worst, "min_count": min_count}


def disaggregation_table(dis: dict[str, Any], classes: tuple[str, ...] | list[str]
                         ) -> pd.DataFrame:
    """Every subgroup of :func:`disaggregate` as one table row (the CSV beside a model card).

    Returns
    -------
    pandas.DataFrame
        ``factor``, ``group``, ``n``, ``ranked``, ``flagged``, ``accuracy``, ``accuracy_lo``,
        ``accuracy_hi``, then per class ``<class>_recall``, ``<class>_fnr``,
        ``<class>_precision``, ``<class>_fdr`` (empty where undefined).
    """
    rows = []
    for table in ("factors", "intersections"):
        for factor, groups in dis.get(table, {}).items():
            for group, e in groups.items():
                lo, hi = (e.get("accuracy_ci") or [None, None])
                row: dict[str, Any] = {"factor": factor, "group": group, "n": e["n"],
                                       "ranked": e["ranked"], "flagged": e.get("flagged", False),
                                       "accuracy": e["accuracy"], "accuracy_lo": lo,
                                       "accuracy_hi": hi}
                for c in classes:
                    pc = e.get("per_class", {}).get(c, {})
                    for rate in ("recall", "fnr", "precision", "fdr"):
                        row[f"{c}_{rate}"] = pc.get(rate)
                rows.append(row)
    return pd.DataFrame(rows)
