"""The description of one feature column, shared by every feature module."""

from __future__ import annotations

from dataclasses import dataclass

#: Indices that always get columns (NaN when absent), so feature names never depend on the sensor.
FEATURE_INDICES: tuple[str, ...] = ("ndvi", "evi", "ndti", "bsi", "ndmi")


@dataclass(frozen=True)
class FeatureSpec:
    """Name, unit and meaning of one column of the features table.

    Attributes
    ----------
    name
        Column name (stable within one ``FEATURES_SCHEMA`` version).
    unit
        Physical unit: ``1`` for index values and shares, ``days``, ``count``, ``flag`` (0/1)...
    description
        One sentence a user can act on.
    index
        Spectral index it is computed from (lower case), or ``""``.
    window
        Time window: ``year``, ``s1``..``s4`` (quarters of the agricultural year),
        ``cycle`` (main growing cycle), ``cycle2``, ``fallow`` (harvest to next emergence),
        ``fallow56`` (56 days after harvest), ``precrop`` (previous harvest to emergence
        of the main crop) or ``all`` (every observation).
    """

    name: str
    unit: str
    description: str
    index: str = ""
    window: str = "year"
