"""Which fields to visit next for training: uncertain, typical, new, and spread out.

Greedy batch selection for active learning. Each unvisited field scores

    score = w_u * uncertainty + w_r * representativeness + w_d * novelty

* uncertainty: ``1 - margin`` (top-1 minus top-2 class probability) or the entropy
  normalised by ``log k``, averaged over the targets (one visit labels them all);
* representativeness: how typical the field is of the unvisited ones: the inverse
  mean distance to its nearest unvisited neighbours in the standardised, PCA-reduced
  feature space, as a percentile (fields in dense regions of feature space count);
* novelty: distance in that space to the nearest labelled or already chosen field,
  ``d / (d + d_0)`` with ``d_0`` the median at the start; updated after every pick, so
  a batch does not pile up near-duplicates (diversity).

Spread in space: a field within ``min_distance_m`` of a chosen one is skipped, and at
most ``max_per_unit`` fields come from one administrative unit. With ``clusters = k``
the candidates are grouped in compact areas (k-means on the centroids), the ``k``
areas with the best top scores are kept and the budget is shared among them, so a
team visits ``k`` areas. Each pick keeps its score parts and the reason in words.
This combines the uncertainty, density and diversity criteria of the batch active
learning literature (e.g. Settles 2009; Demir et al. 2011 for remote sensing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors

from regenmap.errors import ModelError
from regenmap.models.visits import spatial_clusters


@dataclass(frozen=True)
class NextOptions:
    """How the next fields to visit are chosen.

    Attributes
    ----------
    budget
        Fields to choose.
    uncertainty
        ``margin`` or ``entropy``.
    w_uncertainty, w_representative, w_novelty
        Weights of the three score parts (each part lies in [0, 1]).
    min_distance_m
        No two chosen fields closer than this (centroids, metres); 0 disables.
    max_per_unit
        At most this many chosen fields per administrative unit (None: no cap).
    clusters
        Visit the fields in this many compact areas (None: anywhere).
    n_components
        PCA components of the feature space (at most the number of features).
    n_neighbours
        Neighbours of the representativeness score.
    seed
        Seed of the clustering (ties are broken by field key).
    """

    budget: int = 30
    uncertainty: str = "margin"
    w_uncertainty: float = 1.0
    w_representative: float = 0.5
    w_novelty: float = 0.5
    min_distance_m: float = 0.0
    max_per_unit: int | None = None
    clusters: int | None = None
    n_components: int = 10
    n_neighbours: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ModelError(f"budget={self.budget}: give the number of fields to visit (>= 1)")
        if self.uncertainty not in ("margin", "entropy"):
            raise ModelError(f"uncertainty={self.uncertainty!r}: use margin or entropy")
        weights = (self.w_uncertainty, self.w_representative, self.w_novelty)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ModelError("score weights must be non-negative and not all zero")
        if self.min_distance_m < 0:
            raise ModelError(f"min_distance_m={self.min_distance_m}: give a distance >= 0")
        if self.max_per_unit is not None and self.max_per_unit < 1:
            raise ModelError(f"max_per_unit={self.max_per_unit}: give a positive number")
        if self.clusters is not None and self.clusters < 1:
            raise ModelError(f"clusters={self.clusters}: give a positive number of areas")


def uncertainty_scores(proba: np.ndarray, kind: str = "margin") -> np.ndarray:
    """Uncertainty in [0, 1] of each row of class probabilities.

    Parameters
    ----------
    proba
        float (n, k) class probabilities (rows sum to 1; NaN rows give NaN).
    kind
        ``margin``: ``1 - (p_1 - p_2)``; ``entropy``: ``-sum p log p / log k``.

    Returns
    -------
    numpy.ndarray
        float (n,).
    """
    p = np.asarray(proba, dtype=float)
    k = p.shape[1]
    if k < 2:
        return np.zeros(len(p))
    if kind == "margin":
        s = np.sort(p, axis=1)
        return 1.0 - (s[:, -1] - s[:, -2])
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1) / np.log(k)
    return np.where(np.isfinite(p).all(axis=1), ent, np.nan)


def feature_space(features: np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """Standardise (median, IQR), fill gaps with the median and reduce by PCA.

    Parameters
    ----------
    features
        float (n, f), NaN allowed.
    n_components
        Components kept (at most ``min(n, f)``).

    Returns
    -------
    numpy.ndarray
        float (n, c) coordinates; distances between rows are in units of spread.
    """
    x = np.asarray(features, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ModelError("the feature matrix is empty")
    keep = np.isfinite(x).any(axis=0)
    x = x[:, keep]
    med = np.nanmedian(x, axis=0)
    q75, q25 = np.nanpercentile(x, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 0, scale, np.nanstd(x, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    z = np.where(np.isfinite(x), (x - med) / scale, 0.0)
    z = np.clip(z, -10, 10)  # one wild value must not own the distance
    c = max(1, min(n_components, z.shape[0], z.shape[1]))
    if c >= z.shape[1]:
        return z
    return PCA(n_components=c, random_state=seed).fit_transform(z)


def _percentile(v: np.ndarray) -> np.ndarray:
    r = pd.Series(v).rank(method="average", pct=True).to_numpy()
    return np.nan_to_num(r, nan=0.0)


@dataclass
class _Pool:
    key: np.ndarray
    emb: np.ndarray
    x: np.ndarray
    y: np.ndarray
    unit: np.ndarray | None
    u: np.ndarray
    rep: np.ndarray
    d: np.ndarray
    d0: float


def select_next(candidates: pd.DataFrame, proba: dict[str, np.ndarray], features: np.ndarray,
                labelled_features: np.ndarray, options: NextOptions, *,
                classes: dict[str, list[str]] | None = None, unit_column: str | None = None
                ) -> pd.DataFrame:
    """Choose ``options.budget`` fields to label next, and say why.

    Parameters
    ----------
    candidates
        One row per unvisited field that may be chosen: ``key`` (unique), ``x``,
        ``y`` (centroid, metres), and ``unit_column`` when a cap per unit is asked.
    proba
        ``{target: float (n, k)}`` class probabilities of each candidate (NaN rows:
        no prediction; such fields are not chosen).
    features
        float (n, f) the candidates' features (NaN allowed).
    labelled_features
        float (m, f) the features of the fields already labelled (m may be 0).
    options
        Budget, weights and constraints.
    classes
        ``{target: [class, ...]}`` names of the probability columns, for the reasons.
    unit_column
        Column of the administrative unit.

    Returns
    -------
    pandas.DataFrame
        One row per chosen field in the order chosen: ``key``, ``rank`` (1 = first),
        ``score``, ``uncertainty``, ``representativeness``, ``novelty`` (each in
        [0, 1] as scored when chosen), ``cluster`` (area, 1..k, or 1), ``reason``.
        Fewer rows than the budget when constraints leave too few fields.
    """
    need = ["key", "x", "y"] + ([unit_column] if unit_column else [])
    missing = [c for c in need if c not in candidates.columns]
    if missing:
        raise ModelError(f"the candidate fields lack column(s) {missing}")
    if options.max_per_unit is not None and not unit_column:
        raise ModelError("max_per_unit needs the column of the administrative unit (unit_column)")
    n = len(candidates)
    if features.shape[0] != n:
        raise ModelError(f"features have {features.shape[0]} rows for {n} candidates")
    if not proba:
        raise ModelError("give the class probabilities of at least one target")
    unc = np.column_stack([uncertainty_scores(p, options.uncertainty) for p in proba.values()])
    u = np.nanmean(np.where(np.isfinite(unc), unc, np.nan), axis=1) if unc.size else np.zeros(n)
    ok = np.isfinite(u)
    m = labelled_features.shape[0] if labelled_features.ndim == 2 else 0
    both = np.vstack([features, labelled_features]) if m else features
    emb_all = feature_space(both, options.n_components, options.seed)
    emb, lab_emb = emb_all[:n], emb_all[n:]
    k_nn = max(1, min(options.n_neighbours, n - 1))
    if n > 1:
        dist, _ = NearestNeighbors(n_neighbors=k_nn + 1).fit(emb).kneighbors(emb)
        rep = _percentile(-dist[:, 1:].mean(axis=1))
    else:
        rep = np.ones(n)
    d = (NearestNeighbors(n_neighbors=1).fit(lab_emb).kneighbors(emb)[0][:, 0] if m
         else np.full(n, np.inf))
    finite = d[np.isfinite(d)]
    d0 = float(np.median(finite)) if finite.size and np.median(finite) > 0 else 1.0
    pool = _Pool(key=candidates["key"].astype(str).to_numpy(), emb=emb,
                 x=candidates["x"].to_numpy(float), y=candidates["y"].to_numpy(float),
                 unit=candidates[unit_column].astype(str).to_numpy() if unit_column else None,
                 u=np.nan_to_num(u, nan=0.0), rep=rep, d=d, d0=d0)
    cluster = np.ones(n, dtype=np.int64)
    quota: dict[int, int] = {1: options.budget}
    if options.clusters and options.clusters > 1 and ok.sum() > options.clusters:
        cluster, quota = _choose_areas(pool, ok, options)
        ok &= np.isin(cluster, list(quota))
    picks = _greedy(pool, ok, cluster, quota, options)
    return _result(pool, picks, cluster, proba, classes or {})


def _score(pool: _Pool, options: NextOptions) -> tuple[np.ndarray, np.ndarray]:
    finite = np.isfinite(pool.d)
    nov = np.ones(len(pool.d))
    nov[finite] = pool.d[finite] / (pool.d[finite] + pool.d0)
    total = (options.w_uncertainty * pool.u + options.w_representative * pool.rep
             + options.w_novelty * nov)
    return total / (options.w_uncertainty + options.w_representative + options.w_novelty), nov


def _choose_areas(pool: _Pool, ok: np.ndarray, options: NextOptions
                  ) -> tuple[np.ndarray, dict[int, int]]:
    """Candidate areas (4 per wanted cluster) and the ``k`` with the best top scores."""
    k = int(options.clusters or 1)
    n_areas = min(int(ok.sum()), 4 * k)
    cluster = np.zeros(len(pool.key), dtype=np.int64)
    idx = np.flatnonzero(ok)
    cluster[idx] = spatial_clusters(pool.x[idx], pool.y[idx], n_areas, seed=options.seed)
    score, _ = _score(pool, options)
    per = int(np.ceil(options.budget / k))
    value = {}
    for c in np.unique(cluster[idx]):
        s = np.sort(score[idx][cluster[idx] == c])[::-1]
        value[int(c)] = float(s[:per].sum()) if s.size >= min(per, 2) else -np.inf
    best = sorted(value, key=lambda c: (-value[c], c))[:k]
    quota = {c: per for c in best}
    extra = per * len(best) - options.budget
    for c in sorted(best, key=lambda c: value[c])[:max(extra, 0)]:
        quota[c] -= 1
    # Renumber the kept areas 1..k from west to east.
    cx = {c: float(pool.x[cluster == c].mean()) for c in best}
    renum = {c: i + 1 for i, c in enumerate(sorted(best, key=lambda c: cx[c]))}
    out = np.array([renum.get(int(c), 0) for c in cluster], dtype=np.int64)
    return out, {renum[c]: quota[c] for c in best}


def _greedy(pool: _Pool, ok: np.ndarray, cluster: np.ndarray, quota: dict[int, int],
            options: NextOptions) -> list[tuple[int, float, float, float, float]]:
    alive = ok.copy()
    taken: dict[int, int] = dict.fromkeys(quota, 0)
    units: dict[str, int] = {}
    picks: list[tuple[int, float, float, float, float]] = []
    order = np.argsort(pool.key, kind="stable")  # ties broken by key
    tie = np.empty(len(order), dtype=float)
    tie[order] = np.arange(len(order)) * 1e-12
    while len(picks) < options.budget and alive.any():
        score, nov = _score(pool, options)
        score = np.where(alive, score - tie, -np.inf)
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            break
        picks.append((i, float(score[i] + tie[i]), float(pool.u[i]), float(pool.rep[i]),
                      float(nov[i])))
        alive[i] = False
        c = int(cluster[i])
        taken[c] = taken.get(c, 0) + 1
        if taken[c] >= quota.get(c, 0):
            alive &= cluster != c
        if options.min_distance_m > 0:
            near = np.hypot(pool.x - pool.x[i], pool.y - pool.y[i]) < options.min_distance_m
            alive &= ~near
        if pool.unit is not None and options.max_per_unit is not None:
            unit = pool.unit[i]
            units[unit] = units.get(unit, 0) + 1
            if units[unit] >= options.max_per_unit:
                alive &= pool.unit != unit
        step = np.linalg.norm(pool.emb - pool.emb[i], axis=1)
        pool.d = np.minimum(pool.d, step)
    return picks


def _reason(i: int, u: float, rep: float, nov: float, proba: dict[str, np.ndarray],
            classes: dict[str, list[str]]) -> str:
    """Say why field ``i`` was chosen, e.g. ``uncertainty 0.93 (tillage: reduced 0.48 vs ...)``."""
    first = f"uncertainty {u:.2f}"
    best_t, best_u = None, -1.0
    for t, p in proba.items():
        row = p[i]
        if np.isfinite(row).all() and len(row) > 1:
            s = np.sort(row)
            if 1 - (s[-1] - s[-2]) > best_u:
                best_t, best_u = t, 1 - (s[-1] - s[-2])
    if best_t is not None:
        row = proba[best_t][i]
        top = np.argsort(-row, kind="stable")[:2]
        names = classes.get(best_t) or [str(j) for j in range(len(row))]
        first += (f" ({best_t}: {names[top[0]]} {row[top[0]]:.2f} vs "
                  f"{names[top[1]]} {row[top[1]]:.2f})")
    novelty = ("unlike any labelled field" if nov >= 0.999 else
               f"novel: {nov / max(1 - nov, 1e-9):.1f}x the usual distance to labelled fields")
    return f"{first}; typical: denser in feature space than {rep:.0%} of unvisited fields; {novelty}"


def _result(pool: _Pool, picks: list[tuple[int, float, float, float, float]],
            cluster: np.ndarray, proba: dict[str, np.ndarray], classes: dict[str, list[str]]
            ) -> pd.DataFrame:
    rows = []
    for rank, (i, score, u, rep, nov) in enumerate(picks, start=1):
        rows.append({"key": pool.key[i], "rank": rank, "score": score, "uncertainty": u,
                     "representativeness": rep, "novelty": nov, "cluster": int(cluster[i]),
                     "reason": _reason(i, u, rep, nov, proba, classes)})
    return pd.DataFrame(rows, columns=["key", "rank", "score", "uncertainty",
                                       "representativeness", "novelty", "cluster", "reason"])


__all__ = ["NextOptions", "feature_space", "select_next", "uncertainty_scores"]
