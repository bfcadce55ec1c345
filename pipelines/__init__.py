"""Orchestration: configuration, the Dask cluster, the stages of a job and the command line.

The stages are functions of one shape, named after their CLI commands::

    from regenmap.pipelines import load_config, extract, features, train, evaluate, predict, run
    cfg = load_config("job.yaml")
    extract(cfg)            # -> {"observations": ..., "fields_status": ..., "scenes_status": ...}
    run(cfg)                # every stage, with checkpoints and a lock

Names are imported on first use, so ``import regenmap.pipelines`` is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regenmap._lazy import lazy_getattr

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig, load_config
    from regenmap.pipelines.demo import demo, simulate
    from regenmap.pipelines.job import run
    from regenmap.pipelines.layout import RunLayout
    from regenmap.pipelines.stages import STAGES
    from regenmap.pipelines.stages.evaluate import evaluate
    from regenmap.pipelines.stages.extract import extract
    from regenmap.pipelines.stages.features import features
    from regenmap.pipelines.stages.predict import predict
    from regenmap.pipelines.stages.train import train

_EXPORTS = {
    "RunConfig": "regenmap.pipelines.config",
    "load_config": "regenmap.pipelines.config",
    "RunLayout": "regenmap.pipelines.layout",
    "STAGES": "regenmap.pipelines.stages",
    "extract": "regenmap.pipelines.stages.extract",
    "features": "regenmap.pipelines.stages.features",
    "train": "regenmap.pipelines.stages.train",
    "evaluate": "regenmap.pipelines.stages.evaluate",
    "predict": "regenmap.pipelines.stages.predict",
    "run": "regenmap.pipelines.job",
    "demo": "regenmap.pipelines.demo",
    "simulate": "regenmap.pipelines.demo",
}

__all__ = ["STAGES", "RunConfig", "RunLayout", "demo", "evaluate", "extract", "features",
           "load_config", "predict", "run", "simulate", "train"]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
