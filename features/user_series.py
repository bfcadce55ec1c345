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


def normalise_observations(raw: pd.DataFrame, *, stat: str = "mean",
                           id_column: str | None = None,
                           band_aliases: Mapping[str, str] | None = None,
                           source: str = "<table>") -> pd.DataFrame:
    """Turn a user's per-field time series into an observations table.

    Column names are matched case-insensitively. The field id column is
    ``id_column`` or one of ``field_id``, ``field``, ``parcel_id``, ``id``; the time
    column one of ``time``, ``date``, ``datetime``, ``timestamp``... Index columns
    are taken as ``<index>_<stat>`` or a bare index name (``NDVI`` -> ``ndvi_<stat>``);
    bands (``red``, ``nir``, ``B04``, ``SR_B5``...) give NDVI, EVI, NDTI, BSI, NDMI
    where the needed bands are present and the index is not. Missing
    ``valid_fraction`` is 1 and missing ``sensor`` is ``user``.

    Parameters
    ----------
    raw
        The table as read.
    stat
        Statistic name given to bare index and computed columns.
    id_column
        Name of the field id column, if known.
    band_aliases
        Band name (any case) -> STAC common name, e.g. derived from the sensor profiles
        (``B04`` -> ``red``, ``SR_B5`` -> ``nir``); STAC common names and
        :data:`GENERIC_BAND_NAMES` are always known.
    source
        File name used in error messages.

    Raises
    ------
    InputError
        If no id or time column is found, times cannot be parsed, or no index or band is present.
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

    from regenmap.features.indices import available_indices, get_index
    from regenmap.geo.sensors import COMMON_NAMES

    aliases = {**{c: c for c in COMMON_NAMES}, **GENERIC_BAND_NAMES,
               **{str(k).lower(): v for k, v in (band_aliases or {}).items()}}
    known = set(available_indices())
    bands: dict[str, np.ndarray] = {}
    taken = {id_col, time_col}
    for key, col in lower.items():
        if col in taken or key in (SENSOR, VALID_FRACTION, N_PIXELS, N_VALID):
            continue
        if key in aliases:
            bands.setdefault(aliases[key],
                             pd.to_numeric(raw[col], errors="coerce").to_numpy(np.float64))
            continue
        head, _, tail = key.rpartition("_")
        if head and _KNOWN_STATS.match(tail):
            out[key] = pd.to_numeric(raw[col], errors="coerce").astype(np.float32)
        elif key.upper() in known:
            out[stat_column(key, stat)] = pd.to_numeric(raw[col], errors="coerce"
                                                        ).astype(np.float32)
    if bands:
        for name in _DERIVED:
            col = stat_column(name, stat)
            index = get_index(name)
            if col in out.columns or not all(b in bands for b in index.bands):
                continue
            out[col] = index.evaluate({b: bands[b] for b in index.bands})
    if not any(str(c).endswith(f"_{stat}") for c in out.columns):
        raise InputError(f"the observations table has no index column (e.g. 'NDVI' or "
                         f"'ndvi_{stat}') and no bands to compute one from (e.g. 'red' and "
                         f"'nir'); columns are: {', '.join(map(str, raw.columns))}", path=source)
    return out


