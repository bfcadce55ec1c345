"""``regenmap features``: observations table -> ``out_dir/features.parquet``.

Reads the extraction stage's Parquet folder (``out_dir/observations``), or a
user's own per-field time series (``config.observations``: CSV or Parquet with
a field id, a time column and index or band columns), runs
:func:`regenmap.features.build.build_features` and writes the table atomically,
with its provenance in the Parquet schema metadata (key ``regenmap``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from regenmap.errors import InputError
from regenmap.features.build import build_features
from regenmap.io import parquet_meta, write_parquet_atomic
from regenmap.provenance import stamp
from regenmap.schema import (
    FEATURES_SCHEMA,
    FIELD_ID,
    N_PIXELS,
    N_VALID,
    SENSOR,
    TIME,
    VALID_FRACTION,
    stat_column,
)

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig

FEATURES_FILE = "features.parquet"
OBSERVATIONS_DIR = "observations"
METADATA_KEY = b"regenmap"

_TIME_ALIASES = ("time", "date", "datetime", "timestamp", "acquisition_date", "acquired",
                 "system:time_start")
_ID_ALIASES = ("field_id", "fieldid", "field", "parcel_id", "id")
#: Band aliases of user tables -> STAC common names (Sentinel-2 and Landsat 8/9 numbering).
_BAND_ALIASES = {
    "blue": "blue", "b02": "blue", "b2": "blue", "sr_b2": "blue",
    "green": "green", "b03": "green", "b3": "green", "sr_b3": "green",
    "red": "red", "b04": "red", "b4": "red", "sr_b4": "red",
    "nir": "nir", "nir08": "nir", "b08": "nir", "b8": "nir", "sr_b5": "nir",
    "swir16": "swir16", "swir1": "swir16", "b11": "swir16", "sr_b6": "swir16",
    "swir22": "swir22", "swir2": "swir22", "b12": "swir22", "sr_b7": "swir22",
}
#: Indices computed from bands when a user table has bands but not the index.
_DERIVED = ("NDVI", "EVI", "NDTI", "BSI", "NDMI")
_KNOWN_STATS = re.compile(r"^(mean|median|std|min|max|count|p\d{1,2})$")


@dataclass(frozen=True)
class _Loaded:
    table: pd.DataFrame
    inputs: list[str]


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
        if suffix == ".tsv":
            return pd.read_csv(path, sep="\t")
    except (OSError, ValueError, pa.ArrowException) as err:
        raise InputError(f"cannot read the observations table: {err}", path=path) from None
    raise InputError(f"unsupported observations file type {suffix!r}: use CSV or Parquet",
                     path=path)


def read_observations_dir(folder: Path) -> _Loaded:
    """Read every Parquet file of an observations folder (one per tile) into one table.

    Raises
    ------
    InputError
        If the folder is missing or holds no Parquet file.
    """
    if not folder.is_dir():
        raise InputError("observations folder not found: run `regenmap extract` first, or set "
                         "`observations:` in the config to your own per-field time series",
                         path=folder)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise InputError("no Parquet file in the observations folder: run `regenmap extract` "
                         "first", path=folder)
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f))
        except (OSError, pa.ArrowException) as err:
            raise InputError(f"cannot read the observations table: {err}", path=f) from None
    try:
        combined = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as err:
        raise InputError(f"the observation files do not share one schema: {err}",
                         path=folder) from None
    # Arrow concatenation is zero-copy; converting with self_destruct frees each column
    # as soon as it is in pandas, so the peak stays near one copy of the table.
    table = combined.to_pandas(self_destruct=True, split_blocks=True, ignore_metadata=True)
    del combined, tables
    return _Loaded(table, [str(f) for f in files])


def _pick(columns: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for a in aliases:
        if a in columns:
            return columns[a]
    return None


def normalise_user_observations(raw: pd.DataFrame, *, stat: str = "mean",
                                id_column: str | None = None, source: str = "<table>"
                                ) -> pd.DataFrame:
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

    known = set(available_indices())
    bands: dict[str, np.ndarray] = {}
    taken = {id_col, time_col}
    for key, col in lower.items():
        if col in taken or key in (SENSOR, VALID_FRACTION, N_PIXELS, N_VALID):
            continue
        if key in _BAND_ALIASES:
            bands.setdefault(_BAND_ALIASES[key],
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


def load_observations(config: RunConfig) -> _Loaded:
    """Read the observations the features stage starts from (user table or extract output)."""
    if config.observations is not None:
        path = Path(config.observations)
        if path.is_dir():
            loaded = read_observations_dir(path)
            raw, inputs = loaded.table, loaded.inputs
        elif path.is_file():
            raw, inputs = _read_table(path), [str(path)]
        else:
            raise InputError("observations file not found (config key `observations`)",
                             path=path)
        table = normalise_user_observations(raw, stat=config.features.stat,
                                            id_column=config.fields.id_column, source=str(path))
        return _Loaded(table, inputs)
    return read_observations_dir(Path(config.out_dir) / OBSERVATIONS_DIR)


def write_features(frame: pd.DataFrame, path: Path, provenance: dict[str, Any]) -> Path:
    """Write the features table to Parquet atomically, provenance in the schema metadata.

    Raises
    ------
    OutputError
        If the folder cannot be written.
    """
    return write_parquet_atomic(frame, path, meta=provenance)


def read_provenance(path: str | Path) -> dict[str, Any]:
    """Return the provenance stored in a features Parquet file."""
    return parquet_meta(path)


def drop_absent_indices(frame: pd.DataFrame, observations: pd.DataFrame, *, stat: str
                        ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Remove the feature columns of indices that no observation carries.

    :func:`build_features` keeps a stable column set, giving NaN columns for an
    index that was not extracted (e.g. NDTI from a sensor without SWIR). A job
    stores only the features it can compute, so that models are not trained on
    columns that are NaN everywhere; the removed columns are recorded. Columns
    of such an index that hold values (e.g. the ``flag_no_ndti`` flag) stay.

    Parameters
    ----------
    frame
        Features table (fields, features).
    observations
        The observations it was built from (``<index>_<stat>`` columns).
    stat
        Statistic of the observations the features were built on.

    Returns
    -------
    frame, absent
        The table without those columns, and index -> removed feature names.
    """
    from regenmap.features.dictionary import feature_dictionary

    spec = feature_dictionary()
    absent: dict[str, list[str]] = {}
    for index, names in spec.groupby("index")["name"]:
        if not index:
            continue
        column = stat_column(str(index), stat)
        has_values = column in observations and bool(observations[column].notna().any())
        dropped = [n for n in names if n in frame.columns and not frame[n].notna().any()]
        if not has_values and dropped:
            absent[str(index)] = dropped
    if absent:
        warnings.warn(f"no observation has {', '.join(i.upper() for i in absent)}: their "
                      f"{sum(map(len, absent.values()))} features are left out of this job's "
                      "features table (recorded as absent_indices in its metadata)",
                      UserWarning, stacklevel=2)
        frame = frame.drop(columns=[n for names in absent.values() for n in names])
    return frame, absent


def features(config: RunConfig | str | Path) -> Path:
    """Compute per-field features and write ``out_dir/features.parquet``.

    Parameters
    ----------
    config
        A :class:`~regenmap.pipelines.config.RunConfig` or the path of a YAML file.

    Returns
    -------
    pathlib.Path
        The written Parquet file: ``field_id`` then float32 feature columns
        (``docs/features.md``); provenance (schema, config hash, versions, inputs,
        feature options and the year described) under the ``regenmap`` metadata key.
    """
    if isinstance(config, str | Path):
        from regenmap.pipelines.config import load_config

        config = load_config(Path(config))
    opts = config.features
    loaded = load_observations(config)
    frame = build_features(loaded.table, step_days=opts.step_days,
                           min_valid_fraction=opts.min_valid_fraction,
                           max_gap_days=opts.max_gap_days, year_start=opts.year_start,
                           stat=opts.stat, composite=opts.composite, smoothing=opts.smoothing,
                           year=opts.year, sensor_offsets=opts.sensor_offsets)
    frame, absent = drop_absent_indices(frame, loaded.table, stat=opts.stat)
    record = stamp(schema=FEATURES_SCHEMA, config=config.model_dump(mode="json"),
                   inputs=loaded.inputs)
    record["features"] = frame.attrs.get("features", {})
    record["absent_indices"] = absent
    record["n_fields"] = len(frame)
    out = Path(config.out_dir) / FEATURES_FILE
    frame.attrs = {}
    return write_features(frame, out, record)
