"""Stage ``evaluate``: the held-out evaluation of every target, its plots and model cards.

Reads the out-of-fold predictions saved beside each model (or cross-validates
again when they are absent, e.g. for a model given by ``model.path``) and writes
``evaluation/<target>.json``, PNG plots, ``evaluation/summary.json`` and the
model cards (:meth:`RunLayout.card_dir`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regenmap.io import atomic_path, portable_paths, read_json, write_json_atomic
from regenmap.models.artifact import load_model
from regenmap.models.evaluate import cross_validate_predictions, evaluation_report
from regenmap.models.metrics import disaggregation_table
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_features, read_fields_status
from regenmap.pipelines.stages.train import read_cv, summary_metrics, withheld_reasons
from regenmap.provenance import stamp
from regenmap.schema import AREA_HA, FIELD_ID, MODEL_SCHEMA, TIME

if TYPE_CHECKING:
    from distributed import Client

    from regenmap.models.card import CardInfo
    from regenmap.models.datasheet import DatasheetText
    from regenmap.pipelines.config import RunConfig
    from regenmap.pipelines.log import Progress

log = logging.getLogger(__name__)


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
    from regenmap.models.datasheet import write_datasheet
    from regenmap.models.plots import write_plots

    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    mc = cfg.model
    layout.evaluation_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    written: dict[str, Path] = {"evaluation": layout.evaluation_dir}
    numbers, text = datasheet_inputs(cfg)
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
        report["model_dir"] = str(portable_paths(Path(directory), cfg.out_dir))
        report["provenance"] = {**stamp(schema=MODEL_SCHEMA), "config_hash": cfg.hash()}
        plots = write_plots(report, model, layout.evaluation_dir)
        report["plots"] = {k: p.name for k, p in plots.items()}
        write_json_atomic(layout.evaluation_file(target), report)
        groups_csv = layout.evaluation_groups(target)
        with atomic_path(groups_csv) as tmp:
            disaggregation_table(report["disaggregated"], report["classes"]).to_csv(
                tmp, index=False)
        written[f"groups_{target}"] = groups_csv
        sheet = write_datasheet(layout.card_dir(target), numbers, text, name=cfg.name)
        written[f"datasheet_{target}"] = sheet["html"]
        write_model_card(model, report, plots, layout.card_dir(target),
                         card_info(cfg, sheet["html"].name))
        written[f"card_{target}"] = layout.model_card(target)
        summary[target] = summary_metrics(report)
    written["summary"] = write_json_atomic(layout.evaluation_summary, summary)
    return written


def card_info(cfg: RunConfig, datasheet: str | None) -> CardInfo:
    """Return what a card says beyond its model: ``model.card`` and the label file's name.

    Missing accountability lines are logged as a warning (and shown as gaps in the card).
    """
    from regenmap.models.card import CardInfo

    label_file = Path(cfg.model.labels.path or inputs.fields_path(cfg))
    info = CardInfo(**cfg.model.card.model_dump(), datasheet=datasheet,
                    label_source=str(portable_paths(label_file, cfg.out_dir)))
    if info.missing():
        log.warning("the model card names no %s: set model.card.%s in %s (shown as gaps in the "
                    "card)", ", ".join(info.missing()), info.missing()[0],
                    cfg.source or "the configuration")
    return info


def datasheet_inputs(cfg: RunConfig) -> tuple[dict[str, Any], DatasheetText]:
    """Count the training labels and read the label makers' answers for the datasheet.

    A question left unanswered is logged as a warning (and shown as a gap).
    """
    from regenmap.models.datasheet import DatasheetText, datasheet_numbers

    layout = RunLayout.of(cfg)
    table = inputs.labels(cfg)
    flat = table.table.reset_index()
    per_field = table.per_field
    if table.group is not None:
        flat["group"] = flat[FIELD_ID].map(table.group)
    if AREA_HA in per_field.columns:
        flat[AREA_HA] = flat[FIELD_ID].map(pd.to_numeric(per_field[AREA_HA], errors="coerce"))
    training = {}
    for target in cfg.model.targets:
        meta = layout.model_dir(target) / "metadata.json"
        if meta.is_file():
            training[target] = read_json(meta, what="model metadata").get("training", {})
    given = cfg.model.labels.datasheet
    text = DatasheetText(**given.model_dump()) if given is not None else DatasheetText()
    if text.missing():
        log.warning("the training labels' datasheet lacks %s: answer them in "
                    "model.labels.datasheet (shown as gaps in the datasheet)",
                    ", ".join(text.missing()))
    numbers = datasheet_numbers(
        flat, targets=cfg.model.targets, label_file=table.source,
        label_file_name=str(portable_paths(Path(table.source), cfg.out_dir)),
        group_name=table.group_name, scene_dates=scene_dates(layout, cfg), training=training,
        columns=[str(c) for c in table.table.columns])
    return numbers, text


def scene_dates(layout: RunLayout, cfg: RunConfig) -> tuple[str, str] | None:
    """Return the first and last observation dates of the run (ISO), None if unknown."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    lo = hi = None
    for f in layout.tile_files():
        col = pq.read_table(f, columns=[TIME]).column(TIME)
        if len(col):
            mm = pc.min_max(col)
            a, b = mm["min"].as_py(), mm["max"].as_py()
            lo = a if lo is None or a < lo else lo
            hi = b if hi is None or b > hi else hi
    if lo is None and cfg.observations is not None:
        obs, _ = inputs.user_observations(cfg)
        times = pd.to_datetime(obs[TIME])
        lo, hi = times.min(), times.max()
    if lo is None or hi is None:
        return None
    return str(pd.Timestamp(lo).date()), str(pd.Timestamp(hi).date())
