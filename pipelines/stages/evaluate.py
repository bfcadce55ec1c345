"""Stage ``evaluate``: the held-out evaluation of every target, its plots and model cards.

Reads the out-of-fold predictions saved beside each model (or cross-validates
again when they are absent, e.g. for a model given by ``model.path``) and writes
``evaluation/<target>.json``, PNG plots, ``evaluation/summary.json`` and the
model cards (:meth:`RunLayout.card_dir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from regenmap.io import atomic_path, read_json, write_json_atomic
from regenmap.models.artifact import load_model
from regenmap.models.evaluate import cross_validate_predictions, evaluation_report
from regenmap.models.metrics import disaggregation_table
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_features, read_fields_status
from regenmap.pipelines.stages.train import read_cv, summary_metrics, withheld_reasons
from regenmap.provenance import stamp
from regenmap.schema import MODEL_SCHEMA

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.log import Progress


def evaluate(config: RunConfig | str | Path, *, client: Client | None = None,
             progress: Progress | None = None) -> dict[str, Path]:
    """Write the held-out evaluation of every target: JSON, plots and model cards.

    Parameters
    ----------
    config
        Run configuration or its YAML path.
    client, progress
        Accepted for the stages' one signature.

    Returns
    -------
    dict
        ``evaluation``: the evaluation folder; ``summary``: its ``summary.json``; and
        ``card_<target>``: each model card.
    """
    from regenmap.models.card import write_model_card
    from regenmap.models.plots import write_plots

    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    mc = cfg.model
    layout.evaluation_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    written: dict[str, Path] = {"evaluation": layout.evaluation_dir}
    for target in mc.targets:
        directory = layout.model_dir(target)
        model = load_model(directory)
        cv = read_cv(layout, target)
        if cv is None:
            table = inputs.labels(cfg)
            features = read_features(layout)
            data = table.labelled(features, target, cfg, exclude=withheld_reasons(
                features, read_fields_status(layout), cfg, target))
            cv = cross_validate_predictions(data, mc.train_options(cfg.seed),
                                            mc.cv_options(cfg.seed))
        report = evaluation_report(cv, mc.evaluation_options(cfg.seed))
        if layout.year_transfer(target).is_file():
            report["year_transfer"] = read_json(layout.year_transfer(target),
                                                what="year-transfer evaluation")
        report["model_dir"] = str(directory)
        report["provenance"] = {**stamp(schema=MODEL_SCHEMA), "config_hash": cfg.hash()}
        plots = write_plots(report, model, layout.evaluation_dir)
        report["plots"] = {k: p.name for k, p in plots.items()}
        write_json_atomic(layout.evaluation_file(target), report)
        groups_csv = layout.evaluation_groups(target)
        with atomic_path(groups_csv) as tmp:
            disaggregation_table(report["disaggregated"], report["classes"]).to_csv(
                tmp, index=False)
        written[f"groups_{target}"] = groups_csv
        write_model_card(model, report, plots, layout.card_dir(target))
        written[f"card_{target}"] = layout.model_card(target)
        summary[target] = summary_metrics(report)
    written["summary"] = write_json_atomic(layout.evaluation_summary, summary)
    return written
