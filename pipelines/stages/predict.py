"""Stage ``predict``: label every field, then write the GeoPackage, maps and run report.

Each target's model labels every field of ``features.parquet``; fields flagged
upstream (``fields_status.parquet``) or by feature-quality flags are withheld with
their status, never guessed. Drift against the training data is written to
``drift.json`` and the predictions' metadata; a drifted run warns.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regenmap.errors import ConfigError, ModelError
from regenmap.io import (
    parquet_meta,
    portable_paths,
    read_json,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from regenmap.models.adoption import CAVEAT as ADOPTION_CAVEAT
from regenmap.models.artifact import load_model
from regenmap.models.evaluate import cross_fitted_calibration
from regenmap.models.predict import predict_target
from regenmap.models.train import TrainedModel
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import (
    RunLayout,
    read_features,
    read_fields_status,
    read_observations,
    read_predictions,
)
from regenmap.pipelines.stages.train import read_cv
from regenmap.provenance import stamp
from regenmap.schema import (
    AREA_HA,
    FIELD_ID,
    GPKG_SCHEMA,
    PREDICTIONS_SCHEMA,
    SEASON,
    proba_column,
)

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.log import Progress

log = logging.getLogger(__name__)


def predict_table(cfg: RunConfig) -> Path:
    """Label every field of ``features.parquet`` with each target's model.

    Returns
    -------
    pathlib.Path
        ``out_dir/predictions.parquet`` (also writes ``out_dir/drift.json``).
    """
    layout = RunLayout.of(cfg)
    mc = cfg.model
    features = read_features(layout)
    status = read_fields_status(layout)
    merged: pd.DataFrame | None = None
    drift: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for target in mc.targets:
        directory = layout.model_dir(target)
        model = load_model(directory)
        if model.target != target:
            raise ModelError(f"{directory} holds a model of '{model.target}', not '{target}'. "
                             "Fix model.path.")
        flags = [*mc.withhold_flags.get("all", []), *mc.withhold_flags.get(target, [])]
        pred = predict_target(model, features, confidence_threshold=None,
                              held_out=held_out_probabilities(layout, target, model),
                              field_status=status, ood_threshold=mc.ood_threshold,
                              min_feature_share=mc.min_feature_share, flags=flags,
                              explain=mc.explain, shift_action=mc.shift_action)
        drift[target] = pred.attrs.get("drift", {}).get(target)
        models[target] = {"dir": str(portable_paths(Path(directory), cfg.out_dir)),
                          "model_id": model.provenance.get("model_id"),
                          "config_hash": model.provenance.get("config_hash")}
        pred.attrs = {}
        key = [c for c in (FIELD_ID, SEASON) if c in pred.columns]
        merged = pred if merged is None else merged.merge(pred, on=key, how="outer", sort=False)
        report = drift[target]
        if report and report.get("warning"):
            warnings.warn(f"{target}: {report['warning']}", stacklevel=2)
            log.warning("%s: %s", target, report["warning"])
    if merged is None:
        raise ConfigError("model.targets is empty: nothing to predict.")
    meta = {**stamp(schema=PREDICTIONS_SCHEMA, config=cfg.model_dump(mode="json"),
                    inputs=[str(layout.features)]),
            "models": models, "drift": {t: _drift_brief(r) for t, r in drift.items()}}
    write_json_atomic(layout.drift, {"drift": drift, "models": models})
    return write_parquet_atomic(merged, layout.predictions, meta=meta)


def held_out_probabilities(layout: RunLayout, target: str, model: TrainedModel
                           ) -> pd.DataFrame | None:
    """Out-of-fold (calibrated) probabilities of the samples ``target``'s model was trained on.

    Returns None for a model given by ``model.path``: its training samples were fields
    of another job, which may share ids with this job's fields but are not them. Also
    None when the model folder holds no cross-validation.
    """
    if layout.model_path is not None:
        return None
    cv = read_cv(layout, target)
    if cv is None or tuple(cv.classes) != tuple(model.classes):
        return None
    proba = cross_fitted_calibration(cv, str(model.calibration.get("method", "none")))
    index = (pd.MultiIndex.from_arrays([cv.field_ids, cv.seasons], names=[FIELD_ID, SEASON])
             if cv.seasons is not None else pd.Index(cv.field_ids, name=FIELD_ID))
    return pd.DataFrame(proba, index=index, columns=list(cv.classes))


def _drift_brief(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {k: report.get(k) for k in ("drifted", "max_psi", "threshold", "warning",
                                       "run_flagged", "shift_score", "shift_threshold", "class_mix")}


def predict(config: RunConfig | str | Path, *, client: Client | None = None,
            progress: Progress | None = None) -> dict[str, Path]:
    """Predict every field, then write ``practices.gpkg``, maps and the run report.

    Parameters
    ----------
    config
        Run configuration or the path of its YAML file.
    client, progress
        Accepted for the stages' one signature.

    Returns
    -------
    dict
        Output name (``predictions``, ``gpkg``, one per map, ``report``) -> path.
    """
    from regenmap.maps import render_maps, write_report, write_results

    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    predictions_path = predict_table(cfg)
    if cfg.fields is None:
        log.warning("this job has no field polygons (fields:), so its labels are in %s only: "
                    "no GeoPackage, maps or report", predictions_path)
        return {"predictions": predictions_path}
    predictions = read_predictions(layout)
    fields = inputs.fields(cfg)
    observations = read_observations(layout) if layout.tile_files() else None
    targets = _targets_and_classes(cfg, predictions)
    source = cfg.scenes.path if cfg.scenes else (cfg.observations.path if cfg.observations
                                                  else None)
    run_info = stamp(schema=GPKG_SCHEMA, config=cfg.model_dump(mode="json"),
                     inputs=[str(cfg.fields.path), str(source)])
    run_info["name"] = cfg.name
    run_info["config"] = cfg.model_dump(mode="json")
    if layout.drift.is_file():
        drift = read_json(layout.drift, what="drift report")
        run_info["drift"] = drift.get("drift", drift)
    run_info["warnings"] = data_quality_warnings(layout)
    run_info = portable_paths(run_info, cfg.out_dir)  # shared: no paths of this machine
    run_info["thresholds"] = {t: _decision_threshold(layout, t) for t in cfg.model.targets}
    adoption, adoption_notes = adoption_table(cfg, predictions, fields)
    run_info["adoption"] = {"notes": adoption_notes, "caveat": ADOPTION_CAVEAT}
    extra = {FEATURE_TABLE: (_feature_table(layout, cfg),
                             "what each feature means (the reasons of the labels name them)")}
    if adoption is not None:
        write_text_atomic(layout.adoption, adoption.to_csv(index=False))
        extra[ADOPTION_TABLE] = (adoption, "error-adjusted class areas and shares with 95 % "
                                 "intervals, per target, season and group")
    out = cfg.outputs
    shown, by_season = _latest_season(predictions, parquet_meta(layout.features))
    run_info["season"] = shown[SEASON].iloc[0] if len(shown) and SEASON in shown else None
    gpkg = write_results(layout.gpkg, fields, shown, targets=targets, run_info=run_info,
                         observations=observations, crs=out.crs, passthrough=out.passthrough,
                         geoparquet=out.geoparquet, overwrite=out.overwrite,
                         store_observations=out.observations, by_season=by_season,
                         extra_tables=extra)
    outputs: dict[str, Path] = {"predictions": predictions_path, "gpkg": gpkg}
    if adoption is not None:
        outputs["adoption"] = layout.adoption
    if out.maps:
        for path in render_maps(gpkg, layout.maps_dir, targets=list(targets)):
            outputs[path.stem] = path
        card = layout.model_card(cfg.model.targets[0])
        summary = (read_json(layout.evaluation_summary, what="evaluation summary")
                   if layout.evaluation_summary.is_file() else None)
        outputs["report"] = write_report(layout.out_dir, gpkg_path=gpkg, run_info=run_info,
                                         evaluation=summary,
                                         model_card=card if card.is_file() else None,
                                         observations=observations, adoption=adoption)
    return outputs


#: Name of the adoption-area table in the results GeoPackage.
ADOPTION_TABLE = "adoption_areas"


def adoption_table(cfg: RunConfig, predictions: pd.DataFrame, fields: pd.DataFrame
                   ) -> tuple[pd.DataFrame | None, list[str]]:
    """Estimate every target's class areas with intervals from the held-out labels.

    Groups are the job's group column (``model.group_column``) when the fields or the
    labels carry it; automatic spatial blocks are not reported.

    Returns
    -------
    table, notes
        The :func:`regenmap.models.adoption.adoption_areas` rows of all targets (None
        without labels), and the caveats met.
    """
    from regenmap.models.adoption import AdoptionOptions, adoption_areas

    if cfg.model.labels.path is None and not any(t in fields.columns for t in cfg.model.targets):
        return None, ["no labels in this job: class areas are not error-adjusted"]
    table = inputs.labels(cfg)
    group_name = cfg.model.group_column
    groups = None
    if group_name and group_name in fields.columns:
        groups = fields.set_index(FIELD_ID)[group_name].astype(str)
    elif group_name and table.group is not None and table.group_name == group_name:
        groups = table.group
    area = fields.set_index(FIELD_ID)[AREA_HA]
    targets = _targets_and_classes(cfg, predictions)
    parts, notes = [], []
    for target, classes in targets.items():
        if target not in table.table.columns:
            notes.append(f"{target}: no labels, class areas are not error-adjusted")
            continue
        part, found = adoption_areas(predictions, table.table[target], area, target=target,
                                     classes=classes, groups=groups,
                                     group_name=group_name or "group",
                                     options=AdoptionOptions(cfg.model.adoption_min_reference))
        parts.append(part)
        notes += [f"{target}: {n}" for n in found]
    if not parts:
        return None, notes
    return pd.concat(parts, ignore_index=True), notes


def _decision_threshold(layout: RunLayout, target: str) -> float | None:
    """Return the confidence threshold ``target``'s model labels at (None if unknown)."""
    meta = layout.model_dir(target) / "metadata.json"
    if not meta.is_file():
        return None
    value = read_json(meta, what="model metadata").get("decision", {}).get("threshold")
    return float(value) if isinstance(value, int | float) else None


#: Name of the feature dictionary table in the results GeoPackage.
FEATURE_TABLE = "feature_dictionary"


def _feature_table(layout: RunLayout, cfg: RunConfig) -> pd.DataFrame:
    """Return the dictionary of the features the models use, with the targets using each."""
    from regenmap.features.dictionary import feature_dictionary

    used: dict[str, list[str]] = {}
    for target in cfg.model.targets:
        for name in load_model(layout.model_dir(target)).feature_names:
            used.setdefault(name, []).append(target)
    meta = parquet_meta(layout.features) if layout.features.is_file() else {}
    table = feature_dictionary(meta.get("features", {}).get("extra_series", []))
    table = table[table["name"].isin(used)].reset_index(drop=True)
    table["used_by"] = table["name"].map(lambda n: ", ".join(used[n]))
    return table


def data_quality_warnings(layout: RunLayout) -> list[str]:
    """Sentences about the run's inputs for the report: scene problems, implausible values."""
    out: list[str] = []
    if layout.scenes_status.is_file():
        scenes = pd.read_parquet(layout.scenes_status)
        if len(scenes):
            first = str(scenes["reason"].iloc[0])[:300]
            out.append(f"{len(scenes)} scene problem(s) were recorded "
                       f"({layout.scenes_status.name}), e.g. {first}")
    meta = parquet_meta(layout.features) if layout.features.is_file() else {}
    out += [f"observations: {text}" for text in meta.get("plausibility", [])]
    absent = meta.get("absent_indices") or {}
    if absent:
        out.append(f"no observation has {', '.join(i.upper() for i in absent)}: the features "
                   "of these indices are left out (e.g. a sensor without SWIR has no NDTI, so "
                   "tillage relies on other series)")
    return out


def _latest_season(predictions: pd.DataFrame, features_meta: dict[str, Any]
                   ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split the predictions: the latest mapped season (one row per field), and all seasons.

    Returns
    -------
    shown, by_season
        The rows the ``fields`` layer shows; every row when the predictions hold several
        seasons (for the ``fields_by_season`` layer), else None.
    """
    if SEASON not in predictions.columns:
        return predictions, None
    seasons = predictions[SEASON].dropna().astype(str).unique().tolist()
    if len(seasons) <= 1:
        return predictions, None
    mapped = [str(s) for s in features_meta.get("mapped_seasons", []) if str(s) in seasons]
    latest = mapped[-1] if mapped else sorted(seasons)[-1]
    return predictions[predictions[SEASON] == latest].reset_index(drop=True), predictions


def _targets_and_classes(cfg: RunConfig, predictions: pd.DataFrame) -> dict[str, list[str]]:
    """Class names of each target, read from the probability columns of the predictions."""
    targets: dict[str, list[str]] = {}
    for target in cfg.model.targets:
        prefix = proba_column(target, "")
        targets[target] = [c[len(prefix):] for c in predictions.columns if c.startswith(prefix)]
    return targets
