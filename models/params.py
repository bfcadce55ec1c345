"""LightGBM parameters: regenmap's defaults, merged with the user's, made reproducible."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from regenmap.errors import ModelError

#: Defaults chosen for a few hundred to a few hundred thousand fields and tens to
#: hundreds of features. ``max_bin=63`` trades a little resolution for speed;
#: ``force_col_wise`` + ``deterministic`` make runs bit-for-bit repeatable.
DEFAULT_PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 63,
}

#: Below this many training rows one thread is faster than two (thread start-up and
#: contention dominate); the choice depends on the data only, so runs stay repeatable.
SMALL_DATA_ROWS = 20_000

#: Training-loop options accepted in the same mapping but not passed to LightGBM.
DEFAULT_LOOP: dict[str, Any] = {
    "num_boost_round": 300,
    "early_stopping_rounds": 20,
    "class_weight": "balanced",
    "refit": "auto",
}

#: With ``refit: auto``, the booster is refitted on all labelled fields below this
#: many; above it, the hold-out adds little and refitting would double the time.
REFIT_MAX_ROWS = 50_000

_FORCED = {"objective": "multiclass", "verbosity": -1, "deterministic": True,
           "force_col_wise": True}


@dataclass(frozen=True)
class TrainingParams:
    """LightGBM parameters and loop options of one training.

    Attributes
    ----------
    booster
        Parameters passed to ``lightgbm.train`` (without ``num_class``).
    num_boost_round
        Maximum boosting rounds.
    early_stopping_rounds
        Rounds without improvement of the held-out multi-logloss before stopping; 0 disables.
    class_weight
        ``"balanced"`` (weights n / (k * n_class)) or ``"none"``.
    refit
        Refit on all labelled fields with the early-stopped number of rounds
        (resolved from ``auto`` with the number of training rows).
    """

    booster: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    class_weight: str
    refit: bool


def resolve_params(params: Mapping[str, Any] | None, *, seed: int, n_rows: int | None = None
                   ) -> TrainingParams:
    """Merge user parameters over the defaults and fix the reproducibility settings.

    Parameters
    ----------
    params
        LightGBM parameters and/or loop options (``num_boost_round``,
        ``early_stopping_rounds``, ``class_weight``, ``refit``: true, false or ``auto``
        = true below :data:`REFIT_MAX_ROWS` rows).
    seed
        Seed of every random choice inside LightGBM.
    n_rows
        Training rows; without an explicit ``num_threads`` LightGBM uses 1 thread below
        :data:`SMALL_DATA_ROWS` rows and 2 above; ``refit: auto`` refits below
        :data:`REFIT_MAX_ROWS`.

    Raises
    ------
    ModelError
        If an option has an invalid value.
    """
    user = dict(params or {})
    loop = {k: user.pop(k, v) for k, v in DEFAULT_LOOP.items()}
    for key, value in _FORCED.items():
        if key in user and user[key] != value:
            warnings.warn(f"LightGBM parameter {key}={user[key]!r} is overridden by regenmap "
                          f"({value!r}) to keep results reproducible and multi-class.",
                          stacklevel=3)
        user.pop(key, None)
    user.pop("num_class", None)
    threads = 1 if n_rows is not None and n_rows < SMALL_DATA_ROWS else 2
    booster = {**DEFAULT_PARAMS, "num_threads": threads, **user, **_FORCED, "seed": int(seed)}
    if loop["class_weight"] not in ("balanced", "none"):
        raise ModelError(f"model.params.class_weight must be 'balanced' or 'none', "
                         f"got {loop['class_weight']!r}")
    try:
        rounds = int(loop["num_boost_round"])
        stop = int(loop["early_stopping_rounds"])
    except (TypeError, ValueError):
        raise ModelError("model.params.num_boost_round and early_stopping_rounds must be "
                         "integers") from None
    if rounds < 1 or stop < 0:
        raise ModelError(f"model.params.num_boost_round must be >= 1 (got {rounds}) and "
                         f"early_stopping_rounds >= 0 (got {stop})")
    return TrainingParams(booster=booster, num_boost_round=rounds, early_stopping_rounds=stop,
                          class_weight=str(loop["class_weight"]),
                          refit=_refit(loop["refit"], n_rows))


def _refit(value: Any, n_rows: int | None) -> bool:
    if isinstance(value, str):
        if value.lower() == "auto":
            return n_rows is None or n_rows < REFIT_MAX_ROWS
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ModelError(f"model.params.refit must be true, false or 'auto', got {value!r}")
    return bool(value)
