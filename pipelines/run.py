"""``regenmap run``: every stage in order, with checkpoints, a lock and a summary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regenmap.pipelines.checkpoints import mark_done, run_lock, stage_done
from regenmap.pipelines.config import RunConfig, load_config
from regenmap.pipelines.log import Reporter

STAGES = ("extract", "features", "train", "evaluate", "predict")


@dataclass
class RunResult:
    """What a run produced: output paths, held-out metrics, counts and timings.

    Attributes
    ----------
    config
        The configuration that ran.
    outputs
        Output name -> path (or target -> path for models).
    metrics
        Target -> held-out metric name -> value (spatial cross-validation).
    counts
        Target -> status -> number of fields.
    timings
        Stage -> seconds (0 for a stage skipped from its checkpoint).
    skipped
        Stages skipped because their checkpoint was valid.
    """

    config: RunConfig
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _stage_functions() -> dict[str, Callable[[RunConfig], Any]]:
    from regenmap.pipelines.extract import extract
    from regenmap.pipelines.featurize import features
    from regenmap.pipelines.modelling import evaluate, train
    from regenmap.pipelines.predict import predict

    return {"extract": extract, "features": features, "train": train,
            "evaluate": evaluate, "predict": predict}


def _as_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _as_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def run(config: RunConfig | str | Path, *, quiet: bool = False,
        stages: tuple[str, ...] = STAGES) -> RunResult:
    """Run the stages of a job in order, skipping those already done.

    Parameters
    ----------
    config
        Run configuration or the path of its YAML file.
    quiet
        JSON log lines instead of rich progress.
    stages
        Stages to run, in order (default: all).

    Returns
    -------
    RunResult
        Paths, held-out metrics, status counts and timings.
    """
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if cfg.scenes is None and cfg.observations is None:
        stages = tuple(s for s in stages if s != "extract")
    reporter = Reporter(quiet=quiet)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = RunResult(config=cfg)
    chash = cfg.hash()
    functions = _stage_functions()
    with run_lock(out_dir):
        for name in stages:
            marker = stage_done(out_dir, name, chash)
            if marker is not None:
                reporter.skipped(name, "finished earlier with the same configuration")
                result.skipped.append(name)
                result.outputs[name] = marker["outputs"]
                continue
            with reporter.stage(name):
                produced = functions[name](cfg)
            outputs = _as_jsonable(produced)
            mark_done(out_dir, name, chash, outputs)
            result.outputs[name] = outputs
    if len(result.skipped) == len(stages):
        reporter.event("nothing-to-do", stage="run", reason="every stage finished earlier")
    result.timings = reporter.timings
    _collect_summary(result)
    return result


def _collect_summary(result: RunResult) -> None:
    """Fill held-out metrics and status counts from the written artifacts."""
    from regenmap.pipelines.summary import heldout_metrics, status_counts

    result.metrics = heldout_metrics(result.config)
    result.counts = status_counts(result.config)
