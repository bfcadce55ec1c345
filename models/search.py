"""A small spatially cross-validated search over the LightGBM parameters that matter most."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np

from regenmap.models.calibration import softmax
from regenmap.models.evaluate import cross_validate_predictions
from regenmap.models.options import CVOptions, LabelledFields, TrainOptions

#: The grid: 2 x 2 x 2 = 8 spatial cross-validations. Kept small on purpose.
DEFAULT_GRID: dict[str, list[Any]] = {
    "num_leaves": [15, 63],
    "learning_rate": [0.05, 0.1],
    "min_data_in_leaf": [10, 40],
}


def search_params(data: LabelledFields, options: TrainOptions | None = None,
                  cv: CVOptions | None = None, grid: Mapping[str, list[Any]] | None = None
                  ) -> dict[str, Any]:
    """Pick the grid point with the lowest held-out log loss under spatial CV.

    Parameters
    ----------
    data
        As in :func:`regenmap.models.evaluate.cross_validate_predictions`.
    options
        Base training options; each grid point overrides its LightGBM parameters.
    cv
        Folds (random folds when ``data`` has no groups).
    grid
        LightGBM parameter -> candidate values; :data:`DEFAULT_GRID` if omitted.

    Returns
    -------
    dict
        ``best`` (the winning LightGBM overrides), ``results`` (every point with its
        held-out log loss and accuracy), ``criterion``.
    """
    from dataclasses import replace

    base = options or TrainOptions()
    cvo = cv or CVOptions()
    if data.groups is None:
        cvo = replace(cvo, random_folds=True)
    g = dict(grid or DEFAULT_GRID)
    keys = list(g)
    results: list[dict[str, Any]] = []
    for values in itertools.product(*(g[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        cvr = cross_validate_predictions(data, base.with_lightgbm(**point), cvo)
        p = softmax(cvr.raw)
        loss = float(-np.mean(np.log(np.clip(p[np.arange(len(cvr.y)), cvr.y], 1e-12, None))))
        acc = float(np.mean(p.argmax(axis=1) == cvr.y))
        results.append({"params": point, "log_loss": loss, "accuracy": acc})
    best = min(results, key=lambda r: r["log_loss"])
    return {"best": best["params"], "results": results, "criterion": "held-out log loss"}
