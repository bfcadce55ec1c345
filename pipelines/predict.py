"""``regenmap predict``: label every field and write the GeoPackage, maps and report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regenmap.provenance import stamp
from regenmap.schema import GPKG_SCHEMA

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig


def _read_observations(out_dir: Path) -> pd.DataFrame | None:
    folder = out_dir / "observations"
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def predict(config: RunConfig | str | Path) -> dict[str, Path]:
    """Predict every field, then write ``practices.gpkg``, maps and the run report.

    Parameters
    ----------
    config
        Run configuration or the path of its YAML file.

    Returns
    -------
    dict
        Output name (``predictions``, ``gpkg``, ``maps``, ``report``) -> path.
    """
    from regenmap.geo.fields import read_fields
    from regenmap.maps import render_maps, write_report, write_results
    from regenmap.pipelines.config import RunConfig, load_config
    from regenmap.pipelines.modelling import predict_table

    cfg = config if isinstance(config, RunConfig) else load_config(config)
    out_dir = Path(cfg.out_dir)
    predictions_path = predict_table(cfg)
    predictions = pd.read_parquet(predictions_path)
    fields = read_fields(cfg.fields.path, layer=cfg.fields.layer, id_column=cfg.fields.id_column)
    observations = _read_observations(out_dir)
    targets = _targets_and_classes(cfg, predictions)
    run_info = stamp(schema=GPKG_SCHEMA, config=cfg.model_dump(mode="json"),
                     inputs=[str(cfg.fields.path), str(cfg.scenes.path if cfg.scenes else cfg.observations)])
    run_info["name"] = cfg.name
    run_info["config"] = cfg.model_dump(mode="json")
    drift = _read_json(out_dir / "drift.json")
    if drift is not None:
        run_info["drift"] = drift.get("drift", drift)
    gpkg = write_results(out_dir / cfg.outputs.gpkg, fields, predictions, targets=targets,
                         run_info=run_info, observations=observations, crs=cfg.outputs.crs,
                         passthrough=cfg.outputs.passthrough, geoparquet=cfg.outputs.geoparquet,
                         overwrite=cfg.outputs.overwrite,
                         store_observations=cfg.outputs.observations)
    outputs: dict[str, Path] = {"predictions": predictions_path, "gpkg": gpkg}
    if cfg.outputs.maps:
        maps_dir = out_dir / "maps"
        for path in render_maps(gpkg, maps_dir, targets=list(targets)):
            outputs[path.stem] = path
        card = out_dir / "model" / cfg.model.targets[0] / "model_card.html"
        outputs["report"] = write_report(out_dir, gpkg_path=gpkg, run_info=run_info,
                                         evaluation=_read_json(out_dir / "evaluation" / "summary.json"),
                                         model_card=card if card.is_file() else None,
                                         observations=observations)
    return outputs


def _read_json(path: Path) -> dict[str, Any] | None:
    """Read a JSON artifact of an earlier stage, or ``None`` if that stage did not write it."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def _targets_and_classes(cfg: RunConfig, predictions: pd.DataFrame) -> dict[str, list[str]]:
    """Class names of each target, read from the probability columns of the predictions."""
    from regenmap.schema import proba_column

    targets: dict[str, list[str]] = {}
    for target in cfg.model.targets:
        prefix = proba_column(target, "")
        targets[target] = [c[len(prefix):] for c in predictions.columns if c.startswith(prefix)]
    return targets
