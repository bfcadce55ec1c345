"""LightGBM parameters: regenmap's defaults, merged with the user's, made reproducible."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regenmap.models.options import TrainOptions


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


def resolve_params(options: TrainOptions | None = None, *, n_rows: int | None = None
                   ) -> TrainingParams:
    """Merge the user's LightGBM parameters over the defaults and fix reproducibility settings.

    Parameters
    ----------
    options
        Parameters and loop options (defaults if None).
    n_rows
        Training rows; without an explicit ``num_threads`` LightGBM uses 1 thread below
        :data:`SMALL_DATA_ROWS` rows and 2 above; ``refit: auto`` refits below
        :data:`REFIT_MAX_ROWS`.
    """
    from regenmap.models.options import TrainOptions

    opts = options or TrainOptions()
    user = dict(opts.lightgbm)
    for key, value in _FORCED.items():
        if key in user and user[key] != value:
            warnings.warn(f"LightGBM parameter {key}={user[key]!r} is overridden by regenmap "
                          f"({value!r}) to keep results reproducible and multi-class.",
                          stacklevel=3)
        user.pop(key, None)
    user.pop("num_class", None)
    threads = 1 if n_rows is not None and n_rows < SMALL_DATA_ROWS else 2
    booster = {**DEFAULT_PARAMS, "num_threads": threads, **user, **_FORCED, "seed": int(opts.seed)}
    refit = (n_rows is None or n_rows < REFIT_MAX_ROWS) if opts.refit == "auto" else bool(opts.refit)
    return TrainingParams(booster=booster, num_boost_round=opts.num_boost_round,
                          early_stopping_rounds=opts.early_stopping_rounds,
                          class_weight=opts.class_weight, refit=refit)
