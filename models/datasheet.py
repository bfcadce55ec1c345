"""Datasheets for training sets (Gebru et al. 2021): the numbers measured, the story told.

A datasheet has two kinds of content. What can be counted is counted here: samples,
fields and seasons, classes per target and per season, group and field-size class,
missing labels, the scene dates the features came from, the label file's SHA-256,
the samples training left out and why, and columns that may identify people.
What only the people who made the labels know (why, how they were collected and
defined, who may use them, who maintains them) comes from the job's
``model.labels.datasheet`` block; a question left unanswered shows as a visible gap.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from regenmap.io import json_text, write_text_atomic
from regenmap.models.document import Block, render_html, render_markdown
from regenmap.schema import AREA_HA, FIELD_ID, SEASON

#: The questions a datasheet answers in words: key -> (heading, what to write).
QUESTIONS: dict[str, tuple[str, str]] = {
    "motivation": ("Motivation", "Why the labels were made, by whom, and who paid for it."),
    "composition": ("Composition", "Which farms, regions and years the fields stand for; "
                    "whether they are all fields or a sample, and how it was drawn."),
    "collection": ("Collection process", "How each label was obtained (field visit, farmer "
                   "declaration, photo-interpretation), by whom, when, with what consent."),
    "labelling": ("Labelling and cleaning", "The definitions that separate the classes (e.g. "
                  "residue cover thresholds) and how labels were checked or corrected."),
    "uses": ("Uses", "What the labels have been used for, and uses to avoid."),
    "distribution": ("Distribution", "Who may receive the labels, under which licence and "
                     "data-protection terms."),
    "maintenance": ("Maintenance", "Who maintains them, how to report an error, whether they "
                    "will be updated."),
}

#: Column names that may hold personal data.
_PERSONAL = re.compile(r"(owner|farmer|holder|person|name|email|e_mail|phone|tel|address|"
                       r"contact|surname|iban|tax)", flags=re.IGNORECASE)

#: Field-size classes of the datasheet (hectares), as in the evaluation.
SIZE_BINS: tuple[tuple[float, float, str], ...] = (
    (0.0, 2.0, "<2 ha"), (2.0, 10.0, "2-10 ha"), (10.0, 50.0, "10-50 ha"),
    (50.0, float("inf"), ">50 ha"))


@dataclass(frozen=True)
class DatasheetText:
    """The answers only the label makers can give (``model.labels.datasheet``).

    Attributes
    ----------
    motivation, composition, collection, labelling, uses, distribution, maintenance
        Free text answering :data:`QUESTIONS`; None when not given.
    """

    motivation: str | None = None
    composition: str | None = None
    collection: str | None = None
    labelling: str | None = None
    uses: str | None = None
    distribution: str | None = None
    maintenance: str | None = None

    def missing(self) -> list[str]:
        """Return the keys of the questions left unanswered."""
        return [k for k, v in asdict(self).items() if not (v and str(v).strip())]


def sha256_of(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def size_class(area_ha: pd.Series) -> pd.Series:
    """Return each field's size class (:data:`SIZE_BINS`), ``unknown`` without an area."""
    a = pd.to_numeric(area_ha, errors="coerce")
    out = pd.Series("unknown", index=a.index, dtype=object)
    for lo, hi, name in SIZE_BINS:
        out[(a >= lo) & (a < hi)] = name
    return out


def datasheet_numbers(samples: pd.DataFrame, *, targets: Sequence[str], label_file: str | Path,
                      label_file_name: str, group_name: str | None = None,
                      scene_dates: tuple[str, str] | None = None,
                      training: Mapping[str, Mapping[str, Any]] | None = None,
                      columns: Sequence[str] = ()) -> dict[str, Any]:
    """Count what a training set's datasheet reports.

    Parameters
    ----------
    samples
        One row per label row (a field in a season): ``field_id``, optionally ``season``,
        one column per target (class or null), optionally ``group`` and ``area_ha``
        (hectares).
    targets
        The job's targets.
    label_file
        The label file (read for its SHA-256 and size).
    label_file_name
        How the datasheet names it (a path relative to the output folder).
    group_name
        Name of the ``group`` column's factor (region...).
    scene_dates
        First and last observation dates (ISO) of the features.
    training
        Per target, the model's training summary (samples used and left out).
    columns
        Every column of the label file (checked for personal data).

    Returns
    -------
    dict
        JSON-able numbers: ``label_file`` (name, sha256, bytes, rows), ``n_samples``,
        ``n_fields``, ``seasons`` (samples per season), ``area_ha`` (total, median
        field), ``size_classes``, ``targets`` (per target: class counts, missing share,
        crosstabs by season, group and size class, used/left out), ``scene_dates``,
        ``personal_columns``.
    """
    path = Path(label_file)
    s = samples.reset_index(drop=True)
    per_field = s.drop_duplicates(FIELD_ID)
    area = (pd.to_numeric(per_field[AREA_HA], errors="coerce") if AREA_HA in s.columns
            else pd.Series(np.nan, index=per_field.index))
    sizes = size_class(area.reindex(per_field.index))
    s_size = s[FIELD_ID].map(dict(zip(per_field[FIELD_ID], sizes, strict=True)))
    known_area = bool(area.notna().any())
    out: dict[str, Any] = {
        "label_file": {"name": label_file_name, "sha256": sha256_of(path),
                       "bytes": path.stat().st_size, "rows": len(s)},
        "n_samples": len(s), "n_fields": int(per_field[FIELD_ID].nunique()),
        "seasons": ({str(k): int(v) for k, v in s[SEASON].value_counts().sort_index().items()}
                    if SEASON in s.columns else {}),
        "area_ha": {"total": float(area.sum()) if known_area else None,
                    "median_field": float(np.nanmedian(area.to_numpy(float))) if known_area
                    else None},
        "size_classes": {str(k): int(v) for k, v in sizes.value_counts().items()},
        "scene_dates": list(scene_dates) if scene_dates else None,
        "group_name": group_name,
        "personal_columns": [c for c in columns if _PERSONAL.search(str(c))],
        "targets": {},
    }
    for t in targets:
        if t not in s.columns:
            out["targets"][t] = {"present": False}
            continue
        y = s[t].astype(object).where(s[t].notna(), None)
        known = y.notna()
        entry: dict[str, Any] = {
            "present": True,
            "class_counts": {str(k): int(v) for k, v in y[known].value_counts().items()},
            "missing_share": float(1 - known.mean()) if len(y) else None,
            "by_size_class": _crosstab(s_size[known], y[known]),
        }
        if SEASON in s.columns:
            entry["by_season"] = _crosstab(s.loc[known, SEASON].astype(str), y[known])
        if "group" in s.columns:
            entry["by_group"] = _crosstab(s.loc[known, "group"].astype(str), y[known])
        tr = (training or {}).get(t)
        if tr:
            entry["used_for_training"] = int(tr.get("n_labelled", 0))
            entry["left_out"] = {str(k): int(v) for k, v in
                                 (tr.get("labelled_withheld") or {}).items()}
        out["targets"][t] = entry
    return out


def _crosstab(rows: pd.Series, classes: pd.Series) -> dict[str, dict[str, int]]:
    tab = pd.crosstab(rows.to_numpy(), classes.to_numpy())
    return {str(r): {str(c): int(tab.loc[r, c]) for c in tab.columns} for r in tab.index}


def datasheet_blocks(numbers: Mapping[str, Any], text: DatasheetText, *, name: str
                     ) -> list[Block]:
    """Assemble the datasheet: measured numbers, the label makers' answers, the gaps.

    Parameters
    ----------
    numbers
        From :func:`datasheet_numbers`.
    text
        The answers given in ``model.labels.datasheet``.
    name
        The job's name (the title).
    """
    lf = numbers["label_file"]
    missing = text.missing()
    blocks = [Block("h1", f"Datasheet: training labels of {name}")]
    if missing:
        blocks.append(Block("p", "**Incomplete**: the label makers have not answered "
                                 + ", ".join(QUESTIONS[k][0].lower() for k in missing)
                                 + " (give them in `model.labels.datasheet`). Until they do, "
                                 "the labels' fitness for a use cannot be judged from here."))
    blocks.append(Block("h2", "At a glance"))
    seasons = numbers["seasons"]
    area = numbers["area_ha"]
    glance = [
        f"Label file `{lf['name']}`: {lf['rows']} rows, {lf['bytes']:,} bytes, SHA-256 "
        f"`{lf['sha256']}`.",
        f"{numbers['n_samples']} labelled samples of {numbers['n_fields']} fields"
        + (f" in {len(seasons)} season(s): " + ", ".join(f"{k} ({v})" for k, v in seasons.items())
           if seasons else "") + ".",
    ]
    if area["total"] is not None:
        glance.append(f"Labelled area {area['total']:,.1f} ha; median field "
                      f"{area['median_field']:.2f} ha; fields per size class: "
                      + ", ".join(f"{k} {v}" for k, v in numbers["size_classes"].items()) + ".")
    if numbers.get("scene_dates"):
        first, last = numbers["scene_dates"]
        glance.append(f"Scenes observed from {first} to {last}.")
    blocks.append(Block("ul", glance))
    for key, (heading, question) in QUESTIONS.items():
        blocks.append(Block("h2", heading))
        answer = getattr(text, key)
        blocks.append(Block("p", str(answer).strip() if answer and str(answer).strip() else
                            f"_Not given._ {question} (`model.labels.datasheet.{key}`)"))
        if key == "composition":
            blocks += _composition(numbers)
    blocks += _sensitive(numbers)
    return blocks


def _composition(numbers: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [Block("h3", "Measured composition")]
    for t, e in numbers["targets"].items():
        if not e.get("present"):
            out.append(Block("p", f"No column `{t}` in the labels."))
            continue
        classes = list(e["class_counts"])
        line = (f"`{t}`: " + ", ".join(f"`{c}` {n}" for c, n in e["class_counts"].items())
                + f"; missing for {100 * (e['missing_share'] or 0):.1f} % of the rows.")
        if "used_for_training" in e:
            left = sum(e.get("left_out", {}).values())
            line += (f" {e['used_for_training']} used for training, {left} left out because the "
                     "map would withhold them"
                     + (": " + "; ".join(f"{n} {r}" for r, n in list(e["left_out"].items())[:3])
                        if left else "") + ".")
        out.append(Block("p", line))
        for key, title in (("by_season", "season"), ("by_group", numbers.get("group_name")
                                                     or "group"),
                           ("by_size_class", "field size")):
            tab = e.get(key)
            if tab:
                rows = list(tab.items())[:30]
                out.append(Block("table", [[str(title), *classes],
                                           *[[r, *[str(v.get(c, 0)) for c in classes]]
                                             for r, v in rows]]))
                if len(tab) > 30:
                    out.append(Block("p", f"... and {len(tab) - 30} more (see datasheet.json)."))
    return out


def _sensitive(numbers: Mapping[str, Any]) -> list[Block]:
    personal = numbers.get("personal_columns") or []
    lines = [
        "Field polygons (or field ids that a parcel register links to polygons) identify a "
        "farm and so, for most farms, a person: treat the labels and every output keyed by "
        "field as personal data under the data-protection law that applies (e.g. the GDPR).",
        "Labels about a farmer's practice bear on payments and compliance: share them only "
        "with those entitled to that decision, and never publish them with ids or geometry.",
    ]
    if personal:
        lines.append("Columns whose names suggest personal data are in the label file: "
                     + ", ".join(f"`{c}`" for c in personal) + ". regenmap does not use them "
                     "as features; remove them from copies that do not need them.")
    else:
        lines.append("No column of the label file is named like personal data (owner, name, "
                     "contact...); ids and geometry remain identifying.")
    return [Block("h2", "Sensitive data"), Block("ul", lines)]


def write_datasheet(directory: str | Path, numbers: Mapping[str, Any], text: DatasheetText, *,
                    name: str) -> dict[str, Path]:
    """Write ``datasheet.md``, ``datasheet.html`` and ``datasheet.json`` into ``directory``.

    Returns
    -------
    dict
        ``markdown``, ``html`` and ``json`` -> path.
    """
    d = Path(directory)
    blocks = datasheet_blocks(numbers, text, name=name)
    paths = {"markdown": d / "datasheet.md", "html": d / "datasheet.html",
             "json": d / "datasheet.json"}
    write_text_atomic(paths["markdown"], render_markdown(blocks, base=d))
    write_text_atomic(paths["html"], render_html(blocks, title=f"Datasheet: {name}"))
    write_text_atomic(paths["json"], json_text({"schema": "regenmap.datasheet/1",
                                                "numbers": dict(numbers), "text": asdict(text),
                                                "missing": text.missing()}))
    return paths
