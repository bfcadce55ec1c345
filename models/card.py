"""Model cards (Mitchell et al. 2019) in Markdown and self-contained HTML.

The card is a list of :class:`~regenmap.models.document.Block` filled from the
model's metadata and its evaluation report, rendered as Markdown and as one
self-contained HTML page (:mod:`regenmap.models.document`), with a machine-readable
``model_card.json`` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regenmap.features.dictionary import feature_dictionary
from regenmap.io import json_text, write_text_atomic
from regenmap.models.document import Block, render_html, render_markdown
from regenmap.models.train import TrainedModel


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, nd: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def _ci(ci: list[float | None] | None, nd: int = 3) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


#: The accountability lines a card must state; missing ones are shown as gaps.
ACCOUNTABILITY: tuple[str, ...] = ("owner", "licence", "citation", "contact")

#: regenmap's statement on personal data, in every card.
SENSITIVE_DATA = (
    "The model's inputs and outputs are keyed by field: a field polygon, or an id that a "
    "parcel register links to one, identifies a farm and so, for most farms, a person. "
    "Labels, probabilities and reasons are therefore personal data about that person's "
    "practice; share them only with those entitled to the decision they inform, and never "
    "publish them with ids or geometry. The model uses no column naming a person or an "
    "identifier as a feature (such columns are refused in training).")


@dataclass(frozen=True)
class CardInfo:
    """What the card says beyond the model and its evaluation (``model.card`` and links).

    Attributes
    ----------
    owner, licence, citation, contact
        Accountability lines (None when not given: shown as gaps).
    sensitive_data
        Text added to regenmap's statement on personal data.
    label_source
        The label file, as the card names it (relative to the output folder).
    datasheet
        Link to the training set's datasheet, relative to the card's folder.
    """

    owner: str | None = None
    licence: str | None = None
    citation: str | None = None
    contact: str | None = None
    sensitive_data: str | None = None
    label_source: str | None = None
    datasheet: str | None = None

    def missing(self) -> list[str]:
        """Return the accountability lines not given."""
        return [k for k in ACCOUNTABILITY if not (getattr(self, k) or "").strip()]


def card_blocks(model: TrainedModel, report: dict[str, Any], plots: dict[str, Path],
                info: CardInfo | None = None) -> list[Block]:
    """Assemble the sections of the model card from real numbers.

    Parameters
    ----------
    model
        The model (metadata, training summary, importance, provenance).
    report
        Its evaluation report (:func:`regenmap.models.evaluate.evaluation_report`).
    plots
        Plot kind -> PNG path (see :func:`regenmap.models.plots.write_plots`).
    info
        Owner, licence, citation, contact, the label file and the datasheet's link.
    """
    info = info or CardInfo()
    return [
        Block("h1", f"Model card: {model.target}"),
        *_glance(report),
        *_details_section(model, report),
        *_accountability_section(info),
        *_intended_use_section(),
        *_factors_section(report),
        *_metrics_section(report),
        *_evaluation_data_section(model, report),
        *_training_data_section(model, info),
        *_quantitative_section(model, report, plots),
        *_ethics_section(model, report, info),
        *_caveats_section(report),
    ]


def _accountability_section(info: CardInfo) -> list[Block]:
    lines = []
    for key in ACCOUNTABILITY:
        value = (getattr(info, key) or "").strip()
        lines.append(f"{key.capitalize()}: {value}" if value else
                     f"{key.capitalize()}: _not given_ (set `model.card.{key}`)")
    out = [Block("h2", "Owner, licence and contact"), Block("ul", lines)]
    if info.missing():
        out.insert(1, Block("p", "**Incomplete**: nobody is named as answerable for this model's "
                                 "labels; do not use it for decisions about farmers until "
                                 "someone is."))
    return out


def _glance(report: dict[str, Any]) -> list[Block]:
    ov, op = report["overall"], report["operating_point"]
    ci = ov.get("ci", {})
    worst = report["disaggregated"].get("worst")
    glance = (f"At a glance: held-out accuracy {ov['accuracy']:.3f} "
              f"(95 % interval {_ci(ci.get('accuracy'))}), macro-F1 {ov['macro_f1']:.3f}, "
              f"on {ov['n']} fields under "
              + ("spatial" if report["strategy"] == "spatial" else "RANDOM (optimistic)")
              + f" cross-validation. Labels are given at confidence {op['threshold']:.2f} or "
              f"more: {op['coverage']:.0%} of held-out fields, with accuracy "
              f"{_num(op.get('accuracy'))}; the others are withheld as uncertain.")
    if worst:
        glance += (f" Weakest subgroup: `{worst['factor']}` = `{worst['group']}` "
                   f"(accuracy {worst['accuracy']:.3f}, {worst['gap']:+.3f}).")
    return [Block("p", glance)]


def _details_section(model: TrainedModel, report: dict[str, Any]) -> list[Block]:
    tr, prov = model.training, model.provenance
    versions = prov.get("versions", {})
    op = report["operating_point"]
    return [Block("h2", "Model details"), Block("ul", [
        f"Predicts the practice class of a farm field for target **{model.target}**: "
        + ", ".join(f"`{c}`" for c in model.classes) + ".",
        f"Model id `{prov.get('model_id', 'unrecorded')}`, created "
        f"{prov.get('created_utc', 'at an unrecorded time')} by regenmap "
        f"{versions.get('regenmap', '')} (run `{prov.get('run_name', '')}`, configuration hash "
        f"`{prov.get('config_hash', '')}`, seed {prov.get('seed', '')}).",
        f"Algorithm: LightGBM {versions.get('lightgbm', '')} multi-class gradient-boosted trees, "
        f"{model.best_iteration} boosting rounds, {model.params.get('num_leaves')} leaves, "
        f"learning rate {model.params.get('learning_rate')}, class weights "
        f"`{model.params.get('class_weight')}`; early stopping: {tr.get('early_stopping', 'n/a')}.",
        f"Inputs: {len(model.feature_names)} per-field features computed from satellite image "
        "time series (vegetation and residue/bare-soil indices in practice windows, "
        "observation density).",
        f"Outputs per field: class, probabilities (calibration: `{model.calibration['method']}`), "
        f"confidence, margin, out-of-distribution score, status and the top contributing "
        "features. Labels below the confidence threshold "
        f"({op['threshold']:.2f}) are withheld as `uncertain`.",
    ])]


def _intended_use_section() -> list[Block]:
    return [Block("h2", "Intended use"), Block("ul", [
        "Mapping and monitoring tillage / winter-cover practices over many fields, to target "
        "field visits, summarise adoption by region and screen claims of regenerative "
        "practice programmes (subsidies, carbon credits).",
        "Users: programme analysts, GIS analysts and data scientists who read each label with "
        "its confidence, status and reasons.",
        "Every decision with money attached for an individual farmer should treat the label as "
        "evidence to be confirmed, not as a verdict: withheld (`uncertain`, `no_data`, "
        "`too_small`) fields need another source of evidence.",
    ]), Block("h3", "Out-of-scope uses"), Block("ul", [
        "Denying or clawing back a payment, or imposing a penalty, on the model's label alone.",
        "Regions, years, crops or sensors unlike the training data: check the drift report "
        "(`drift.json`) and each field's `_ood` score; labels there may be much worse than "
        "stated below.",
        "Fields smaller than the smallest size class evaluated here, or with too few cloud-free "
        "observations (these are withheld as `too_small` / `no_data`).",
        "Inferring anything about the farmer (income, compliance history, identity).",
    ])]


def _factors_section(report: dict[str, Any]) -> list[Block]:
    factors = list(report["disaggregated"]["factors"])
    return [Block("h2", "Factors"), Block("ul", [
        "Relevant factors: spatial group ("
        + ", ".join(f"`{f}`" for f in factors if f != "size_class")
        + ") standing for soils, climate, farming systems and image availability; field size "
        "(mixed edge pixels dominate small fields, which are often smallholders').",
        "Evaluation factors: every configured group and field-size class "
        "(<2 ha, 2-10 ha, 10-50 ha, >50 ha), and their intersections where subgroups have at "
        f"least {report['disaggregated']['min_count']} held-out fields.",
    ])]


def _metrics_section(report: dict[str, Any]) -> list[Block]:
    ci = report["overall"].get("ci", {})
    return [Block("h2", "Metrics"), Block("ul", [
        "Overall accuracy; balanced accuracy and macro-F1 (not dominated by the majority "
        "class); Cohen's kappa (agreement beyond chance); per-class precision, recall and F1; "
        "the confusion matrix.",
        f"95 % intervals: percentile bootstrap over held-out fields "
        f"({ci.get('n_boot', 0)} resamples). Fields are resampled independently, which ignores "
        "spatial correlation of errors: the true uncertainty is larger.",
        "Calibration: reliability curve and expected calibration error (ECE) of the top-class "
        "probability; coverage-accuracy trade-off of the confidence threshold.",
    ])]


def _evaluation_data_section(model: TrainedModel, report: dict[str, Any]) -> list[Block]:
    strategy = ("spatial cross-validation: whole groups held out per fold"
                if report["strategy"] == "spatial" else "RANDOM k-fold (not spatial)")
    fold_lines = []
    for f in report.get("folds", []):
        groups = f.get("groups")
        shown = "" if not groups else (": " + ", ".join(map(str, groups[:6]))
                                       + (" ..." if len(groups) > 6 else ""))
        fold_lines.append(f"fold {f['fold']}: {f['n_test']} fields held out{shown}")
    tr = model.training
    left = tr.get("n_labelled_withheld", 0)
    preprocessing = (
        "Preprocessing: the held-out samples went through exactly the steps of the fields "
        "they stand for: the same scene masking, per-field statistics, time-series "
        "compositing and features; samples the map would withhold (too small, too few "
        "observations, unreadable scenes) are left out of training and evaluation alike"
        + (f" ({left} left out: " + "; ".join(f"{n} {r}" for r, n in
                                              list(tr.get("labelled_withheld", {}).items())[:3])
           + ")" if left else " (none here)")
        + "; probabilities are calibrated within the training folds only, and the "
        "confidence threshold is chosen on other folds than those it is measured on.")
    return [Block("h2", "Evaluation data"),
            Block("p", f"{report['overall']['n']} labelled fields, each predicted by a model "
                       f"that never saw its group; {report['n_folds']} folds, {strategy}."),
            Block("p", preprocessing),
            Block("ul", fold_lines)]


def _training_data_section(model: TrainedModel, info: CardInfo) -> list[Block]:
    t, tr, classes = model.target, model.training, list(model.classes)
    counts = tr.get("class_counts", {})
    total = sum(counts.values()) or 1
    source = info.label_source or tr.get("label_source", "the labels table")
    sheet = ([f"Datasheet of the training labels (who made them, how, for what, the "
              f"measured composition): [{info.datasheet}]({info.datasheet})."]
             if info.datasheet else ["No datasheet was written for these labels."])
    b = [Block("h2", "Training data"), Block("ul", [
        *sheet,
        f"Label provenance: column `{t}` of `{source}`; "
        f"{tr.get('n_labelled', 0)} labelled and {tr.get('n_unlabelled', 0)} unlabelled fields "
        "(predicted, not trained on).",
        "Class balance: " + ", ".join(f"`{c}` {n} ({n / total:.0%})" for c, n in counts.items())
        + (" — weighted to balance during training." if model.params.get("class_weight") ==
           "balanced" else "."),
        f"Spatial coverage: {tr.get('n_groups', 'unknown number of')} groups "
        f"(`{tr.get('group_column', 'n/a')}`).",
        f"Share of missing feature values on the labelled fields: "
        f"{_pct(tr.get('feature_missing_share'))}.",
        *([f"{tr['n_labelled_without_features']} labelled fields have no features (too small "
           "or no usable observation) and were not trained on, e.g. "
           + ", ".join(f"`{i}`" for i in tr.get("labelled_without_features_examples", [])[:5])
           + "."] if tr.get("n_labelled_without_features") else []),
        *([f"{tr['n_labelled_withheld']} labelled samples were left out of training and "
           "evaluation because the map would withhold them: "
           + "; ".join(f"{n} {r}" for r, n in list(tr.get("labelled_withheld", {}).items())[:5])
           + "."] if tr.get("n_labelled_withheld") else []),
        *([f"{len(tr['dropped_features'])} feature(s) were left out because no labelled sample "
           "has a value for them (a sparse series leaves some windows empty): "
           + ", ".join(f"`{f}`" for f in tr["dropped_features"][:10])
           + (" ..." if len(tr["dropped_features"]) > 10 else "") + "."]
          if tr.get("dropped_features") else []),
    ])]
    for key, title in (("group_counts", "Labelled fields per group and class"),
                       ("size_class_counts", "Labelled fields per field-size class and class"),
                       ("season_counts", "Labelled samples per season and class")):
        crosstab = tr.get(key)
        if crosstab:
            b.append(Block("h3", title))
            b.append(Block("table", [["", *classes], *[[g, *[str(row.get(c, 0)) for c in classes]]
                                                       for g, row in crosstab.items()]]))
    return b


def _quantitative_section(model: TrainedModel, report: dict[str, Any], plots: dict[str, Path]
                          ) -> list[Block]:
    return [Block("h2", "Quantitative analyses"),
            *_overall_tables(model, report), Block("img", plots.get("confusion"), "confusion matrix"),
            *_disaggregated(report), Block("img", plots.get("groups"), "accuracy by group"),
            *_year_transfer(report), *_calibration(report),
            Block("img", plots.get("reliability"), "reliability diagram"),
            Block("img", plots.get("coverage"), "coverage vs accuracy"),
            *_drivers(model), Block("img", plots.get("importance"), "global importance")]


def _overall_tables(model: TrainedModel, report: dict[str, Any]) -> list[Block]:
    classes = list(model.classes)
    ov = report["overall"]
    ci = ov.get("ci", {})
    cci = ov.get("ci_cluster", {})
    cluster_name = cci.get("cluster_factor", "groups")
    pc, pci = ov.get("per_class", {}), ci.get("per_class", {})
    return [
        Block("h3", "Overall (held out)"),
        Block("table", [["metric", "value", "95 % interval (fields resampled)",
                         f"95 % interval ({cluster_name} resampled)"],
                        *[[name, _num(ov.get(key)), _ci(ci.get(key)), _ci(cci.get(key))]
                          for key, name in (("accuracy", "accuracy"),
                                            ("balanced_accuracy", "balanced accuracy"),
                                            ("macro_f1", "macro-F1"),
                                            ("kappa", "Cohen's kappa"))],
                        ["log loss", _num(ov.get("log_loss")), "", ""],
                        *_ranking_rows(ov.get("ranking"))]),
        Block("h3", "Per class"),
        Block("table", [["class", "support", "precision", "recall", "F1"],
                        *[[c, str(pc[c]["support"]),
                           f"{pc[c]['precision']:.3f} {_ci(pci.get(c, {}).get('precision'))}",
                           f"{pc[c]['recall']:.3f} {_ci(pci.get(c, {}).get('recall'))}",
                           f"{pc[c]['f1']:.3f} {_ci(pci.get(c, {}).get('f1'))}"]
                          for c in classes]]),
        Block("h3", "Confusion matrix (rows true, columns predicted)"),
        Block("table", [["true \\ predicted", *classes],
                        *[[c, *[str(v) for v in row]]
                          for c, row in zip(classes, ov["confusion"], strict=True)]]),
    ]


def _ranking_rows(ranking: dict[str, Any] | None) -> list[list[str]]:
    if not ranking:
        return []
    positive = ranking["positive_class"]
    return [[f"ROC AUC (`{positive}` vs the other)", _num(ranking["roc_auc"]), "", ""],
            [f"average precision of `{positive}` (random: {ranking['positive_share']:.3f})",
             _num(ranking["average_precision"]), "", ""]]


#: Subgroups shown per factor in the card (all of them are in the CSV beside it).
TOP_GROUPS = 10


def _rates(m: dict[str, Any], classes: list[str]) -> list[str]:
    out = []
    for c in classes:
        pc = m["per_class"][c]
        fnr = "-" if pc["fnr"] is None else _pct(pc["fnr"])
        fdr = "-" if pc["fdr"] is None else _pct(pc["fdr"])
        out.append(f"{fnr} / {fdr}")
    return out


def _disaggregated(report: dict[str, Any]) -> list[Block]:
    dis = report["disaggregated"]
    classes = list(report["classes"])
    worst, flagged = dis.get("worst"), dis.get("flagged", [])
    b = [Block("h3", "Disaggregated"),
         Block("p", "Per subgroup: accuracy with its 95 % interval and, per class, the share of "
                    "that practice missed (false-negative rate: the farmer denied) / the share "
                    "of that label that is wrong (false-discovery rate: paid without the "
                    f"practice). The {TOP_GROUPS} weakest subgroups of each factor are shown; "
                    f"every subgroup is in `{report['target']}_groups.csv` of the evaluation "
                    "folder.")]
    header = ["group", "n", "accuracy", "95 % interval", *[f"{c}: missed / wrong"
                                                            for c in classes]]
    for factor, groups in dis["factors"].items():
        shown = sorted(groups.items(), key=lambda kv: (not kv[1]["ranked"], kv[1]["accuracy"]))
        b.append(Block("p", f"By `{factor}` ({len(groups)} groups):"))
        b.append(Block("table", [header, *[[g + (" (flagged)" if m["flagged"] else "")
                                            + ("" if m["ranked"] else " (too few)"),
                                            str(m["n"]), _num(m["accuracy"]),
                                            _ci(m["accuracy_ci"]), *_rates(m, classes)]
                                           for g, m in shown[:TOP_GROUPS]]]))
        gaps = dis.get("gaps", {}).get(factor, {})
        if gaps.get("accuracy"):
            acc = gaps["accuracy"]
            b.append(Block("p", f"Largest accuracy gap between its groups: "
                                f"{acc['difference']:.3f} (ratio {_num(acc['ratio'])})."))
    for name, groups in dis["intersections"].items():
        ranked = sorted(((g, m) for g, m in groups.items() if m["ranked"]),
                        key=lambda kv: kv[1]["accuracy"])
        if ranked:
            b.append(Block("p", f"Intersection `{name}` (the {min(TOP_GROUPS, len(ranked))} "
                                f"weakest of {len(ranked)} subgroups with at least "
                                f"{dis['min_count']} fields):"))
            b.append(Block("table", [["subgroup", "n", "accuracy", "95 % interval"],
                                     *[[g, str(m["n"]), _num(m["accuracy"]),
                                        _ci(m["accuracy_ci"])] for g, m in ranked[:TOP_GROUPS]]]))
    if flagged:
        b.append(Block("p", f"**Flagged**: {len(flagged)} subgroup(s) whose accuracy interval "
                            "lies entirely below the overall accuracy: "
                            + "; ".join(f"`{f['factor']}` = `{f['group']}` ({f['n']} fields, "
                                        f"{f['accuracy']:.3f} {_ci(f['accuracy_ci'])})"
                                        for f in flagged[:TOP_GROUPS]) + "."))
    else:
        b.append(Block("p", "No subgroup's accuracy interval lies entirely below the overall "
                            "accuracy."))
    if worst:
        b.append(Block("p", f"**Worst subgroup**: `{worst['factor']}` = `{worst['group']}` "
                            f"({worst['n']} fields): accuracy {worst['accuracy']:.3f}, "
                            f"{abs(worst['gap']):.3f} below the overall {worst['overall_accuracy']:.3f}."))
    return b


def _year_transfer(report: dict[str, Any]) -> list[Block]:
    transfer = report.get("year_transfer")
    if not transfer:
        return []
    rows = [[year, str(v["n"]), _num(v["accuracy"]), _num(v["macro_f1"]),
             ", ".join(transfer["trained_on"].get(year, []))]
            for year, v in transfer["years"].items()]
    return [Block("h3", "Across years (trained on the other years, tested on one)"),
            Block("p", "Each year's labelled samples are predicted by a model trained only on "
                       "the other years (the same fields may appear in both): this measures "
                       "transfer to a new year's weather and crops, the known weak point of "
                       f"practice mapping. Mean accuracy {_num(transfer['mean_accuracy'])}, "
                       f"mean macro-F1 {_num(transfer['mean_macro_f1'])}."),
            Block("table", [["year held out", "n", "accuracy", "macro-F1", "trained on"],
                            *rows])]


def _calibration(report: dict[str, Any]) -> list[Block]:
    cal, op = report["calibration"], report["operating_point"]
    cal_text = f"ECE of the raw probabilities: {cal['uncalibrated']['ece']:.3f}"
    if cal.get("calibrated"):
        cal_text += f"; after {cal['method']} calibration (cross-fitted): {cal['calibrated']['ece']:.3f}"
    return [Block("h3", "Calibration"), Block("p", cal_text + "."),
            Block("h3", "Decision thresholds"),
            Block("p", f"How the threshold was chosen: {op['rationale']}"),
            Block("ul", [
                f"Threshold: confidence >= {op['threshold']:.3f} ("
                + (f"target accuracy {op['target']:.0%}" if op.get("target") is not None
                   else "fixed") + ").",
                f"Held out, cross-fitted: {op['coverage']:.0%} of {op['n']} fields labelled, "
                f"accuracy {_num(op.get('accuracy'))} (all fields, no threshold: "
                f"{_num(op.get('accuracy_all'))}).",
                f"Withheld as uncertain on the held-out fields: {op['n_uncertain']}; in the map "
                "they need a field visit.",
            ]), *_unlike_training(report)]


def _unlike_training(report: dict[str, Any]) -> list[Block]:
    """How the evaluation set the thresholds for fields and runs unlike the training data."""
    shift, mix, ood = report.get("shift"), report.get("class_mix"), report.get("ood")
    if not shift and not ood:
        return []
    lines = []
    if ood:
        lines.append(f"Per field: a label is withheld when its out-of-distribution score exceeds "
                     f"{_num(ood.get('threshold'))}: {ood.get('rationale', '')}.")
    if shift:
        lines.append("Per run, features: " + str(shift.get("rationale", "")) + ". A run beyond "
                     "it has every label withheld (model.shift_action: withhold) or flagged "
                     "(warn).")
    if mix:
        lines.append("Per run, predicted class mix: " + str(mix.get("rationale", "")) + ". A "
                     "run beyond it is withheld or flagged the same way: the accuracy above "
                     "was measured on class mixes like these.")
    blocks = [Block("h3", "Data unlike the training data"), Block("ul", lines)]
    mix_by_fold = {f["fold"]: f["score"] for f in (mix or {}).get("folds", [])}
    rows = [[str(f["fold"]), ", ".join(map(str, f.get("groups") or [])),
             f"{f['score']:.3f}", _num(mix_by_fold.get(f["fold"])), f"{f['accuracy']:.3f}",
             f"{f['drop']:+.3f}"]
            for f in (shift or {}).get("folds", [])]
    if rows:
        blocks.append(Block("table", [["fold", "held out", "shift score", "class-mix score",
                                       "accuracy", "drop"], *rows]))
    return blocks


def _drivers(model: TrainedModel) -> list[Block]:
    top = sorted(model.importance.items(), key=lambda kv: -kv[1])[:10]
    meaning = _feature_meanings()
    missing = ("", "(not in the feature dictionary)")
    return [Block("h3", "What drives the predictions"),
            Block("table", [["feature", "mean |contribution| (log-odds)", "unit", "meaning"],
                            *[[k, f"{v:.3f}", *meaning.get(k, missing)] for k, v in top]])]


def _ethics_section(model: TrainedModel, report: dict[str, Any], info: CardInfo
                   ) -> list[Block]:
    ov = report["overall"]
    pc = ov.get("per_class", {})
    lines = []
    for c in model.classes:
        m = pc.get(c, {})
        lines.append(
            f"Fields truly `{c}` labelled otherwise: {_pct(1 - m.get('recall', 0))} of them "
            f"(recall {_num(m.get('recall'))}). If `{c}` earns a payment or credit, these "
            "farmers risk being denied it although they practise it.")
        lines.append(
            f"Fields labelled `{c}` that are not: {_pct(1 - m.get('precision', 0))} of the "
            f"`{c}` labels (precision {_num(m.get('precision'))}). If `{c}` earns a payment, "
            "these are paid without the practice; if it is penalised, these farmers are "
            "wrongly penalised.")
    sensitive = SENSITIVE_DATA + (f" {info.sensitive_data.strip()}"
                                  if info.sensitive_data and info.sensitive_data.strip() else "")
    b = [Block("h2", "Ethical considerations"),
         Block("p", "Labels can move money to or away from real farmers, smallholders "
                    "included. The two kinds of error affect different people:"),
         Block("ul", lines),
         Block("h3", "Sensitive data"), Block("p", sensitive)]
    sizes = report["disaggregated"]["factors"].get("size_class", {})
    small = sizes.get("<2 ha")
    if small and small["accuracy"] is not None:
        gap = small["accuracy"] - ov["accuracy"]
        verdict = ("errors fall disproportionately on small fields, often smallholders'"
                   if gap < -0.02 else
                   "no disadvantage for small fields is visible in this evaluation")
        b.append(Block("p", f"Small fields (<2 ha, {small['n']} held out) reach accuracy "
                            f"{small['accuracy']:.3f} (95 % interval "
                            f"{_ci(small['accuracy_ci'])}) versus {ov['accuracy']:.3f} overall "
                            f"({gap:+.3f}): {verdict}."))
    else:
        b.append(Block("p", "No field under 2 ha was evaluated: the model's behaviour on "
                            "smallholders' fields is unknown."))
    return b


def _caveats_section(report: dict[str, Any]) -> list[Block]:
    worst = report["disaggregated"].get("worst")
    rec = [f"Caveat recorded in the evaluation: {n}" for n in report.get("notes", [])]
    if worst and worst["gap"] < -0.05:
        rec.append(f"Performance is weakest in `{worst['factor']}` = `{worst['group']}`; "
                   "collect more labels there before relying on its maps.")
    rec += [
        "Treat `uncertain`, `no_data` and `too_small` fields as unknown, never as the "
        "majority class; verify them in the field or with other evidence.",
        "Check `drift.json` for every new prediction run: a feature with PSI above 0.25 "
        "means the new data differ from the training data and the figures above may not hold.",
        "Re-evaluate after adding labels from new regions; group-level intervals are wide "
        "when a group has few labelled fields.",
        "Fields the model was trained on carry, in the map, the label and confidence of the "
        "fold that held them out (`<target>_in_training`), so the map's confidences are "
        "held-out everywhere; quote the held-out figures above.",
    ]
    return [Block("h2", "Caveats and recommendations"), Block("ul", rec)]


def _feature_meanings() -> dict[str, tuple[str, str]]:
    """Feature name -> (unit, description) from regenmap's feature dictionary."""
    return {str(r.name): (str(r.unit), str(r.description))
            for r in feature_dictionary().itertuples()}


def card_json(model: TrainedModel, report: dict[str, Any], info: CardInfo,
              blocks: list[Block]) -> dict[str, Any]:
    """Return the machine-readable card: key numbers and every section's sentences.

    Returns
    -------
    dict
        ``schema`` (``regenmap.model_card/1``), ``model`` (target, classes, id, versions),
        ``accountability``, ``decision``, ``metrics`` (overall with intervals, operating
        point, per class), ``disaggregation`` (flagged and worst subgroups),
        ``training_data``, ``sections`` (heading -> sentences and tables, as in the card).
    """
    prov, ov = model.provenance, report["overall"]
    sections: dict[str, list[Any]] = {}
    heading = "Summary"
    for blk in blocks:
        if blk.kind == "h2":
            heading = str(blk.content)
        elif blk.kind in ("p", "h3"):
            sections.setdefault(heading, []).append(str(blk.content))
        elif blk.kind == "ul":
            sections.setdefault(heading, []).extend(str(i) for i in blk.content)
        elif blk.kind == "table":
            sections.setdefault(heading, []).append({"table": [list(map(str, r))
                                                              for r in blk.content]})
    keep = ("n", "accuracy", "balanced_accuracy", "macro_f1", "kappa", "per_class", "ci",
            "ci_cluster", "log_loss", "ranking")
    return {
        "schema": "regenmap.model_card/1",
        "model": {"target": model.target, "classes": list(model.classes),
                  "model_id": prov.get("model_id"), "created_utc": prov.get("created_utc"),
                  "config_hash": prov.get("config_hash"), "versions": prov.get("versions", {}),
                  "n_features": len(model.feature_names)},
        "accountability": {k: getattr(info, k) for k in ACCOUNTABILITY},
        "missing": info.missing(),
        "sensitive_data": SENSITIVE_DATA + (f" {info.sensitive_data}" if info.sensitive_data
                                            else ""),
        "decision": dict(model.decision),
        "metrics": {"strategy": report["strategy"],
                    "overall": {k: ov[k] for k in keep if k in ov},
                    "operating_point": report["operating_point"]},
        "disaggregation": {"flagged": report["disaggregated"].get("flagged", []),
                           "worst": report["disaggregated"].get("worst")},
        "year_transfer": report.get("year_transfer"),
        "training_data": {"label_source": info.label_source
                          or model.training.get("label_source"),
                          "datasheet": info.datasheet,
                          "n_labelled": model.training.get("n_labelled"),
                          "class_counts": model.training.get("class_counts"),
                          "n_labelled_withheld": model.training.get("n_labelled_withheld", 0)},
        "sections": sections,
    }


def write_model_card(model: TrainedModel, report: dict[str, Any], plots: dict[str, Path],
                     directory: str | Path, info: CardInfo | None = None) -> dict[str, Path]:
    """Write ``model_card.md``, ``model_card.html`` and ``model_card.json`` into ``directory``.

    Returns
    -------
    dict
        ``markdown``, ``html`` and ``json`` -> path.
    """
    d = Path(directory)
    info = info or CardInfo()
    blocks = card_blocks(model, report, plots, info)
    md, html, js = d / "model_card.md", d / "model_card.html", d / "model_card.json"
    write_text_atomic(md, render_markdown(blocks, base=d))
    write_text_atomic(html, render_html(blocks, title=f"Model card: {model.target}"))
    write_text_atomic(js, json_text(card_json(model, report, info, blocks)))
    return {"markdown": md, "html": html, "json": js}
