"""The run report: one self-contained HTML page (plots embedded as PNG data URIs).

Sections: inputs and provenance; per target the counts by status, class areas,
a confidence histogram and example time series per class; warnings (drift,
out-of-distribution fields, many fields without a label); the evaluation
summary; links to the model card, maps and GeoPackage (relative, so the
output folder can be moved as a whole). Page, stylesheet and tables are those
of :mod:`regenmap.html`, shared with the model card.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from regenmap import __version__
from regenmap.geo import gpkg
from regenmap.html import Markup, figure_img, page, table
from regenmap.html import escape as _e
from regenmap.io import write_text_atomic
from regenmap.maps.gpkg_contract import (
    FIELDS_LAYER,
    OBSERVATIONS_TABLE,
    read_run,
    validate_results,
)
from regenmap.maps.render import ensure_dir, map_paths
from regenmap.maps.styles import (
    CONFIDENCE_BREAKS,
    OTHER_COLOUR,
    class_colours,
    class_label,
)
from regenmap.schema import (
    AREA_HA,
    FIELD_ID,
    TIME,
    WHY_LOW_CONFIDENCE,
    WHY_RUN_FLAGGED,
    WHY_UNLIKE_TRAINING,
    FieldStatus,
    class_column,
    confidence_column,
    ood_column,
    reason_column,
    status_column,
)

REPORT_NAME: Final = "report.html"
#: Shares of fields above which the report warns.
WARN_NO_DATA_SHARE: Final = 0.2
WARN_UNCERTAIN_SHARE: Final = 0.3
#: An OOD score above this means most of a field's features lie outside the training range.
OOD_HIGH: Final = 0.5
WARN_OOD_SHARE: Final = 0.1
EXAMPLES_PER_CLASS: Final = 3

def _swatch(colour: str, label: str) -> Markup:
    """Return a colour square followed by its label."""
    return Markup(f'<span class="swatch" style="background:{_e(colour)}"></span>{_e(label)}')


def _link(target: Path, base: Path, text: str) -> str:
    rel = os.path.relpath(target, base)
    return f'<a href="{_e(Path(rel).as_posix())}">{_e(text)}</a>'


# --------------------------------------------------------------------------- sections
def _provenance(run: Mapping[str, Mapping[str, str]], run_info: Mapping[str, Any]) -> str:
    r = run.get("run", {})
    tr = run.get("time_range", {})
    rows = [("created (UTC)", r.get("created_utc", "")),
            ("regenmap", r.get("regenmap_version", __version__)),
            ("output CRS", r.get("crs", "")),
            ("fields", r.get("n_fields", "")),
            ("time range", f"{tr.get('start') or '?'} to {tr.get('end') or '?'}"),
            ("config hash", r.get("config_hash", ""))]
    for t, m in run.get("models", {}).items():
        rows.append((f"model ({t})", m))
    inputs = run.get("inputs", {})
    inputs_html = "<ul>" + "".join(f"<li><code>{_e(v)}</code></li>" for v in inputs.values()) \
        + "</ul>" if inputs else '<p class="muted">No inputs recorded.</p>'
    versions = run.get("versions", {})
    vers = ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items())
    config = r.get("config") or json.dumps(run_info.get("config", {}), default=str)
    with contextlib.suppress(ValueError):
        config = json.dumps(json.loads(config), indent=2, ensure_ascii=False)
    counts = run.get("input_counts", {})
    counts_html = table(["count", "value"], counts.items()) if counts else ""
    return ("<h2>Inputs and provenance</h2>" + table(None, rows) + "<h3>Inputs</h3>"
            + inputs_html + counts_html + f'<p class="muted">Versions: {vers}</p>'
            + f"<details><summary>Configuration</summary><pre>{_e(config)}</pre></details>")


def _status_section(frame: pd.DataFrame, target: str) -> str:
    n = max(len(frame), 1)
    vc = frame[status_column(target)].value_counts()
    rows = [(s.value, int(vc.get(s.value, 0)), f"{100 * vc.get(s.value, 0) / n:.1f} %")
            for s in FieldStatus]
    return "<h3>Fields by status</h3>" + table(["status", "fields", "share"], rows)


def _class_section(frame: pd.DataFrame, target: str, classes: Sequence[str], *,
                   chart: bool = True) -> str:
    ok = frame[status_column(target)] == FieldStatus.OK.value
    labelled = frame.loc[ok]
    area = labelled.groupby(class_column(target))[AREA_HA].sum()
    count = labelled.groupby(class_column(target)).size()
    total = float(area.sum()) or 1.0
    colours = class_colours(classes)
    rows: list[tuple[Any, ...]] = []
    for c in classes:
        a = float(area.get(c, 0.0))
        rows.append((_swatch(colours[c], class_label(c)), int(count.get(c, 0)), round(a, 2),
                     f"{100 * a / total:.1f} %"))
    other = frame.loc[~ok, AREA_HA].sum()
    rows.append((_swatch(OTHER_COLOUR, "other / uncertain"), int((~ok).sum()),
                 round(float(other), 2), "-"))
    fig = Figure(figsize=(6.5, 0.45 * len(classes) + 1.2))
    ax = fig.subplots()
    ax.barh([class_label(c) for c in classes], [float(area.get(c, 0.0)) for c in classes],
            color=[colours[c] for c in classes], edgecolor="#333333")
    ax.invert_yaxis()
    ax.set_xlabel("area of fields labelled with status ok (ha)")
    ax.set_title(f"{target}: area by class")
    return ("<h3>Class areas</h3>" + table(["class", "fields", "area (ha)", "share of labelled"],
                                          rows) + (figure_img(fig) if chart else ""))


def _interval(value: float, low: float, high: float, fmt: str) -> str:
    return f"{value:{fmt}} ({low:{fmt}} to {high:{fmt}})"


def _area_text(by_class: pd.DataFrame, c: str) -> str:
    v = by_class[["area_ha", "area_ci_low_ha", "area_ci_high_ha"]].astype(float)
    return _interval(v["area_ha"][c], v["area_ci_low_ha"][c], v["area_ci_high_ha"][c], ",.0f")


def _season_rows(adoption: pd.DataFrame | None, target: str) -> pd.DataFrame | None:
    """Rows of the latest season's whole-area estimate of ``target`` (None if none)."""
    if adoption is None or not len(adoption):
        return None
    rows = adoption[(adoption["target"] == target) & (adoption["domain"] == "all")]
    if not len(rows):
        return None
    return rows[rows["season"] == sorted(rows["season"].astype(str))[-1]]


def _headline(adoption: pd.DataFrame | None, frame: pd.DataFrame,
              targets: Mapping[str, Sequence[str]], run_info: Mapping[str, Any]) -> str:
    """Return the headline: area per class with its interval, expected accuracy, visits."""
    items = []
    estimated = False
    for t, classes in targets.items():
        st = frame[status_column(t)].astype(str)
        visit = int((st != FieldStatus.OK.value).sum())
        share = visit / max(len(frame), 1)
        rows = _season_rows(adoption, t)
        estimated |= rows is not None
        if rows is None:
            items.append(f"<li><b>{_e(t)}</b>: no error-adjusted areas (no held-out labels); "
                         f"{visit:,} fields ({share:.0%}) need a field visit.</li>")
            continue
        by = rows.set_index("class")
        first = by.iloc[0]
        shares = by["share"].astype(float)
        areas = "; ".join(
            f"{_e(class_label(c))} {_area_text(by, c)} ha = {shares[c]:.0%}"
            for c in classes if c in by.index)
        acc = _interval(first["domain_accuracy"], first["domain_accuracy_ci_low"],
                        first["domain_accuracy_ci_high"], ".2f")
        items.append(
            f"<li><b>{_e(t)}</b> (season {_e(str(first['season']))}): {areas}. Expected accuracy of "
            f"the labels given: {acc}. {visit:,} fields ({share:.0%}) are withheld and need a "
            "field visit.</li>")
    caveat = (run_info.get("adoption") or {}).get("caveat", "") if estimated else ""
    return ("<h2>Headline</h2><p>Areas per class with 95 % intervals, corrected for the "
            "model's errors measured on held-out labelled fields:</p><ul>" + "".join(items)
            + f'</ul><p class="muted">{_e(caveat)}</p>')


def _adoption_section(adoption: pd.DataFrame | None, target: str,
                      classes: Sequence[str]) -> str:
    """Error-adjusted areas beside the mapped areas, per season and group."""
    if adoption is None or not len(adoption):
        return ""
    rows = adoption[adoption["target"] == target]
    if not len(rows):
        return ""
    out = []
    for _, r in rows.iterrows():
        out.append((r["season"], r["domain"], class_label(str(r["class"])),
                    f"{r['mapped_ha']:,.1f}",
                    _interval(r["area_ha"], r["area_ci_low_ha"], r["area_ci_high_ha"], ",.1f"),
                    _interval(r["share"], r["share_ci_low"], r["share_ci_high"], ".1%"),
                    int(r["n_reference"]), r["errors_from"]))
    head = ["season", "area", "class", "mapped (ha)", "error-adjusted (ha, 95 % CI)",
            "share (95 % CI)", "labelled fields", "errors from"]
    latest = _season_rows(adoption, target)
    fig_html = ""
    if latest is not None:
        by = latest.set_index("class")
        names = [c for c in classes if c in by.index]
        fig = Figure(figsize=(6.5, 0.5 * len(names) + 1.2))
        ax = fig.subplots()
        y = np.arange(len(names))
        colours = class_colours(classes)
        mapped = by["mapped_ha"].astype(float)
        ax.barh(y + 0.2, [mapped[c] for c in names], height=0.4, color="#DDDDDD",
                edgecolor="#333333", label="mapped (sum of labels)")
        est = np.array([by.loc[c, "area_ha"] for c in names], dtype=float)
        err = np.vstack([est - [by.loc[c, "area_ci_low_ha"] for c in names],
                         np.array([by.loc[c, "area_ci_high_ha"] for c in names]) - est])
        ax.barh(y - 0.2, est, height=0.4, xerr=err, color=[colours[c] for c in names],
                edgecolor="#333333", capsize=3, label="error-adjusted, 95 % CI")
        ax.set_yticks(y, [class_label(c) for c in names])
        ax.invert_yaxis()
        ax.set_xlabel("area (ha)")
        ax.legend(fontsize=8)
        ax.set_title(f"{target}: area by class, season {latest['season'].iloc[0]}")
        fig_html = figure_img(fig)
    return ("<h3>Error-adjusted areas</h3>" + fig_html + table(head, out)
            + '<p class="muted">Mapped areas sum the labels given; error-adjusted areas correct '
            "them with the confusion measured on held-out labelled fields (Olofsson et al. "
            "2014), so fields withheld as uncertain are counted in the class their labelled "
            "neighbours in that stratum hold.</p>")


def _confidence_section(frame: pd.DataFrame, target: str, threshold: float | None) -> str:
    conf = frame[confidence_column(target)].to_numpy(dtype="float64")
    status = frame[status_column(target)].to_numpy(dtype=object)
    if not np.isfinite(conf).any():
        return '<h3>Confidence</h3><p class="muted">No field has a confidence.</p>'
    fig = Figure(figsize=(6.5, 3.0))
    ax = fig.subplots()
    bins = [i / 20 for i in range(21)]
    groups = [(FieldStatus.OK.value, "#4477AA"), (FieldStatus.UNCERTAIN.value, "#CCBB44")]
    data = [conf[(status == s) & np.isfinite(conf)] for s, _ in groups]
    ax.hist(data, bins=bins, stacked=True, color=[c for _, c in groups],
            label=[s for s, _ in groups], edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.text(threshold, ax.get_ylim()[1] * 0.95, f" threshold {threshold:g}", fontsize=8,
                va="top")
    ax.set_xlabel("confidence (max class probability)")
    ax.set_ylabel("fields")
    ax.legend(fontsize=8)
    ax.set_title(f"{target}: confidence")
    q = np.nanpercentile(conf, [10, 50, 90])
    text = (f'<p class="muted">Median confidence {q[1]:.2f} (10th-90th percentile '
            f"{q[0]:.2f}-{q[2]:.2f}); map classes {', '.join(f'{b:g}' for b in CONFIDENCE_BREAKS)}."
            "</p>")
    return "<h3>Confidence</h3>" + figure_img(fig) + text


def _series_column(obs: pd.DataFrame) -> str | None:
    if "ndvi_mean" in obs.columns:
        return "ndvi_mean"
    means = [c for c in obs.columns if c.endswith("_mean")]
    if means:
        return means[0]
    skip = {FIELD_ID, TIME}
    nums = [c for c in obs.columns if c not in skip and pd.api.types.is_float_dtype(obs[c])]
    return nums[0] if nums else None


def _examples(frame: pd.DataFrame, target: str, classes: Sequence[str]) -> dict[str, list[str]]:
    ok = frame[frame[status_column(target)] == FieldStatus.OK.value]
    out = {}
    for c in classes:
        sub = ok[ok[class_column(target)] == c]
        sub = sub.sort_values(confidence_column(target), ascending=False, kind="stable")
        out[c] = sub[FIELD_ID].astype(str).head(EXAMPLES_PER_CLASS).tolist()
    return out


def _series_section(obs: pd.DataFrame | None, examples: Mapping[str, Sequence[str]],
                    target: str, classes: Sequence[str]) -> str:
    if obs is None or obs.empty or TIME not in obs.columns:
        return ('<h3>Example time series</h3><p class="muted">No observations were given, so '
                "no time series are shown.</p>")
    col = _series_column(obs)
    if col is None:
        return '<h3>Example time series</h3><p class="muted">No numeric index column.</p>'
    colours = class_colours(classes)
    fig = Figure(figsize=(3.2 * len(classes) + 0.5, 2.8))
    axes = fig.subplots(1, len(classes), sharey=True, squeeze=False)
    ids = obs[FIELD_ID].astype(str)
    for ax, c in zip(axes[0], classes, strict=True):
        for fid in examples.get(c, []):
            s = obs.loc[ids == fid, [TIME, col]].dropna().sort_values(TIME)
            ax.plot(pd.to_datetime(s[TIME]), s[col], marker=".", linewidth=1, color=colours[c],
                    alpha=0.9, label=fid)
        ax.set_title(class_label(c), fontsize=10)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        if examples.get(c):
            ax.legend(fontsize=6, loc="best")
        else:
            ax.text(0.5, 0.5, "no field with status ok", ha="center", transform=ax.transAxes,
                    fontsize=8, color="#666")
    axes[0][0].set_ylabel(col)
    fig.suptitle(f"{target}: {col} of the most confident fields per class", fontsize=11, y=1.06)
    return "<h3>Example time series</h3>" + figure_img(fig)


def _warnings(frame: pd.DataFrame, targets: Mapping[str, Sequence[str]],
              run_info: Mapping[str, Any], evaluation: Mapping[str, Any] | None,
              run: Mapping[str, Mapping[str, str]]) -> list[str]:
    out: list[str] = []
    orphans = int(run.get("run", {}).get("predictions_without_field") or 0)
    if orphans:
        out.append(f"{orphans:,} predictions have a field_id that is not in the fields file; "
                   "they are not in the GeoPackage. Check that fields and predictions come "
                   "from the same run.")
    for source in (run_info, evaluation or {}):
        for key in ("drift", "warnings"):
            items = source.get(key)
            if isinstance(items, Mapping):
                if "warning" in items or "drifted" in items:
                    items = [items]
                else:  # {target: drift report or sentence}
                    items = [{"warning": f"{k}: {v.get('warning')}" if v.get("warning")
                              else None} if isinstance(v, Mapping) else {"warning": f"{k}: {v}"}
                             for k, v in items.items()]
            for item in items or []:
                text = item.get("warning") if isinstance(item, Mapping) else item
                if text:
                    out.append(str(text))
    n = max(len(frame), 1)
    for t in targets:
        vc = frame[status_column(t)].value_counts()
        nd = vc.get(FieldStatus.NO_DATA.value, 0) + vc.get(FieldStatus.TOO_SMALL.value, 0)
        if nd / n > WARN_NO_DATA_SHARE:
            out.append(f"{t}: {nd:,} of {len(frame):,} fields ({100 * nd / n:.0f} %) have no label "
                       "for lack of clear observations or size (no_data / too_small).")
        unc = vc.get(FieldStatus.UNCERTAIN.value, 0)
        if unc / n > WARN_UNCERTAIN_SHARE:
            out.append(f"{t}: {unc:,} fields ({100 * unc / n:.0f} %) are uncertain"
                       + _uncertain_causes(frame, t) + ".")
        err = vc.get(FieldStatus.ERROR.value, 0)
        if err:
            out.append(f"{t}: {err:,} fields have status error; see the {t}_why column.")
        if ood_column(t) in frame.columns:
            ood = frame[ood_column(t)].to_numpy(dtype="float64")
            high = int(np.sum(ood > OOD_HIGH))
            if high / n > WARN_OOD_SHARE:
                out.append(f"{t}: {high:,} fields ({100 * high / n:.0f} %) look unlike the "
                           f"training data (OOD score > {OOD_HIGH}); their labels are less "
                           "reliable than the model card states.")
    return out


#: Causes of ``uncertain`` labels: how their ``<t>_why`` starts, and the report's words.
_UNCERTAIN_CAUSES: Final = ((WHY_LOW_CONFIDENCE, "confidence below the threshold"),
                            (WHY_UNLIKE_TRAINING, "unlike the training data"),
                            (WHY_RUN_FLAGGED, "withheld with the whole run (see above)"))


def _uncertain_causes(frame: pd.DataFrame, target: str) -> str:
    """Say why the uncertain fields of ``target`` are uncertain, from their reasons."""
    col = reason_column(target)
    if col not in frame.columns:
        return ""
    why = frame.loc[frame[status_column(target)] == FieldStatus.UNCERTAIN.value, col]
    why = why.fillna("").astype(str)
    parts = [f"{n:,} {text}" for start, text in _UNCERTAIN_CAUSES
             if (n := int(why.str.startswith(start).sum()))]
    return ": " + ", ".join(parts) if parts else ""


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        rows: list[tuple[str, str]] = []
        for k, v in value.items():
            rows += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:.4g}")]
    if isinstance(value, list | tuple) and len(value) > 12:
        return [(prefix, f"[{len(value)} values]")]
    return [(prefix, str(value))]


def _metrics_table(summary: Mapping[str, Any]) -> str:
    """Table of the ``overall`` metrics with their ``ci95`` intervals, when present."""
    overall = summary.get("overall")
    if not isinstance(overall, Mapping):
        return ""
    ci = summary.get("ci95") if isinstance(summary.get("ci95"), Mapping) else {}
    rows = []
    for k, v in overall.items():
        value = f"{v:.3f}" if isinstance(v, float) else str(v)
        lo_hi = ci.get(k) if ci else None
        interval = (f"{lo_hi[0]:.3f} - {lo_hi[1]:.3f}"
                    if isinstance(lo_hi, list | tuple) and len(lo_hi) == 2 else "")
        rows.append((k, value, interval))
    notes = [str(n) for n in summary.get("notes") or []]
    worst = summary.get("worst_group")
    if isinstance(worst, Mapping) and worst.get("group") is not None:
        acc = worst.get("accuracy")
        acc_text = f"{acc:.3f}" if isinstance(acc, float) else str(acc)
        notes.append(f"weakest {worst.get('factor', 'group')}: {worst.get('group')} "
                     f"(accuracy {acc_text}, n={worst.get('n')})")
    text = "".join(f'<p class="muted">{_e(n)}</p>' for n in notes)
    return table(["metric", "value", "95 % interval"], rows) + text


def _evaluation_section(evaluation: Mapping[str, Any] | None) -> str:
    if not evaluation:
        return ('<h2>Evaluation</h2><p class="muted">No evaluation summary was given; see the '
                "model card for the model's validated accuracy.</p>")
    parts = ["<h2>Evaluation</h2>"]
    for key, value in evaluation.items():
        if key in ("drift", "warnings"):
            continue
        metrics = _metrics_table(value) if isinstance(value, Mapping) else ""
        if metrics:
            strategy = value.get("strategy")
            how = f" ({_e(strategy)} cross-validation)" if strategy else ""
            parts.append(f"<h3>{_e(key)}{how}</h3>{metrics}")
    rows = [(k, v) for k, v in _flatten(evaluation) if not k.startswith(("drift", "warnings"))]
    parts.append("<details><summary>All evaluation figures</summary>"
                 + table(["metric", "value"], rows[:500]) + "</details>")
    return "".join(parts)


def _threshold(run_info: Mapping[str, Any], run: Mapping[str, Mapping[str, str]],
               target: str) -> float | None:
    chosen = run_info.get("thresholds")
    if isinstance(chosen, Mapping) and isinstance(chosen.get(target), int | float):
        return float(chosen[target])
    config = run_info.get("config")
    if not isinstance(config, Mapping):
        try:
            config = json.loads(run.get("run", {}).get("config", "{}"))
        except ValueError:
            config = {}
    model = config.get("model", {}) if isinstance(config, Mapping) else {}
    value = model.get("confidence_threshold") if isinstance(model, Mapping) else None
    return float(value) if value is not None else None


def _read_observations(gpkg_path: Path, ids: Sequence[str]) -> pd.DataFrame | None:
    if OBSERVATIONS_TABLE not in gpkg.list_tables(gpkg_path) or not ids:
        return None
    marks = ",".join("?" * len(ids))
    obs = gpkg.read_sql(gpkg_path, f'SELECT * FROM "{OBSERVATIONS_TABLE}" WHERE '
                                   f'"{FIELD_ID}" IN ({marks})', list(ids))
    if TIME in obs.columns:
        obs[TIME] = pd.to_datetime(obs[TIME], errors="coerce")
    return obs


def write_report(out_dir: str | Path, *, gpkg_path: str | Path, run_info: Mapping[str, Any],
                 evaluation: Mapping[str, Any] | None = None,
                 model_card: str | Path | None = None,
                 observations: pd.DataFrame | None = None,
                 adoption: pd.DataFrame | None = None) -> Path:
    """Write the self-contained HTML run report ``out_dir/report.html``.

    Parameters
    ----------
    out_dir
        Output folder (created if its parent exists).
    gpkg_path
        Results GeoPackage; counts, areas and confidences are read from it.
    run_info
        The run-info given to :func:`regenmap.maps.gpkg_contract.write_results`;
        ``drift`` (a :func:`regenmap.models.drift.drift_report` dict, a list of
        them, or ``{target: report}``) and ``warnings`` (list of sentences) are
        shown as warnings.
    evaluation
        Optional evaluation summary (nested dict of metrics), shown as a table;
        its ``drift``/``warnings`` entries are shown as warnings.
    model_card
        Optional path of the model card, linked relative to ``out_dir``.
    observations
        Optional per-field time series (``field_id``, ``time``, ``ndvi_mean``...);
        read from the GeoPackage's ``observations`` table if omitted.
    adoption
        Error-adjusted class areas (:func:`regenmap.models.adoption.adoption_areas` rows);
        the headline and each target's area section show them. ``run_info["adoption"]``
        holds its caveat and notes.

    Returns
    -------
    Path
        The report file.
    """
    d = ensure_dir(out_dir)
    gp = Path(gpkg_path)
    targets = validate_results(gp)
    run = read_run(gp)
    frame = gpkg.read_layer(gp, FIELDS_LAYER, read_geometry=False)
    examples = {t: _examples(frame, t, cs) for t, cs in targets.items()}
    if observations is None:
        wanted = sorted({i for ex in examples.values() for ids in ex.values() for i in ids})
        observations = _read_observations(gp, wanted)
    elif TIME in observations.columns:
        observations = observations.assign(**{TIME: pd.to_datetime(observations[TIME])})
    warnings = _warnings(frame, targets, run_info, evaluation, run)
    name = run.get("extra", {}).get("name") or gp.stem
    parts = [f"<h1>regenmap run report: {_e(name)}</h1>",
             f'<p class="muted">Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by regenmap '
             f"{_e(__version__)} from {_link(gp, d, gp.name)} ({len(frame):,} fields, targets "
             f"{_e(', '.join(targets))}).</p>"]
    links = [_link(gp, d, "GeoPackage (open in QGIS: styled by class)")]
    if model_card is not None:
        links.append(_link(Path(model_card), d, "model card"))
    for maps_dir in (d / "maps", d):
        mp = map_paths(maps_dir, list(targets))
        if mp["map"].is_file():
            links.append(_link(mp["map"], d, "interactive map"))
            links += [_link(p, d, k.replace("_", " ")) for k, p in mp.items()
                      if k != "map" and p.is_file()]
            break
    parts.append("<p>" + " · ".join(links) + "</p>")
    parts.append(_headline(adoption, frame, targets, run_info))
    parts.append("<h2>Warnings</h2>")
    if warnings:
        parts += [f'<div class="warn">{_e(w)}</div>' for w in warnings]
    else:
        parts.append('<div class="ok">No drift or data-quality warning.</div>')
    parts.append(_provenance(run, run_info))
    for t, cs in targets.items():
        parts.append(f"<h2>Target: {_e(t)}</h2>")
        parts.append(_status_section(frame, t))
        parts.append(_class_section(frame, t, cs, chart=_season_rows(adoption, t) is None))
        parts.append(_adoption_section(adoption, t, cs))
        parts.append(_confidence_section(frame, t, _threshold(run_info, run, t)))
        parts.append(_series_section(observations, examples[t], t, cs))
    parts.append(_evaluation_section(evaluation))
    if model_card is not None:
        rel = Path(os.path.relpath(Path(model_card), d)).as_posix()
        parts.append(f"<h2>Model card</h2><p>{_link(Path(model_card), d, rel)}: "
                     "what the model was trained on, its validated accuracy per region and "
                     "field size, and its known weaknesses.</p>")
    return write_text_atomic(d / REPORT_NAME, page(f"regenmap report: {name}", parts))
