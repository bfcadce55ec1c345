"""A small spatially cross-validated search over the LightGBM parameters that matter most."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from regenmap.models.calibration import softmax
from regenmap.models.evaluate import cross_validate_predictions

#: The grid: 2 x 2 x 2 = 8 spatial cross-validations. Kept small on purpose.
DEFAULT_GRID: dict[str, list[Any]] = {
    "num_leaves": [15, 63],
    "learning_rate": [0.05, 0.1],
    "min_data_in_leaf": [10, 40],
}


def search_params(features: pd.DataFrame, labels: pd.Series, *, target: str,
                  groups: pd.Series | None, n_folds: int = 5,
                  params: Mapping[str, Any] | None = None, seed: int = 0,
                  classes: Sequence[str] | None = None,
                  grid: Mapping[str, list[Any]] | None = None) -> dict[str, Any]:
    """Pick the grid point with the lowest held-out log loss under spatial CV.

    Parameters
    ----------
    features, labels, target, groups, n_folds, seed, classes
        As in :func:`regenmap.models.evaluate.cross_validate_predictions`.
    params
        Base parameters; each grid point overrides its keys.
    grid
        Parameter -> candidate values; :data:`DEFAULT_GRID` if omitted.

    Returns
    -------
    dict
        ``best`` (the winning overrides), ``results`` (every point with its held-out
        log loss and accuracy), ``criterion``.
    """
    g = dict(grid or DEFAULT_GRID)
    keys = list(g)
    results: list[dict[str, Any]] = []
    for values in itertools.product(*(g[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        cv = cross_validate_predictions(features, labels, target=target, groups=groups,
                                        n_folds=n_folds, params={**(params or {}), **point},
                                        seed=seed, classes=None if classes is None else list(classes),
                                        random_folds=groups is None)
        p = softmax(cv.raw)
        loss = float(-np.mean(np.log(np.clip(p[np.arange(len(cv.y)), cv.y], 1e-12, None))))
        acc = float(np.mean(p.argmax(axis=1) == cv.y))
        results.append({"params": point, "log_loss": loss, "accuracy": acc})
    best = min(results, key=lambda r: r["log_loss"])
    return {"best": best["params"], "results": results, "criterion": "held-out log loss"}
