"""Which samples a model may judge: the one withholding rule of training and prediction.

A sample (a field in a season) is withheld, never guessed, when the extraction
flagged its field (``too_small``, ``no_data``, ``error``), when a feature-quality
flag is raised (e.g. ``flag_few_obs``: too few valid observations in the season),
or when too few of the model's features could be computed. The same rule removes
such samples from training and evaluation, so that the measured skill is the
skill of the labels the map delivers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regenmap.errors import ModelError
from regenmap.models.data import FeatureMatrix, field_level
from regenmap.schema import FIELD_ID, REASON, STATUS, FieldStatus


def upstream_status(field_status: pd.DataFrame) -> pd.DataFrame:
    """Validate an upstream status table (per field); index it by field id.

    Parameters
    ----------
    field_status
        Columns ``field_id``, ``status`` and optionally ``reason`` (e.g. the extraction's
        ``fields_status.parquet``).

    Returns
    -------
    pandas.DataFrame
        ``status`` (lower-case :class:`~regenmap.schema.FieldStatus` values) and ``reason``
        (never empty), indexed by ``field_id``.

    Raises
    ------
    ModelError
        For a missing column, an unknown status value or duplicate field ids.
    """
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


def withheld(fm: FeatureMatrix, features: pd.DataFrame, *, field_status: pd.DataFrame | None,
             flags: Sequence[str] = (), min_feature_share: float = 0.5
             ) -> tuple[np.ndarray, np.ndarray]:
    """Status and reason of every sample under the withholding rule.

    Parameters
    ----------
    fm
        The features of the samples (:func:`~regenmap.models.data.feature_matrix` of
        ``features``: the model's features at prediction, every feature at training).
    features
        The features table ``fm`` was made from (for the flag columns).
    field_status
        Upstream status per field (see :func:`upstream_status`), or None.
    flags
        Feature-quality flag columns; a sample with a value > 0 in any is ``no_data``.
        Flags absent from the table are ignored.
    min_feature_share
        Samples with fewer non-missing features than this share are ``no_data``.

    Returns
    -------
    status, reason
        (n_samples,) object arrays: ``ok`` with reason ``""``, or the withholding status
        and why, in words.
    """
    n = len(fm.field_ids)
    status = np.full(n, FieldStatus.OK.value, dtype=object)
    why = np.full(n, "", dtype=object)
    if field_status is not None:
        up = upstream_status(field_status)
        known = up.reindex(field_level(fm.field_ids))
        flagged = (known[STATUS].notna() & (known[STATUS] != FieldStatus.OK.value)).to_numpy()
        status[flagged] = known[STATUS].to_numpy()[flagged]
        why[flagged] = known[REASON].to_numpy()[flagged]
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
                 f"(minimum {min_feature_share:.0%}); too few valid observations"
                 for s in share[thin]]
    return status, why
