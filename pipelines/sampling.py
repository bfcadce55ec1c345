"""``regenmap sample design`` and ``regenmap sample next``: which fields to visit.

Both read the run's predictions (the map and its probabilities) and fields, and
write ``out_dir/sampling/<name>/``: the field-team GeoPackage and CSV
(:mod:`regenmap.maps.sample_gpkg`), ``sample.parquet`` (the drawn fields with their
design columns) and ``sample.json`` (how the sample was made). They are not stages
of ``regenmap run``: a sample is drawn when a programme plans its visits.

Units are fields, or field x season when the predictions have a ``season`` column;
their key is ``field_id`` (``field_id@season`` with seasons).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from regenmap.errors import ConfigError, InputError
from regenmap.io import write_json_atomic, write_parquet_atomic
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_features, read_predictions
from regenmap.provenance import stamp
from regenmap.schema import (
    AREA_HA,
    FIELD_ID,
    SEASON,
    class_column,
    proba_column,
    status_column,
)

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig

SAMPLE_INFO_SCHEMA = "regenmap.sample/1"


# --------------------------------------------------------------------------- the frame
def unit_keys(frame: pd.DataFrame) -> pd.Series:
    """Key of each unit: ``field_id``, or ``field_id@season`` when there is a season column."""
    ids = frame[FIELD_ID].astype(str)
    if SEASON in frame.columns:
        return ids + "@" + frame[SEASON].astype(str)
    return ids


def target_classes(cfg: RunConfig, predictions: pd.DataFrame, target: str) -> list[str]:
    """Classes of ``target``: declared in the config, else those of the probability columns."""
    if target in cfg.model.classes:
        return list(cfg.model.classes[target])
    prefix = proba_column(target, "")
    classes = [c[len(prefix):] for c in predictions.columns if c.startswith(prefix)]
    if not classes:
        raise InputError(f"the predictions have no probability column of target {target!r} "
                         f"({prefix}<class>); run `regenmap predict` with this target",
                         path=RunLayout.of(cfg).predictions)
    return classes


def sampling_frame(cfg: RunConfig, targets: list[str]) -> gpd.GeoDataFrame:
    """Every unit of the map with its classes, probabilities, area, factors and centroid.

    Returns
    -------
    geopandas.GeoDataFrame
        ``key``, ``field_id`` (+ ``season``), per target ``<t>`` (class or null when
        withheld), ``<t>_status`` and ``<t>_p_<class>``; the fields file's columns;
        ``area_ha``, ``size_class``, ``x``/``y`` (centroid in metres); polygons.
        ``attrs["classes"]`` holds ``{target: [class, ...]}``.
    """
    from regenmap.geo.fields import area_ha
    from regenmap.models.data import size_class

    layout = RunLayout.of(cfg)
    preds = read_predictions(layout)
    fields = inputs.fields(cfg)
    classes = {t: target_classes(cfg, preds, t) for t in targets}
    keep = [FIELD_ID, *([SEASON] if SEASON in preds.columns else [])]
    for t in targets:
        keep += [class_column(t), status_column(t), *(proba_column(t, c) for c in classes[t])]
    missing = [c for c in keep if c not in preds.columns]
    if missing:
        raise InputError(f"the predictions lack column(s) {missing}; run `regenmap predict` "
                         "again", path=layout.predictions)
    p = preds[keep].copy()
    p[FIELD_ID] = p[FIELD_ID].astype(str)
    extra = [c for c in fields.columns if c not in p.columns or c == FIELD_ID]
    fields = fields[extra].copy()
    fields[FIELD_ID] = fields[FIELD_ID].astype(str)
    if AREA_HA not in fields.columns:
        fields[AREA_HA] = area_ha(fields.geometry)
    # Fields without a prediction row are units too: withheld (never silently dropped).
    merged = fields.merge(p, on=FIELD_ID, how="left")
    frame = gpd.GeoDataFrame(merged, geometry=fields.geometry.name, crs=fields.crs)
    frame["key"] = unit_keys(frame) if SEASON in p.columns else frame[FIELD_ID]
    frame[AREA_HA] = pd.to_numeric(frame[AREA_HA], errors="coerce")
    frame["size_class"] = size_class(frame[AREA_HA].to_numpy())
    projected = frame.to_crs(frame.estimate_utm_crs()) if frame.crs.is_geographic else frame
    pts = projected.geometry.representative_point()
    frame["x"], frame["y"] = pts.x.to_numpy(), pts.y.to_numpy()
    frame.attrs["classes"] = classes
    return frame.reset_index(drop=True)


def excluded_keys(paths: list[Path]) -> set[str]:
    """Keys listed in exclusion files (``field_id`` column, and ``season`` when present)."""
    out: set[str] = set()
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise InputError("exclusion file not found (sample.*.exclude)", path=p)
        suffix = p.suffix.lower()
        try:
            if suffix == ".csv":
                table = pd.read_csv(p, dtype=str)
            elif suffix == ".parquet":
                table = pd.read_parquet(p)
            else:
                table = gpd.read_file(p, engine="pyogrio")
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read the exclusion file ({err})", path=p) from None
        if FIELD_ID not in table.columns:
            raise InputError(f"the exclusion file has no {FIELD_ID!r} column (columns: "
                             f"{list(table.columns)[:10]})", path=p)
        out |= set(unit_keys(table.dropna(subset=[FIELD_ID])).tolist())
    return out


def labelled_keys(cfg: RunConfig) -> set[str]:
    """Keys of the units already labelled for any target (configured and imported labels)."""
    layout = RunLayout.of(cfg)
    keys: set[str] = set()
    try:
        table = inputs.labels(cfg).table
    except InputError:
        table = None
    if table is not None:
        targets = [t for t in cfg.model.targets if t in table.columns]
        if targets:
            known = table[targets].notna().any(axis=1)
            frame = table.loc[known].reset_index()
            keys |= set(unit_keys(frame).tolist())
    if layout.collected_labels.is_file():
        keys |= set(unit_keys(pd.read_parquet(layout.collected_labels)).tolist())
    return keys


def _geometry_of(frame: gpd.GeoDataFrame, keys: pd.Series) -> gpd.GeoDataFrame:
    pos = pd.Index(frame["key"]).get_indexer(keys)
    return frame.iloc[pos].reset_index(drop=True)


def _visit_plan(x: np.ndarray, y: np.ndarray, per_cluster: int, seed: int,
                cluster: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    from regenmap.models.visits import spatial_clusters, visit_orders

    if cluster is None:
        cluster = spatial_clusters(x, y, max(1, math.ceil(len(x) / per_cluster)), seed=seed)
    return cluster, visit_orders(x, y, cluster)


def _write(cfg: RunConfig, name: str, team: gpd.GeoDataFrame, table: pd.DataFrame,
           info: dict[str, Any], strata: pd.DataFrame | None) -> dict[str, Path]:
    from regenmap.maps.sample_gpkg import write_sample

    layout = RunLayout.of(cfg)
    folder = layout.sample_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    classes = {t: list(c) for t, c in team.attrs.get("classes", {}).items()}
    gpkg_path, csv_path = write_sample(layout.sample_gpkg(name), layout.sample_csv(name), team,
                                       targets=classes, info=info, strata=strata)
    write_parquet_atomic(table, layout.sample_table(name), meta=info)
    write_json_atomic(layout.sample_info(name), info)
    return {"gpkg": gpkg_path, "csv": csv_path, "sample": layout.sample_table(name),
            "info": layout.sample_info(name)}


# --------------------------------------------------------------------------- design
def design(config: RunConfig | str | Path, **overrides: Any) -> dict[str, Path]:
    """Draw a stratified reference sample for accuracy and area (``regenmap sample design``).

    Parameters
    ----------
    config
        Run configuration or its YAML path; options from ``sample.design``.
    **overrides
        Keys of ``sample.design`` replacing the configured ones (e.g. ``n=120``).

    Returns
    -------
    dict
        ``gpkg``, ``csv`` (field-team files), ``sample`` (Parquet), ``info`` (JSON).
    """
    from regenmap.models.sampling import design_sample

    cfg = as_config(config)
    sc = cfg.sample.design.model_copy(update={k: v for k, v in overrides.items()
                                              if v is not None})
    sc = type(sc).model_validate(sc.model_dump())
    target = sc.target or cfg.model.targets[0]
    if target not in cfg.model.targets:
        raise ConfigError(f"sample.design.target: {target!r} is not one of model.targets "
                          f"{cfg.model.targets}")
    frame = sampling_frame(cfg, cfg.model.targets)
    classes = frame.attrs["classes"]
    factors = list(sc.by)
    for f in [*factors, *([sc.unit_column] if sc.unit_column else [])]:
        if f not in frame.columns:
            raise ConfigError(f"sample.design: {f!r} is not a column of the fields file or "
                              f"the predictions (columns: {[c for c in frame.columns][:15]})")
    excluded = excluded_keys(sc.exclude)
    if sc.exclude_labelled:
        excluded |= labelled_keys(cfg)
    work = pd.DataFrame({"key": frame["key"], "map_class": frame[class_column(target)],
                         AREA_HA: frame[AREA_HA], "eligible": ~frame["key"].isin(excluded)})
    for c in classes[target]:
        work[f"p_{c}"] = frame[proba_column(target, c)].to_numpy(float)
    for f in factors:
        work[f] = frame[f].astype(str)
    if sc.unit_column:
        work[sc.unit_column] = frame[sc.unit_column].astype(str)
    d = design_sample(work, classes[target], sc.options(cfg.seed), factors=factors,
                      unit_column=sc.unit_column)
    strata = d.strata.copy()
    strata.insert(0, "code", [f"S{i + 1:02d}" for i in range(len(strata))])
    code = dict(zip(strata["stratum"], strata["code"], strict=True))
    chosen = _geometry_of(frame, d.sample["key"])
    cluster, order = _visit_plan(chosen["x"].to_numpy(), chosen["y"].to_numpy(),
                                 sc.fields_per_cluster, cfg.seed)
    table = pd.DataFrame({"key": d.sample["key"], FIELD_ID: chosen[FIELD_ID]})
    if SEASON in chosen.columns:
        table[SEASON] = chosen[SEASON].astype(str)
    table["stratum"] = d.sample["stratum"].to_numpy()
    table["code"] = table["stratum"].map(code)
    table["map_class"] = d.sample["map_class"].astype(object).where(
        d.sample["map_class"].notna(), "withheld").to_numpy()
    table["inclusion_prob"] = d.sample["inclusion_prob"].to_numpy(float)
    table["stratum_N"] = d.sample["stratum_N"].to_numpy(np.int64)
    table[AREA_HA] = d.sample[AREA_HA].to_numpy(float)
    table["cluster"], table["visit_order"] = cluster, order
    team = chosen[[FIELD_ID, *([SEASON] if SEASON in chosen.columns else []), AREA_HA,
                   chosen.geometry.name]].copy()
    team["sample"] = sc.name
    team["cluster"], team["visit_order"] = cluster, order
    team["stratum"] = table["code"].to_numpy()
    team["inclusion_prob"] = table["inclusion_prob"].round(6).to_numpy()
    team = team.sort_values(["cluster", "visit_order"], kind="stable").reset_index(drop=True)
    team.attrs["classes"] = classes
    info = {**stamp(schema=SAMPLE_INFO_SCHEMA, inputs=[str(RunLayout.of(cfg).predictions),
                                                        str(inputs.fields_path(cfg))]),
            "kind": "design", "name": sc.name, "target": target, "targets": classes,
            "design": d.summary, "strata": strata.to_dict(orient="records"),
            "n_clusters": int(cluster.max()) if len(cluster) else 0, "run": cfg.name}
    return _write(cfg, sc.name, team, table, info, strata)


# --------------------------------------------------------------------------- next
def next_fields(config: RunConfig | str | Path, **overrides: Any) -> dict[str, Path]:
    """Choose the fields whose labels should most improve the model (``regenmap sample next``).

    Parameters
    ----------
    config
        Run configuration or its YAML path; options from ``sample.next``.
    **overrides
        Keys of ``sample.next`` replacing the configured ones (e.g. ``budget=50``).

    Returns
    -------
    dict
        ``gpkg``, ``csv``, ``sample``, ``info`` as for :func:`design`.
    """
    from regenmap.models.artifact import load_model
    from regenmap.models.selection import select_next

    cfg = as_config(config)
    sc = cfg.sample.next.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    sc = type(sc).model_validate(sc.model_dump())
    layout = RunLayout.of(cfg)
    targets = list(cfg.model.targets)
    frame = sampling_frame(cfg, targets)
    classes = frame.attrs["classes"]
    if sc.unit_column and sc.unit_column not in frame.columns:
        raise ConfigError(f"sample.next.unit_column: {sc.unit_column!r} is not a column of "
                          "the fields file")
    names: list[str] = []
    for t in targets:
        for f in load_model(layout.model_dir(t)).feature_names:
            if f not in names:
                names.append(f)
    feats = read_features(layout)
    feats[FIELD_ID] = feats[FIELD_ID].astype(str)
    fkeys = unit_keys(feats)
    missing = [f for f in names if f not in feats.columns]
    if missing:
        raise InputError(f"the features table lacks the models' features {missing[:5]}; run "
                         "`regenmap features` again", path=layout.features)
    matrix = pd.DataFrame(feats[names].to_numpy(float), index=fkeys.to_numpy())
    matrix = matrix[~matrix.index.duplicated()]
    labelled = labelled_keys(cfg)
    excluded = excluded_keys(sc.exclude)
    proba = {t: frame[[proba_column(t, c) for c in classes[t]]].to_numpy(float) for t in targets}
    has_proba = np.column_stack([np.isfinite(p).all(axis=1) for p in proba.values()]).any(axis=1)
    pool = (~frame["key"].isin(labelled | excluded) & has_proba
            & frame["key"].isin(matrix.index)).to_numpy()
    if not pool.any():
        raise InputError("no field can be chosen: every field with a prediction is labelled "
                         "or excluded", path=layout.predictions)
    cand = frame.loc[pool].reset_index(drop=True)
    lab = matrix.reindex([k for k in labelled if k in matrix.index]).to_numpy(float)
    picks = select_next(cand[["key", "x", "y", *([sc.unit_column] if sc.unit_column else [])]],
                        {t: p[pool] for t, p in proba.items()},
                        matrix.reindex(cand["key"]).to_numpy(float),
                        lab if lab.size else np.zeros((0, len(names))), sc.options(cfg.seed),
                        classes=classes, unit_column=sc.unit_column)
    chosen = _geometry_of(cand, picks["key"])
    cluster, order = _visit_plan(chosen["x"].to_numpy(), chosen["y"].to_numpy(),
                                 sc.fields_per_cluster, cfg.seed,
                                 cluster=picks["cluster"].to_numpy() if sc.clusters else None)
    table = picks.copy()
    table.insert(1, FIELD_ID, chosen[FIELD_ID].to_numpy())
    if SEASON in chosen.columns:
        table.insert(2, SEASON, chosen[SEASON].astype(str).to_numpy())
    table["cluster"], table["visit_order"] = cluster, order
    table[AREA_HA] = chosen[AREA_HA].to_numpy(float)
    team = chosen[[FIELD_ID, *([SEASON] if SEASON in chosen.columns else []), AREA_HA,
                   chosen.geometry.name]].copy()
    team["sample"] = sc.name
    team["cluster"], team["visit_order"] = cluster, order
    team["rank"] = picks["rank"].to_numpy()
    team["reason"] = picks["reason"].to_numpy()
    team = team.sort_values(["cluster", "visit_order"], kind="stable").reset_index(drop=True)
    team.attrs["classes"] = classes
    info = {**stamp(schema=SAMPLE_INFO_SCHEMA,
                    inputs=[str(layout.predictions), str(layout.features)]),
            "kind": "next", "name": sc.name, "targets": classes,
            "options": sc.model_dump(mode="json"), "n": len(table),
            "n_candidates": int(pool.sum()), "n_labelled": len(labelled),
            "n_clusters": int(cluster.max()) if len(cluster) else 0, "run": cfg.name}
    return _write(cfg, sc.name, team, table, info, None)


__all__ = ["design", "excluded_keys", "labelled_keys", "next_fields", "sampling_frame",
           "unit_keys"]
