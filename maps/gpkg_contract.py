"""The output GeoPackage contract (``GPKG_SCHEMA``): write it, read it, validate it.

Layers of ``practices.gpkg`` (documented for users in ``docs/outputs.md``):

``fields`` (features, MultiPolygon, in the fields' own CRS unless ``crs`` is given)
    ``field_id``, ``season``, passthrough columns, then per target ``<t>`` (class or
    NULL), ``<t>_status``, ``<t>_conf``, ``<t>_why``, ``<t>_p_<class>`` per class and,
    when known, ``<t>_margin``, ``<t>_ood``, ``<t>_in_training``, ``<t>_model``; then
    ``area_ha`` and, when given, ``n_obs`` and ``valid_fraction``.
``fields_by_season`` (features, optional)
    The same columns as ``fields``, one row per field and season
    when a run labels several seasons (``fields`` then shows the latest season);
    filter it by ``season`` in QGIS.
``run`` (attributes)
    ``section``, ``key``, ``value`` (text; JSON for non-strings): schema,
    config, versions, models, inputs, time range, targets, counts by status
    and class areas.
``feature_dictionary`` (attributes)
    Name, unit, description, index and window of each feature the models use.
``adoption_areas`` (attributes, optional)
    Error-adjusted class areas with intervals (:data:`regenmap.models.adoption.COLUMNS`).
``observations`` (attributes, optional)
    The per-field time series as given.
``layer_styles``
    QGIS styles: per target a class style (the first target's is the default)
    and a confidence style.

The same provenance is stored as JSON in ``gpkg_metadata`` (``md_standard_uri``
:data:`METADATA_URI`), referenced for the whole GeoPackage and each table.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from regenmap import __version__
from regenmap.errors import CRSError, FieldError, OutputError, SchemaError
from regenmap.geo import gpkg
from regenmap.geo.fields import area_ha
from regenmap.io import atomic_path, check_writable_dir, json_text
from regenmap.maps.styles import class_style_qml, confidence_style_qml
from regenmap.provenance import config_hash, package_versions
from regenmap.schema import (
    AREA_HA,
    FIELD_ID,
    GPKG_SCHEMA,
    N_OBS,
    PREDICTIONS_SCHEMA,
    SEASON,
    TIME,
    VALID_FRACTION,
    FieldStatus,
    class_column,
    confidence_column,
    in_training_column,
    margin_column,
    model_column,
    ood_column,
    proba_column,
    reason_column,
    status_column,
)

_LOG = logging.getLogger(__name__)

FIELDS_LAYER: Final = "fields"
FIELDS_BY_SEASON_LAYER: Final = "fields_by_season"
RUN_TABLE: Final = "run"
OBSERVATIONS_TABLE: Final = "observations"
METADATA_URI: Final = "urn:regenmap:provenance"
#: Rows written per GDAL append; bounds the memory of the merged frame.
CHUNK_ROWS: Final = 50_000

def target_columns(target: str, classes: Sequence[str]) -> list[str]:
    """Return the required output columns of one target, in attribute-table order."""
    return [class_column(target), status_column(target), confidence_column(target),
            reason_column(target), *(proba_column(target, c) for c in classes)]


def _optional_target_columns(target: str) -> list[str]:
    return [margin_column(target), ood_column(target), in_training_column(target),
            model_column(target)]


# --------------------------------------------------------------------------- checks
def _check_predictions(predictions: pd.DataFrame, targets: Mapping[str, Sequence[str]]) -> None:
    if FIELD_ID not in predictions.columns:
        raise SchemaError(f"predictions have no {FIELD_ID!r} column (columns: "
                          f"{list(predictions.columns)[:12]}); pass the predictions table "
                          f"of schema {PREDICTIONS_SCHEMA}")
    for target, classes in targets.items():
        if not classes:
            raise SchemaError(f"target {target!r} has no classes; pass targets as "
                              "{target: [class, ...]}")
        missing = [c for c in target_columns(target, classes) if c not in predictions.columns]
        if missing:
            raise SchemaError(
                f"predictions lack column(s) {missing} of target {target!r} (classes "
                f"{list(classes)}); present: {list(predictions.columns)[:20]}. Predict this "
                "target, or drop it from `targets`")
        status = predictions[status_column(target)].dropna().astype(str)
        bad = sorted(set(status) - {s.value for s in FieldStatus})
        if bad:
            raise SchemaError(f"column {status_column(target)!r} holds unknown status "
                              f"values {bad[:5]}; allowed: {[s.value for s in FieldStatus]}")
    dup = predictions[FIELD_ID].duplicated()
    if dup.any():
        ids = predictions.loc[dup, FIELD_ID].astype(str).head(5).tolist()
        raise SchemaError(f"predictions have duplicate {FIELD_ID} values, e.g. {ids}; "
                          "one row per field is expected")


def _check_fields(fields: gpd.GeoDataFrame, passthrough: Sequence[str],
                  reserved: set[str]) -> None:
    if FIELD_ID not in fields.columns:
        raise FieldError(f"fields have no {FIELD_ID!r} column (columns: "
                         f"{list(fields.columns)[:12]})")
    if fields.crs is None:
        raise CRSError("fields have no CRS; set it (GeoDataFrame.set_crs) before writing results")
    dup = fields[FIELD_ID].duplicated()
    if dup.any():
        ids = fields.loc[dup, FIELD_ID].astype(str).head(5).tolist()
        raise FieldError(f"duplicate {FIELD_ID} values in fields, e.g. {ids}")
    kinds = set(fields.geometry.dropna().geom_type.unique()) - {"Polygon", "MultiPolygon"}
    if kinds:
        raise FieldError(f"fields must be polygons; found {sorted(kinds)}")
    for col in passthrough:
        if col not in fields.columns:
            raise FieldError(f"passthrough column {col!r} is not in the fields "
                             f"(columns: {list(fields.columns)[:12]})")
        if col in reserved or col == fields.geometry.name:
            raise FieldError(f"passthrough column {col!r} clashes with an output column; "
                             "rename it in the fields file")


def written_by_regenmap(path: str | Path) -> str | None:
    """Return the GPKG schema string if ``path`` is a regenmap GeoPackage, else None."""
    p = Path(path)
    if not gpkg.is_geopackage(p):
        return None
    try:
        if RUN_TABLE not in gpkg.list_tables(p):
            return None
        rows = gpkg.read_sql(p, f'SELECT value FROM "{RUN_TABLE}" WHERE section = ? AND key = ?',
                             ("schema", "gpkg_schema"))
    except Exception:  # a corrupt or foreign SQLite file: not ours
        return None
    if rows.empty or not str(rows.iloc[0, 0]).startswith("regenmap.gpkg/"):
        return None
    return str(rows.iloc[0, 0])


def _check_destination(path: Path, *, overwrite: bool, geoparquet: bool = False) -> None:
    check_writable_dir(path.parent)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file path ending in .gpkg")
    if path.suffix.lower() != ".gpkg":
        raise OutputError(f"{path}: the output must end in .gpkg")
    if path.exists() and not overwrite and written_by_regenmap(path) is None:
        raise OutputError(f"{path} exists and was not written by regenmap; refusing to replace "
                          "it. Choose another name, or pass overwrite=True to replace it")
    parquet = path.with_suffix(".parquet")
    if geoparquet and parquet.exists() and not overwrite and not _is_regenmap_parquet(parquet):
        raise OutputError(f"{parquet} exists and was not written by regenmap; refusing to "
                          "replace it. Choose another name, or pass overwrite=True")


# --------------------------------------------------------------------------- frames
def _obs_summary(observations: pd.DataFrame | None) -> pd.DataFrame | None:
    if observations is None:
        return None
    if FIELD_ID not in observations.columns:
        raise SchemaError(f"observations have no {FIELD_ID!r} column")
    ids = observations[FIELD_ID].astype(str)
    if VALID_FRACTION in observations.columns:
        vf = pd.to_numeric(observations[VALID_FRACTION], errors="coerce")
        out = pd.DataFrame({N_OBS: (vf > 0).groupby(ids).sum().astype("int32"),
                            VALID_FRACTION: vf.groupby(ids).mean()})
    else:
        out = pd.DataFrame({N_OBS: ids.groupby(ids).size().astype("int32")})
    return out


def _aligned_predictions(predictions: pd.DataFrame, index: pd.Index, ids: np.ndarray
                         ) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of ``predictions`` for ``ids`` (all-null rows where missing), and the missing mask."""
    pos = index.get_indexer(pd.Index(ids))
    missing = pos < 0
    if len(predictions) == 0:
        empty = pd.DataFrame(index=pd.RangeIndex(len(ids)), columns=predictions.columns,
                             dtype=object)
        return empty, missing
    p = predictions.iloc[np.where(missing, 0, pos)].reset_index(drop=True)
    if missing.any():
        p.loc[missing, :] = None
    return p, missing


def _output_chunk(fields: gpd.GeoDataFrame, predictions: pd.DataFrame, index: pd.Index, *,
                  targets: Mapping[str, Sequence[str]], passthrough: Sequence[str],
                  optional: Sequence[str], models: Mapping[str, str],
                  obs: pd.DataFrame | None, crs: str | None) -> gpd.GeoDataFrame:
    ids = fields[FIELD_ID].astype(str).to_numpy(dtype=object)
    p, missing = _aligned_predictions(predictions, index, ids)
    cols: dict[str, Any] = {FIELD_ID: ids}
    if SEASON in predictions.columns:
        season = p[SEASON].astype(object).to_numpy(dtype=object, copy=True)
        if len(predictions):
            season[missing] = str(predictions[SEASON].iloc[0])
        cols[SEASON] = season
    for col in passthrough:
        cols[col] = fields[col].to_numpy()
    for t, classes in targets.items():
        cls = p[class_column(t)].astype(object)
        cols[class_column(t)] = cls.where(cls.notna(), None).to_numpy(dtype=object)
        status = p[status_column(t)].astype(object).to_numpy(dtype=object, copy=True)
        why = p[reason_column(t)].astype(object).to_numpy(dtype=object, copy=True)
        status[missing] = FieldStatus.ERROR.value
        why[missing] = "no prediction row for this field"
        status[pd.isna(status)] = FieldStatus.ERROR.value
        cols[status_column(t)] = status
        cols[confidence_column(t)] = p[confidence_column(t)].to_numpy(dtype="float64")
        why[pd.isna(why)] = None
        cols[reason_column(t)] = why
        for c in classes:
            cols[proba_column(t, c)] = p[proba_column(t, c)].to_numpy(dtype="float64")
        for col in _optional_target_columns(t):
            if col in optional and col == in_training_column(t):
                cols[col] = p[col].astype("boolean").fillna(False).to_numpy(dtype=bool)
            elif col in optional and col != model_column(t):
                cols[col] = p[col].to_numpy(dtype="float64")
        if t in models or model_column(t) in optional:
            if model_column(t) in optional:
                mid = p[model_column(t)].astype(object).to_numpy(dtype=object, copy=True)
                mid[pd.isna(mid)] = models.get(t)
            else:
                mid = np.full(len(ids), models[t], dtype=object)
            cols[model_column(t)] = mid.astype(object)
    geom = fields.geometry
    if AREA_HA in fields.columns:
        cols[AREA_HA] = pd.to_numeric(fields[AREA_HA], errors="coerce").to_numpy("float64")
    else:
        cols[AREA_HA] = area_ha(geom)
    for col in (N_OBS, VALID_FRACTION):
        if col in optional:
            cols[col] = p[col].to_numpy()
    if obs is not None:  # derived from the observations unless the predictions carry them
        s = obs.reindex(ids)
        if N_OBS not in optional:
            cols[N_OBS] = s[N_OBS].fillna(0).to_numpy("int32")
        if VALID_FRACTION in s.columns and VALID_FRACTION not in optional:
            cols[VALID_FRACTION] = s[VALID_FRACTION].to_numpy("float64")
    if N_OBS in cols:
        cols[N_OBS] = np.asarray(pd.to_numeric(pd.Series(cols[N_OBS])).fillna(0), dtype="int32")
    if VALID_FRACTION in cols:
        cols[VALID_FRACTION] = np.asarray(cols[VALID_FRACTION], dtype="float64")
    # 2D only: a 3D polygon would not fit the MultiPolygon layer type.
    out = gpd.GeoDataFrame(cols, geometry=shapely.force_2d(geom.to_numpy()), crs=fields.crs)
    out.index = pd.RangeIndex(len(out))
    if crs is not None:
        out = out.to_crs(crs)
    return out


def _time_range(run_info: Mapping[str, Any], observations: pd.DataFrame | None = None
                ) -> tuple[str | None, str | None]:
    tr = run_info.get("time_range")
    if tr is None:
        if observations is not None and TIME in observations.columns and len(observations):
            times = pd.to_datetime(observations[TIME])
            return times.min().isoformat(), times.max().isoformat()
        return None, None
    if isinstance(tr, Mapping):
        start, end = tr.get("start"), tr.get("end")
    else:
        start, end = tuple(tr)[:2]
    return (None if start is None else str(start), None if end is None else str(end))


def _jsonable(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json_text(value, indent=None, sort_keys=True)


def _run_rows(*, run_info: Mapping[str, Any], targets: Mapping[str, Sequence[str]],
              models: Mapping[str, str], counts: Mapping[str, Counter[str]],
              areas: Mapping[str, Counter[str]], n_fields: int, crs: str,
              observations: pd.DataFrame | None, has_table: bool, orphans: int
              ) -> list[tuple[str, str, str]]:
    config = run_info.get("config")
    versions = dict(run_info.get("versions") or package_versions())
    start, end = _time_range(run_info, observations)
    rows: list[tuple[str, str, str]] = [
        ("schema", "gpkg_schema", GPKG_SCHEMA),
        ("schema", "predictions_schema", PREDICTIONS_SCHEMA),
        ("run", "created_utc", str(run_info.get("created_utc")
                                   or datetime.now(UTC).isoformat(timespec="seconds"))),
        ("run", "regenmap_version", __version__),
        ("run", "config_hash", str(run_info.get("config_hash")
                                   or (config_hash(dict(config)) if config else ""))),
        ("run", "config", _jsonable(config if config is not None else {})),
        ("run", "crs", crs),
        ("run", "n_fields", str(n_fields)),
        ("run", "has_observations", str(has_table).lower()),
        ("run", "predictions_without_field", str(orphans)),
        ("time_range", "start", start or ""),
        ("time_range", "end", end or ""),
    ]
    rows += [("versions", k, str(v)) for k, v in sorted(versions.items())]
    rows += [("targets", t, _jsonable(list(c))) for t, c in targets.items()]
    rows += [("models", t, m) for t, m in models.items()]
    inputs = run_info.get("inputs") or []
    if isinstance(inputs, Mapping):
        rows += [("inputs", str(k), _jsonable(v)) for k, v in inputs.items()]
    else:
        rows += [("inputs", str(i), _jsonable(v)) for i, v in enumerate(inputs)]
    for t in targets:
        rows += [("counts", f"{t}/{s.value}", str(counts[t].get(s.value, 0))) for s in FieldStatus]
        rows += [("class_area_ha", f"{t}/{c}", f"{areas[t].get(c, 0.0):.4f}")
                 for c in targets[t]]
    for key, value in (run_info.get("counts") or {}).items():
        rows.append(("input_counts", str(key), _jsonable(value)))
    known = {"config", "config_hash", "versions", "time_range", "inputs", "counts", "models",
             "schema", "created_utc"}
    rows += [("extra", str(k), _jsonable(v)) for k, v in run_info.items() if k not in known]
    return rows


def _metadata_document(rows: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    """Nest the ``run`` rows into one JSON document (counts per target, decoded JSON)."""
    doc: dict[str, Any] = {}
    for section, key, value in rows:
        if section in ("schema", "run"):
            doc[key] = value
        elif section in ("counts", "class_area_ha"):
            target, _, name = key.partition("/")
            doc.setdefault(section, {}).setdefault(target, {})[name] = float(value) \
                if section == "class_area_ha" else int(value)
        else:
            doc.setdefault(section, {})[key] = value
    for key in ("config",):
        doc[key] = json.loads(doc.get(key) or "{}")
    doc["targets"] = {t: json.loads(v) for t, v in doc.get("targets", {}).items()}
    doc["inputs"] = list(doc.get("inputs", {}).values())
    doc["schema"] = doc.get("gpkg_schema", GPKG_SCHEMA)
    return doc


def _models(run_info: Mapping[str, Any]) -> dict[str, str]:
    models = run_info.get("models") or {}
    out: dict[str, str] = {}
    for t, m in models.items():
        out[str(t)] = str(m.get("id") or m.get("model_id")) if isinstance(m, Mapping) else str(m)
    return out


def _chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    if len(frame) == 0:
        yield frame
    for start in range(0, len(frame), size):
        yield frame.iloc[start:start + size]


# --------------------------------------------------------------------------- write
def write_results(path: str | Path, fields: gpd.GeoDataFrame, predictions: pd.DataFrame, *,
                  targets: Mapping[str, Sequence[str]], run_info: Mapping[str, Any],
                  observations: pd.DataFrame | None = None, crs: str | None = None,
                  passthrough: Sequence[str] = (), geoparquet: bool = False,
                  overwrite: bool = False, store_observations: bool = True,
                  by_season: pd.DataFrame | None = None,
                  extra_tables: Mapping[str, tuple[pd.DataFrame, str]] | None = None,
                  chunk_rows: int = CHUNK_ROWS) -> Path:
    """Write the results GeoPackage atomically, styled for QGIS.

    Parameters
    ----------
    path
        Output ``.gpkg`` file. Its folder must exist and be writable. An
        existing regenmap GeoPackage is replaced; any other existing file is
        refused unless ``overwrite``.
    fields
        One row per field: ``field_id`` (unique), polygon geometry with a CRS,
        optionally ``area_ha`` (computed from the geometry if absent) and the
        ``passthrough`` columns.
    predictions
        One row per field: ``field_id`` and per target the columns of
        :func:`target_columns`; optionally ``season`` (the season shown),
        ``<t>_margin``, ``<t>_ood``, ``<t>_model``, ``n_obs``, ``valid_fraction``.
        Fields without a row are written with status ``error`` and reason "no
        prediction row".
    targets
        ``{target: [class, ...]}`` in the model's class order (fixes colours).
    run_info
        Provenance: ``config`` (dict), ``versions`` (dict; the installed ones if
        absent), ``inputs`` (list or dict), ``time_range`` ((start, end) or
        {start, end}), ``counts`` (dict), ``models`` ({target: id or {id: ...}});
        other keys are kept under section ``extra``.
    observations
        Optional per-field time series, stored as the ``observations`` table;
        ``n_obs`` (acquisitions with valid pixels) and mean ``valid_fraction``
        per field are derived from it.
    crs
        CRS of the output geometry (e.g. ``"EPSG:3035"``); the fields' own if None.
    passthrough
        Columns of ``fields`` to copy (none by default: owner data may be personal).
    geoparquet
        Also write ``<path stem>.parquet`` (GeoParquet 1.0, WKB) beside it.
    overwrite
        Replace an existing file that regenmap did not write.
    store_observations
        Store ``observations`` as a table in the GeoPackage (they still give
        ``n_obs`` and ``valid_fraction`` when False; for very large runs).
    by_season
        Every season's predictions (the columns of ``predictions`` with ``season``, one
        row per field and season), written as the ``fields_by_season`` layer.
    extra_tables
        Further attribute tables: name -> (table, description), e.g. the feature
        dictionary that the reasons of the labels refer to.
    chunk_rows
        Rows per append (bounds memory for millions of fields).

    Returns
    -------
    Path
        The GeoPackage written.

    Raises
    ------
    SchemaError
        A target's columns are missing or malformed in ``predictions``.
    FieldError, CRSError
        Fields without ids, duplicate ids, non-polygons or no CRS.
    OutputError
        Missing or read-only folder, or a name clash with a foreign file.
    """
    out = Path(path)
    targets = {str(t): [str(c) for c in cs] for t, cs in targets.items()}
    _check_destination(out, overwrite=overwrite, geoparquet=geoparquet)
    _check_predictions(predictions, targets)
    reserved = {FIELD_ID, SEASON, AREA_HA, N_OBS, VALID_FRACTION}
    for t, cs in targets.items():
        reserved |= {*target_columns(t, cs), *_optional_target_columns(t)}
    _check_fields(fields, passthrough, reserved)
    models = _models(run_info)
    for t in targets:  # model ids recorded in the predictions, when the run info has none
        if t not in models and model_column(t) in predictions.columns:
            ids = predictions[model_column(t)].dropna().astype(str).unique()
            if len(ids):
                models[t] = ", ".join(sorted(ids)[:5])
    optional = [c for t in targets for c in _optional_target_columns(t)
                if c in predictions.columns]
    optional += [c for c in (N_OBS, VALID_FRACTION) if c in predictions.columns]
    obs = _obs_summary(observations)
    index = pd.Index(predictions[FIELD_ID].astype(str))
    # Predictions of ids that are not in the fields cannot be mapped: counted in
    # the run table and the report, and logged, not silently dropped.
    orphans = int((~index.isin(fields[FIELD_ID].astype(str))).sum())
    if orphans:
        _LOG.warning("%d prediction rows have a field_id that is not in the fields, e.g. %s; "
                     "they are not in %s", orphans,
                     index[~index.isin(fields[FIELD_ID].astype(str))][:3].tolist(), out)
    out_crs = crs or fields.crs.to_string()
    counts: dict[str, Counter[str]] = {t: Counter() for t in targets}
    areas: dict[str, Counter[str]] = {t: Counter() for t in targets}

    def layer_chunks() -> Iterator[gpd.GeoDataFrame]:
        for part in _chunks(fields, chunk_rows):
            frame = _output_chunk(part, predictions, index, targets=targets,
                                  passthrough=passthrough,
                                  optional=optional, models=models, obs=obs, crs=crs)
            for t in targets:
                counts[t].update(frame[status_column(t)].tolist())
                ok = frame[status_column(t)] == FieldStatus.OK.value
                sums = frame.loc[ok].groupby(class_column(t))[AREA_HA].sum()
                areas[t].update({str(k): float(v) for k, v in sums.items()})
            yield frame

    def season_chunks() -> Iterator[gpd.GeoDataFrame]:
        table = by_season if by_season is not None else predictions.iloc[:0]
        for _, rows in table.groupby(SEASON, sort=False):
            season_index = pd.Index(rows[FIELD_ID].astype(str))
            for part in _chunks(fields, chunk_rows):
                yield _output_chunk(part, rows, season_index, targets=targets,
                                    passthrough=passthrough, optional=optional, models=models,
                                    obs=None, crs=crs)

    with atomic_path(out) as tmp:
        n = gpkg.write_chunks(tmp, layer_chunks(), layer=FIELDS_LAYER,
                              geometry_type="MultiPolygon", promote_to_multi=True,
                              description=f"regenmap per-field practices ({GPKG_SCHEMA})")
        rows = _run_rows(run_info=run_info, targets=targets, models=models, counts=counts,
                         areas=areas, n_fields=n, crs=str(out_crs),
                         observations=observations,
                         has_table=observations is not None and store_observations,
                         orphans=orphans)
        run = pd.DataFrame(rows, columns=["section", "key", "value"]).astype(object)
        gpkg.write_chunks(tmp, [run], layer=RUN_TABLE,
                          description=f"regenmap run provenance ({GPKG_SCHEMA})")
        tables = [FIELDS_LAYER, RUN_TABLE]
        if by_season is not None and len(by_season):
            gpkg.write_chunks(tmp, season_chunks(), layer=FIELDS_BY_SEASON_LAYER,
                              geometry_type="MultiPolygon", promote_to_multi=True,
                              description="regenmap per-field practices, one row per season")
            tables.append(FIELDS_BY_SEASON_LAYER)
        for name, (extra, description) in (extra_tables or {}).items():
            gpkg.write_chunks(tmp, [extra.reset_index(drop=True)], layer=name,
                              description=description)
            tables.append(name)
        if observations is not None and store_observations:
            gpkg.write_chunks(tmp, _chunks(_observations_frame(observations), chunk_rows * 4),
                              layer=OBSERVATIONS_TABLE,
                              description="regenmap per-field observations (time series)")
            tables.append(OBSERVATIONS_TABLE)
        geom_col = gpkg.geometry_column(tmp, FIELDS_LAYER)
        gcol = geom_col[0] if geom_col else "geom"
        styles = []
        styled = [FIELDS_LAYER] + ([FIELDS_BY_SEASON_LAYER]
                                   if FIELDS_BY_SEASON_LAYER in tables else [])
        for layer in styled:
            for i, (t, cs) in enumerate(targets.items()):
                styles.append(gpkg.LayerStyle(layer, gcol, f"{t}: class",
                                              class_style_qml(t, cs), default=i == 0,
                                              description=f"{t} by class; other / uncertain "
                                                          "in grey"))
                styles.append(gpkg.LayerStyle(layer, gcol, f"{t}: confidence",
                                              confidence_style_qml(t),
                                              description=f"{t} by confidence (graduated)"))
        gpkg.write_layer_styles(tmp, styles)
        gpkg.add_metadata(tmp, _metadata_document(rows), standard_uri=METADATA_URI,
                          tables=tables)
    if geoparquet:
        write_geoparquet(out.with_suffix(".parquet"), out, overwrite=overwrite)
    return out


def _observations_frame(observations: pd.DataFrame) -> pd.DataFrame:
    obs = observations.copy()
    obs[FIELD_ID] = obs[FIELD_ID].astype(str)
    for col in obs.columns:
        # GeoPackage DATETIME is ISO 8601 in UTC with a 'Z'; GDAL writes it for tz-aware values.
        if isinstance(obs[col].dtype, pd.DatetimeTZDtype):
            obs[col] = obs[col].dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(obs[col]):
            obs[col] = obs[col].dt.tz_localize("UTC")
    obs.index = pd.RangeIndex(len(obs))
    return obs


def write_geoparquet(path: str | Path, gpkg_path: str | Path, *, overwrite: bool = False,
                     batch_rows: int = 65_536) -> Path:
    """Copy the ``fields`` layer of a results GeoPackage to GeoParquet 1.0, streaming.

    Arrow record batches go from GDAL to the Parquet writer one at a time, so
    memory stays bounded; geometry is WKB with the GeoParquet ``geo`` metadata
    (CRS as PROJJSON, geometry type). Written atomically.

    Parameters
    ----------
    path
        Destination ``.parquet``.
    gpkg_path
        A results GeoPackage.
    overwrite
        Replace an existing file regenmap did not write.
    batch_rows
        Rows per Arrow batch.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyogrio.raw import open_arrow
    from pyproj import CRS

    out = Path(path)
    check_writable_dir(out.parent)
    if out.exists() and not overwrite and not _is_regenmap_parquet(out):
        raise OutputError(f"{out} exists and was not written by regenmap; refusing to replace "
                          "it. Choose another name, or pass overwrite=True")
    with atomic_path(out) as tmp, open_arrow(Path(gpkg_path), layer=FIELDS_LAYER,
                                                  batch_size=batch_rows,
                                                  use_pyarrow=True) as (meta, reader):
        src = str(meta["geometry_name"] or "wkb_geometry")
        geom = "geometry"  # the GeoParquet / geopandas convention
        crs = CRS.from_user_input(meta["crs"]).to_json_dict() if meta["crs"] else None
        geo = {"version": "1.0.0", "primary_column": geom,
               "columns": {geom: {"encoding": "WKB", "crs": crs,
                                  "geometry_types": [str(meta["geometry_type"])]}}}
        fields = [pa.field(geom, f.type) if f.name == src else f for f in reader.schema]
        schema = pa.schema(fields, metadata={b"geo": json.dumps(geo).encode(),
                                             b"regenmap": json.dumps(
                                                 {"schema": GPKG_SCHEMA}).encode()})
        with pq.ParquetWriter(tmp, schema) as writer:
            for batch in reader:
                writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
    return out


def _is_regenmap_parquet(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # not Parquet at all
        return False
    return b"regenmap" in meta


# --------------------------------------------------------------------------- read
def read_run(path: str | Path) -> dict[str, dict[str, str]]:
    """Return the ``run`` table as ``{section: {key: value}}`` (values are text)."""
    df = gpkg.read_sql(path, f'SELECT section, key, value FROM "{RUN_TABLE}"')
    out: dict[str, dict[str, str]] = {}
    for section, key, value in df.itertuples(index=False):
        out.setdefault(str(section), {})[str(key)] = "" if value is None else str(value)
    return out


def read_targets(path: str | Path) -> dict[str, list[str]]:
    """Return ``{target: [class, ...]}`` recorded in a results GeoPackage."""
    return {t: json.loads(v) for t, v in read_run(path).get("targets", {}).items()}


def validate_results(path: str | Path) -> dict[str, list[str]]:
    """Check that ``path`` is a results GeoPackage of this code's :data:`GPKG_SCHEMA`.

    Returns
    -------
    dict[str, list[str]]
        The targets and their classes.

    Raises
    ------
    SchemaError
        Not a GeoPackage, not written by regenmap, another schema version, or
        required columns missing or mistyped.
    """
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{p}: no such file")
    if not gpkg.is_geopackage(p):
        raise SchemaError(f"{p}: not a GeoPackage (SQLite application_id is not 'GPKG')")
    version = written_by_regenmap(p)
    if version is None:
        raise SchemaError(f"{p}: not a regenmap results GeoPackage (no {RUN_TABLE!r} table "
                          "naming a regenmap.gpkg schema); open it in QGIS or with geopandas")
    if version != GPKG_SCHEMA:
        raise SchemaError(f"{p}: written with schema {version}, this regenmap "
                          f"({__version__}) reads {GPKG_SCHEMA}; re-run the outputs stage "
                          "(`regenmap predict`) to rewrite it")
    tables = gpkg.list_tables(p)
    if tables.get(FIELDS_LAYER) != "features":
        raise SchemaError(f"{p}: layer {FIELDS_LAYER!r} is missing or not a features layer")
    targets = read_targets(p)
    declared = gpkg.layer_columns(p, FIELDS_LAYER)
    expect: dict[str, tuple[str, ...]] = {FIELD_ID: ("TEXT",), AREA_HA: ("REAL", "DOUBLE")}
    for t, cs in targets.items():
        expect[class_column(t)] = ("TEXT",)
        expect[status_column(t)] = ("TEXT",)
        expect[reason_column(t)] = ("TEXT",)
        expect[confidence_column(t)] = ("REAL", "DOUBLE")
        for c in cs:
            expect[proba_column(t, c)] = ("REAL", "DOUBLE")
    problems = []
    for col, types in expect.items():
        got = declared.get(col)
        if got is None:
            problems.append(f"{col} missing")
        elif not any(got.startswith(tp) for tp in types):
            problems.append(f"{col} is {got}, expected {types[0]}")
    if problems:
        raise SchemaError(f"{p}: layer {FIELDS_LAYER!r} does not follow {GPKG_SCHEMA}: "
                          + "; ".join(problems))
    return targets


def read_results(path: str | Path, *, columns: Sequence[str] | None = None
                 ) -> gpd.GeoDataFrame:
    """Read and validate the ``fields`` layer of a results GeoPackage.

    Parameters
    ----------
    path
        A results GeoPackage.
    columns
        Attribute columns to read (all if None); the geometry is always read.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per field, columns as in the contract; ``attrs["targets"]``
        holds ``{target: [class, ...]}`` and ``attrs["run"]`` the run table.

    Raises
    ------
    SchemaError
        For foreign files or another (older/newer) schema version.
    """
    targets = validate_results(path)
    frame = gpkg.read_layer(path, FIELDS_LAYER,
                            columns=None if columns is None else list(columns))
    if not isinstance(frame, gpd.GeoDataFrame):  # pragma: no cover - validated above
        raise SchemaError(f"{path}: layer {FIELDS_LAYER!r} has no geometry")
    frame.attrs["targets"] = targets
    frame.attrs["run"] = read_run(path)
    return frame


__all__ = ["AREA_HA", "FIELDS_LAYER", "GPKG_SCHEMA", "N_OBS", "OBSERVATIONS_TABLE", "RUN_TABLE",
           "read_results", "read_run", "read_targets", "validate_results", "write_results"]

