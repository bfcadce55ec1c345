"""``regenmap assess``: design-based accuracy and error-adjusted areas from a reference sample.

For a sample drawn by ``regenmap sample design`` and its imported labels, every target
labelled in it gets overall, user's and producer's accuracy and the area of each class
with 95 % intervals (:func:`regenmap.models.area.estimate_from_sample`: the stratified
estimators of Olofsson et al. 2014, with fields of unequal area calibrated to the known
mapped area of each stratum, and the design's strata, which for other targets than the
design's are not their map classes). Withheld fields are a map class of their own: their
area counts in the class areas, not in the accuracies. Fields drawn but not labelled (no
access...) are non-response: the estimator treats the labelled fields of a stratum as a
random sample of it, which the report says. Per region (``model.group_column``) as
domains where the sample has at least :data:`MIN_DOMAIN_N` labelled fields.

Writes ``assessment.json`` and ``assessment.html`` in the sample's folder and an
``assessment`` table in the results GeoPackage (when there is one).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from regenmap.errors import InputError
from regenmap.io import atomic_path, read_json, write_json_atomic, write_text_atomic
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_predictions
from regenmap.pipelines.sampling import unit_keys
from regenmap.provenance import stamp
from regenmap.schema import AREA_HA, FIELD_ID, class_column

if TYPE_CHECKING:
    from regenmap.models.area import AreaEstimates
    from regenmap.pipelines.config import RunConfig

#: Fewest labelled fields for a per-region (domain) estimate.
MIN_DOMAIN_N = 20
ASSESSMENT_TABLE = "assessment"
WITHHELD = "withheld"


def _units(cfg: RunConfig, name: str) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame]:
    layout = RunLayout.of(cfg)
    if not layout.sample_table(name).is_file():
        raise InputError(f"there is no sample {name!r}; draw one with `regenmap sample design`",
                         path=layout.sample_dir(name))
    info = read_json(layout.sample_info(name), what="sample description")
    if info.get("kind") != "design":
        raise InputError(f"sample {name!r} was chosen for training (`sample next`), not drawn "
                         "as a probability sample: it cannot give design-based estimates. "
                         "Assess a `sample design` sample", path=layout.sample_info(name))
    sample = pd.read_parquet(layout.sample_table(name))
    if not layout.collected_labels.is_file():
        raise InputError("no labels imported yet; run `regenmap sample import` with the "
                         "filled form first", path=layout.collected_labels)
    labels = pd.read_parquet(layout.collected_labels)
    labels = labels.loc[labels["sample"] == name].copy()
    labels["key"] = unit_keys(labels)
    return sample, info, labels.set_index("key")


def _estimates(units: pd.DataFrame, strata_n: dict[str, float], strata_area: dict[str, float],
               classes: list[str], domain: np.ndarray | None = None) -> AreaEstimates:
    from regenmap.models.area import estimate_from_sample

    rows = [*classes, *([WITHHELD] if (units["map"] == WITHHELD).any() else [])]
    return estimate_from_sample(units, strata_N=strata_n, map_classes=rows, ref_classes=classes,
                                area_unit="ha", domain=domain, stratum_area=strata_area)


def _table_rows(target: str, domain: str, est: AreaEstimates,
                mapped: dict[str, float]) -> list[dict[str, Any]]:
    table = est.table()
    out: list[dict[str, Any]] = []
    for raw in table.to_dict(orient="records"):
        rec: dict[str, Any] = {"target": target, "domain": domain}
        rec.update({str(k): v for k, v in raw.items()})
        rec["mapped_area"] = mapped.get(str(rec["class"]), 0.0) if mapped else np.nan
        rec["overall"], rec["overall_se"] = est.overall.value, est.overall.se
        out.append(rec)
    return out


def assess(config: RunConfig | str | Path, *, sample: str | None = None) -> dict[str, Path]:
    """Estimate accuracy and class areas from a reference sample and its labels.

    Parameters
    ----------
    config
        Run configuration or its YAML path.
    sample
        Name of the design sample (``sample.design.name`` if omitted).

    Returns
    -------
    dict
        ``json``, ``html`` and, when the results GeoPackage exists, ``gpkg``.
    """
    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    name = sample or cfg.sample.design.name
    drawn, info, labels = _units(cfg, name)
    preds = read_predictions(layout)
    preds["key"] = unit_keys(preds.assign(**{FIELD_ID: preds[FIELD_ID].astype(str)}))
    preds = preds.set_index("key")
    strata_n = {s["stratum"]: float(s["N_eligible"]) for s in info["strata"]}
    # The mapped (eligible) area of each stratum is known: estimates are calibrated to it.
    strata_area = {s["stratum"]: float(s["area_eligible_ha"]) for s in info["strata"]}
    drawn = drawn.set_index("key")
    region_col = cfg.model.group_column
    region = None
    if region_col:
        from regenmap.pipelines import inputs

        fields = inputs.fields(cfg)
        if region_col in fields.columns:
            region = fields.set_index(fields[FIELD_ID].astype(str))[region_col].astype(str)
    result: dict[str, Any] = {"sample": name, "design": info["design"], "targets": {},
                              "provenance": stamp(schema="regenmap.assessment/1",
                                                  inputs=[str(layout.sample_table(name)),
                                                          str(layout.collected_labels)])}
    rows: list[dict[str, Any]] = []
    for target, classes in info["targets"].items():
        if target not in labels.columns:
            continue
        ref = labels[target].reindex(drawn.index)
        got = ref.notna().to_numpy()
        if got.sum() < 2:
            continue
        keys = drawn.index[got]
        mapped_class = preds[class_column(target)].reindex(keys).astype(object)
        units = pd.DataFrame({
            "stratum": drawn.loc[keys, "stratum"].to_numpy(),
            "map": mapped_class.where(mapped_class.notna(), WITHHELD).to_numpy(),
            "ref": ref[got].astype(str).to_numpy(),
            "area": drawn.loc[keys, AREA_HA].to_numpy(float),
            "weight": 1.0 / drawn.loc[keys, "inclusion_prob"].to_numpy(float)})
        est = _estimates(units, strata_n, strata_area, list(classes))
        mapped = _mapped_areas(cfg, preds, target)
        missing = int((~got).sum())
        notes = list(est.notes)
        if missing:
            notes.append(f"{missing} of {len(drawn)} drawn fields have no {target} label "
                         "(non-response): the labelled fields of each stratum are taken as a "
                         "random sample of it")
        if info["target"] != target:
            notes.append(f"the strata are the map classes of {info['target']}, not of "
                         f"{target}: estimated with the design's strata (Stehman 2014)")
        entry: dict[str, Any] = {"n_labelled": int(got.sum()), "n_drawn": len(drawn),
                                 **est.to_dict(), "mapped_area_ha": mapped, "notes": notes,
                                 "regions": {}}
        rows += _table_rows(target, "all", est, mapped)
        if region is not None:
            reg = region.reindex(drawn.loc[keys, FIELD_ID].astype(str)).to_numpy()
            for r in sorted(set(reg) - {None, "nan"}):
                dom = reg == r
                if dom.sum() < MIN_DOMAIN_N:
                    entry["regions"][r] = {"n_labelled": int(dom.sum()),
                                           "skipped": f"fewer than {MIN_DOMAIN_N} labelled fields"}
                    continue
                dest = _estimates(units, strata_n, strata_area, list(classes), domain=dom)
                entry["regions"][r] = {"n_labelled": int(dom.sum()), **dest.to_dict()}
                rows += _table_rows(target, f"{region_col}={r}", dest, {})
        result["targets"][target] = entry
    if not result["targets"]:
        raise InputError(f"sample {name!r} has fewer than 2 labelled fields for every target; "
                         "import the collected labels first", path=layout.collected_labels)
    out = {"json": write_json_atomic(layout.assessment(name), result),
           "html": write_text_atomic(layout.assessment_report(name), _html(result))}
    if layout.gpkg.is_file():
        out["gpkg"] = _write_table(layout.gpkg, pd.DataFrame(rows))
    return out


def _mapped_areas(cfg: RunConfig, preds: pd.DataFrame, target: str) -> dict[str, float]:
    """Area (ha) the map gives each class, and withheld, over every field of the run."""
    from regenmap.pipelines.sampling import sampling_frame

    frame = sampling_frame(cfg, [target])
    cls = frame[class_column(target)].astype(object).where(frame[class_column(target)].notna(),
                                                          WITHHELD)
    return {str(k): float(v) for k, v in frame.groupby(cls)[AREA_HA].sum().items()}


def _write_table(path: Path, table: pd.DataFrame) -> Path:
    """Copy the results GeoPackage with an ``assessment`` table (replacing one there), atomically."""
    from regenmap.geo import gpkg

    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        gpkg.drop_table(tmp, ASSESSMENT_TABLE)
        gpkg.write_chunks(tmp, [table.astype({"domain": object, "class": object})],
                          layer=ASSESSMENT_TABLE,
                          description="design-based accuracy and error-adjusted areas "
                                      "(regenmap assess)")
    return path


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def _html(result: dict[str, Any]) -> str:
    from regenmap.html import escape, page, table

    body = [f"<h1>Accuracy and area from sample {escape(result['sample'])}</h1>",
            "<p>Design-based estimates (stratified estimators of Olofsson et al. 2014; fields "
            "weighted by area, calibrated to the mapped area of each stratum; 95 % intervals "
            "= estimate &plusmn; 1.96 SE).</p>"]
    for target, e in result["targets"].items():
        o = e["overall_accuracy"]
        body.append(f"<h2>{escape(target)}</h2><p>{e['n_labelled']} labelled of "
                    f"{e['n_drawn']} drawn fields. Overall accuracy {_fmt(o['value'])} "
                    f"({_fmt(o['ci95'][0])} - {_fmt(o['ci95'][1])}).</p>")
        rows = []
        for c in e["ref_classes"]:
            a, u, p = e["area"][c], e["users_accuracy"].get(c), e["producers_accuracy"][c]
            rows.append([c, _fmt(e["mapped_area_ha"].get(c, 0.0), 1), _fmt(a["value"], 1),
                         f"{_fmt(a['ci95'][0], 1)} - {_fmt(a['ci95'][1], 1)}",
                         _fmt(u["value"]) if u else "-",
                         f"{_fmt(u['ci95'][0])} - {_fmt(u['ci95'][1])}" if u else "-",
                         _fmt(p["value"]), f"{_fmt(p['ci95'][0])} - {_fmt(p['ci95'][1])}"])
        if WITHHELD in e["mapped_area_ha"]:
            rows.append([WITHHELD, _fmt(e["mapped_area_ha"][WITHHELD], 1), "-", "-", "-", "-",
                         "-", "-"])
        body.append(table(["class", "mapped (ha)", "estimated (ha)", "95 % interval",
                           "user's acc.", "95 % interval", "producer's acc.", "95 % interval"],
                          rows))
        for note in e["notes"]:
            body.append(f"<p class='note'>{escape(note)}</p>")
        regions = [[r, v["n_labelled"], _fmt(v["overall_accuracy"]["value"])
                    if "overall_accuracy" in v else v.get("skipped", "-")]
                   for r, v in e["regions"].items()]
        if regions:
            body.append("<h3>By region</h3>" + table(["region", "labelled", "overall accuracy"],
                                                      regions))
    return page(f"Assessment {result['sample']}", body)


__all__ = ["assess"]
