"""The end-of-run summary: held-out skill, label counts and where outputs are; stage summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from regenmap.io import parquet_meta, read_json
from regenmap.pipelines.layout import RunLayout
from regenmap.schema import ACQUISITION_ID, STATUS, status_column

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.job import RunResult

_WANTED = ("accuracy", "balanced_accuracy", "macro_f1", "kappa")


def heldout_metrics(config: RunConfig) -> dict[str, dict[str, float]]:
    """Each target's spatially held-out metrics (``overall`` of its evaluation, else its model's)."""
    layout = RunLayout.of(config)
    result: dict[str, dict[str, float]] = {}
    for target in config.model.targets:
        overall: dict[str, Any] = {}
        operating: dict[str, Any] = {}
        if layout.evaluation_file(target).is_file():
            report = read_json(layout.evaluation_file(target), what="evaluation")
            overall, operating = report.get("overall", {}), report.get("operating_point", {})
        elif (layout.model_dir(target) / "metadata.json").is_file():
            meta = read_json(layout.model_dir(target) / "metadata.json", what="model metadata")
            metrics = meta.get("metrics", {})
            overall, operating = metrics.get("overall", {}), metrics.get("operating_point", {})
        found = {k: float(overall[k]) for k in _WANTED if isinstance(overall.get(k), int | float)}
        for key, name in (("threshold", "threshold"), ("coverage", "labelled_share"),
                          ("accuracy", "labelled_accuracy")):
            if isinstance(operating.get(key), int | float):
                found[name] = float(operating[key])
        if found:
            result[target] = found
    return result


def status_counts(config: RunConfig) -> dict[str, dict[str, int]]:
    """Count fields per label status and target in the predictions table."""
    path = RunLayout.of(config).predictions
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
        table.add_column(f"{key.replace('_', ' ')} (all)", justify="right")
    table.add_column("labelled at the threshold: share, accuracy (held out)", justify="right")
    table.add_column("map: ok / uncertain / withheld", justify="right")
    for target in cfg.model.targets:
        m = result.metrics.get(target, {})
        c = result.counts.get(target, {})
        withheld = sum(v for k, v in c.items() if k not in ("ok", "uncertain"))
        op = "-"
        if "labelled_share" in m:
            acc = f"{m['labelled_accuracy']:.3f}" if "labelled_accuracy" in m else "-"
            op = f"{m['labelled_share']:.0%} at >= {m.get('threshold', float('nan')):.2f}, {acc}"
        table.add_row(target, *[f"{m[k]:.3f}" if k in m else "-" for k in _WANTED], op,
                      f"{c.get('ok', 0)} / {c.get('uncertain', 0)} / {withheld}")
    console.print(table)
    console.print("Labels in the map for fields the models were trained on come from held-out "
                  "folds (column <target>_in_training), so their confidence is not in-sample.")
    _print_adoption(cfg, console)
    if result.skipped:
        console.print(f"skipped (already done): {', '.join(result.skipped)}")
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    console.print(f"timings: {timing}")
    predict = result.outputs.get("predict", {})
    if isinstance(predict, dict):
        for name, path in predict.items():
            console.print(f"{name:>12}: {path}")


def _print_adoption(cfg: RunConfig, console: Console) -> None:
    """Print each target's error-adjusted class areas (latest season, whole area)."""
    path = RunLayout.of(cfg).adoption
    if not path.is_file():
        return
    rows = pd.read_csv(path, dtype={"season": str})
    rows = rows[rows["domain"] == "all"]
    if not len(rows):
        return
    table = Table(title="adoption: area per class corrected for held-out errors (95 % interval)")
    for name in ("target", "class", "area (ha)", "share", "mapped (ha)"):
        table.add_column(name, justify="left" if name in ("target", "class") else "right")
    notes = []
    for target, part in rows.groupby("target", sort=False):
        latest = part[part["season"] == sorted(part["season"])[-1]]
        for _, r in latest.iterrows():
            table.add_row(f"{target} {r['season']}", str(r["class"]),
                          f"{r['area_ha']:,.0f} ({r['area_ci_low_ha']:,.0f}-"
                          f"{r['area_ci_high_ha']:,.0f})",
                          f"{r['share']:.0%} ({r['share_ci_low']:.0%}-{r['share_ci_high']:.0%})",
                          f"{r['mapped_ha']:,.0f}")
        r = latest.iloc[0]
        notes.append(f"{target}: labels given are {r['domain_accuracy']:.0%} accurate "
                     f"({r['domain_accuracy_ci_low']:.0%}-{r['domain_accuracy_ci_high']:.0%}) by "
                     f"area; {int(r['n_visit'])} of {int(r['n_fields'])} fields are withheld and "
                     "need a field visit")
    console.print(table)
    for line in notes:
        console.print(line)


def extract_summary(config: RunConfig) -> tuple[str, dict[str, Any]]:
    """Tell what an extraction did: acquisitions read and failed, fields by status.

    Returns
    -------
    text, data
        One line for people, and its numbers (``acquisitions``, ``read``, ``failed``,
        ``failed_acquisitions`` (up to 20 ids), ``fields``: status -> count).
    """
    from regenmap.pipelines.stages.extract import SCENE_SEVERITY

    layout = RunLayout.of(config)
    fields: dict[str, int] = {}
    if layout.fields_status.is_file():
        status = pd.read_parquet(layout.fields_status, columns=[STATUS])[STATUS]
        fields = {str(k): int(v) for k, v in status.value_counts().items()}
    catalogued: set[str] = set()
    failed: set[str] = set()
    if layout.scenes_status.is_file():
        catalogued = {str(a) for a in parquet_meta(layout.scenes_status).get("acquisitions", [])}
        scenes = pd.read_parquet(layout.scenes_status)
        errors = scenes.loc[scenes[SCENE_SEVERITY] == "error", ACQUISITION_ID].astype(str)
        failed = {a for a in errors if a}
    total = len(catalogued | failed)
    read = len(catalogued - failed)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(fields.items(), key=lambda kv: -kv[1]))
    text = (f"{total} acquisition(s): {read} read, {len(failed)} failed"
            + (f" (see {layout.scenes_status.name})" if failed else "")
            + f"; {sum(fields.values())} field(s): {shown or 'none'}")
    return text, {"acquisitions": total, "read": read, "failed": len(failed),
                  "failed_acquisitions": sorted(failed)[:20], "fields": fields}


def stage_summary(name: str, config: RunConfig) -> tuple[str, dict[str, Any]] | None:
    """Return the one-line summary of a stage that has one (``extract``), else None."""
    return extract_summary(config) if name == "extract" else None
