"""The inputs and options of the models layer, as frozen values checked when made.

- :class:`LabelledFields`: what a target is trained and evaluated on (features,
  labels, spatial groups, areas).
- :class:`TrainOptions`: LightGBM parameters and the boosting loop.
- :class:`CVOptions`: how cross-validation folds are drawn.
- :class:`EvaluationOptions`: what the held-out evaluation reports.

The run configuration (``model:`` section) builds them; notebooks make them directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import pandas as pd

from regenmap.errors import ConfigError


@lru_cache(maxsize=1)
def lightgbm_parameter_names() -> frozenset[str]:
    """Every parameter name and alias LightGBM knows (e.g. ``num_leaves``, ``max_leaves``).

    Read from LightGBM itself, so it follows the installed version.
    """
    from lightgbm.basic import _ConfigAliases

    aliases: dict[str, Any] = _ConfigAliases._get_all_param_aliases()
    return frozenset({*aliases, *(a for names in aliases.values() for a in names)})


def check_lightgbm_params(params: Mapping[str, Any]) -> None:
    """Refuse parameter names LightGBM does not know (it would ignore them silently).

    Raises
    ------
    ConfigError
        Naming each unknown key, with the closest known names.
    """
    import difflib

    known = lightgbm_parameter_names()
    problems = []
    for key in params:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        problems.append(f"{key!r}{hint}")
    if problems:
        raise ConfigError(f"unknown LightGBM parameter(s) {'; '.join(problems)}; see "
                          "https://lightgbm.readthedocs.io/en/latest/Parameters.html")


@dataclass(frozen=True)
class TrainOptions:
    """How one LightGBM model is fitted.

    Attributes
    ----------
    lightgbm
        LightGBM parameters over regenmap's defaults
        (:data:`regenmap.models.params.DEFAULT_PARAMS`); names are checked.
    num_boost_round
        Maximum boosting rounds (>= 1).
    early_stopping_rounds
        Rounds without improvement of the held-out multi-logloss before stopping; 0 disables.
    class_weight
        ``balanced`` (weights n / (k * n_class)) or ``none``.
    refit
        Refit on all labelled fields with the early-stopped number of rounds: true,
        false, or ``auto`` (true below :data:`regenmap.models.params.REFIT_MAX_ROWS` rows).
    seed
        Seed of every random choice inside LightGBM.
    min_label_share
        Smallest share (0-1) of the labelled samples that training may use once the
        samples prediction would withhold are left out; fewer is an error.
    """

    lightgbm: Mapping[str, Any] = field(default_factory=dict)
    num_boost_round: int = 300
    early_stopping_rounds: int = 20
    class_weight: Literal["balanced", "none"] = "balanced"
    refit: bool | Literal["auto"] = "auto"
    seed: int = 0
    min_label_share: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lightgbm", dict(self.lightgbm))
        if not 0 <= self.min_label_share <= 1:
            raise ConfigError(f"min_label_share must lie in [0, 1], got {self.min_label_share}")
        check_lightgbm_params(self.lightgbm)
        if self.class_weight not in ("balanced", "none"):
            raise ConfigError(f"class_weight must be 'balanced' or 'none', got {self.class_weight!r}")
        if isinstance(self.num_boost_round, bool) or not isinstance(self.num_boost_round, int) \
                or self.num_boost_round < 1:
            raise ConfigError(f"num_boost_round must be an integer >= 1, got {self.num_boost_round!r}")
        if isinstance(self.early_stopping_rounds, bool) \
                or not isinstance(self.early_stopping_rounds, int) or self.early_stopping_rounds < 0:
            raise ConfigError("early_stopping_rounds must be an integer >= 0, got "
                              f"{self.early_stopping_rounds!r}")
        if self.refit not in (True, False, "auto"):
            raise ConfigError(f"refit must be true, false or 'auto', got {self.refit!r}")

    def with_lightgbm(self, **overrides: Any) -> TrainOptions:
        """Return a copy whose LightGBM parameters are updated with ``overrides``."""
        from dataclasses import replace

        return replace(self, lightgbm={**self.lightgbm, **overrides})


@dataclass(frozen=True)
class CVOptions:
    """How cross-validation folds are drawn.

    Attributes
    ----------
    n_folds
        Folds (>= 2); lowered to the number of groups when there are fewer.
    random_folds
        Random stratified folds instead of whole spatial groups (overstates skill;
        recorded as a caveat).
    seed
        Seed of the fold assignment.
    """

    n_folds: int = 5
    random_folds: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_folds < 2:
            raise ConfigError(f"n_folds must be >= 2, got {self.n_folds}")


@dataclass(frozen=True)
class EvaluationOptions:
    """What the held-out evaluation of a target reports.

    Attributes
    ----------
    calibration
        Calibration evaluated by cross-fitting: ``none``, ``temperature`` or ``isotonic``.
    n_bootstrap
        Bootstrap resamples of the overall 95 % intervals (subgroups use a fifth).
    target_accuracy
        Accuracy (0-1) the labels given must reach on held-out fields: the decision
        threshold is the lowest confidence that does (:mod:`regenmap.models.thresholds`).
    confidence_threshold
        A fixed decision threshold instead of the target (must exceed 1/k for k classes).
    min_group_count
        Smallest subgroup ranked in the disaggregated evaluation.
    ood_ceiling
        Per-field OOD threshold used when the held-out fields show no lower one that
        separates less accurate fields (:func:`regenmap.models.shift.calibrate_ood`).
    seed
        Seed of the bootstrap.
    """

    calibration: Literal["none", "temperature", "isotonic"] = "none"
    n_bootstrap: int = 1000
    target_accuracy: float = 0.85
    confidence_threshold: float | None = None
    min_group_count: int = 20
    ood_ceiling: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.calibration not in ("none", "temperature", "isotonic"):
            raise ConfigError(f"calibration={self.calibration!r}: use none, temperature or isotonic")
        if self.confidence_threshold is not None and not 0 < self.confidence_threshold <= 1:
            raise ConfigError(f"confidence_threshold={self.confidence_threshold}: use (0, 1]")
        if not 0 < self.target_accuracy <= 1:
            raise ConfigError(f"target_accuracy={self.target_accuracy}: use (0, 1]")
        if self.n_bootstrap < 0 or self.min_group_count < 1:
            raise ConfigError("n_bootstrap must be >= 0 and min_group_count >= 1")


@dataclass(frozen=True)
class LabelledFields:
    """What one target is trained and evaluated on.

    Attributes
    ----------
    features
        ``field_id`` + numeric feature columns (float32, NaN allowed), labelled or not.
    labels
        Class name per sample, indexed by ``field_id`` or ``(field_id, season)``;
        missing = unlabelled.
    target
        Target name, e.g. ``tillage``.
    classes
        Declared classes (labels outside them are an error); taken from the labels if None.
    groups
        Spatial group per field (region, tile, block), indexed by ``field_id``: held out
        together in cross-validation and early stopping.
    group_name
        Name of the group factor in reports (the group column, or ``spatial_block``).
    area_ha
        Field area in hectares, indexed by ``field_id`` (field-size classes in reports).
    factors
        Further factors the evaluation is disaggregated by (crop, soil, observation
        density...): name -> a label per field or per sample, indexed like ``labels``.
    exclude
        Why a sample would be withheld by prediction (too small, no data, too few
        observations), indexed like ``labels``; empty or missing = usable. Such labelled
        samples are left out of training and evaluation, and counted.
    """

    features: pd.DataFrame
    labels: pd.Series
    target: str
    classes: tuple[str, ...] | None = None
    groups: pd.Series | None = None
    group_name: str = "group"
    area_ha: pd.Series | None = None
    exclude: pd.Series | None = None
    factors: Mapping[str, pd.Series] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.classes is not None and not isinstance(self.classes, tuple):
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    @classmethod
    def of(cls, features: pd.DataFrame, labels: pd.Series, *, target: str,
           classes: Sequence[str] | None = None, groups: pd.Series | None = None,
           group_name: str = "group", area_ha: pd.Series | None = None,
           exclude: pd.Series | None = None, factors: Mapping[str, pd.Series] | None = None
           ) -> LabelledFields:
        """Build from loose inputs (``classes`` as any sequence)."""
        return cls(features, labels, target, None if classes is None else tuple(classes), groups,
                   group_name, area_ha, exclude, dict(factors or {}))
