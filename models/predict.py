"""Prediction: labels with confidence, status and reasons, never a guess for a flagged field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from regenmap.models.data import feature_matrix, field_level
from regenmap.models.drift import drift_report, ood_features, ood_scores
from regenmap.models.eligibility import upstream_status, withheld
from regenmap.models.explain import (
    contributions,
    global_importance,
    margin_contributions,
    reason_texts,
    runner_up,
)
from regenmap.models.shift import attribution_drift, mix_noise_floor, mix_score, shift_score
from regenmap.models.train import TrainedModel
from regenmap.schema import (
    FIELD_ID,
    REASON,
    SEASON,
    STATUS,
    WHY_LOW_CONFIDENCE,
    WHY_RUN_FLAGGED,
    WHY_UNLIKE_TRAINING,
    FieldStatus,
    class_column,
    confidence_column,
    in_training_column,
    margin_column,
    model_column,
    ood_column,
    proba_column,
    reason_column,
    status_column,
)

#: Fields explained per TreeSHAP call (memory ~ chunk x classes x features x 8 bytes).
_EXPLAIN_CHUNK = 5000



def predict_target(model: TrainedModel, features: pd.DataFrame, *,
                   confidence_threshold: float | None = None,
                   field_status: pd.DataFrame | None = None,
                   ood_threshold: float = 0.5, min_feature_share: float = 0.5,
                   flags: Sequence[str] = (), explain: bool = True, top_features: int = 3,
                   held_out: pd.DataFrame | None = None,
                   shift_action: str = "withhold") -> pd.DataFrame:
    """Label every field of a features table with one model.

    Parameters
    ----------
    model
        A trained (or loaded) model.
    features
        ``field_id`` (and ``season`` when fields are described per season) + at least the
        model's features (extra columns are ignored).
    confidence_threshold
        Below this (calibrated) maximum probability the label is withheld as ``uncertain``;
        the model's own decision threshold (chosen on held-out fields) if None, else 0.5.
    field_status
        Upstream flags, columns ``field_id``, ``status`` and optionally ``reason``
        (e.g. the extraction's fields status). Fields whose status is not ``ok``
        are withheld with that status; fields listed here but absent from
        ``features`` are added as ``no_data``.
    ood_threshold
        Fields whose OOD score exceeds this are withheld as ``uncertain``; the model's own
        threshold calibrated on held-out regions is used when it is lower.
    min_feature_share
        Fields with fewer non-missing model features than this share get ``no_data``.
    flags
        Feature-quality flag columns of ``features`` (e.g. ``flag_few_obs``); a field
        with a value > 0 in any of them is withheld as ``no_data``. Flags absent from
        the table are ignored.
    explain
        Compute per-field contributions for the ``_why`` text (TreeSHAP; the
        costliest step on large tables).
    top_features
        Features named in each ``_why`` text.
    held_out
        Out-of-fold (held-out, calibrated) probabilities of the labelled samples the model
        was trained on, one column per class, indexed like the samples (``field_id`` or
        ``(field_id, season)``). Those samples are labelled from them, not from the model
        that saw their labels, so their confidence means what it says; they are marked in
        ``<t>_in_training``.

    Returns
    -------
    pandas.DataFrame
        ``field_id`` (and ``season``); ``<t>`` (class or null), ``<t>_conf``, ``<t>_margin``,
        ``<t>_p_<class>`` (float32, summing to 1 where predicted, NaN where withheld
        upstream), ``<t>_status``, ``<t>_why``, ``<t>_ood``, ``<t>_model`` (model id).
        ``attrs["drift"]``
        holds the drift report of this table against the training data.

    Raises
    ------
    ModelError
        If model features are missing from ``features`` or ``field_status`` is malformed.
    """
    t = model.target
    if confidence_threshold is None:
        confidence_threshold = float(model.decision.get("threshold", 0.5))
    if isinstance(model.decision.get("ood_threshold"), int | float):
        ood_threshold = min(ood_threshold, float(model.decision["ood_threshold"]))
    fm = feature_matrix(features, model.feature_names)
    n = len(fm.field_ids)
    status, why = withheld(fm, features, field_status=field_status, flags=flags,
                           min_feature_share=min_feature_share)
    extra = pd.Index([])
    if field_status is not None:
        up = upstream_status(field_status)
        extra = up.index.difference(pd.Index(field_level(fm.field_ids).unique()), sort=False)

    k = len(model.classes)
    proba = np.full((n, k), np.nan)
    ood = np.full(n, np.nan, dtype=np.float32)
    live = status == FieldStatus.OK.value
    weights = np.array([model.importance.get(f, 0.0) for f in model.feature_names])
    ood[live] = ood_scores(model.reference, fm.values[live], model.feature_names, weights)
    proba[live] = model.predict_proba(fm.values[live])
    trained = np.zeros(n, dtype=bool)
    if held_out is not None and len(held_out):
        pos = fm.field_ids.get_indexer(held_out.index)
        found = pos >= 0
        trained[pos[found]] = True
        use = pos[found][live[pos[found]]]
        values = held_out[list(model.classes)].to_numpy(dtype=np.float64)[found]
        proba[use] = values[live[pos[found]]]
    pred = np.full(n, -1, dtype=np.int64)
    pred[live] = np.argmax(proba[live], axis=1)
    conf = np.nanmax(np.where(live[:, None], proba, -np.inf), axis=1)
    # Decide on the float32 values written to the table, so users can re-check the rule.
    conf = np.where(live, conf, np.nan).astype(np.float32).astype(np.float64)
    srt = np.sort(np.where(live[:, None], proba, 0.0), axis=1)
    margin = np.where(live, srt[:, -1] - (srt[:, -2] if k > 1 else 0.0), np.nan)

    texts = np.full(n, "", dtype=object)
    second = np.full(n, -1, dtype=np.int64)
    if live.any():
        second[live] = runner_up(proba[live])[1]
    if explain and live.any():
        rows = np.flatnonzero(live)
        medians = [model.reference.get(f, {}).get("median") for f in model.feature_names]
        names = np.asarray(model.classes, dtype=object)
        # Contributions are (rows, classes, features + 1) float64: chunk to bound memory.
        leaning = np.zeros(len(model.feature_names))
        for start in range(0, len(rows), _EXPLAIN_CHUNK):
            sel = rows[start:start + _EXPLAIN_CHUNK]
            contrib = contributions(model.booster, fm.values[sel], k)
            leaning += global_importance(contrib) * len(sel)
            margins = margin_contributions(contrib, pred[sel], second[sel])
            texts[sel] = reason_texts(margins, fm.values[sel], model.feature_names,
                                      names[pred[sel]].tolist(), names[second[sel]].tolist(),
                                      medians,
                                      top=top_features)
    low = live & (conf < confidence_threshold)
    far = live & ~low & (ood > ood_threshold)
    for i in np.flatnonzero(low):
        why[i] = (f"{WHY_LOW_CONFIDENCE} {conf[i]:.2f} below {confidence_threshold:.2f}: leaning "
                  f"{model.classes[pred[i]]} over {model.classes[second[i]]}"
                  + (f"; {texts[i]}" if texts[i] else ""))
    far_rows = np.flatnonzero(far)
    named = ood_features(model.reference, fm.values[far_rows], model.feature_names, weights)
    for i, features_out in zip(far_rows, named, strict=True):
        why[i] = (f"{WHY_UNLIKE_TRAINING}: {ood[i]:.0%} of its (importance-weighted) features "
                  f"lie outside the training range ({features_out}); leaning "
                  f"{model.classes[pred[i]]}")
    status[low | far] = FieldStatus.UNCERTAIN.value
    ok = live & ~low & ~far
    shift = run_shift(model, fm.values[live], explained=(
        dict(zip(model.feature_names, leaning / max(int(live.sum()), 1), strict=True))
        if explain and live.any() else None), predicted=pred[live])
    if shift["flagged"] and shift_action == "withhold":
        status[ok] = FieldStatus.UNCERTAIN.value
        why[ok] = [f"{shift['reason']}; leaning {model.classes[pred[i]]}"
                   for i in np.flatnonzero(ok)]
        ok = np.zeros(n, dtype=bool)
    why[ok] = texts[ok] if explain else "ok"

    labels = np.full(n, None, dtype=object)
    labels[ok] = np.asarray(model.classes, dtype=object)[pred[ok]]

    cols: dict[str, Any] = {FIELD_ID: pd.array(field_level(fm.field_ids).to_numpy(), dtype="string")}
    if isinstance(fm.field_ids, pd.MultiIndex):
        cols[SEASON] = pd.array(fm.field_ids.get_level_values(SEASON).to_numpy(), dtype="string")
    cols |= {
        class_column(t): pd.array(labels, dtype="string"),
        confidence_column(t): conf.astype(np.float32),
        margin_column(t): margin.astype(np.float32),
    }
    for j, c in enumerate(model.classes):
        cols[proba_column(t, c)] = proba[:, j].astype(np.float32)
    cols[status_column(t)] = pd.array(status, dtype="string")
    cols[reason_column(t)] = pd.array(why, dtype="string")
    cols[ood_column(t)] = ood
    cols[in_training_column(t)] = trained
    cols[model_column(t)] = pd.array([model.provenance.get("model_id")] * n, dtype="string")
    out = pd.DataFrame(cols)
    if len(extra):
        seasons = (np.asarray(pd.unique(fm.field_ids.get_level_values(SEASON)), dtype=object)
                   if isinstance(fm.field_ids, pd.MultiIndex) else None)
        added = _status_only_rows(model, up.loc[extra], out.dtypes, seasons)
        out = pd.concat([out, added], ignore_index=True)
    report = drift_report(model.reference, fm.values[live] if live.any() else fm.values,
                          model.feature_names)
    report |= {"run_flagged": shift["flagged"], "shift_action": shift_action,
               "shift_score": shift["score"], "shift_threshold": shift["threshold"],
               "class_mix": shift["class_mix"],
               "shift_features": shift["features"], "attribution": shift["attribution"]}
    if shift["threshold"] is not None and not shift["flagged"]:
        # A calibrated run-level check passed: single features' PSI is information, not alarm.
        report["warning"] = None
    if shift["flagged"]:
        report["warning"] = (f"{shift['reason']}. "
                             + ("Every label is withheld as uncertain (model.shift_action: "
                                "withhold)." if shift_action == "withhold" else
                                "Labels are kept (model.shift_action: warn); their accuracy "
                                "may be far below the model card's."))
    out.attrs["drift"] = {t: report}
    return out


def run_shift(model: TrainedModel, values: np.ndarray,
              explained: dict[str, float] | None = None,
              predicted: np.ndarray | None = None) -> dict[str, Any]:
    """Judge a prediction run as a whole against the training data.

    Two calibrated checks: the features' shift score and the mix of predicted classes
    (:mod:`regenmap.models.shift`). Either beyond its threshold flags the run.

    Parameters
    ----------
    model
        The model (its reference distributions, importance and calibrated thresholds).
    values
        float (n, n_features) features of the fields being labelled.
    explained
        Mean absolute contribution per feature on these fields (TreeSHAP), if computed.
    predicted
        int (n,) predicted class index of each of these fields, if known.

    Returns
    -------
    dict
        ``score``, ``threshold`` (None when the evaluation calibrated none), ``flagged``,
        ``features`` (the five most shifted features with their excess PSI), ``reason``
        (a sentence for the fields' ``_why``), ``attribution`` (attribution drift or
        None), ``class_mix`` (``score``, ``threshold``, ``noise_floor``, ``flagged``,
        ``shares`` of the run and ``reference_shares``; None without ``predicted`` or a
        reference mix).
    """
    weights = np.array([model.importance.get(f, 0.0) for f in model.feature_names])
    n_ref = int(model.training.get("n_labelled", 0) or 0) or len(values)
    score, excess = shift_score(model.reference, values, model.feature_names, weights,
                                n_reference=n_ref)
    value = model.decision.get("shift_threshold")
    threshold = float(value) if isinstance(value, int | float) else None
    flagged = threshold is not None and score > threshold and len(values) > 0
    top = sorted(excess.items(), key=lambda kv: -kv[1] * model.importance.get(kv[0], 0.0))[:5]
    shifted = {k: round(v, 3) for k, v in top if v > 0}
    reasons = []
    if flagged:
        reasons.append(
            f"{WHY_RUN_FLAGGED} fields differ from the training data more than any held-out "
            f"region of the evaluation did (shift score {score:.2f} > {threshold:.2f}; most "
            "shifted: " + ", ".join(f"{k} (PSI +{v:.2f})" for k, v in list(shifted.items())[:3])
            + ")")
    mix = _class_mix(model, predicted)
    if mix is not None and mix["flagged"]:
        shares = ", ".join(f"{c} {v:.0%} (held out: {mix['reference_shares'][c]:.0%})"
                           for c, v in mix["shares"].items())
        reasons.append(
            f"{WHY_RUN_FLAGGED} mix of predicted classes ({shares}) differs from the held-out "
            f"predictions more than any accurate held-out region's did (class-mix score "
            f"{mix['score']:.2f} > {max(mix['threshold'], mix['noise_floor']):.2f}): a "
            "practice the model never learnt, a region unlike the training ones, or labels "
            "not drawn like the fields mapped (regenmap sample design draws them so)")
    attribution = (attribution_drift(model.importance, explained) if explained is not None
                   else None)
    return {"score": score, "threshold": threshold,
            "flagged": bool(reasons), "features": shifted, "reason": "; and ".join(reasons),
            "attribution": attribution, "class_mix": mix}


def _class_mix(model: TrainedModel, predicted: np.ndarray | None) -> dict[str, Any] | None:
    """Compare the run's predicted class mix with the held-out predictions' (None if unchecked)."""
    reference = model.decision.get("mix_reference")
    value = model.decision.get("mix_threshold")
    if predicted is None or not isinstance(reference, dict) or not len(predicted):
        return None
    k = len(model.classes)
    counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=k)
    ref = np.array([int(reference.get(c, 0)) for c in model.classes])
    score = mix_score(counts, ref)
    threshold = float(value) if isinstance(value, int | float) else None
    # Beyond the folds' evidence and beyond what sampling noise alone gives.
    floor = mix_noise_floor(k, int(counts.sum()), int(ref.sum()))
    return {"score": score, "threshold": threshold, "noise_floor": floor,
            "flagged": threshold is not None and score > max(threshold, floor),
            "shares": {c: float(n / counts.sum()) for c, n in zip(model.classes, counts,
                                                                    strict=True)},
            "reference_shares": {c: float(n / max(ref.sum(), 1))
                                 for c, n in zip(model.classes, ref, strict=True)}}


def _status_only_rows(model: TrainedModel, up: pd.DataFrame, dtypes: pd.Series,
                      seasons: np.ndarray | None) -> pd.DataFrame:
    """Rows for fields that have a status but no features: withheld, never guessed.

    With ``seasons``, each such field gets a row in every season of the table.
    """
    t = model.target
    if seasons is not None:
        up = up.loc[np.repeat(up.index.to_numpy(), len(seasons))]
    st = up[STATUS].to_numpy(dtype=object).copy()
    reason = up[REASON].to_numpy(dtype=object).copy()
    no_feat = st == FieldStatus.OK.value
    st[no_feat] = FieldStatus.NO_DATA.value
    reason[no_feat] = "no features were computed for this field"
    rows = pd.DataFrame({c: pd.Series([None] * len(up), dtype=dtypes[c]) for c in dtypes.index})
    rows[FIELD_ID] = pd.array(up.index.to_numpy(), dtype="string")
    if seasons is not None:
        rows[SEASON] = pd.array(np.tile(np.asarray(seasons, dtype=object), len(up) // max(
            len(seasons), 1)), dtype="string")
    rows[status_column(t)] = pd.array(st, dtype="string")
    rows[reason_column(t)] = pd.array(reason, dtype="string")
    return rows
