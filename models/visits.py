"""Where a field team goes: spatial clusters of fields and a short visit order in each.

Pure functions on centroid coordinates (metres, a projected CRS): k-means clusters
(scikit-learn) and, per cluster, a nearest-neighbour tour improved by 2-opt moves,
an open path starting at the field nearest the cluster's centre.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans


def spatial_clusters(x: np.ndarray, y: np.ndarray, k: int, *, seed: int = 0,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Group points into ``k`` compact clusters (k-means on the coordinates).

    Parameters
    ----------
    x, y
        float (n,) coordinates in metres.
    k
        Number of clusters (fewer if there are fewer distinct points).
    seed
        Seed of the k-means initialisation.
    weights
        float (n,) optional point weights (clusters gather where weights are large).

    Returns
    -------
    numpy.ndarray
        int (n,) cluster of each point, numbered 1..k from west to east of the centres.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pts = np.column_stack([x, y]).astype(float)
    k = max(1, min(int(k), len(np.unique(pts, axis=0))))
    if k == 1:
        return np.ones(n, dtype=np.int64)
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(pts, sample_weight=weights)
    order = np.argsort(km.cluster_centers_[:, 0], kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(1, k + 1)
    return rank[km.labels_]


def _path_length(pts: np.ndarray, order: np.ndarray) -> float:
    return float(np.sum(np.hypot(*np.diff(pts[order], axis=0).T)))


def visit_order(x: np.ndarray, y: np.ndarray, *, max_passes: int = 20) -> np.ndarray:
    """Order points for a short open walk through all of them.

    Starts at the west-most point of the group (a path end), visits the nearest
    unvisited point next, then improves the path by
    2-opt segment reversals until none shortens it (or ``max_passes``).

    Parameters
    ----------
    x, y
        float (n,) coordinates in metres.
    max_passes
        Limit of 2-opt passes.

    Returns
    -------
    numpy.ndarray
        int (n,) visit rank of each point, 1 = first.
    """
    n = len(x)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pts = np.column_stack([x, y]).astype(float)
    start = int(np.lexsort((pts[:, 1], pts[:, 0]))[0])
    left = np.ones(n, dtype=bool)
    left[start] = False
    path = [start]
    while left.any():
        last = pts[path[-1]]
        cand = np.flatnonzero(left)
        nxt = int(cand[np.argmin(np.hypot(*(pts[cand] - last).T))])
        path.append(nxt)
        left[nxt] = False
    order = np.asarray(path)
    for _ in range(max_passes):
        improved = False
        for i in range(1, n - 1):
            for j in range(i + 1, n):
                a, b = pts[order[i - 1]], pts[order[i]]
                c = pts[order[j]]
                d = pts[order[j + 1]] if j + 1 < n else None
                before = np.hypot(*(a - b)) + (np.hypot(*(c - d)) if d is not None else 0.0)
                after = np.hypot(*(a - c)) + (np.hypot(*(b - d)) if d is not None else 0.0)
                if after < before - 1e-9:
                    order[i:j + 1] = order[i:j + 1][::-1]
                    improved = True
        if not improved:
            break
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    return rank


def visit_orders(x: np.ndarray, y: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """Visit rank of each point within its cluster (see :func:`visit_order`).

    Returns
    -------
    numpy.ndarray
        int (n,) rank 1..n_c within each cluster.
    """
    out = np.zeros(len(x), dtype=np.int64)
    for c in np.unique(cluster):
        sel = np.flatnonzero(cluster == c)
        out[sel] = visit_order(np.asarray(x)[sel], np.asarray(y)[sel])
    return out


def route_length(x: np.ndarray, y: np.ndarray, rank: np.ndarray) -> float:
    """Length (metres) of the open walk visiting the points in ``rank`` order."""
    pts = np.column_stack([x, y]).astype(float)
    return _path_length(pts, np.argsort(rank, kind="stable"))


__all__ = ["route_length", "spatial_clusters", "visit_order", "visit_orders"]
