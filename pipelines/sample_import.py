"""``regenmap sample import``: read the labels a field team collected, check them, keep them.

The returned form (the sample's CSV or GeoPackage, filled) is checked before anything
is written: every row must name a field of the sample (unknown ids and fields outside
the sample are refused, as are duplicate rows), every class must be one of its
target's classes, and a field already imported with other labels is refused unless
``replace``. Rows whose outcome is not ``labelled`` (no access, refused, not found) or
that carry no label are not imported but counted: they are the sample's
non-response, which ``regenmap assess`` reports.

The labels are appended to ``out_dir/sampling/labels.parquet`` with their provenance
(who: ``observer``; when: ``visit_date``; how: ``method``; the sample, the file and
the time of import). Training uses them when ``model.labels.path`` points at that
file. When it is created and ``model.labels.path`` names a labels file, that file's
labelled rows are copied in first (provenance ``configured labels``), so the table
holds every label of the run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from regenmap import __version__
from regenmap.errors import InputError
from regenmap.io import read_json, write_parquet_atomic
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.layout import RunLayout, read_predictions
from regenmap.pipelines.sampling import unit_keys
from regenmap.schema import FIELD_ID, SEASON

if TYPE_CHECKING:
    from regenmap.pipelines.config import RunConfig

#: Provenance columns of the collected labels table.
PROVENANCE = ("observer", "visit_date", "method", "notes", "sample", "purpose", "source",
              "imported_utc", "regenmap_version")
LABELLED = "labelled"


def _ids(values: pd.Series, n: int = 5) -> list[str]:
    return [str(v) for v in values.head(n).tolist()]


def _find_sample(layout: RunLayout, keys: set[str], path: Path) -> str:
    names = sorted(p.parent.name for p in layout.sampling_dir.glob("*/sample.parquet"))
    hits = [n for n in names
            if keys <= set(pd.read_parquet(layout.sample_table(n), columns=["key"])["key"])]
    if len(hits) == 1:
        return hits[0]
    raise InputError("cannot tell which sample these labels belong to "
                     f"({'none' if not hits else ', '.join(hits)} of the samples "
                     f"{names} holds all their fields); name it with --sample", path=path)


def _check_classes(rows: pd.DataFrame, classes: dict[str, list[str]], path: Path) -> None:
    for t, allowed in classes.items():
        if t not in rows.columns:
            continue
        vals = rows[t].dropna().astype(str).str.strip()
        bad = vals[~vals.isin(allowed)]
        if len(bad):
            which = rows.loc[bad.index, FIELD_ID]
            raise InputError(f"column {t!r} holds unknown class(es) {sorted(set(bad))[:5]} "
                             f"(fields {_ids(which)}); allowed: {allowed}. Correct them and "
                             "import again", path=path)


def _configured(cfg: RunConfig, targets: list[str]) -> pd.DataFrame | None:
    if cfg.model.labels.path is None:
        return None
    layout = RunLayout.of(cfg)
    if Path(cfg.model.labels.path).resolve() == layout.collected_labels.resolve():
        return None
    table = inputs.labels(cfg).table
    have = [t for t in targets if t in table.columns]
    known = table[have].notna().any(axis=1) if have else pd.Series(False, index=table.index)
    rows = table.loc[known, have].reset_index()
    if SEASON not in rows.columns:
        # Labels without seasons hold for the job's one mapped season; the collected
        # table names it so that its rows and the visits' rows share one key.
        mapped = read_predictions(layout)[SEASON].dropna().unique()
        if len(mapped) != 1:
            raise InputError(f"the configured labels ({cfg.model.labels.path}) say nothing of "
                             f"seasons but the map has {len(mapped)}; add a season column to "
                             "them (model.labels.season_column)", path=cfg.model.labels.path)
        rows[SEASON] = str(mapped[0])
    rows["method"] = "configured labels"
    rows["source"] = str(cfg.model.labels.path)
    return rows


def import_labels(config: RunConfig | str | Path, path: str | Path, *,
                  sample: str | None = None, observer: str | None = None,
                  method: str | None = None, visit_date: str | None = None,
                  replace: bool = False) -> dict[str, Any]:
    """Check a returned form and append its labels to the run's collected labels.

    Parameters
    ----------
    config
        Run configuration or its YAML path.
    path
        The filled CSV or GeoPackage.
    sample
        Name of the sample the form belongs to (found from the field ids if omitted).
    observer, method, visit_date
        Provenance for rows that do not give it (``visit_date`` as ``YYYY-MM-DD``;
        today if neither the row nor this gives one).
    replace
        Replace labels of fields imported before (otherwise a different label is refused).

    Returns
    -------
    dict
        ``labels`` (path of the table), ``sample``, ``imported`` (rows), ``not_labelled``
        (rows without a label or with another outcome, by outcome), ``total`` (rows of
        the table).

    Raises
    ------
    InputError
        Unknown or duplicate field ids, fields outside the sample, unknown classes,
        conflicts with labels imported before.
    """
    from regenmap.maps.sample_gpkg import FORM_COLUMNS, METHODS, OUTCOME, read_collected

    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    src = Path(path)
    rows = read_collected(src)
    if FIELD_ID not in rows.columns:
        raise InputError(f"the file has no {FIELD_ID!r} column (columns: {list(rows.columns)[:12]}); "
                         "return the sample's form with its field_id column unchanged", path=src)
    rows = rows.dropna(subset=[FIELD_ID]).reset_index(drop=True)
    rows[FIELD_ID] = rows[FIELD_ID].astype(str).str.strip()
    rows["key"] = unit_keys(rows)
    dup = rows["key"].duplicated(keep=False)
    if dup.any():
        raise InputError(f"fields appear more than once: {_ids(rows.loc[dup, 'key'].drop_duplicates())}; "
                         "keep one row per field", path=src)
    fields = inputs.fields(cfg)
    unknown = ~rows[FIELD_ID].isin(fields[FIELD_ID].astype(str))
    if unknown.any():
        raise InputError(f"unknown field ids {_ids(rows.loc[unknown, FIELD_ID])}: not in the "
                         f"fields file {inputs.fields_path(cfg)}; check for typing errors", path=src)
    named = sorted(set(rows["sample"].dropna().astype(str))) if "sample" in rows.columns else []
    if sample is None and len(named) > 1:
        raise InputError(f"the file mixes samples {named}; import each sample's form on its own",
                         path=src)
    name = sample or (named[0] if named else _find_sample(layout, set(rows["key"]), src))
    if not layout.sample_table(name).is_file():
        raise InputError(f"there is no sample {name!r}; draw it first with `regenmap sample "
                         "design` or `regenmap sample next`", path=layout.sample_dir(name))
    info = read_json(layout.sample_info(name), what="sample description")
    drawn = set(pd.read_parquet(layout.sample_table(name), columns=["key"])["key"])
    outside = ~rows["key"].isin(drawn)
    if outside.any():
        raise InputError(f"fields {_ids(rows.loc[outside, 'key'])} are not in sample {name!r} "
                         f"({len(drawn)} fields): labels of other fields would bias its "
                         "estimates. Import them with their own sample, or remove them", path=src)
    classes = {t: list(c) for t, c in info["targets"].items()}
    targets = [t for t in classes if t in rows.columns]
    if not targets:
        raise InputError(f"the file has no label column; expected one of {list(classes)}",
                         path=src)
    for t in targets:
        rows[t] = rows[t].astype(object).where(rows[t].notna(), None)
        rows[t] = rows[t].map(lambda v: v.strip() if isinstance(v, str) else v)
    _check_classes(rows, classes, src)
    outcome = (rows[OUTCOME].fillna("") if OUTCOME in rows.columns
               else pd.Series("", index=rows.index)).astype(str).str.strip()
    has_label = rows[targets].notna().any(axis=1)
    ok = has_label & outcome.isin(["", LABELLED])
    skipped = outcome.where(outcome != "", "no label")[~ok].value_counts().to_dict()
    if "method" in rows.columns:
        bad = rows["method"].dropna()
        bad = bad[~bad.isin(METHODS)]
        if len(bad):
            raise InputError(f"column 'method' holds {sorted(set(bad))[:3]}; allowed: "
                             f"{list(METHODS)}", path=src)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    new = rows.loc[ok, ["key", FIELD_ID, *([SEASON] if SEASON in rows.columns else []),
                        *targets]].copy()
    for col in FORM_COLUMNS:
        if col == OUTCOME:
            continue
        new[col] = rows.loc[ok, col] if col in rows.columns else None
    new["observer"] = new["observer"].fillna(observer) if observer else new["observer"]
    new["method"] = new["method"].fillna(method) if method else new["method"]
    new["visit_date"] = new["visit_date"].fillna(visit_date or date.today().isoformat())
    new["sample"] = name
    new["purpose"] = "accuracy" if info.get("kind") == "design" else "training"
    new["source"] = str(src)
    new["imported_utc"] = now
    new["regenmap_version"] = __version__
    table = _merge(layout, cfg, new, list(classes), replace=replace, src=src)
    write_parquet_atomic(table.drop(columns="key"), layout.collected_labels,
                         meta={"schema": "regenmap.labels/1", "updated_utc": now})
    return {"labels": layout.collected_labels, "sample": name, "imported": int(ok.sum()),
            "not_labelled": {str(k): int(v) for k, v in skipped.items()}, "total": len(table)}


def _merge(layout: RunLayout, cfg: RunConfig, new: pd.DataFrame, targets: list[str], *,
           replace: bool, src: Path) -> pd.DataFrame:
    if layout.collected_labels.is_file():
        old = pd.read_parquet(layout.collected_labels)
    else:
        seeded = _configured(cfg, targets)
        old = pd.DataFrame(columns=[FIELD_ID]) if seeded is None else seeded
        old["sample"] = None
        old["imported_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    old = old.astype(object)
    old[FIELD_ID] = old[FIELD_ID].astype(str)
    old["key"] = unit_keys(old) if len(old) else pd.Series(dtype=object)
    for col in new.columns:
        if col not in old.columns:
            old[col] = None
    both = new["key"].isin(old["key"])
    if both.any() and not replace:
        prev = old.set_index("key").loc[new.loc[both, "key"]]
        cur = new.loc[both].set_index("key")
        common = [t for t in targets if t in cur.columns and t in prev.columns]
        a = cur[common].astype(object)
        b = prev[common].astype(object)
        clash = (a.notna() & b.notna() & (a.astype(str) != b.astype(str))).any(axis=1)
        differ = clash.index[clash.to_numpy()].tolist()
        if differ:
            raise InputError(f"fields {differ[:5]} were imported before with other labels; "
                             "check them, then import with --replace to keep the new ones",
                             path=src)
    keep = old.loc[~old["key"].isin(new["key"])]
    return pd.concat([keep, new.astype(object)], ignore_index=True)


__all__ = ["PROVENANCE", "import_labels"]
