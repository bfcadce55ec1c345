"""Stages ``train``, ``evaluate`` and ``predict`` (table part) and ``model-info``.

Each entry function takes a :class:`~regenmap.pipelines.config.RunConfig` (or a
YAML path), reads ``out_dir/features.parquet`` and the labelled fields, calls
:mod:`regenmap.models` and writes its outputs atomically:

- ``train``    -> ``out_dir/model/<target>/`` (booster.txt, metadata.json,
  reference.json, cv_predictions.parquet)
- ``evaluate`` -> ``out_dir/evaluation/<target>.json`` + PNG plots, and the model
  cards ``model_card.md`` / ``model_card.html`` in each model directory (in
  ``out_dir/evaluation/<target>/`` for a model given by ``model.path``)
- ``predict_table`` -> ``out_dir/predictions.parquet`` and ``out_dir/drift.json``
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regenmap.errors import ConfigError, InputError, ModelError
from regenmap.io import write_json_atomic as write_json
from regenmap.io import write_parquet_atomic
from regenmap.models.artifact import load_model, save_model
from regenmap.models.artifact import model_info as _model_info
from regenmap.models.calibration import fit_calibration
from regenmap.models.evaluate import CVResult, cross_validate_predictions, evaluation_report
from regenmap.models.folds import spatial_blocks
from regenmap.models.predict import predict_target
from regenmap.models.train import train_target
from regenmap.provenance import stamp
from regenmap.schema import AREA_HA, FIELD_ID, MODEL_SCHEMA, PREDICTIONS_SCHEMA

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig

log = logging.getLogger(__name__)

CV_FILE = "cv_predictions.parquet"
CV_META_FILE = "cv.json"
BLOCK_GROUP = "spatial_block"


@dataclass(frozen=True)
class FieldTable:
    """Labelled fields of a run, indexed by ``field_id``.

    Attributes
    ----------
    table
        Columns: the targets (labels), ``area_ha`` when known, the group column.
    group
        Group per field (region, tile or automatic block), or None.
    group_name
        Name of the group factor (the group column or ``spatial_block``).
    notes
        How groups were chosen when not as configured.
    source
        File the labels were read from.
    """

    table: pd.DataFrame
    group: pd.Series | None
    group_name: str
    notes: tuple[str, ...]
    source: Path


def _config(config: RunConfig | str | Path) -> RunConfig:
    from regenmap.pipelines.config import RunConfig, load_config

    return config if isinstance(config, RunConfig) else load_config(config)


def read_features(cfg: RunConfig) -> pd.DataFrame:
    """Read ``out_dir/features.parquet``.

    Raises
    ------
    InputError
        If it does not exist yet.
    """
    path = Path(cfg.out_dir) / "features.parquet"
    if not path.is_file():
        raise InputError("features table not found; run `regenmap features <config>` first.",
                         path=path)
    return pd.read_parquet(path)


def _read_vector_or_table(path: Path, layer: str | None) -> pd.DataFrame:
    import geopandas as gpd

    if not path.exists():
        raise InputError("labels file not found; set model.labels.path.", path=path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype=str, keep_default_na=True)
        if suffix == ".parquet":
            try:
                return gpd.read_parquet(path)
            except (ValueError, KeyError):
                return pd.read_parquet(path)
        return gpd.read_file(path, layer=layer, engine="pyogrio")
    except (OSError, ValueError) as err:
        if isinstance(err, InputError):
            raise
        raise InputError(f"cannot read labels ({err}).", path=path) from None


def read_field_table(cfg: RunConfig) -> FieldTable:
    """Read the labels, groups and field sizes of a run.

    Labels come from ``model.labels.path`` (the fields file if omitted). Group and
    area are taken from the labels file, else from the fields file; without a group
    column, fields are grouped in square blocks of ``model.block_size_m`` on their
    centroids (in a projected CRS).

    Raises
    ------
    InputError
        If the files cannot be read or a target column is missing.
    ConfigError
        If there is neither a group column nor geometry to build spatial blocks.
    """
    import geopandas as gpd

    mc = cfg.model
    path = Path(mc.labels.path or cfg.fields.path)
    layer = mc.labels.layer or (cfg.fields.layer if mc.labels.path is None else None)
    id_col = mc.labels.id_column if mc.labels.path is not None else cfg.fields.id_column
    raw = _read_vector_or_table(path, layer)
    if id_col not in raw.columns:
        raise InputError(f"labels have no id column '{id_col}' (columns: {list(raw.columns)}). "
                         "Set model.labels.id_column.", path=path)
    missing = [t for t in mc.targets if t not in raw.columns]
    if missing:
        raise InputError(f"labels lack the target column(s) {missing} (columns: "
                         f"{[c for c in raw.columns if c != 'geometry']}). Fix model.targets.",
                         path=path)
    raw = raw.rename(columns={id_col: FIELD_ID})
    raw[FIELD_ID] = raw[FIELD_ID].astype(str)
    geo = raw if isinstance(raw, gpd.GeoDataFrame) and raw.geometry is not None else None
    if (geo is None or AREA_HA not in raw.columns
            or (mc.group_column and mc.group_column not in raw.columns)) and \
            Path(cfg.fields.path).resolve() != path.resolve():
        fields = gpd.read_file(cfg.fields.path, layer=cfg.fields.layer, engine="pyogrio")
        fields = fields.rename(columns={cfg.fields.id_column: FIELD_ID})
        fields[FIELD_ID] = fields[FIELD_ID].astype(str)
        keep = [c for c in fields.columns if c not in raw.columns or c == FIELD_ID]
        merged = pd.DataFrame(raw.drop(columns="geometry", errors="ignore")).merge(
            fields[keep], on=FIELD_ID, how="left")
        geo = gpd.GeoDataFrame(merged, geometry="geometry", crs=fields.crs) \
            if "geometry" in merged.columns else None
        raw = merged
    table = pd.DataFrame(raw.drop(columns="geometry", errors="ignore")).set_index(FIELD_ID)
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise InputError(f"labels: duplicate field ids {dup}.", path=path)
    notes: list[str] = []
    projected = None
    if geo is not None and geo.crs is not None and len(geo):
        projected = geo.to_crs(geo.estimate_utm_crs()) if geo.crs.is_geographic else geo
        projected = projected.set_index(FIELD_ID)
    if AREA_HA not in table.columns and geo is not None and geo.crs is not None:
        # Same rule as regenmap.geo.fields: planar area, equal-area CRS when geographic.
        ea = geo.to_crs("EPSG:6933") if geo.crs.is_geographic else geo
        table[AREA_HA] = pd.Series(ea.geometry.area.to_numpy() / 1e4,
                                   index=ea[FIELD_ID].to_numpy())
    group: pd.Series | None = None
    group_name = mc.group_column or BLOCK_GROUP
    if mc.group_column and mc.group_column in table.columns:
        group = table[mc.group_column].astype(str)
    elif projected is not None:
        if mc.group_column:
            notes.append(f"group column '{mc.group_column}' not in the labels: automatic "
                         f"{mc.block_size_m:g} m spatial blocks used instead")
        c = projected.geometry.centroid
        group = pd.Series(spatial_blocks(c.x.to_numpy(), c.y.to_numpy(),
                                         block_size_m=mc.block_size_m), index=projected.index)
        group_name = BLOCK_GROUP
    elif not mc.random_folds:
        raise ConfigError(
            f"model.group_column: {mc.group_column!r} is not a column of {path} and the labels "
            "have no geometry for automatic spatial blocks. Name a group column (region, tile) "
            "or give a labels file with field polygons."
        )
    return FieldTable(table=table, group=group, group_name=group_name, notes=tuple(notes),
                      source=path)


def _classes(cfg: RunConfig, target: str) -> list[str] | None:
    return cfg.model.classes.get(target)


def _area(ft: FieldTable) -> pd.Series | None:
    if AREA_HA not in ft.table.columns:
        return None
    return pd.to_numeric(ft.table[AREA_HA], errors="coerce")


def _model_dir(cfg: RunConfig, target: str) -> Path:
    if cfg.model.path is not None:
        base = Path(cfg.model.path)
        return base / target if (base / target).is_dir() else base
    return Path(cfg.out_dir) / "model" / target


def _summary_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """Return the headline numbers stored in metadata.json (full report: evaluation)."""
    ov = report["overall"]
    ci = ov.get("ci", {})
    return {
        "strategy": report["strategy"],
        "n_folds": report["n_folds"],
        "notes": report["notes"],
        "overall": {k: ov.get(k) for k in ("n", "accuracy", "balanced_accuracy", "macro_f1",
                                           "kappa", "log_loss")},
        "ci95": {k: ci.get(k) for k in ("accuracy", "balanced_accuracy", "macro_f1", "kappa")},
        "per_class": ov.get("per_class"),
        "ece": report["calibration"]["uncalibrated"]["ece"],
        "ece_calibrated": (report["calibration"]["calibrated"] or {}).get("ece"),
        "worst_group": report["disaggregated"]["worst"],
        "operating_point": report["operating_point"],
    }


def train(config: RunConfig | str | Path, *, client: Any = None) -> dict[str, Path]:
    """Train and cross-validate one model per target; write the model directories.

    Parameters
    ----------
    config
        Run configuration or its YAML path.
    client
        Accepted for a uniform stage signature; LightGBM trains in this process
        with ``num_threads`` threads (``model.params``, default 2).

    Returns
    -------
    dict
        Target -> model directory (``out_dir/model/<target>``).
    """
    cfg = _config(config)
    mc = cfg.model
    features = read_features(cfg)
    ft = read_field_table(cfg)
    params: dict[str, Any] = dict(mc.params)
    out: dict[str, Path] = {}
    for target in mc.targets:
        labels = ft.table[target]
        area = _area(ft)
        tparams = params
        search_info = None
        if mc.search:
            from regenmap.models.search import search_params

            search_info = search_params(features, labels, target=target, groups=ft.group,
                                        n_folds=mc.n_folds, params=params, seed=cfg.seed,
                                        classes=_classes(cfg, target))
            tparams = {**params, **search_info["best"]}
        cv = cross_validate_predictions(
            features, labels, target=target, groups=ft.group, n_folds=mc.n_folds,
            params=tparams, seed=cfg.seed, classes=_classes(cfg, target), area_ha=area,
            random_folds=mc.random_folds, group_name=ft.group_name)
        cv.notes[:0] = list(ft.notes)
        report = evaluation_report(cv, calibration=mc.calibration, n_boot=mc.n_bootstrap,
                                   seed=cfg.seed, confidence_threshold=mc.confidence_threshold,
                                   min_group_count=mc.min_group_count)
        model = train_target(features, labels, target=target, groups=ft.group, params=tparams,
                             seed=cfg.seed, classes=_classes(cfg, target), area_ha=area)
        model.calibration = fit_calibration(cv.raw, cv.y, mc.calibration)
        model.metrics = _summary_metrics(report)
        model.training["label_source"] = str(ft.source)
        model.training["group_column"] = ft.group_name
        if search_info is not None:
            model.training["search"] = search_info
        model.provenance = {
            **stamp(schema=MODEL_SCHEMA, inputs=[str(Path(cfg.out_dir) / "features.parquet"),
                                                 str(ft.source)]),
            "config_hash": cfg.hash(),
            "seed": cfg.seed,
            "run_name": cfg.name,
            "model_id": model.provenance.get("model_id"),
        }
        directory = save_model(model, Path(cfg.out_dir) / "model" / target)
        _write_cv(directory, cv)
        out[target] = directory
        log.info("trained %s: held-out accuracy %.3f", target, report["overall"]["accuracy"])
    return out


def _write_cv(directory: Path, cv: CVResult) -> None:
    write_parquet_atomic(cv.to_frame(), directory / CV_FILE)
    write_json(directory / CV_META_FILE, {"target": cv.target, "classes": list(cv.classes),
                                          "strategy": cv.strategy, "notes": cv.notes,
                                          "folds": cv.fold_info})


def _read_cv(directory: Path) -> CVResult | None:
    meta_path, data_path = directory / CV_META_FILE, directory / CV_FILE
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    cv = CVResult.from_frame(pd.read_parquet(data_path), target=meta["target"],
                             classes=tuple(meta["classes"]), strategy=meta["strategy"],
                             notes=meta["notes"])
    cv.fold_info = meta.get("folds", [])
    return cv


def evaluate(config: RunConfig | str | Path) -> Path:
    """Write the held-out evaluation of every target: JSON, plots and model cards.

    Uses the out-of-fold predictions saved by :func:`train`; runs the spatial
    cross-validation itself when they are absent.

    Returns
    -------
    pathlib.Path
        ``out_dir/evaluation``.
    """
    from regenmap.models.card import write_model_card
    from regenmap.models.plots import write_plots

    cfg = _config(config)
    mc = cfg.model
    out_dir = Path(cfg.out_dir) / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for target in mc.targets:
        directory = _model_dir(cfg, target)
        model = load_model(directory)
        cv = _read_cv(directory)
        if cv is None:
            features = read_features(cfg)
            ft = read_field_table(cfg)
            cv = cross_validate_predictions(
                features, ft.table[target], target=target, groups=ft.group,
                n_folds=mc.n_folds, params=model.params, seed=cfg.seed,
                classes=_classes(cfg, target), area_ha=_area(ft),
                random_folds=mc.random_folds, group_name=ft.group_name)
        report = evaluation_report(cv, calibration=mc.calibration, n_boot=mc.n_bootstrap,
                                   seed=cfg.seed, confidence_threshold=mc.confidence_threshold,
                                   min_group_count=mc.min_group_count)
        report["model_dir"] = str(directory)
        report["provenance"] = {**stamp(schema=MODEL_SCHEMA), "config_hash": cfg.hash()}
        plots = write_plots(report, model, out_dir)
        report["plots"] = {k: p.name for k, p in plots.items()}
        write_json(out_dir / f"{target}.json", report)
        # A model given by model.path is an input: its card goes to the evaluation folder.
        card_dir = directory if cfg.model.path is None else out_dir / target
        write_model_card(model, report, plots, card_dir)
        summary[target] = _summary_metrics(report)
    write_json(out_dir / "summary.json", summary)
    return out_dir


def _field_status(cfg: RunConfig) -> pd.DataFrame | None:
    path = Path(cfg.out_dir) / "fields_status.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def predict_table(config: RunConfig | str | Path) -> Path:
    """Label every field of ``features.parquet`` with each target's model.

    Fields flagged upstream (``out_dir/fields_status.parquet``) or by feature-quality
    flags are withheld with their status. Drift against the training data is
    written to ``out_dir/drift.json`` and the Parquet metadata; a drifted run warns.

    Returns
    -------
    pathlib.Path
        ``out_dir/predictions.parquet``.
    """
    cfg = _config(config)
    mc = cfg.model
    features = read_features(cfg)
    status = _field_status(cfg)
    merged: pd.DataFrame | None = None
    drift: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for target in mc.targets:
        model = load_model(_model_dir(cfg, target))
        if model.target != target:
            raise ModelError(f"{_model_dir(cfg, target)} holds a model of '{model.target}', "
                             f"not '{target}'. Fix model.path.")
        flags = [*mc.withhold_flags.get("all", []), *mc.withhold_flags.get(target, [])]
        pred = predict_target(model, features, confidence_threshold=mc.confidence_threshold,
                              field_status=status, ood_threshold=mc.ood_threshold,
                              min_feature_share=mc.min_feature_share, flags=flags,
                              explain=mc.explain)
        drift[target] = pred.attrs.get("drift", {}).get(target)
        models[target] = {"dir": str(_model_dir(cfg, target)),
                          "model_id": model.provenance.get("model_id"),
                          "config_hash": model.provenance.get("config_hash")}
        pred.attrs = {}
        merged = pred if merged is None else merged.merge(pred, on=FIELD_ID, how="outer",
                                                          sort=False)
        report = drift[target]
        if report and report.get("warning"):
            warnings.warn(f"{target}: {report['warning']}", stacklevel=2)
            log.warning("%s: %s", target, report["warning"])
    if merged is None:
        raise ConfigError("model.targets is empty: nothing to predict.")
    out_dir = Path(cfg.out_dir)
    meta = {**stamp(schema=PREDICTIONS_SCHEMA, config=cfg.model_dump(mode="json"),
                    inputs=[str(out_dir / "features.parquet")]),
            "models": models, "drift": {t: _drift_brief(r) for t, r in drift.items()}}
    write_json(out_dir / "drift.json", {"drift": drift, "models": models})
    path = out_dir / "predictions.parquet"
    write_parquet_atomic(merged, path, meta=meta)
    return path


def _drift_brief(report: dict[str, Any] | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {k: report[k] for k in ("drifted", "max_psi", "threshold", "warning")}


def model_info(directory: str | Path) -> dict[str, Any]:
    """Summary of a model directory (``regenmap model-info``); see :mod:`.artifact`."""
    return _model_info(directory)


__all__ = ["evaluate", "model_info", "predict_table", "read_features", "read_field_table",
           "train"]
