"""Prediction: labels with confidence, status and reasons, never a guess for a flagged field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from regenmap.errors import ModelError
from regenmap.models.data import feature_matrix
from regenmap.models.drift import drift_report, ood_scores
from regenmap.models.explain import contributions, why_texts
from regenmap.models.train import TrainedModel
from regenmap.schema import (
    FIELD_ID,
    REASON,
    STATUS,
    FieldStatus,
    class_column,
    confidence_column,
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
                   confidence_threshold: float = 0.5, field_status: pd.DataFrame | None = None,
                   ood_threshold: float = 0.5, min_feature_share: float = 0.5,
                   flags: Sequence[str] = (), explain: bool = True, top_features: int = 3
                   ) -> pd.DataFrame:
    """Label every field of a features table with one model.

    Parameters
    ----------
    model
        A trained (or loaded) model.
    features
        ``field_id`` + at least the model's features (extra columns are ignored).
    confidence_threshold
        Below this (calibrated) maximum probability the label is withheld as ``uncertain``.
    field_status
        Upstream flags, columns ``field_id``, ``status`` and optionally ``reason``
        (e.g. the extraction's fields status). Fields whose status is not ``ok``
        are withheld with that status; fields listed here but absent from
        ``features`` are added as ``no_data``.
    ood_threshold
        Fields whose OOD score exceeds this are withheld as ``uncertain``.
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

    Returns
    -------
    pandas.DataFrame
        ``field_id``; ``<t>`` (class or null), ``<t>_conf``, ``<t>_margin``,
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
    fm = feature_matrix(features, model.feature_names)
    n = len(fm.field_ids)
    status = np.full(n, FieldStatus.OK.value, dtype=object)
    why = np.full(n, "", dtype=object)

    extra_ids: list[str] = []
    if field_status is not None:
        up = _upstream(field_status)
        known = up.reindex(fm.field_ids)
        flagged = known[STATUS].notna() & (known[STATUS] != FieldStatus.OK.value)
        status[flagged.to_numpy()] = known.loc[flagged, STATUS].to_numpy()
        why[flagged.to_numpy()] = known.loc[flagged, REASON].to_numpy()
        # index operations: linear in fields (a set rebuilt per id was quadratic)
        extra_ids = up.index[~up.index.isin(pd.Index(fm.field_ids))].tolist()

    for flag in flags:
        if flag not in features.columns:
            continue
        raised = (status == FieldStatus.OK.value) & (
            pd.to_numeric(features[flag], errors="coerce").fillna(0).to_numpy() > 0)
        status[raised] = FieldStatus.NO_DATA.value
        why[raised] = f"withheld: feature-quality flag {flag} is set"

    share = np.isfinite(fm.values).mean(axis=1) if fm.values.shape[1] else np.zeros(n)
    thin = (status == FieldStatus.OK.value) & (share < min_feature_share)
    status[thin] = FieldStatus.NO_DATA.value
    why[thin] = [f"only {s:.0%} of the model's features could be computed "
                 f"(minimum {min_feature_share:.0%}); too few valid observations" for s in share[thin]]

    k = len(model.classes)
    proba = np.full((n, k), np.nan)
    ood = np.full(n, np.nan, dtype=np.float32)
    live = status == FieldStatus.OK.value
    weights = np.array([model.importance.get(f, 0.0) for f in model.feature_names])
    ood[live] = ood_scores(model.reference, fm.values[live], model.feature_names, weights)
    proba[live] = model.predict_proba(fm.values[live])
    pred = np.full(n, -1, dtype=np.int64)
    pred[live] = np.argmax(proba[live], axis=1)
    conf = np.nanmax(np.where(live[:, None], proba, -np.inf), axis=1)
    # Decide on the float32 values written to the table, so users can re-check the rule.
    conf = np.where(live, conf, np.nan).astype(np.float32).astype(np.float64)
    srt = np.sort(np.where(live[:, None], proba, 0.0), axis=1)
    margin = np.where(live, srt[:, -1] - (srt[:, -2] if k > 1 else 0.0), np.nan)

    texts = np.full(n, "", dtype=object)
    if explain and live.any():
        rows = np.flatnonzero(live)
        # Contributions are (rows, classes, features + 1) float64: chunk to bound memory.
        for start in range(0, len(rows), _EXPLAIN_CHUNK):
            sel = rows[start:start + _EXPLAIN_CHUNK]
            contrib = contributions(model.booster, fm.values[sel], k)
            texts[sel] = why_texts(contrib, pred[sel], model.feature_names, top=top_features)
    low = live & (conf < confidence_threshold)
    far = live & ~low & (ood > ood_threshold)
    for i in np.flatnonzero(low):
        why[i] = (f"confidence {conf[i]:.2f} below {confidence_threshold:.2f}, leaning "
                  f"{model.classes[pred[i]]}" + (f": {texts[i]}" if texts[i] else ""))
    for i in np.flatnonzero(far):
        why[i] = (f"unlike the training data: {ood[i]:.0%} of its (importance-weighted) features "
                  f"lie outside the training range; leaning {model.classes[pred[i]]}")
    status[low | far] = FieldStatus.UNCERTAIN.value
    ok = live & ~low & ~far
    why[ok] = texts[ok] if explain else "ok"

    labels = np.full(n, None, dtype=object)
    labels[ok] = np.asarray(model.classes, dtype=object)[pred[ok]]

    cols: dict[str, Any] = {
        FIELD_ID: pd.array(fm.field_ids.to_numpy(), dtype="string"),
        class_column(t): pd.array(labels, dtype="string"),
        confidence_column(t): conf.astype(np.float32),
        margin_column(t): margin.astype(np.float32),
    }
    for j, c in enumerate(model.classes):
        cols[proba_column(t, c)] = proba[:, j].astype(np.float32)
    cols[status_column(t)] = pd.array(status, dtype="string")
    cols[reason_column(t)] = pd.array(why, dtype="string")
    cols[ood_column(t)] = ood
    cols[model_column(t)] = pd.array([model.provenance.get("model_id")] * n, dtype="string")
    out = pd.DataFrame(cols)
    if extra_ids:
        out = pd.concat([out, _status_only_rows(model, up.loc[extra_ids], out.dtypes)],
                        ignore_index=True)
    report = drift_report(model.reference, fm.values[live] if live.any() else fm.values,
                          model.feature_names)
    out.attrs["drift"] = {t: report}
    return out


def _upstream(field_status: pd.DataFrame) -> pd.DataFrame:
    """Validate an upstream status table; index it by field id."""
    missing = [c for c in (FIELD_ID, STATUS) if c not in field_status.columns]
    if missing:
        raise ModelError(f"field status table lacks column(s) {missing}; it needs "
                         f"'{FIELD_ID}', '{STATUS}' and optionally '{REASON}'.")
    valid = {s.value for s in FieldStatus}
    st = field_status[STATUS].astype(str).str.strip().str.lower()
    bad = sorted(set(st) - valid)
    if bad:
        raise ModelError(f"field status table holds unknown status value(s) {bad}; "
                         f"valid: {sorted(valid)}.")
    reason = (field_status[REASON].astype(object) if REASON in field_status
              else pd.Series(None, index=field_status.index, dtype=object))
    default = st.map(lambda s: f"flagged upstream: {s}")
    reason = reason.where(reason.notna() & (reason.astype(str).str.strip() != ""), default)
    up = pd.DataFrame({STATUS: st.to_numpy(), REASON: reason.astype(str).to_numpy()},
                      index=pd.Index(field_status[FIELD_ID].astype(str), name=FIELD_ID))
    if up.index.has_duplicates:
        dup = up.index[up.index.duplicated()].unique()[:5].tolist()
        raise ModelError(f"field status table: duplicate {FIELD_ID} values {dup}.")
    return up


def _status_only_rows(model: TrainedModel, up: pd.DataFrame, dtypes: pd.Series) -> pd.DataFrame:
    """Rows for fields that have a status but no features: withheld, never guessed."""
    t = model.target
    st = up[STATUS].to_numpy(dtype=object).copy()
    reason = up[REASON].to_numpy(dtype=object).copy()
    no_feat = st == FieldStatus.OK.value
    st[no_feat] = FieldStatus.NO_DATA.value
    reason[no_feat] = "no features were computed for this field"
    rows = pd.DataFrame({c: pd.Series([None] * len(up), dtype=dtypes[c]) for c in dtypes.index})
    rows[FIELD_ID] = pd.array(up.index.to_numpy(), dtype="string")
    rows[status_column(t)] = pd.array(st, dtype="string")
    rows[reason_column(t)] = pd.array(reason, dtype="string")
    return rows
