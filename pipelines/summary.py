"""The end-of-run summary: held-out skill, label counts and where outputs are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from regenmap.schema import status_column

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.run import RunResult

_WANTED = ("accuracy", "balanced_accuracy", "macro_f1", "kappa")


def _find_metrics(node: Any) -> dict[str, float]:
    """Return the first mapping holding scalar ``accuracy``/``macro_f1`` values.

    Metric files nest point estimates under keys such as ``overall`` or
    ``heldout``; a value may itself be ``{"value": x, "ci95": [...]}``.
    """
    if isinstance(node, dict):
        found = {}
        for key in _WANTED:
            value = node.get(key)
            if isinstance(value, dict):
                value = value.get("value", value.get("estimate"))
            if isinstance(value, int | float):
                found[key] = float(value)
        if "accuracy" in found or "macro_f1" in found:
            return found
        for child in node.values():
            sub = _find_metrics(child)
            if sub:
                return sub
    return {}


def heldout_metrics(config: RunConfig) -> dict[str, dict[str, float]]:
    """Read each target's spatially held-out metrics from its evaluation or model metadata."""
    out_dir = Path(config.out_dir)
    result: dict[str, dict[str, float]] = {}
    for target in config.model.targets:
        for candidate in (out_dir / "evaluation" / f"{target}.json",
                          out_dir / "evaluation" / target / "metrics.json",
                          out_dir / "model" / target / "metadata.json"):
            if candidate.is_file():
                metrics = _find_metrics(json.loads(candidate.read_text(encoding="utf-8")))
                if metrics:
                    result[target] = metrics
                    break
    return result


def status_counts(config: RunConfig) -> dict[str, dict[str, int]]:
    """Count fields per label status and target in the predictions table."""
    path = Path(config.out_dir) / "predictions.parquet"
    if not path.is_file():
        return {}
    targets = list(config.model.targets)
    columns = [status_column(t) for t in targets]
    table = pd.read_parquet(path, columns=columns)
    return {t: {str(k): int(v) for k, v in table[status_column(t)].value_counts().items()}
            for t in targets}


def print_summary(result: RunResult, *, console: Console) -> None:
    """Print metrics, counts, timings and output paths of a run."""
    cfg = result.config
    table = Table(title=f"regenmap run '{cfg.name}': held-out skill (whole regions held out)")
    table.add_column("target")
    for key in _WANTED:
        table.add_column(key.replace("_", " "), justify="right")
    table.add_column("labels ok / uncertain / withheld", justify="right")
    for target in cfg.model.targets:
        m = result.metrics.get(target, {})
        c = result.counts.get(target, {})
        withheld = sum(v for k, v in c.items() if k not in ("ok", "uncertain"))
        table.add_row(target, *[f"{m[k]:.3f}" if k in m else "-" for k in _WANTED],
                      f"{c.get('ok', 0)} / {c.get('uncertain', 0)} / {withheld}")
    console.print(table)
    if result.skipped:
        console.print(f"skipped (already done): {', '.join(result.skipped)}")
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    console.print(f"timings: {timing}")
    predict = result.outputs.get("predict", {})
    if isinstance(predict, dict):
        for name, path in predict.items():
            console.print(f"{name:>12}: {path}")
