"""A user's own per-field time series (exported from elsewhere) -> an observations table.

Users who already have per-field series (Earth Engine exports, a survey team's
CSV) enter the pipeline at the observations table. :func:`normalise_observations`
matches their columns (id, time, index or band columns, any case) once, at this
boundary, and computes the indices their bands allow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from regenmap.errors import InputError
from regenmap.schema import FIELD_ID, N_PIXELS, N_VALID, SENSOR, TIME, VALID_FRACTION, stat_column

_TIME_ALIASES = ("time", "date", "datetime", "timestamp", "acquisition_date", "acquired",
                 "system:time_start")
_ID_ALIASES = ("field_id", "fieldid", "field", "parcel_id", "id")
#: Band names people use that no sensor profile spells (lower case -> STAC common name).
GENERIC_BAND_NAMES = {"swir1": "swir16", "swir2": "swir22"}
#: Indices computed from bands when a user table has bands but not the index.
_DERIVED = ("NDVI", "EVI", "NDTI", "BSI", "NDMI")
_KNOWN_STATS = re.compile(r"^(mean|median|std|min|max|count|p\d{1,2})$")


def _pick(columns: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for a in aliases:
        if a in columns:
            return columns[a]
    return None


#: Column names of the long format's variable and value columns (lower case).
_VARIABLE_ALIASES = ("variable", "band", "index", "name", "parameter", "layer", "series")
_VALUE_ALIASES = ("value", "val", "reflectance")
#: Numeric columns that describe a row, not the field's surface: never a series.
_NOT_A_SERIES = re.compile(r"^(id|.*_id|year|month|day|doy|week|lat|latitude|lon|longitude|"
                           r"x|y|area.*|owner.*|farmer.*|season|region|crop.*|label.*|class.*)$")


def series_name(column: str) -> str:
    """Return the series name of a user column: lower case, non-alphanumerics as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")


def long_to_wide(raw: pd.DataFrame, *, id_col: str, time_col: str, source: str
                 ) -> pd.DataFrame | None:
    """Pivot a long table (id, time, variable, value) to one column per variable.

    Returns None when ``raw`` is not in the long format.
    """
    lower = {str(c).strip().lower(): str(c) for c in raw.columns}
    var = _pick(lower, _VARIABLE_ALIASES)
    val = _pick(lower, _VALUE_ALIASES)
    if var is None or val is None:
        return None
    keys = [id_col, time_col] + ([lower[SENSOR]] if SENSOR in lower else [])
    values = pd.to_numeric(raw[val], errors="coerce")
    if values.notna().sum() == 0:
        raise InputError(f"column '{val}' of the long-format table holds no number", path=source)
    table = raw[keys].assign(_variable=raw[var].astype(str), _value=values)
    wide = table.pivot_table(index=keys, columns="_variable", values="_value", aggfunc="mean",
                             dropna=False, observed=True)
    wide.columns = [str(c) for c in wide.columns]
    return wide.reset_index()


def normalise_observations(raw: pd.DataFrame, *, stat: str = "mean",
                           id_column: str | None = None,
                           band_aliases: Mapping[str, str] | None = None,
                           scale: float | None = None, source: str = "<table>") -> pd.DataFrame:
    """Turn a user's per-field time series (wide or long) into an observations table.

    Column names are matched case-insensitively. The field id column is
    ``id_column`` or one of ``field_id``, ``field``, ``parcel_id``, ``id``; the time
    column one of ``time``, ``date``, ``datetime``, ``timestamp``... A long table
    (id, time, ``variable``/``band``/``index``, ``value``) is pivoted first. Then every
    numeric column becomes a series: ``<name>_<stat>`` columns as they are, bands
    (``red``, ``nir``, ``B04``, ``SR_B5``...) under their common name, anything else
    (``NBR``, ``kNDVI``, ``VH``...) under its own name; and NDVI, EVI, NDTI, BSI, NDMI are
    computed from the bands where they are absent. Columns that are not numbers, or that
    describe a row rather than the surface (``year``, ``*_id``, ``area``, ``owner``...),
    are not used: they are listed in ``attrs["unused_columns"]``. Missing
    ``valid_fraction`` is 1 and missing ``sensor`` is ``user``.

    Parameters
    ----------
    raw
        The table as read.
    stat
        Statistic name given to bare series and computed indices.
    id_column
        Name of the field id column, if known.
    band_aliases
        Band name (any case) -> STAC common name, e.g. derived from the sensor profiles
        (``B04`` -> ``red``, ``SR_B5`` -> ``nir``); STAC common names and
        :data:`GENERIC_BAND_NAMES` are always known.
    scale
        Factor applied to every series value as read (e.g. ``0.0001`` for values stored
        x10000), before indices are computed from bands.
    source
        File name used in error messages.

    Returns
    -------
    pandas.DataFrame
        ``field_id``, ``time``, ``sensor``, ``valid_fraction`` and float32 ``<series>_<stat>``
        columns; ``attrs["unused_columns"]`` lists the columns not used.

    Raises
    ------
    InputError
        If no id or time column is found, times cannot be parsed, or no series is present.
    """
    lower = {str(c).strip().lower(): str(c) for c in raw.columns}
    id_col = lower.get(id_column.lower()) if id_column else None
    id_col = id_col or _pick(lower, _ID_ALIASES)
    time_col = _pick(lower, _TIME_ALIASES)
    if id_col is None or time_col is None:
        missing = "a field id column (field_id, id ...)" if id_col is None else \
            "a time column (time, date ...)"
        raise InputError(f"the observations table needs {missing}; columns are: "
                         f"{', '.join(map(str, raw.columns))}", path=source)
    wide = long_to_wide(raw, id_col=id_col, time_col=time_col, source=source)
    if wide is not None:
        raw = wide
        lower = {str(c).strip().lower(): str(c) for c in raw.columns}
    try:
        times = pd.to_datetime(raw[time_col], utc=False, format="mixed")
    except (ValueError, TypeError) as err:
        raise InputError(f"column '{time_col}' holds values that are not dates: {err}",
                         path=source) from None
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.DataFrame({FIELD_ID: raw[id_col].astype(str),
                        TIME: times.astype("datetime64[ns]")})
    out[SENSOR] = raw[lower[SENSOR]].astype(str) if SENSOR in lower else "user"
    if VALID_FRACTION in lower:
        out[VALID_FRACTION] = pd.to_numeric(raw[lower[VALID_FRACTION]],
                                            errors="coerce").astype(np.float32)
    else:
        out[VALID_FRACTION] = np.float32(1.0)
    for c in (N_PIXELS, N_VALID):
        if c in lower:
            out[c] = pd.to_numeric(raw[lower[c]], errors="coerce")

    from regenmap.features.indices import get_index
    from regenmap.geo.sensors import COMMON_NAMES

    aliases = {**{c: c for c in COMMON_NAMES}, **GENERIC_BAND_NAMES,
               **{str(k).lower(): v for k, v in (band_aliases or {}).items()}}
    bands: dict[str, np.ndarray] = {}
    unused: list[str] = []
    taken = {id_col, time_col}
    for key, col in lower.items():
        if col in taken or key in (SENSOR, VALID_FRACTION, N_PIXELS, N_VALID):
            continue
        values = pd.to_numeric(raw[col], errors="coerce")
        if values.notna().sum() == 0 or _NOT_A_SERIES.match(key):
            unused.append(col)
            continue
        if scale is not None:
            values = values * scale
        if key in aliases:
            common = aliases[key]
            if common not in bands:
                bands[common] = values.to_numpy(np.float64)
                out[stat_column(common, stat)] = values.astype(np.float32).to_numpy()
            continue
        head, _, tail = key.rpartition("_")
        if head and _KNOWN_STATS.match(tail):
            out[series_name(head) + "_" + tail] = values.astype(np.float32).to_numpy()
        else:
            out[stat_column(series_name(key), stat)] = values.astype(np.float32).to_numpy()
    if bands:
        for name in _DERIVED:
            col = stat_column(name, stat)
            index = get_index(name)
            if col in out.columns or not all(b in bands for b in index.bands):
                continue
            out[col] = index.evaluate({b: bands[b] for b in index.bands})
    if not any(str(c).endswith(f"_{stat}") for c in out.columns):
        raise InputError(f"the observations table has no numeric series (e.g. 'NDVI', "
                         f"'ndvi_{stat}' or bands such as 'red' and 'nir'); columns are: "
                         f"{', '.join(map(str, raw.columns))}", path=source)
    out.attrs["unused_columns"] = unused
    return out
