"""Normalise the inputs of training and prediction once, at the boundary.

The features table is ``field_id`` (and ``season`` when a field is described in
several seasons: a sample is a field in a season) plus numeric feature columns.
Labels are pandas Series indexed by ``field_id`` or by ``(field_id, season)``;
groups and field areas by ``field_id`` (they hold for every season of a field).
Everything inside :mod:`regenmap.models` works on the plain arrays these
functions return.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from regenmap.errors import ModelError
from regenmap.schema import FIELD_ID, SAMPLE_KEY, SEASON

#: Field-size classes reported in every evaluation: (label, lower ha, upper ha).
SIZE_CLASSES: tuple[tuple[str, float, float], ...] = (
    ("<2 ha", 0.0, 2.0),
    ("2-10 ha", 2.0, 10.0),
    ("10-50 ha", 10.0, 50.0),
    (">50 ha", 50.0, np.inf),
)


@dataclass(frozen=True)
class FeatureMatrix:
    """Features as a dense array with their field ids and names.

    Attributes
    ----------
    field_ids
        Sample identifiers, shape (n_samples,), in the row order of ``values``: an Index of
        field ids, or a MultiIndex ``(field_id, season)`` when the table has seasons.
    values
        float32 array of shape (n_fields, n_features); NaN where missing.
    names
        Feature names, length n_features, in column order.
    extra
        Numeric columns of the table that were not used (not model features).
    """

    field_ids: pd.Index
    values: np.ndarray
    names: tuple[str, ...]
    extra: tuple[str, ...] = ()


def feature_columns(features: pd.DataFrame) -> list[str]:
    """Return the feature columns of a features table: every numeric column but the id.

    Parameters
    ----------
    features
        Features table with a ``field_id`` column.

    Returns
    -------
    list of str
        Column names in table order (booleans are excluded).
    """
    return [
        str(c)
        for c in features.columns
        if c not in SAMPLE_KEY
        and pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    ]


def feature_matrix(
    features: pd.DataFrame, names: Sequence[str] | None = None, *, what: str = "features table"
) -> FeatureMatrix:
    """Turn a features table into a :class:`FeatureMatrix`.

    Parameters
    ----------
    features
        Table with ``field_id`` (unique) and numeric feature columns.
    names
        Feature names and order expected by a model; every numeric column if omitted.
    what
        Name of the table used in error messages.

    Raises
    ------
    ModelError
        If ``field_id`` is absent or duplicated, there are no feature columns,
        or model features are missing (all missing names are listed).
    """
    if FIELD_ID not in features.columns:
        raise ModelError(
            f"{what} has no '{FIELD_ID}' column (columns: {list(features.columns)[:8]}...). "
            "Pass the table written by the features stage."
        )
    ids = sample_index(features)
    if ids.has_duplicates:
        dup = ids[ids.duplicated()].unique()[:5].tolist()
        key = "(field_id, season)" if isinstance(ids, pd.MultiIndex) else FIELD_ID
        raise ModelError(f"{what}: duplicate {key} values {dup}; each sample must appear once.")
    available = feature_columns(features)
    if names is None:
        used = available
        if not used:
            raise ModelError(f"{what} has no numeric feature columns besides '{FIELD_ID}'.")
        extra: list[str] = []
    else:
        used = list(names)
        missing = [n for n in used if n not in available]
        if missing:
            raise ModelError(
                f"{what} lacks {len(missing)} of the model's {len(used)} features: "
                f"{_short_list(missing)}. Compute the features with the configuration the model "
                "was trained with, or retrain the model on this features table."
            )
        extra = [c for c in available if c not in set(used)]
    values = features[used].to_numpy(dtype=np.float32, na_value=np.nan)
    return FeatureMatrix(field_ids=ids, values=values, names=tuple(used), extra=tuple(extra))


def drop_empty_features(fm: FeatureMatrix, *, mask: np.ndarray | None = None
                        ) -> tuple[FeatureMatrix, tuple[str, ...]]:
    """Leave out feature columns that hold no value on the training rows.

    A sparse series (a few dates a year) leaves some windows empty on every sample:
    such columns carry no information and are left out, and named, instead of
    stopping the training.

    Parameters
    ----------
    fm
        Features of all samples.
    mask
        Boolean array (n_samples,) selecting the labelled rows; all rows if omitted.

    Returns
    -------
    fm, dropped
        The matrix without those columns, and their names.

    Raises
    ------
    ModelError
        If no column holds a value on the training rows.
    """
    values = fm.values if mask is None else fm.values[mask]
    empty = np.isnan(values).all(axis=0)
    if not empty.any():
        return fm, ()
    if empty.all():
        raise ModelError(
            f"every one of the {len(fm.names)} feature columns is empty on the labelled "
            "samples: no observation falls in their seasons. Check the scenes' dates against "
            "the labels' seasons.")
    keep = np.flatnonzero(~empty)
    dropped = tuple(fm.names[j] for j in np.flatnonzero(empty))
    return FeatureMatrix(field_ids=fm.field_ids, values=fm.values[:, keep],
                         names=tuple(fm.names[j] for j in keep), extra=fm.extra), dropped


def sample_index(table: pd.DataFrame) -> pd.Index:
    """Return the sample keys of a table: ``field_id``, or ``(field_id, season)`` with seasons.

    Parameters
    ----------
    table
        A features, labels or predictions table with a ``field_id`` column.

    Returns
    -------
    pandas.Index
        Field ids (str), or a MultiIndex of (field id, season) strings.
    """
    fields = table[FIELD_ID].astype(str).to_numpy()
    if SEASON in table.columns:
        seasons = table[SEASON].astype(str).to_numpy()
        return pd.MultiIndex.from_arrays([fields, seasons], names=list(SAMPLE_KEY))
    return pd.Index(fields, name=FIELD_ID)


def field_level(ids: pd.Index) -> pd.Index:
    """Return the field ids of sample keys (``ids`` itself when it has no season level)."""
    return ids.get_level_values(FIELD_ID) if isinstance(ids, pd.MultiIndex) else ids


def align(series: pd.Series | None, field_ids: pd.Index, *, what: str) -> pd.Series | None:
    """Align per-field or per-sample values to the samples of a features table.

    Parameters
    ----------
    series
        Values indexed by ``field_id`` (they then hold for every season of the field),
        by ``(field_id, season)``, or positionally aligned with the features table when
        it has the same length and a default RangeIndex.
    field_ids
        Target sample keys (see :func:`sample_index`).
    what
        Name used in error messages (e.g. ``"labels 'tillage'"``).

    Returns
    -------
    pandas.Series or None
        Indexed by ``field_ids``; NaN/None for samples the series does not cover.

    Raises
    ------
    ModelError
        If the series shares no field id with the features table, has duplicate keys, or
        is per season while the features table is not.
    """
    if series is None:
        return None
    s = series.copy()
    if isinstance(s.index, pd.RangeIndex) and len(s) == len(field_ids):
        s.index = field_ids
        return s
    per_sample = isinstance(s.index, pd.MultiIndex)
    if per_sample:
        if not isinstance(field_ids, pd.MultiIndex):
            raise ModelError(f"{what} are given per season but the features table has no "
                             f"'{SEASON}' column; compute features per season.")
        s.index = pd.MultiIndex.from_arrays(
            [s.index.get_level_values(i).astype(str) for i in range(2)], names=list(SAMPLE_KEY))
    else:
        s.index = pd.Index(s.index.astype(str), name=FIELD_ID)
    if s.index.has_duplicates:
        dup = s.index[s.index.duplicated()].unique()[:5].tolist()
        raise ModelError(f"{what}: duplicate keys {dup}.")
    fields = field_level(s.index)
    if len(s) and not fields.isin(field_level(field_ids)).any():
        raise ModelError(
            f"{what}: none of its {len(s)} field ids is in the features table "
            f"(e.g. {fields[:3].tolist()} vs {field_level(field_ids)[:3].tolist()}). "
            f"Index it by {FIELD_ID}."
        )
    if per_sample or not isinstance(field_ids, pd.MultiIndex):
        return s.reindex(field_ids)
    out = s.reindex(field_level(field_ids))
    out.index = field_ids
    return out


def clean_labels(labels: pd.Series, *, target: str, classes: Sequence[str] | None = None
                 ) -> pd.Series:
    """Normalise label strings and check them against declared classes (:func:`check_classes`).

    Parameters
    ----------
    labels
        Class names (any dtype); NaN, None and blank strings mean unlabelled.
    target
        Target name for messages.
    classes
        Declared class names; any other label value is an error.

    Returns
    -------
    pandas.Series
        object dtype, stripped strings or None.

    Raises
    ------
    ModelError
        See :func:`check_classes`.
    """
    text = labels.astype("string").str.strip()
    text = text.mask(text == "")
    values = text.astype(object).to_numpy(copy=True)
    values[text.isna().to_numpy()] = None
    out = pd.Series(values, index=labels.index, dtype=object, name=target)
    check_classes(out, target=target, classes=classes)
    return out


def class_key(name: str) -> str:
    """Spelling-insensitive form of a class name: case, spaces, hyphens and underscores ignored."""
    return re.sub(r"[\s_-]+", "", str(name)).casefold()


def check_classes(labels: pd.Series, *, target: str, classes: Sequence[str] | None = None
                  ) -> dict[str, int]:
    """Check the classes of a target's labels; return how many fields each class has.

    With declared ``classes``, a label outside them is an error. Without, two labels
    that differ only in case, spaces, hyphens or underscores (``No-Till`` and
    ``no_till``) are an error too: the rarer one is almost surely a typo of the other,
    and would silently become a class of its own.

    Parameters
    ----------
    labels
        Cleaned labels (stripped strings, None when unlabelled).
    target
        Target name for messages.
    classes
        Declared class names, or None to take the classes from the labels.

    Returns
    -------
    dict
        Class -> number of labelled fields, most frequent first.

    Raises
    ------
    ModelError
        Naming each offending label, its number of fields and the class it probably
        means ("did you mean").
    """
    counts = {str(k): int(v) for k, v in labels.dropna().value_counts().items()}
    if classes is not None:
        declared = [str(c) for c in classes]
        unknown = sorted(c for c in counts if c not in declared)
        if unknown:
            hints = [_did_you_mean(c, counts[c], declared) for c in unknown]
            raise ModelError(
                f"labels of target '{target}' hold unknown class(es): {'; '.join(hints)}. "
                f"Declared classes: {declared}. Fix the labels or model.classes.{target}."
            )
        return counts
    by_key: dict[str, list[str]] = {}
    for name in counts:  # most frequent first
        by_key.setdefault(class_key(name), []).append(name)
    typos = [(name, group[0]) for group in by_key.values() if len(group) > 1 for name in group[1:]]
    if typos:
        hints = [f"'{name}' ({counts[name]} fields, did you mean '{main}' ({counts[main]} "
                 "fields)?)" for name, main in typos]
        raise ModelError(
            f"labels of target '{target}' hold classes that differ only in case, spaces or "
            f"hyphens: {'; '.join(hints)}. Fix the labels, or declare the classes "
            f"(model.classes.{target})."
        )
    return counts


def _did_you_mean(label: str, n: int, declared: Sequence[str]) -> str:
    """``'No-Till ' (3 fields, did you mean 'no_till'?)`` for an undeclared label."""
    same = [c for c in declared if class_key(c) == class_key(label)]
    close = same or difflib.get_close_matches(label, declared, n=1)
    return f"'{label}' ({n} fields" + (f", did you mean '{close[0]}'?)" if close else ")")


def class_list(labels: pd.Series, *, target: str, classes: Sequence[str] | None = None
               ) -> tuple[str, ...]:
    """Return the classes of a target: the declared ones, else the sorted labels present.

    Raises
    ------
    ModelError
        If fewer than two classes are present, or a declared class has no label.
    """
    counts = labels.dropna().value_counts()
    if classes is not None:
        absent = [c for c in classes if counts.get(c, 0) == 0]
        if absent:
            raise ModelError(
                f"target '{target}': declared class(es) {absent} have no labelled field; "
                "a model cannot learn them. Add labels or remove them from model.classes."
            )
        out = tuple(classes)
    else:
        out = tuple(sorted(str(c) for c in counts.index))
    if len(out) < 2:
        raise ModelError(
            f"target '{target}' has {len(out)} class(es) among its {int(counts.sum())} labelled "
            f"fields ({list(out)}); at least two are needed to train a classifier."
        )
    return out


def size_class(area_ha: np.ndarray | pd.Series) -> np.ndarray:
    """Return the field-size class label of each area.

    Parameters
    ----------
    area_ha
        Field areas in hectares, shape (n,); NaN gives ``"unknown"``.

    Returns
    -------
    numpy.ndarray
        object array of labels from :data:`SIZE_CLASSES`.
    """
    a = np.asarray(area_ha, dtype=float)
    out = np.full(a.shape, "unknown", dtype=object)
    for label, lo, hi in SIZE_CLASSES:
        out[(a >= lo) & (a < hi)] = label
    return out


def group_sort_key(label: object) -> tuple[int, str]:
    """Order subgroup labels: field-size classes by size, anything else alphabetically."""
    order = {name: i for i, (name, _, _) in enumerate(SIZE_CLASSES)}
    text = str(label)
    return (order.get(text, len(order)), text)


def _short_list(items: Sequence[str], n: int = 10) -> str:
    shown = ", ".join(repr(s) for s in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")
