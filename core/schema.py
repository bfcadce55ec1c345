"""Names and versions of the tables passed between stages.

This module is the single place where column names of the observations,
features and predictions tables are spelled. Every stage imports them from
here; ``docs/contracts.md`` documents them for users.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

#: Bumped on any incompatible change of the corresponding table.
OBSERVATIONS_SCHEMA: Final = "regenmap.observations/1"
FEATURES_SCHEMA: Final = "regenmap.features/2"
PREDICTIONS_SCHEMA: Final = "regenmap.predictions/2"
MODEL_SCHEMA: Final = "regenmap.model/2"  # /2: SHA-256 of every file
GPKG_SCHEMA: Final = "regenmap.gpkg/1"

# --- identity -------------------------------------------------------------
FIELD_ID: Final = "field_id"
#: A sample is a field in a season: the features, labels and predictions tables are keyed
#: by (field_id, season). ``season`` is a name such as ``2023`` or ``2023-primera``.
SEASON: Final = "season"
SAMPLE_KEY: Final = (FIELD_ID, SEASON)

# --- observations table: one row per (field, acquisition) ------------------
TIME: Final = "time"  # datetime64[ns], UTC-naive acquisition time
SENSOR: Final = "sensor"  # sensor profile name, e.g. "sentinel2_l2a"
ACQUISITION_ID: Final = "acquisition_id"  # catalog id of the acquisition
TILE_ID: Final = "tile_id"  # tile of the tile plan that owns the field
N_PIXELS: Final = "n_pixels"  # pixels inside the (buffered) field
N_VALID: Final = "n_valid"  # of which not masked (cloud, shadow, nodata)
VALID_FRACTION: Final = "valid_fraction"  # n_valid / n_pixels, NaN if n_pixels == 0

OBSERVATION_ID_COLUMNS: Final = (FIELD_ID, TIME, SENSOR, ACQUISITION_ID, TILE_ID)


def stat_column(index: str, stat: str) -> str:
    """Return the observations column name of one statistic of one index.

    Parameters
    ----------
    index
        Index name as in the catalogue, e.g. ``"NDVI"``.
    stat
        Statistic name: ``mean``, ``median``, ``std``, ``min``, ``max`` or ``pNN``.

    Returns
    -------
    str
        Lower-case ``<index>_<stat>``, e.g. ``ndvi_mean``.
    """
    return f"{index.lower()}_{stat.lower()}"


# --- per-field status --------------------------------------------------------
class FieldStatus(StrEnum):
    """Why a field has (or has not) a trustworthy label for a target."""

    OK = "ok"
    UNCERTAIN = "uncertain"  # confidence below the configured threshold
    NO_DATA = "no_data"  # too few valid observations
    TOO_SMALL = "too_small"  # fewer pixels than the minimum after the inner buffer
    ERROR = "error"  # invalid geometry or another per-field failure


# --- predictions table: one row per field ------------------------------------
def class_column(target: str) -> str:
    """Column of the predicted class label (string) of ``target``."""
    return target


def proba_column(target: str, class_name: str) -> str:
    """Column of the predicted probability (float in [0, 1]) of one class."""
    return f"{target}_p_{class_name}"


def confidence_column(target: str) -> str:
    """Column of the confidence (max class probability, float in [0, 1])."""
    return f"{target}_conf"


def status_column(target: str) -> str:
    """Column of the :class:`FieldStatus` of the label of ``target``."""
    return f"{target}_status"


def reason_column(target: str) -> str:
    """Column of the human-readable reason for the status and label."""
    return f"{target}_why"


def margin_column(target: str) -> str:
    """Column of the gap between the two largest class probabilities (float in [0, 1])."""
    return f"{target}_margin"


def ood_column(target: str) -> str:
    """Column of the out-of-distribution score of a field for the model of ``target`` (float in [0, 1])."""
    return f"{target}_ood"


def in_training_column(target: str) -> str:
    """Column saying a sample was trained on (bool): its label comes from held-out folds."""
    return f"{target}_in_training"


def model_column(target: str) -> str:
    """Column of the id of the model that labelled ``target``."""
    return f"{target}_model"


#: How a ``<t>_why`` of an ``uncertain`` label starts, by cause (written by
#: ``models/predict.py``, counted by the run report).
WHY_LOW_CONFIDENCE: Final = "confidence"  # below the decision threshold
WHY_UNLIKE_TRAINING: Final = "unlike the training data"  # out-of-distribution field
WHY_RUN_FLAGGED: Final = "this run's"  # withheld with the whole run (shift or class mix)


# --- fields status table: one row per field (written by extraction) ----------
STATUS: Final = "status"  # FieldStatus value
REASON: Final = "reason"  # why, in words
AREA_HA: Final = "area_ha"  # field area in hectares (float)
FOOTPRINT: Final = "footprint"  # "polygon", or how a point label is read (pixels around it)
N_OBS: Final = "n_obs"  # valid observations used for the features (int)
