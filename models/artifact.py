"""Model directories: booster in LightGBM's text format plus JSON metadata; never pickle.

Layout of ``<dir>``::

    booster.txt     LightGBM text model (readable, diffable)
    reference.json  training distribution of every feature (drift / OOD)
    metadata.json   schema, target, classes, features in order, parameters,
                    calibration, importance, training summary, metrics, provenance,
                    and the size and SHA-256 of every other file of the model

``metadata.json`` is written last: a directory without it is incomplete.

Integrity: every file of the model is read once, as bytes, checked against the
SHA-256 recorded when it was written, and only then parsed. A truncated, bit-rotted
or edited file is refused with a :class:`~regenmap.errors.SchemaError` naming it,
before LightGBM sees it (LightGBM aborts the whole process on some damaged
models, and uses an edited one silently).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightgbm as lgb

from regenmap.errors import InputError, ModelError, OutputError, SchemaError
from regenmap.io import read_json, write_json_atomic, write_text_atomic
from regenmap.models.train import TrainedModel
from regenmap.provenance import package_versions
from regenmap.schema import MODEL_SCHEMA

BOOSTER_FILE = "booster.txt"
REFERENCE_FILE = "reference.json"
METADATA_FILE = "metadata.json"


def save_model(model: TrainedModel, directory: str | Path, *,
               extra_files: Iterable[str] = ()) -> Path:
    """Write a model directory.

    Parameters
    ----------
    model
        The model to save.
    directory
        Folder to create or overwrite (its model files only).
    extra_files
        Names of files already written in ``directory`` that belong to the model (e.g.
        its out-of-fold predictions); their checksums are recorded too.

    Returns
    -------
    pathlib.Path
        The directory.

    Raises
    ------
    OutputError
        If the folder cannot be created or written, or an extra file is missing.
    """
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        write_text_atomic(d / BOOSTER_FILE, model.booster.model_to_string())
        write_json_atomic(d / REFERENCE_FILE, model.reference)
        files = {name: file_record(d / name)
                 for name in (BOOSTER_FILE, REFERENCE_FILE, *extra_files)}
        write_json_atomic(d / METADATA_FILE, metadata_of(model, files))
    except OSError as err:
        raise OutputError(f"cannot write the model directory ({err}). Check the folder "
                          "exists and is writable.", path=d) from None
    return d


def file_record(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, as recorded in ``metadata.json``."""
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def metadata_of(model: TrainedModel, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Return the content of ``metadata.json`` for a model whose files are ``files``."""
    prov = dict(model.provenance)
    prov.setdefault("versions", package_versions())
    return {
        "schema": MODEL_SCHEMA,
        "target": model.target,
        "classes": list(model.classes),
        "features": list(model.feature_names),
        "best_iteration": model.best_iteration,
        "params": model.params,
        "calibration": model.calibration,
        "importance": model.importance,
        "training": model.training,
        "metrics": model.metrics,
        "decision": model.decision,
        "provenance": prov,
        "files": files,
    }


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """Read and check ``metadata.json`` of a model directory.

    Raises
    ------
    InputError
        If the folder or its metadata is missing.
    SchemaError
        If the metadata is damaged (not JSON, keys missing) or was written under
        another model schema.
    """
    d = Path(directory)
    meta_path = d / METADATA_FILE
    if not meta_path.is_file():
        raise InputError(f"not a regenmap model directory: {METADATA_FILE} is missing. Pass a "
                         "folder written by `regenmap train` (out_dir/model/<target>).", path=d)
    meta = read_json(meta_path, what="model metadata")
    schema = meta.get("schema")
    if schema != MODEL_SCHEMA:
        raise SchemaError(f"{meta_path}: model schema {schema!r} is incompatible with this "
                          f"regenmap, which reads {MODEL_SCHEMA!r}. Retrain the model with "
                          "this version (`regenmap train`).")
    for key in ("target", "classes", "features", "files"):
        if key not in meta:
            raise SchemaError(f"{meta_path}: key '{key}' is missing; the model directory is "
                              "damaged, retrain.")
    return meta


def read_verified(directory: str | Path, name: str, meta: dict[str, Any] | None = None) -> bytes:
    """Read a file of a model directory and check it is the one the model was written with.

    Parameters
    ----------
    directory
        The model folder.
    name
        File name inside it (``booster.txt``, ``reference.json``...).
    meta
        The folder's metadata, if already read.

    Returns
    -------
    bytes
        The file's content, checked against the size and SHA-256 in ``metadata.json``.

    Raises
    ------
    InputError
        If the file is missing.
    SchemaError
        If the metadata records no checksum for it, or the file differs from what was
        written (truncated, damaged or edited since).
    """
    d = Path(directory)
    meta = meta if meta is not None else read_metadata(d)
    path = d / name
    if not path.is_file():
        raise InputError(f"{name} is missing; the model directory is incomplete. Retrain "
                         "(`regenmap train`) or restore the folder from a copy.", path=path)
    record = meta["files"].get(name) if isinstance(meta["files"], dict) else None
    if not isinstance(record, dict) or "sha256" not in record:
        raise SchemaError(f"{path}: {METADATA_FILE} records no checksum for this file, so it "
                          "cannot be trusted; retrain (`regenmap train`).")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["sha256"]:
        size = (f" ({len(data)} bytes; {record.get('bytes')} were written)"
                if len(data) != record.get("bytes") else " (same size, different content)")
        raise SchemaError(f"{path}: this file changed since the model was written{size}: it is "
                          "truncated, damaged or edited (its SHA-256 differs from the one in "
                          f"{METADATA_FILE}). Retrain (`regenmap train`) or restore the model "
                          "folder from a copy; do not edit model files by hand.")
    return data


def load_model(directory: str | Path, *, features: Iterable[str] | None = None) -> TrainedModel:
    """Load a model directory written by :func:`save_model`, checking every file first.

    Parameters
    ----------
    directory
        The model folder.
    features
        Column names of the table the model will be applied to; if given, missing
        model features raise and extra columns are reported in a warning.

    Raises
    ------
    InputError, SchemaError
        See :func:`read_metadata` and :func:`read_verified`; also when the booster does
        not match its metadata or cannot be parsed.
    ModelError
        If ``features`` lacks model features.
    """
    d = Path(directory)
    meta = read_metadata(d)
    booster_path = d / BOOSTER_FILE
    text = read_verified(d, BOOSTER_FILE, meta).decode("utf-8", errors="replace")
    try:
        booster = lgb.Booster(model_str=text)
    except (lgb.basic.LightGBMError, ValueError) as err:
        raise SchemaError(f"{booster_path}: LightGBM cannot read this booster ({err}); "
                          "retrain (`regenmap train`).") from None
    names = tuple(str(f) for f in meta["features"])
    classes = tuple(str(c) for c in meta["classes"])
    if booster.num_feature() != len(names) or booster.num_model_per_iteration() != len(classes):
        raise SchemaError(f"{booster_path}: booster has {booster.num_feature()} features and "
                          f"{booster.num_model_per_iteration()} classes but metadata lists "
                          f"{len(names)} and {len(classes)}; the directory mixes two models.")
    ref_path = d / REFERENCE_FILE
    try:
        reference = json.loads(read_verified(d, REFERENCE_FILE, meta))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SchemaError(f"{ref_path}: the model reference is not valid JSON ({err}); "
                          "retrain (`regenmap train`).") from None
    model = TrainedModel(
        target=str(meta["target"]),
        classes=classes,
        feature_names=names,
        booster=booster,
        params=dict(meta.get("params", {})),
        best_iteration=int(meta.get("best_iteration", booster.current_iteration())),
        reference=reference,
        importance={str(k): float(v) for k, v in meta.get("importance", {}).items()},
        calibration=dict(meta.get("calibration") or {"method": "none"}),
        training=dict(meta.get("training", {})),
        metrics=dict(meta.get("metrics", {})),
        provenance=dict(meta.get("provenance", {})),
        decision=dict(meta.get("decision") or {}),
    )
    if features is not None:
        check_features(model, features)
    return model


def check_features(model: TrainedModel, columns: Iterable[str]) -> dict[str, list[str]]:
    """Compare a table's columns with the model's features.

    Returns
    -------
    dict
        ``missing`` and ``extra`` feature names (``field_id`` is not counted).

    Raises
    ------
    ModelError
        Naming the missing features, if any.
    """
    cols = [str(c) for c in columns]
    have = set(cols)
    missing = [f for f in model.feature_names if f not in have]
    known = set(model.feature_names)
    extra = [c for c in cols if c not in known and c != "field_id"]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more"
                                          if len(missing) > 10 else "")
        raise ModelError(f"model '{model.target}' needs {len(missing)} feature(s) the table lacks: "
                         f"{shown}. Compute features with the training configuration or retrain.")
    if extra:
        warnings.warn(f"{len(extra)} column(s) are not features of model '{model.target}' and are "
                      f"ignored: {', '.join(extra[:10])}", stacklevel=2)
    return {"missing": missing, "extra": extra}


def model_info(directory: str | Path) -> dict[str, Any]:
    """Summary of a model directory for people: target, classes, features, data, metrics.

    Raises
    ------
    InputError, SchemaError
        See :func:`read_metadata`.
    """
    meta = read_metadata(directory)
    importance = meta.get("importance", {})
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:10]
    metrics = meta.get("metrics", {})
    overall = metrics.get("overall", metrics)
    return {
        "directory": str(Path(directory).resolve()),
        "schema": meta["schema"],
        "target": meta["target"],
        "classes": meta["classes"],
        "n_features": len(meta["features"]),
        "top_features": dict(top),
        "best_iteration": meta.get("best_iteration"),
        "calibration": meta.get("calibration", {}).get("method", "none"),
        "training": {k: v for k, v in meta.get("training", {}).items()
                     if k in ("n_fields", "n_labelled", "n_unlabelled", "class_counts",
                              "n_groups", "early_stopping")},
        "metrics": overall,
        "ci95": metrics.get("ci95"),
        "worst_group": metrics.get("worst_group"),
        "operating_point": metrics.get("operating_point"),
        "evaluation": {k: metrics.get(k) for k in ("strategy", "n_folds", "notes")},
        "provenance": meta.get("provenance", {}),
    }
