"""Spatial cross-validation folds: whole groups (regions, tiles, blocks) held out together."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from regenmap.errors import ModelError

RANDOM_KFOLD_WARNING = (
    "random k-fold cross-validation was requested: neighbouring fields share soils, weather "
    "and farmers, so these metrics overstate the skill on new regions. Use spatial groups."
)


def spatial_blocks(x_m: np.ndarray, y_m: np.ndarray, *, block_size_m: float) -> np.ndarray:
    """Assign each field to a square block of a regular grid on its centroid.

    Parameters
    ----------
    x_m, y_m
        Centroid coordinates in a projected CRS, metres, shape (n,).
    block_size_m
        Edge of a block, metres (> 0).

    Returns
    -------
    numpy.ndarray
        object array of block names ``"b<col>_<row>"``, shape (n,).
    """
    if block_size_m <= 0:
        raise ModelError(f"block_size_m must be > 0, got {block_size_m}")
    col = np.floor(np.asarray(x_m, dtype=float) / block_size_m).astype(np.int64)
    row = np.floor(np.asarray(y_m, dtype=float) / block_size_m).astype(np.int64)
    return np.array([f"b{c}_{r}" for c, r in zip(col, row, strict=True)], dtype=object)


def fold_ids(y: np.ndarray, groups: np.ndarray | None, *, n_folds: int, seed: int,
             target: str, classes: tuple[str, ...] | None = None) -> tuple[np.ndarray, list[str]]:
    """Assign labelled fields to cross-validation folds.

    Groups are kept whole (``StratifiedGroupKFold``, shuffled by ``seed``);
    without groups the folds are random and a warning is returned.

    Parameters
    ----------
    y
        Encoded class index of each labelled field, int array (n,).
    groups
        Group name of each labelled field (n,), or None for random folds.
    n_folds
        Requested folds (>= 2); lowered to the number of groups when there are fewer.
    seed
        Shuffling seed.
    target
        Target name for messages.
    classes
        Class names for messages.

    Returns
    -------
    folds : numpy.ndarray
        int array (n,) of fold numbers 0..k-1.
    warnings : list of str
        Caveats to record in the evaluation report.

    Raises
    ------
    ModelError
        If there are fewer than two groups, or a class has fewer fields than folds.
    """
    notes: list[str] = []
    names = classes or tuple(str(i) for i in range(int(y.max()) + 1))
    if groups is not None:
        g = pd.Series(groups).astype(str).to_numpy()
        n_groups = len(np.unique(g))
        if n_groups < 2:
            raise ModelError(
                f"target '{target}': all labelled fields are in one spatial group, so nothing "
                "can be held out. Use a finer group column or smaller model.block_size_m."
            )
        if n_groups < n_folds:
            notes.append(f"only {n_groups} spatial groups: {n_groups} folds instead of {n_folds}")
            n_folds = n_groups
    counts = np.bincount(y, minlength=len(names))
    few = [(names[k], int(c)) for k, c in enumerate(counts) if c < n_folds]
    if few:
        listed = ", ".join(f"'{c}' has {n}" for c, n in few)
        raise ModelError(
            f"target '{target}': too few labelled fields for {n_folds} folds ({listed}). "
            "Label more fields of that class, merge it with another, or lower model.n_folds."
        )
    out = np.empty(len(y), dtype=np.int64)
    splitter: StratifiedGroupKFold | StratifiedKFold
    if groups is None:
        notes.append(RANDOM_KFOLD_WARNING)
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(y)), y)
    else:
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # sklearn warns when a class is smaller than n_splits inside groups; checked above.
            warnings.simplefilter("ignore", UserWarning)
            splits = list(splitter.split(np.zeros(len(y)), y, g))
    for k, (_, test) in enumerate(splits):
        out[test] = k
    return out, notes
