"""Run-level shift: a prediction run further from the training data than the evaluation showed.

Per-field checks cannot see a shift that moves every field together (a soil or
residue effect adding 0.02 to NDTI moves conventional fields onto reduced-tillage
signatures, which look perfectly typical). The run as a whole can: its feature
distributions move against the training data's.

The shift score of a set of fields is the importance-weighted mean, over the
model's features, of each feature's population stability index (PSI) in excess of
the PSI that sampling noise alone gives (about ``(bins - 1) * (1/n + 1/n_ref)``),
so that 80 fields of one held-out region and 100,000 fields of a run are scored on
one scale. Instrumentation features (``obs_*`` observation counts, ``flag_*``) are
left out: more or fewer clouds say nothing about whether the model's reading of a
field holds, and they dominate plain PSI across regions and years.

Calibration uses the spatial cross-validation itself: each held-out fold is a
region the model did not see, with its own shift score and its own accuracy. The
threshold is the largest shift among folds whose accuracy stayed within the
tolerance (0.05) of the overall held-out accuracy: the shift the evaluation shows
the model handles. A run beyond it is outside the evidence behind the card's
figures, so its labels are withheld (``model.shift_action``).

The mix of predicted classes is checked the same way (black-box shift detection):
a class the model never learnt, or a region whose practices differ from every
training region, shows as a predicted class mix unlike the held-out predictions.
Its score is the PSI of the run's predicted class counts against the held-out
predictions' counts in excess of sampling noise (``(k - 1) * (1/n + 1/n_ref)``),
and its threshold is the largest such score among held-out folds that stayed
accurate (each fold against the other folds' predictions). The card's accuracy,
precision above all, holds for class mixes like those it was measured on.

Attribution drift compares the ranking of features by mean absolute contribution
(TreeSHAP) on the run with the ranking in training (Spearman correlation): a model
leaning on other features than it learnt to is reading the data differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import chi2

from regenmap.models.drift import psi

#: Feature name prefixes that describe the observations, not the field.
INSTRUMENTATION: tuple[str, ...] = ("obs_", "flag_")

#: Largest drop below the overall held-out accuracy a fold may show and still count as handled.
TOLERANCE = 0.05


def is_instrumentation(name: str) -> bool:
    """Whether a feature describes the observations (counts, gaps, flags) rather than the field."""
    return name.startswith(INSTRUMENTATION)


def shift_score(reference: dict[str, dict[str, Any]], values: np.ndarray,
                names: Sequence[str], weights: np.ndarray | None, *, n_reference: int
                ) -> tuple[float, dict[str, float]]:
    """Score how far a set of fields lies from the training distribution.

    Parameters
    ----------
    reference
        Training distributions (:func:`regenmap.models.drift.build_reference`).
    values
        float (n, n_features) feature values of the fields, columns in ``names`` order.
    names
        Feature names.
    weights
        Non-negative importance per feature (n_features,); equal if None or all zero.
    n_reference
        Number of training rows the reference was built from.

    Returns
    -------
    score, excess
        The importance-weighted mean excess PSI over non-instrumentation features (0 when
        nothing can be compared), and each such feature's excess PSI.
    """
    n = int(values.shape[0])
    if n == 0 or n_reference <= 0:
        return 0.0, {}
    scores = psi(reference, values, tuple(names))
    keep = [i for i, nm in enumerate(names) if nm in scores and not is_instrumentation(nm)]
    if not keep:
        return 0.0, {}
    w = (np.ones(len(names)) if weights is None or not np.any(np.asarray(weights) > 0)
         else np.asarray(weights, dtype=float))
    excess: dict[str, float] = {}
    for i in keep:
        nm = names[i]
        bins = len(reference[nm].get("edges", [])) + 1
        noise = (bins - 1) * (1.0 / n + 1.0 / n_reference)
        excess[nm] = max(scores[nm] - noise, 0.0)
    wk = w[keep]
    total = float(wk.sum())
    if total <= 0:
        wk, total = np.ones(len(keep)), float(len(keep))
    score = float(sum(excess[names[i]] * wk[j] for j, i in enumerate(keep)) / total)
    return score, excess


def mix_score(counts: np.ndarray, reference: np.ndarray) -> float:
    """Score how far a predicted class mix lies from a reference mix.

    Parameters
    ----------
    counts
        int (k,) predicted samples per class in the set scored.
    reference
        int (k,) predicted samples per class in the reference (held-out predictions).

    Returns
    -------
    float
        PSI of the two mixes minus the PSI sampling noise alone gives,
        ``(k - 1) * (1/n + 1/n_ref)``; 0 when either set is empty. Can be slightly
        negative (less different than noise).
    """
    c = np.asarray(counts, dtype=float)
    r = np.asarray(reference, dtype=float)
    n, n_ref = c.sum(), r.sum()
    if n <= 0 or n_ref <= 0:
        return 0.0
    # A class absent on one side: a floor of half a sample keeps the PSI finite.
    p = np.maximum(c, 0.5) / n
    q = np.maximum(r, 0.5) / n_ref
    noise = (len(c) - 1) * (1.0 / n + 1.0 / n_ref)
    return float(np.sum((p - q) * np.log(p / q)) - noise)


def mix_noise_floor(k: int, n: int, n_reference: int, *, level: float = 0.95) -> float:
    """Largest class-mix score sampling noise alone gives, at ``level``.

    Under no change, ``PSI / (1/n + 1/n_ref)`` is close to chi-square with ``k - 1``
    degrees of freedom, so the excess score stays below
    ``(chi2_level(k - 1) - (k - 1)) * (1/n + 1/n_ref)`` with probability ``level``. A run
    scoring below it cannot be told from its reference, whatever the folds showed.

    Parameters
    ----------
    k
        Number of classes.
    n, n_reference
        Samples in the run and in the reference.
    level
        Probability of staying below the floor under no change.

    Returns
    -------
    float
        The floor (0 when either side is empty or ``k < 2``).
    """
    if k < 2 or n <= 0 or n_reference <= 0:
        return 0.0
    return float((chi2.ppf(level, k - 1) - (k - 1)) * (1.0 / n + 1.0 / n_reference))


def calibrate_shift(folds: Sequence[Mapping[str, Any]], overall_accuracy: float, *,
                    tolerance: float = TOLERANCE, key: str = "shift_score",
                    what: str = "shift score") -> dict[str, Any]:
    """Set a run-level threshold (feature shift or class mix) from the held-out folds.

    Parameters
    ----------
    folds
        Per fold: the score under ``key`` and ``accuracy`` (of its held-out fields),
        ``groups``.
    overall_accuracy
        Held-out accuracy over all folds.
    tolerance
        Largest accuracy drop of a fold counted as handled.
    key, what
        The fold's score to calibrate on, and its name in the rationale.

    Returns
    -------
    dict
        ``threshold`` (None when no fold was handled: then every run is beyond the
        evidence, and the rationale says so), ``rationale``, ``tolerance``, ``folds``
        (score, accuracy, drop per fold).
    """
    rows: list[dict[str, Any]] = [{"fold": f.get("fold"), "groups": f.get("groups"),
             "score": float(f[key]), "accuracy": float(f["accuracy"]),
             "drop": float(overall_accuracy - f["accuracy"])}
            for f in folds if f.get(key) is not None and f.get("accuracy") is not None]
    handled = [r for r in rows if r["drop"] <= tolerance]
    if not rows:
        return {"threshold": None, "tolerance": tolerance, "folds": [],
                "rationale": f"no held-out fold to calibrate against: the run's {what} is not "
                             "checked"}
    if not handled:
        return {"threshold": None, "tolerance": tolerance, "folds": rows,
                "rationale": (f"every held-out fold lost more than {tolerance:.2f} accuracy: the "
                              "evaluation shows no shift the model handles")}
    best = max(handled, key=lambda r: r["score"])
    worse = [r for r in rows if r["drop"] > tolerance]
    text = (f"largest {what} among held-out folds within {tolerance:.2f} of the overall "
            f"accuracy: {best['score']:.3f} (fold {best['fold']}, accuracy "
            f"{best['accuracy']:.3f}); runs scoring higher are beyond the "
            "evaluation's evidence")
    if worse:
        text += ("; folds that lost more: " + ", ".join(
            f"{r['fold']} (score {r['score']:.3f}, accuracy {r['accuracy']:.3f})"
            for r in worse))
    return {"threshold": float(best["score"]), "tolerance": tolerance, "folds": rows,
            "rationale": text}


def calibrate_ood(scores: np.ndarray, correct: np.ndarray, overall_accuracy: float, *,
                  tolerance: float = TOLERANCE, min_count: int = 20,
                  ceiling: float = 0.5) -> dict[str, Any]:
    """Set the per-field OOD threshold from held-out fields' scores and correctness.

    The threshold is the lowest score above which held-out fields (at least
    ``min_count`` of them) were less accurate than the overall figure by more than
    ``tolerance`` beyond doubt (the upper end of their accuracy's 95 % Wilson interval
    lies below it, so a few unlucky fields do not withhold a map); ``ceiling`` (the
    configured threshold) when no such score exists.

    Parameters
    ----------
    scores
        float (n,) out-of-fold OOD scores of the held-out fields (NaN ignored).
    correct
        bool (n,) whether each held-out field was labelled correctly.
    overall_accuracy
        Held-out accuracy over all fields.
    tolerance, min_count, ceiling
        See above.

    Returns
    -------
    dict
        ``threshold``, ``rationale``, ``n_above`` and ``accuracy_above`` at it.
    """
    s = np.asarray(scores, dtype=float)
    c = np.asarray(correct, dtype=bool)
    ok = np.isfinite(s)
    s, c = s[ok], c[ok]
    candidates = np.unique(s[s > 0])
    for t in candidates:
        above = s >= t
        n_above = int(above.sum())
        if n_above < min_count:
            break
        acc = float(c[above].mean())
        if _wilson_upper(acc, n_above) < overall_accuracy - tolerance and t < ceiling:
            return {"threshold": float(t), "n_above": n_above, "accuracy_above": acc,
                    "rationale": (f"held-out fields with an OOD score of {t:.3f} or more "
                                  f"({n_above}) were {acc:.1%} accurate against "
                                  f"{overall_accuracy:.1%} overall: fields beyond it are "
                                  "withheld")}
    return {"threshold": float(ceiling), "n_above": int((s >= ceiling).sum()),
            "accuracy_above": None,
            "rationale": (f"no OOD score separated less accurate held-out fields (at least "
                          f"{min_count}, clearly more than {tolerance:.2f} below overall): the "
                          f"configured {ceiling:.2f} is kept")}


def _wilson_upper(p: float, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson score interval of a proportion ``p`` of ``n`` trials."""
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return float((centre + half) / (1 + z * z / n))


def attribution_drift(training: Mapping[str, float], run: Mapping[str, float], *,
                      top: int = 20) -> dict[str, Any]:
    """Compare the features a model leans on in a run with those it leant on in training.

    Parameters
    ----------
    training, run
        Feature -> mean absolute contribution (training: the model's importance).
    top
        Features compared: the union of each side's ``top`` most important.

    Returns
    -------
    dict
        ``spearman`` (rank correlation over the compared features; 1 = same ranking),
        ``moved`` (features whose rank changed most: name, training rank, run rank).
    """
    names = sorted(set(sorted(training, key=lambda k: -training[k])[:top])
                   | set(sorted(run, key=lambda k: -run.get(k, 0.0))[:top]))
    if len(names) < 3:
        return {"spearman": None, "moved": []}
    a = np.array([training.get(k, 0.0) for k in names])
    b = np.array([run.get(k, 0.0) for k in names])
    ra = (-a).argsort(kind="stable").argsort()
    rb = (-b).argsort(kind="stable").argsort()
    if np.std(ra) == 0 or np.std(rb) == 0:
        return {"spearman": None, "moved": []}
    rho = float(np.corrcoef(ra, rb)[0, 1])
    order = np.argsort(-np.abs(ra - rb), kind="stable")[:5]
    moved = [{"feature": names[i], "training_rank": int(ra[i]) + 1, "run_rank": int(rb[i]) + 1}
             for i in order if ra[i] != rb[i]]
    return {"spearman": rho, "moved": moved}
