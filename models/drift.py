"""Reference feature distributions, population stability (PSI) and per-field OOD scores.

At training, each feature's distribution on the labelled fields is summarised
by quantile bins (plus the share of NaN). At prediction the same bins give a
population stability index per feature, and each field gets an out-of-distribution
score: the importance-weighted share of its features outside the training
range (the values seen in training, widened on each side by 10 % of the span of
their central 99 %: trees predict a constant beyond the values they saw, so a
field there is extrapolated; training fields themselves score 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: PSI above which a feature is reported as drifted (the customary 0.25 "major shift").
PSI_DRIFT = 0.25
_EPS = 1e-4
_RANGE_PAD = 0.1


def build_reference(values: np.ndarray, names: tuple[str, ...], *, n_bins: int = 10,
                    max_rows: int = 20_000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Summarise each feature's training distribution.

    Parameters
    ----------
    values
        float32 array (n_fields, n_features) of the training fields.
    names
        Feature names, length n_features.
    n_bins
        Quantile bins per feature (ties merge bins of discrete features).
    max_rows
        Bins and proportions come from a seeded sample of at most this many rows
        (plenty for deciles); minimum and maximum from all rows.
    seed
        Sampling seed.

    Returns
    -------
    dict
        Per feature: ``edges`` (interior bin edges), ``proportions`` (one per bin,
        then the NaN share; sums to 1), ``p005``/``p995`` (0.5 and 99.5 percentiles),
        ``lo``/``hi`` (training min and max widened by 10 % of ``p995 - p005``), ``median``.
    """
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    out: dict[str, dict[str, Any]] = {}
    rows = None
    if values.shape[0] > max_rows:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(values.shape[0], size=max_rows, replace=False))
    finite = np.isfinite(values)
    mins = np.where(finite, values, np.inf).min(axis=0, initial=np.inf)
    maxs = np.where(finite, values, -np.inf).max(axis=0, initial=-np.inf)
    for j, name in enumerate(names):
        col = (values[:, j] if rows is None else values[rows, j]).astype(np.float64)
        ok = col[np.isfinite(col)]
        if ok.size == 0:
            out[name] = {"edges": [], "proportions": [0.0, 1.0], "lo": None, "hi": None,
                         "median": None}
            continue
        edges = np.unique(np.quantile(ok, qs))
        p005, p995 = (float(v) for v in np.quantile(ok, [0.005, 0.995]))
        pad = _RANGE_PAD * (p995 - p005)
        out[name] = {
            "edges": edges.tolist(),
            "proportions": _proportions(col, edges).tolist(),
            "p005": p005,
            "p995": p995,
            "lo": float(min(mins[j], ok.min())) - pad,
            "hi": float(max(maxs[j], ok.max())) + pad,
            "median": float(np.median(ok)),
        }
    return out


def _proportions(col: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin (len(edges) + 1 bins) then the NaN share."""
    finite = np.isfinite(col)
    idx = np.searchsorted(edges, col[finite], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, float((~finite).sum()))
    return counts / max(col.size, 1)


def psi(reference: dict[str, dict[str, Any]], values: np.ndarray, names: tuple[str, ...]
        ) -> dict[str, float]:
    """Return the population stability index of each feature against its reference.

    Parameters
    ----------
    reference
        Output of :func:`build_reference`.
    values
        float32 array (n_fields, n_features) to compare, columns in ``names`` order.
    names
        Feature names.

    Returns
    -------
    dict
        Feature name -> PSI (>= 0; 0.1-0.25 moderate, > 0.25 major shift).
    """
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        ref = reference.get(name)
        if ref is None:
            continue
        expected = np.asarray(ref["proportions"], dtype=float)
        actual = _proportions(values[:, j].astype(np.float64), np.asarray(ref["edges"]))
        e = np.clip(expected, _EPS, None)
        a = np.clip(actual, _EPS, None)
        out[name] = float(np.sum((a - e) * np.log(a / e)))
    return out


def ood_scores(reference: dict[str, dict[str, Any]], values: np.ndarray,
               names: tuple[str, ...], weights: np.ndarray | None = None) -> np.ndarray:
    """Out-of-distribution score of each field.

    Parameters
    ----------
    reference
        Output of :func:`build_reference`.
    values
        float32 array (n_fields, n_features), columns in ``names`` order.
    names
        Feature names.
    weights
        Non-negative importance of each feature (n_features,); equal if omitted.

    Returns
    -------
    numpy.ndarray
        float32 (n_fields,) in [0, 1]: weighted share of a field's non-missing
        features outside the training range (``lo``, ``hi``); NaN if all are missing.
    """
    f = values.shape[1]
    lo = np.array([_num(reference.get(nm, {}).get("lo"), -np.inf) for nm in names])
    hi = np.array([_num(reference.get(nm, {}).get("hi"), np.inf) for nm in names])
    w = np.ones(f) if weights is None or not np.any(weights > 0) else np.asarray(weights, float)
    finite = np.isfinite(values)
    outside = finite & ((values < lo) | (values > hi))
    num = outside.astype(float) @ w
    den = finite.astype(float) @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return score.astype(np.float32)


def ood_features(reference: dict[str, dict[str, Any]], values: np.ndarray,
                 names: Sequence[str], weights: np.ndarray | None = None, *, top: int = 3
                 ) -> list[str]:
    """Name, for each field, the most important features outside the training range.

    Returns
    -------
    list of str
        Per field, e.g. ``"fallow_ndti_min 0.31 (training 0.01 to 0.22)"``; ``""`` when
        every feature is inside.
    """
    f = values.shape[1]
    lo = np.array([_num(reference.get(nm, {}).get("lo"), -np.inf) for nm in names])
    hi = np.array([_num(reference.get(nm, {}).get("hi"), np.inf) for nm in names])
    w = np.ones(f) if weights is None else np.asarray(weights, float)
    outside = np.isfinite(values) & ((values < lo) | (values > hi))
    out = []
    for i in range(values.shape[0]):
        idx = np.flatnonzero(outside[i])
        idx = idx[np.argsort(-w[idx], kind="stable")][:top]
        out.append("; ".join(f"{names[int(j)]} {values[i, j]:.3g} (training {lo[j]:.3g} to "
                             f"{hi[j]:.3g})" for j in idx))
    return out


def drift_report(reference: dict[str, dict[str, Any]], values: np.ndarray,
                 names: tuple[str, ...], *, threshold: float = PSI_DRIFT) -> dict[str, Any]:
    """Summarise drift of a prediction table against the training reference.

    Returns
    -------
    dict
        ``psi`` (per feature), ``drifted`` (features of the fields with PSI above
        ``threshold``, worst first), ``instrumentation_drifted`` (observation counts and
        flags above it, reported apart), ``max_psi``, ``threshold``, ``n_fields`` and a ``warning``
        sentence (None when nothing drifted).
    """
    scores = psi(reference, values, names)
    ranked = sorted((k for k, v in scores.items() if v > threshold), key=lambda k: -scores[k])
    # Observation counts and flags describe the scenes (clouds, revisits), not the fields:
    # they are reported apart and never raise the warning.
    drifted = [k for k in ranked if not k.startswith(("obs_", "flag_"))]
    instrumentation = [k for k in ranked if k.startswith(("obs_", "flag_"))]
    warning = None
    if drifted:
        top = ", ".join(f"{k} (PSI {scores[k]:.2f})" for k in drifted[:5])
        warning = (f"{len(drifted)} of {len(scores)} features differ strongly from the training "
                   f"data: {top}. Labels may be less accurate than the model card states.")
    return {
        "psi": scores,
        "drifted": drifted,
        "instrumentation_drifted": instrumentation,
        "max_psi": max((v for k, v in scores.items() if not k.startswith(("obs_", "flag_"))),
                       default=0.0),
        "threshold": threshold,
        "n_fields": int(values.shape[0]),
        "warning": warning,
    }


def _num(value: Any, default: float) -> float:
    return default if value is None else float(value)
