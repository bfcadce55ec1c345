"""Training: one multi-class LightGBM model per target, early-stopped on held-out space.

The procedure used for the final model (grouped hold-out for early stopping,
balanced class weights, refit on all labelled fields) is the same one each
cross-validation fold uses, so the held-out metrics describe the model shipped.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from regenmap.errors import ModelError
from regenmap.models.calibration import apply_calibration
from regenmap.models.data import (
    FeatureMatrix,
    align,
    class_list,
    clean_labels,
    drop_empty_features,
    feature_matrix,
    field_level,
    group_sort_key,
    size_class,
)
from regenmap.models.drift import build_reference
from regenmap.models.explain import contributions, global_importance
from regenmap.models.options import LabelledFields, TrainOptions
from regenmap.models.params import TrainingParams, resolve_params
from regenmap.schema import SEASON

#: Labelled fields used to compute global importance (TreeSHAP is O(trees x leaves) per field).
_IMPORTANCE_SAMPLE = 500


@dataclass
class TrainedModel:
    """A trained model of one target with everything needed to trust and audit it.

    Attributes
    ----------
    target
        Label column the model predicts, e.g. ``tillage``.
    classes
        Class names (strings), in the order of the booster's outputs.
    feature_names
        Features in the order the booster expects.
    booster
        The LightGBM booster (multi-class, one raw score per class).
    params
        Resolved LightGBM parameters and loop options.
    best_iteration
        Boosting rounds of the shipped booster.
    reference
        Training distribution of each feature (see :mod:`regenmap.models.drift`).
    importance
        Feature -> mean |contribution| on the training fields (raw-score units).
    calibration
        Probability calibration (see :mod:`regenmap.models.calibration`).
    training
        Summary of the training data: counts per class, group and size class, notes.
    metrics
        Held-out (cross-validated) metrics, filled by the pipeline.
    provenance
        Config hash, package versions, inputs; filled by the pipeline or :func:`save_model`.
    decision
        The decision threshold and its held-out evidence
        (:class:`regenmap.models.thresholds.ThresholdChoice` as a dict); empty until the
        pipeline chooses it (prediction then falls back to a given threshold).
    """

    target: str
    classes: tuple[str, ...]
    feature_names: tuple[str, ...]
    booster: lgb.Booster
    params: dict[str, Any]
    best_iteration: int
    reference: dict[str, dict[str, Any]]
    importance: dict[str, float]
    calibration: dict[str, Any] = field(default_factory=lambda: {"method": "none"})
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)

    def raw_scores(self, values: np.ndarray) -> np.ndarray:
        """Raw (log-odds) scores, float64 (n_fields, n_classes), of a feature array."""
        if values.shape[0] == 0:
            return np.zeros((0, len(self.classes)))
        raw = self.booster.predict(values, raw_score=True)
        return np.asarray(raw, dtype=np.float64).reshape(values.shape[0], len(self.classes))

    def predict_proba(self, values: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, float64 (n_fields, n_classes), rows sum to 1."""
        return apply_calibration(self.raw_scores(values), self.calibration)


@dataclass(frozen=True)
class TrainingData:
    """Labelled rows of a target, encoded.

    Attributes
    ----------
    fm
        Features of every field (labelled or not).
    labels
        Cleaned labels aligned to ``fm.field_ids`` (None = unlabelled).
    mask
        bool (n_fields,), True for labelled fields.
    y
        int (n_labelled,) class index of each labelled field.
    classes
        Class names.
    groups
        str (n_labelled,) spatial group of each labelled field, or None.
    sizes
        str (n_labelled,) field-size class, or None when areas are unknown.
    unmatched
        Ids of labelled fields absent from the features table (not trained on).
    fields
        str (n_labelled,) field id of each labelled sample.
    seasons
        str (n_labelled,) season of each labelled sample, or None without seasons.
    excluded
        Reason -> number of labelled samples left out because prediction would withhold
        them (too small, no data, too few observations...).
    dropped_features
        Feature columns left out because they hold no value on the labelled samples
        (e.g. a sparse series leaves a window empty).
    factors
        Further evaluation factors: name -> str (n_labelled,) label of each sample.
    """

    fm: FeatureMatrix
    labels: pd.Series
    mask: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    groups: np.ndarray | None
    sizes: np.ndarray | None
    unmatched: tuple[str, ...] = ()
    fields: np.ndarray | None = None
    seasons: np.ndarray | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    dropped_features: tuple[str, ...] = ()
    factors: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def split_groups(self) -> np.ndarray | None:
        """Groups that splits keep whole: the spatial groups, else the fields (their seasons)."""
        if self.groups is not None:
            return self.groups
        return self.fields if self.seasons is not None else None


def prepare(data: LabelledFields, *, min_label_share: float = 0.0) -> TrainingData:
    """Validate and encode the inputs of a target (shared by training and CV).

    Labelled samples that prediction would withhold (``data.exclude``) are left out and
    counted; feature columns holding no value on the samples trained on are left out
    and named.

    Parameters
    ----------
    data
        The target's features, labels, classes, groups and areas.
    min_label_share
        Smallest share (0-1) of the labelled samples that may remain after exclusions.

    Raises
    ------
    ModelError
        For unknown classes, a single class, no usable labelled sample, fewer usable
        samples than ``min_label_share`` allows, or no feature with a value.
    """
    features, labels, target = data.features, data.labels, data.target
    groups, area_ha, classes = data.groups, data.area_ha, data.classes
    fm = feature_matrix(features)
    refuse_identifiers(fm.names, group_name=data.group_name)
    unmatched: tuple[str, ...] = ()
    if not isinstance(labels.index, pd.RangeIndex):
        ids = field_level(labels.index).astype(str)
        have = field_level(fm.field_ids)
        gone = labels.notna().to_numpy() & ~ids.isin(have)
        unmatched = tuple(pd.unique(ids[gone]).tolist())
    lab = align(labels, fm.field_ids, what=f"labels of '{target}'")
    if lab is None:  # pragma: no cover - labels is required
        raise ModelError(f"no labels for target '{target}'")
    lab = clean_labels(lab, target=target, classes=classes)
    labelled = lab.notna().to_numpy()
    if not labelled.any():
        raise ModelError(f"target '{target}': no field of the features table has a label. "
                         "Check the labels file's field ids (and seasons) and target column.")
    excluded: dict[str, int] = {}
    mask = labelled.copy()
    reasons = align(data.exclude, fm.field_ids, what="exclusions")
    if reasons is not None:
        why = reasons.to_numpy(dtype=object)
        out = labelled & pd.notna(why) & (why != "")
        mask &= ~out
        excluded = {str(k): int(v) for k, v in pd.Series(why[out]).value_counts().items()}
    n_lab, n_used = int(labelled.sum()), int(mask.sum())
    if n_used == 0 or n_used < min_label_share * n_lab:
        listed = "; ".join(f"{n} {r}" for r, n in list(excluded.items())[:5])
        raise ModelError(
            f"target '{target}': only {n_used} of its {n_lab} labelled samples can be used "
            f"(minimum {min_label_share:.0%}); the others would be withheld: {listed}. "
            "Check that the observations cover the labelled fields and seasons, relax the "
            "withholding rule, or accept a smaller share (min_label_share).")
    lab = lab.where(mask, None)
    cls = class_list(lab, target=target, classes=classes)
    fm, dropped = drop_empty_features(fm, mask=mask)
    y = pd.Categorical(lab[mask].to_numpy(), categories=list(cls)).codes.astype(np.int64)
    g_al = align(groups, fm.field_ids, what="groups")
    g = None
    if g_al is not None:
        g_lab = g_al[mask]
        g = np.where(g_lab.isna().to_numpy(), "<missing>", g_lab.astype(str).to_numpy())
        g = g.astype(object)
    a_al = align(area_ha, fm.field_ids, what="area_ha")
    sizes = None if a_al is None else size_class(pd.to_numeric(a_al[mask], errors="coerce"))
    fields = field_level(fm.field_ids).to_numpy(dtype=object)[mask]
    seasons = (fm.field_ids.get_level_values(SEASON).to_numpy(dtype=object)[mask]
               if isinstance(fm.field_ids, pd.MultiIndex) else None)
    factors = {}
    for name, values in data.factors.items():
        aligned = align(values, fm.field_ids, what=f"factor '{name}'")
        if aligned is not None:
            labels_ = aligned[mask]
            factors[name] = np.where(labels_.isna().to_numpy(), "<missing>",
                                     labels_.astype(str).to_numpy()).astype(object)
    return TrainingData(fm=fm, labels=lab, mask=mask, y=y, classes=cls, groups=g, sizes=sizes,
                        unmatched=unmatched, fields=fields, seasons=seasons, excluded=excluded,
                        dropped_features=dropped, factors=factors)


#: Column names that say who or which a row is, not what the field's surface shows.
_IDENTIFIER = re.compile(r"^(id|.*_id|.*_uuid|owner.*|farmer.*|holder.*|name|.*_name|parcel.*|"
                         r"plot.*|fid|objectid)$", flags=re.IGNORECASE)


def refuse_identifiers(names: Sequence[str], *, group_name: str | None = None) -> None:
    """Refuse feature columns named like identifiers or people, and the group column.

    A model that learns a field's id, its owner or its region code learns who, not what
    the satellite sees; it would judge farmers by name or place.

    Raises
    ------
    ModelError
        Naming the columns and what to do.
    """
    bad = [n for n in names if _IDENTIFIER.match(n) or (group_name and n == group_name)]
    if bad:
        raise ModelError(f"feature column(s) {', '.join(repr(b) for b in bad)} look like an "
                         "identifier, a person or the group column, not something the scenes "
                         "show; drop them from the features table")


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> np.ndarray:
    """Per-sample weights: ``balanced`` gives n / (k * n_class) to each sample of a class.

    Returns
    -------
    numpy.ndarray
        float64 (n,), mean 1 when every class is present.
    """
    if mode == "none":
        return np.ones(len(y))
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    per_class = np.zeros(n_classes)
    per_class[present] = len(y) / (present.sum() * counts[present])
    return per_class[y]


def holdout_mask(y: np.ndarray, groups: np.ndarray | None, *, seed: int, n_splits: int = 5
                 ) -> tuple[np.ndarray | None, str]:
    """Choose the early-stopping validation rows: one spatial fold of the labelled fields.

    Returns
    -------
    mask : numpy.ndarray or None
        bool (n,), True for validation rows; None when no hold-out is possible.
    note : str
        How the hold-out was chosen, for the training summary.
    """
    n_classes = int(y.max()) + 1
    smallest = int(np.bincount(y, minlength=n_classes).min())
    if groups is not None:
        n_groups = len(np.unique(groups))
        k = min(n_splits, n_groups)
        if k < 2:
            return None, "none (one spatial group only): fixed number of rounds"
        splitter: StratifiedGroupKFold | StratifiedKFold = StratifiedGroupKFold(
            n_splits=k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _, valid = next(iter(splitter.split(np.zeros(len(y)), y, groups)))
        note = f"on a held-out spatial fold ({len(valid)} fields, 1/{k} of the groups)"
    else:
        k = min(n_splits, smallest)
        if k < 2:
            return None, "none (a class has one field only): fixed number of rounds"
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        _, valid = next(iter(splitter.split(np.zeros(len(y)), y)))
        note = f"on a random 1/{k} hold-out (no spatial groups given)"
    mask = np.zeros(len(y), dtype=bool)
    mask[valid] = True
    return mask, note


def fit_booster(values: np.ndarray, y: np.ndarray, groups: np.ndarray | None, *,
                n_classes: int, tp: TrainingParams, seed: int) -> tuple[lgb.Booster, dict[str, Any]]:
    """Fit one booster with grouped early stopping and an optional refit on all rows.

    Parameters
    ----------
    values
        float32 features (n, f) of labelled fields.
    y
        int (n,) class indices.
    groups
        Spatial group of each row (n,) or None.
    n_classes
        Number of classes.
    tp
        Resolved parameters.
    seed
        Seed for the hold-out choice.

    Returns
    -------
    booster : lightgbm.Booster
    info : dict
        ``best_iteration``, ``early_stopping`` note, ``valid_logloss``.
    """
    params = {**tp.booster, "num_class": n_classes}
    w = class_weights(y, n_classes, tp.class_weight)
    valid = None
    note = "disabled (early_stopping_rounds = 0)"
    if tp.early_stopping_rounds > 0:
        valid, note = holdout_mask(y, groups, seed=seed)
    info: dict[str, Any] = {"early_stopping": note}
    # Bin the features once; the hold-out split and the refit reuse the same bins.
    full = lgb.Dataset(values, label=y, weight=w, params=params, free_raw_data=False)
    if valid is None:
        booster = lgb.train(params, full, num_boost_round=tp.num_boost_round)
        info["best_iteration"] = tp.num_boost_round
        return booster, info
    full.construct()
    ds = full.subset(np.flatnonzero(~valid).tolist())
    dv = full.subset(np.flatnonzero(valid).tolist())
    evals: dict[str, Any] = {}
    booster = lgb.train(
        params, ds, num_boost_round=tp.num_boost_round, valid_sets=[dv], valid_names=["holdout"],
        callbacks=[lgb.early_stopping(tp.early_stopping_rounds, verbose=False),
                   lgb.record_evaluation(evals)],
    )
    best = int(booster.best_iteration or tp.num_boost_round)
    info["best_iteration"] = best
    curve = evals.get("holdout", {}).get("multi_logloss", [])
    info["valid_logloss"] = float(curve[best - 1]) if len(curve) >= best else None
    if tp.refit:
        booster = lgb.train(params, full, num_boost_round=best)
        info["refit"] = "refit on all labelled fields with the early-stopped number of rounds"
    else:
        booster.free_dataset()
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return booster, info


def train_target(data: LabelledFields, options: TrainOptions | None = None) -> TrainedModel:
    """Train the model of one target.

    Parameters
    ----------
    data
        Features, labels (missing = unlabelled, not trained on), declared classes,
        spatial groups (the early-stopping hold-out is a set of whole groups; random
        without groups) and areas (for the training summary).
    options
        LightGBM parameters and loop options; the same inputs and seed give the same booster.

    Returns
    -------
    TrainedModel

    Raises
    ------
    ModelError
        For invalid labels or features (see :func:`prepare`).

    Examples
    --------
    >>> data = LabelledFields.of(features, labels, target="tillage", groups=region)  # doctest: +SKIP
    >>> model = train_target(data, TrainOptions(num_boost_round=100))              # doctest: +SKIP
    """
    opts = options or TrainOptions()
    target, seed = data.target, opts.seed
    td = prepare(data, min_label_share=opts.min_label_share)
    tp = resolve_params(opts, n_rows=int(td.mask.sum()))
    values = td.fm.values[td.mask]
    booster, info = fit_booster(values, td.y, td.split_groups, n_classes=len(td.classes), tp=tp,
                                seed=seed)
    rng = np.random.default_rng(seed)
    n_sample = min(_IMPORTANCE_SAMPLE, len(values))
    sample = np.sort(rng.choice(len(values), size=n_sample, replace=False))
    imp = global_importance(contributions(booster, values[sample], len(td.classes)))
    model_text = booster.model_to_string()
    return TrainedModel(
        target=target,
        classes=td.classes,
        feature_names=td.fm.names,
        booster=booster,
        params={**tp.booster, "num_boost_round": tp.num_boost_round,
                "early_stopping_rounds": tp.early_stopping_rounds,
                "class_weight": tp.class_weight, "refit": tp.refit},
        best_iteration=int(info["best_iteration"]),
        reference=build_reference(values, td.fm.names, seed=seed),
        importance={n: float(v) for n, v in zip(td.fm.names, imp, strict=True)},
        training=training_summary(td, info),
        provenance={"model_id": f"{target}-{hashlib.sha256(model_text.encode()).hexdigest()[:12]}",
                    "seed": seed},
    )


def training_summary(td: TrainingData, info: Mapping[str, Any]) -> dict[str, Any]:
    """Count the training data per class, group and size class (artifact and card)."""
    y_names = np.asarray(td.classes, dtype=object)[td.y]
    summary: dict[str, Any] = {
        "n_fields": len(td.fm.field_ids),
        "n_labelled": int(td.mask.sum()),
        "n_unlabelled": int((~td.mask).sum()),
        "n_features": len(td.fm.names),
        "class_counts": {c: int((td.y == k).sum()) for k, c in enumerate(td.classes)},
        "feature_missing_share": float(np.isnan(td.fm.values[td.mask]).mean()),
        **dict(info),
    }
    if td.groups is not None:
        summary["n_groups"] = len(np.unique(td.groups))
        summary["group_counts"] = _crosstab(td.groups, y_names)
    if td.sizes is not None:
        summary["size_class_counts"] = _crosstab(td.sizes, y_names)
    if td.unmatched:
        # Labelled fields without features (e.g. too small, no data): recorded, not trained on.
        summary["n_labelled_without_features"] = len(td.unmatched)
        summary["labelled_without_features_examples"] = list(td.unmatched[:10])
    if td.fm.extra:
        summary["ignored_columns"] = list(td.fm.extra)
    if td.excluded:
        summary["n_labelled_withheld"] = int(sum(td.excluded.values()))
        summary["labelled_withheld"] = dict(td.excluded)
    if td.dropped_features:
        summary["dropped_features"] = list(td.dropped_features)
    if td.seasons is not None:
        summary["season_counts"] = _crosstab(td.seasons, y_names)
    return summary


def _crosstab(rows: np.ndarray, cols: np.ndarray) -> dict[str, dict[str, int]]:
    table = pd.crosstab(pd.Series(rows, name="g"), pd.Series(cols, name="c"))
    return {str(r): {str(c): int(v) for c, v in table.loc[r].items()}
            for r in sorted(table.index, key=group_sort_key)}
