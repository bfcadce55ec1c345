"""Spatial cross-validation and the evaluation report of one target.

Each fold holds out whole spatial groups and trains exactly as
:func:`regenmap.models.train.train_target` does, so out-of-fold predictions
measure the shipped procedure on unseen places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from regenmap.errors import ModelError
from regenmap.models.calibration import apply_calibration, fit_calibration, softmax
from regenmap.models.drift import build_reference, ood_scores
from regenmap.models.folds import RANDOM_KFOLD_WARNING, fold_ids
from regenmap.models.metrics import (
    bootstrap_intervals,
    coverage_curve,
    disaggregate,
    point_metrics,
    ranking_metrics,
    reliability,
)
from regenmap.models.options import CVOptions, EvaluationOptions, LabelledFields, TrainOptions
from regenmap.models.params import resolve_params
from regenmap.models.shift import calibrate_ood, calibrate_shift, mix_score, shift_score
from regenmap.models.thresholds import choose_threshold
from regenmap.models.train import TrainingData, fit_booster, prepare
from regenmap.schema import FIELD_ID, SEASON


@dataclass
class CVResult:
    """Out-of-fold predictions of a target.

    Attributes
    ----------
    target, classes
        Target and class names.
    field_ids
        Field id of each labelled sample (n,).
    y
        int (n,) true class indices.
    raw
        float64 (n, k) out-of-fold raw scores.
    folds
        int (n,) fold of each field.
    factors
        Factor name -> subgroup label per field (n,) (group column, ``size_class``).
    strategy
        ``spatial`` (groups held out) or ``random``.
    notes
        Caveats recorded in the report (e.g. random folds, fewer groups than folds).
    fold_info
        Per fold: held-out size, groups, boosting rounds.
    seasons
        Season of each labelled sample (n,), or None when samples are fields.
    cluster_factor
        The factor of ``factors`` holding the spatial groups (resampled whole by the
        cluster bootstrap), or None.
    ood
        float (n,) out-of-fold OOD score of each sample against its fold's training part
        (:func:`regenmap.models.drift.ood_scores`), or None when not computed.
    """

    target: str
    classes: tuple[str, ...]
    field_ids: np.ndarray
    y: np.ndarray
    raw: np.ndarray
    folds: np.ndarray
    factors: dict[str, np.ndarray]
    strategy: str
    notes: list[str] = field(default_factory=list)
    fold_info: list[dict[str, Any]] = field(default_factory=list)
    seasons: np.ndarray | None = None
    cluster_factor: str | None = None
    ood: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """Table of the out-of-fold predictions: id, truth, fold, factors, raw scores."""
        df = pd.DataFrame({FIELD_ID: self.field_ids,
                           "label": np.asarray(self.classes, dtype=object)[self.y],
                           "fold": self.folds})
        if self.seasons is not None:
            df.insert(1, SEASON, self.seasons)
        for name, values in self.factors.items():
            df[f"factor_{name}"] = np.asarray(values, dtype=object).astype(str)
        for j, c in enumerate(self.classes):
            df[f"raw_{c}"] = self.raw[:, j]
        if self.ood is not None:
            df["ood"] = np.asarray(self.ood, dtype=np.float32)
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, target: str, classes: tuple[str, ...],
                   strategy: str, notes: list[str]) -> CVResult:
        """Rebuild from :meth:`to_frame` output."""
        index = {c: i for i, c in enumerate(classes)}
        factors = {c.removeprefix("factor_"): df[c].astype(str).to_numpy(dtype=object)
                   for c in df.columns if c.startswith("factor_")}
        return cls(target=target, classes=classes,
                   field_ids=df[FIELD_ID].astype(str).to_numpy(dtype=object),
                   seasons=df[SEASON].astype(str).to_numpy(dtype=object)
                   if SEASON in df.columns else None,
                   y=np.array([index[v] for v in df["label"]], dtype=np.int64),
                   raw=df[[f"raw_{c}" for c in classes]].to_numpy(dtype=np.float64),
                   folds=df["fold"].to_numpy(dtype=np.int64), factors=factors,
                   strategy=strategy, notes=list(notes),
                   ood=df["ood"].to_numpy(dtype=np.float64) if "ood" in df.columns else None)


def cross_validate_predictions(data: LabelledFields, options: TrainOptions | None = None,
                               cv: CVOptions | None = None) -> CVResult:
    """Out-of-fold raw scores of every labelled field under spatial cross-validation.

    Each fold holds out whole groups of ``data.groups`` and trains as
    :func:`regenmap.models.train.train_target` does with ``options``.

    Parameters
    ----------
    data
        Features, labels, classes, groups (required unless ``cv.random_folds``), areas.
    options
        Training options of every fold.
    cv
        Number of folds (lowered to the number of groups), random folds, seed.

    Raises
    ------
    ModelError
        Without groups (unless random folds), with one group only, or when a class has
        fewer labelled fields than folds.
    """
    opts, cvo = options or TrainOptions(), cv or CVOptions()
    target, seed, n_folds, random_folds = data.target, cvo.seed, cvo.n_folds, cvo.random_folds
    group_name = data.group_name
    td = prepare(data, min_label_share=opts.min_label_share)
    if td.groups is None and not random_folds:
        raise ModelError(
            f"target '{target}': spatial cross-validation needs groups (a group column such as "
            "region, or automatic blocks from field centroids). Random folds overstate skill; "
            "pass random_folds=True only if you accept that."
        )
    cv_groups = td.groups
    if random_folds:  # random, but the seasons of a field stay in one fold
        cv_groups = td.fields if td.seasons is not None else None
    folds, notes = fold_ids(td.y, cv_groups, n_folds=n_folds, seed=seed, target=target,
                            classes=td.classes)
    if random_folds and cv_groups is not None:
        notes.append(f"{RANDOM_KFOLD_WARNING} (the seasons of a field are kept in one fold)")
    notes += sample_notes(td)
    tp = resolve_params(opts, n_rows=int(td.mask.sum()))
    values = td.fm.values[td.mask]
    k = len(td.classes)
    raw = np.zeros((len(td.y), k))
    ood = np.full(len(td.y), np.nan)
    info = []
    for f in range(int(folds.max()) + 1):
        test = folds == f
        train = ~test
        booster, fit_info = fit_booster(values[train], td.y[train],
                                        None if cv_groups is None else cv_groups[train],
                                        n_classes=k, tp=tp, seed=opts.seed)
        raw[test] = np.asarray(booster.predict(values[test], raw_score=True)).reshape(-1, k)
        # How unlike its fold's training part each held-out sample and the fold as a whole
        # are: the evidence the OOD and run-level shift thresholds are calibrated on.
        ref = build_reference(values[train], td.fm.names, seed=opts.seed)
        gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=float)
        ood[test] = ood_scores(ref, values[test], td.fm.names, gain)
        score, _ = shift_score(ref, values[test], td.fm.names, gain,
                               n_reference=int(train.sum()))
        missing = [td.classes[c] for c in range(k) if not (td.y[train] == c).any()]
        if missing:
            notes.append(f"fold {f}: class(es) {missing} absent from its training part")
        info.append({"fold": f, "n_test": int(test.sum()),
                     "groups": sorted(set(cv_groups[test].tolist())) if cv_groups is not None
                     else None,
                     "best_iteration": fit_info["best_iteration"], "shift_score": score})
    factors: dict[str, np.ndarray] = {}
    if td.groups is not None:
        factors[group_name] = td.groups
    if td.sizes is not None:
        factors["size_class"] = td.sizes
    if td.seasons is not None:
        factors[SEASON] = td.seasons
    factors.update({k: v for k, v in td.factors.items() if k not in factors})
    return CVResult(target=target, classes=td.classes, field_ids=np.asarray(td.fields), y=td.y,
                    raw=raw,
                    folds=folds, factors=factors,
                    strategy="random" if random_folds else "spatial", notes=notes,
                    fold_info=info, seasons=td.seasons,
                    cluster_factor=group_name if td.groups is not None else None, ood=ood)


def sample_notes(td: TrainingData) -> list[str]:
    """Caveats about the samples evaluated: those left out, and features left out."""
    notes = []
    if td.excluded:
        n = sum(td.excluded.values())
        top = "; ".join(f"{c} {r}" for r, c in sorted(td.excluded.items(), key=lambda kv: -kv[1])[:3])
        notes.append(f"{n} labelled sample(s) left out of training and evaluation because "
                     f"prediction would withhold them ({top})")
    if td.dropped_features:
        notes.append(f"{len(td.dropped_features)} feature(s) left out: no value on any labelled "
                     f"sample ({', '.join(td.dropped_features[:5])}"
                     f"{' ...' if len(td.dropped_features) > 5 else ''})")
    return notes


def season_year(season: str) -> int:
    """Calendar year a season name starts in (``2023``, ``2023-primera``, ``2023-03-01/...``)."""
    return int(str(season)[:4])


def year_transfer(data: LabelledFields, options: TrainOptions | None = None, *,
                  min_samples: int = 10) -> dict[str, Any] | None:
    """Skill on one year of a model trained on the other years (leave-one-year-out).

    Year-to-year transfer is the known weak point of practice mapping: weather and
    crops change between years. Each year with at least ``min_samples`` labelled
    samples is held out in turn; the model is trained on every other year exactly as
    :func:`~regenmap.models.train.train_target` trains.

    Returns
    -------
    dict or None
        ``years``: year -> ``n``, ``accuracy``, ``macro_f1`` (point metrics of the held-out
        year); ``trained_on``: year -> years trained on; ``mean_accuracy``,
        ``mean_macro_f1``. None when the samples span fewer than two years.
    """
    opts = options or TrainOptions()
    td = prepare(data, min_label_share=opts.min_label_share)
    if td.seasons is None:
        return None
    years = np.array([season_year(s) for s in td.seasons])
    uniq = sorted(set(years.tolist()))
    if len(uniq) < 2:
        return None
    tp = resolve_params(opts, n_rows=int(td.mask.sum()))
    values = td.fm.values[td.mask]
    k = len(td.classes)
    out: dict[str, Any] = {"years": {}, "trained_on": {}}
    for year in uniq:
        test = years == year
        train = ~test
        if test.sum() < min_samples or len(np.unique(td.y[train])) < 2:
            continue
        groups = td.split_groups
        booster, _ = fit_booster(values[train], td.y[train],
                                 None if groups is None else groups[train], n_classes=k, tp=tp,
                                 seed=opts.seed)
        pred = np.asarray(booster.predict(values[test])).reshape(-1, k).argmax(axis=1)
        m = point_metrics(td.y[test], pred, td.classes)
        out["years"][str(year)] = {"n": int(test.sum()), "accuracy": m["accuracy"],
                                   "macro_f1": m["macro_f1"]}
        out["trained_on"][str(year)] = [str(y) for y in uniq if y != year]
    if not out["years"]:
        return None
    out["mean_accuracy"] = float(np.mean([v["accuracy"] for v in out["years"].values()]))
    out["mean_macro_f1"] = float(np.mean([v["macro_f1"] for v in out["years"].values()]))
    return out


def cross_fitted_calibration(cv: CVResult, method: str) -> np.ndarray:
    """Calibrated out-of-fold probabilities: each fold calibrated by a map fitted on the others.

    Returns
    -------
    numpy.ndarray
        float64 (n, k); plain softmax when ``method`` is ``none``.
    """
    if method == "none":
        return softmax(cv.raw)
    out = np.empty_like(cv.raw)
    for f in np.unique(cv.folds):
        test = cv.folds == f
        cal = fit_calibration(cv.raw[~test], cv.y[~test], method)
        out[test] = apply_calibration(cv.raw[test], cal)
    return out


def evaluation_report(cv: CVResult, options: EvaluationOptions | None = None) -> dict[str, Any]:
    """Every held-out metric of a target, JSON-serialisable.

    Parameters
    ----------
    cv
        Out-of-fold predictions.
    options
        Calibration evaluated by cross-fitting, bootstrap resamples and seed, how the
        decision threshold is chosen (target accuracy, or a fixed threshold) and the
        smallest subgroup ranked in the disaggregated analysis.

    Returns
    -------
    dict
        ``overall`` metrics with ``ci``; ``disaggregated``; ``calibration``
        (uncalibrated and calibrated reliability); ``coverage``; ``operating_point`` (the
        decision threshold, how it was chosen and its cross-fitted coverage and accuracy);
        ``strategy``, ``notes``, ``folds``, ``class_counts``.
    """
    opts = options or EvaluationOptions()
    calibration, n_boot, seed = opts.calibration, opts.n_bootstrap, opts.seed
    min_group_count = opts.min_group_count
    p_raw = softmax(cv.raw)
    proba = cross_fitted_calibration(cv, calibration)
    pred = proba.argmax(axis=1)
    overall = point_metrics(cv.y, pred, cv.classes)
    overall["ci"] = bootstrap_intervals(cv.y, pred, cv.classes, n_boot=n_boot, seed=seed)
    onehot = np.eye(len(cv.classes))[cv.y]
    overall["log_loss"] = float(-np.mean(np.log(np.clip((proba * onehot).sum(axis=1),
                                                         1e-12, None))))
    clusters = cv.factors.get(cv.cluster_factor) if cv.cluster_factor else None
    if clusters is not None:
        overall["ci_cluster"] = bootstrap_intervals(cv.y, pred, cv.classes, n_boot=n_boot,
                                                    seed=seed, clusters=clusters)
        overall["ci_cluster"]["cluster_factor"] = cv.cluster_factor
    ranking = ranking_metrics(proba, cv.y, cv.classes)
    if ranking is not None:
        overall["ranking"] = ranking
    decision = choose_threshold(proba, cv.y, cv.folds, target_accuracy=opts.target_accuracy,
                                threshold=opts.confidence_threshold, target=cv.target)
    kept = proba.max(axis=1) >= decision.threshold
    operating = {**decision.as_dict(),
                 "n_labelled": int(kept.sum()), "n_uncertain": int((~kept).sum()),
                 "accuracy_all": float(overall["accuracy"])}
    shift, mix, ood = _calibrate_unlike(cv, pred, kept, operating.get("accuracy"),
                                        opts.ood_ceiling)
    return {
        "target": cv.target,
        "classes": list(cv.classes),
        "strategy": cv.strategy,
        "notes": list(cv.notes),
        "n_folds": int(cv.folds.max()) + 1,
        "folds": cv.fold_info,
        "class_counts": {c: int((cv.y == k).sum()) for k, c in enumerate(cv.classes)},
        "overall": overall,
        "disaggregated": disaggregate(cv.y, pred, cv.classes, cv.factors,
                                      min_count=min_group_count, n_boot=max(n_boot // 5, 50),
                                      seed=seed),
        "calibration": {
            "method": calibration,
            "uncalibrated": reliability(p_raw, cv.y),
            "calibrated": reliability(proba, cv.y) if calibration != "none" else None,
        },
        "coverage": coverage_curve(proba, cv.y),
        "operating_point": operating,
        "shift": shift,
        "class_mix": mix,
        "ood": ood,
    }


def _calibrate_unlike(cv: CVResult, pred: np.ndarray, kept: np.ndarray,
                      accuracy: float | None, ceiling: float
                      ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Calibrate the run-level shift, class-mix and per-field OOD thresholds.

    Accuracies are those of the held-out fields the map would label (at the chosen
    confidence threshold), as the card states; folds labelling fewer than 10 fields use
    all their fields. A fold's class mix is its predicted classes against the other
    folds' predictions; the mix a run is later compared with is that of every
    held-out prediction (``reference`` of the class-mix result).
    """
    correct = pred == cv.y
    overall = float(accuracy) if accuracy is not None else float(correct.mean())
    k = len(cv.classes)
    counts = np.bincount(pred, minlength=k)
    folds = []
    for info in cv.fold_info:
        test = cv.folds == info["fold"]
        use = test & kept if (test & kept).sum() >= 10 else test
        own = np.bincount(pred[test], minlength=k)
        folds.append({**info, "accuracy": float(correct[use].mean()) if use.any() else None,
                      "mix_score": mix_score(own, counts - own)})
    shift = calibrate_shift(folds, overall)
    mix = calibrate_shift(folds, overall, key="mix_score", what="class-mix score")
    mix["reference"] = {c: int(n) for c, n in zip(cv.classes, counts, strict=True)}
    if cv.ood is None:
        return shift, mix, {"threshold": ceiling, "rationale": "no out-of-fold OOD scores"}
    return shift, mix, calibrate_ood(cv.ood[kept], correct[kept], overall, ceiling=ceiling)


def cross_validate(data: LabelledFields, options: TrainOptions | None = None,
                   cv: CVOptions | None = None, evaluation: EvaluationOptions | None = None
                   ) -> dict[str, Any]:
    """Held-out metrics of a target under spatial cross-validation.

    See :func:`cross_validate_predictions` (folds) and :func:`evaluation_report`
    (metrics); the result is JSON-serialisable.
    """
    return evaluation_report(cross_validate_predictions(data, options, cv), evaluation)
