"""The feature dictionary: name, unit, description, index and window of every column.

It is generated from the specs the feature modules declare next to the code
that computes the columns, so it cannot drift from the table.
"""

from __future__ import annotations

import pandas as pd

from regenmap.features.build import feature_specs
from regenmap.schema import FEATURES_SCHEMA

DICTIONARY_COLUMNS: tuple[str, ...] = ("name", "unit", "description", "index", "window")


def feature_dictionary() -> pd.DataFrame:
    """Return one row per feature column of :func:`regenmap.features.build.build_features`.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``unit``, ``description``, ``index`` (lower-case index or
        ``""``), ``window`` (see :class:`regenmap.features.spec.FeatureSpec`), in
        table order; ``attrs["schema"]`` is the features schema version.
    """
    specs = feature_specs()
    frame = pd.DataFrame([[getattr(s, c) for c in DICTIONARY_COLUMNS] for s in specs],
                         columns=list(DICTIONARY_COLUMNS))
    frame.attrs["schema"] = FEATURES_SCHEMA
    return frame


def dictionary_markdown() -> str:
    """Return the feature dictionary as a Markdown table (used for ``docs/features.md``)."""
    rows = ["| name | unit | index | window | description |", "|---|---|---|---|---|"]
    for s in feature_specs():
        rows.append(f"| `{s.name}` | {s.unit} | {s.index or '-'} | {s.window} | {s.description} |")
    return "\n".join(rows)
