"""Stage ``train``: features + labels -> one model directory per target.

For every target: an optional small spatially cross-validated parameter search,
the spatial cross-validation whose out-of-fold predictions the ``evaluate``
stage reads, then the model trained on every labelled field, written to
``out_dir/model/<target>/`` (booster as text, JSON metadata, training reference,
out-of-fold predictions). Models are never pickled.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from regenmap.errors import SchemaError
from regenmap.io import portable_paths, write_json_atomic, write_parquet_atomic
from regenmap.models.artifact import read_metadata, read_verified, save_model
from regenmap.models.calibration import fit_calibration
from regenmap.models.data import feature_matrix
from regenmap.models.eligibility import withheld
from regenmap.models.evaluate import (
    CVResult,
    cross_validate_predictions,
    evaluation_report,
    year_transfer,
)
from regenmap.models.thresholds import ThresholdChoice
from regenmap.models.train import train_target
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_features, read_fields_status
from regenmap.provenance import stamp
from regenmap.schema import MODEL_SCHEMA, FieldStatus

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.log import Progress

log = logging.getLogger(__name__)


def summary_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """Return the headline numbers of an evaluation report (stored in metadata.json)."""
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


def train(config: RunConfig | str | Path, *, client: Client | None = None,
          progress: Progress | None = None) -> dict[str, Path]:
    """Train and cross-validate one model per target; write the model directories.

    Parameters
    ----------
    config
        Run configuration or its YAML path.
    client, progress
        Accepted for the stages' one signature; LightGBM trains in this process.

    Returns
    -------
    dict
        Target -> model directory (``out_dir/model/<target>``).
    """
    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    mc = cfg.model
    features = read_features(layout)
    table = inputs.labels(cfg)
    base = mc.train_options(cfg.seed)
    cvo = mc.cv_options(cfg.seed)
    status = read_fields_status(layout)
    out: dict[str, Path] = {}
    for target in mc.targets:
        data = table.labelled(features, target, cfg,
                              exclude=withheld_reasons(features, status, cfg, target))
        options = base
        search_info = None
        if mc.search:
            from regenmap.models.search import search_params

            search_info = search_params(data, base, cvo)
            options = base.with_lightgbm(**search_info["best"])
        cv = cross_validate_predictions(data, options, cvo)
        cv.notes[:0] = list(table.notes)
        report = evaluation_report(cv, mc.evaluation_options(cfg.seed))
        model = train_target(data, options)
        log.info("%s: trained on %d features (%s%s)", target, len(model.feature_names),
                 ", ".join(model.feature_names[:8]), " ..." if len(model.feature_names) > 8 else "")
        model.calibration = fit_calibration(cv.raw, cv.y, mc.calibration)
        model.metrics = summary_metrics(report)
        model.decision = {k: v for k, v in report["operating_point"].items()
                          if k in ThresholdChoice.__dataclass_fields__}
        model.decision |= {"shift_threshold": report["shift"]["threshold"],
                           "shift_rationale": report["shift"]["rationale"],
                           "mix_threshold": report["class_mix"]["threshold"],
                           "mix_rationale": report["class_mix"]["rationale"],
                           "mix_reference": report["class_mix"]["reference"],
                           "ood_threshold": report["ood"]["threshold"],
                           "ood_rationale": report["ood"]["rationale"]}
        # Shared artifacts name inputs relative to the output folder, not this machine's paths.
        model.training["label_source"] = portable_paths(Path(table.source), cfg.out_dir)
        model.training["group_column"] = table.group_name
        if search_info is not None:
            model.training["search"] = search_info
        model.provenance = {
            **stamp(schema=MODEL_SCHEMA,
                    inputs=portable_paths([Path(layout.features), Path(table.source)],
                                          cfg.out_dir)),
            "config_hash": cfg.hash(),
            "seed": cfg.seed,
            "run_name": cfg.name,
            "model_id": model.provenance.get("model_id"),
        }
        write_cv(layout, cv)  # first: the model's metadata records its checksums
        transfer = year_transfer(data, options)
        if transfer is not None:
            write_json_atomic(layout.year_transfer(target, trained=True), transfer)
        else:
            layout.year_transfer(target, trained=True).unlink(missing_ok=True)
        directory = save_model(model, layout.trained_model_dir(target), extra_files=(
            layout.cv_predictions(target, trained=True).name,
            layout.cv_meta(target, trained=True).name))
        out[target] = directory
        log.info("trained %s: held-out accuracy %.3f", target, report["overall"]["accuracy"])
    return out


def withheld_reasons(features: pd.DataFrame, status: pd.DataFrame | None, cfg: RunConfig,
                     target: str) -> pd.Series:
    """Why prediction would withhold each sample of ``target`` (empty when it would not).

    The rule is prediction's own (:func:`regenmap.models.eligibility.withheld`), so that
    training and evaluation use exactly the samples the map would label.
    """
    mc = cfg.model
    fm = feature_matrix(features)
    flags = [*mc.withhold_flags.get("all", []), *mc.withhold_flags.get(target, [])]
    state, why = withheld(fm, features, field_status=status, flags=flags,
                          min_feature_share=mc.min_feature_share)
    text = np.where(state == FieldStatus.OK.value, "",
                    [f"{s}: {w}" if w and not str(w).startswith(str(s)) else str(w or s)
                     for s, w in zip(state, why, strict=True)])
    flagged = np.char.find(text.astype(str), "feature-quality flag") >= 0
    text = np.where(flagged, np.char.add(text.astype(str), " (model.withhold_flags)"), text)
    return pd.Series(text, index=fm.field_ids, dtype=object)


def write_cv(layout: RunLayout, cv: CVResult) -> None:
    """Save the out-of-fold predictions of a target beside its model."""
    write_parquet_atomic(cv.to_frame(), layout.cv_predictions(cv.target, trained=True))
    write_json_atomic(layout.cv_meta(cv.target, trained=True),
                      {"target": cv.target, "classes": list(cv.classes), "strategy": cv.strategy,
                       "notes": cv.notes, "folds": cv.fold_info,
                       "cluster_factor": cv.cluster_factor})


def read_cv(layout: RunLayout, target: str) -> CVResult | None:
    """Read the out-of-fold predictions beside the model in use, or None if there are none.

    Both files are checked against the checksums in the model's metadata first.

    Raises
    ------
    SchemaError
        If either file changed since the model was written, or cannot be parsed.
    """
    meta_path, data_path = layout.cv_meta(target), layout.cv_predictions(target)
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    model_dir = layout.model_dir(target)
    model_meta = read_metadata(model_dir)
    try:
        meta = json.loads(read_verified(model_dir, meta_path.name, model_meta))
        frame = pd.read_parquet(io.BytesIO(read_verified(model_dir, data_path.name, model_meta)))
    except (ValueError, pa.ArrowException) as err:
        raise SchemaError(f"{model_dir}: cannot read the cross-validation files ({err}); "
                          "retrain (`regenmap train`).") from None
    cv = CVResult.from_frame(frame, target=meta["target"],
                             classes=tuple(meta["classes"]), strategy=meta["strategy"],
                             notes=meta["notes"])
    cv.fold_info = meta.get("folds", [])
    cv.cluster_factor = meta.get("cluster_factor")
    return cv
