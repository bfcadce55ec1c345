"""Adoption areas with intervals: error-adjusted class areas of a map from its held-out labels.

Summing the areas of the fields a map gives each class is biased by the map's
errors (a class the model over-predicts is overstated by its commission errors).
The error-adjusted estimate of Olofsson et al. (2014) corrects the mapped areas
with the confusion between map and reference classes, here measured on the
labelled fields as the map shows them: each from the fold that held it out
(``<t>_in_training`` fields carry their out-of-fold class), so no field is judged
by the model that learnt it.

The map's strata are its classes plus ``withheld`` (fields judged ``uncertain``:
the labelled fields among them say what those fields are). Fields without a
judgement (``no_data``, ``error``, outside every scene) are outside every estimate
and counted as area not assessed. Units are fields of unequal size: totals are
calibrated to the known mapped area of each stratum (the separate ratio estimator
of :func:`regenmap.models.area.estimate_from_sample`).

Caveat stated with every result: the labelled fields stand in for a probability
sample drawn within each mapped class. They were not drawn that way; if they
differ from the other fields of their class (easier to reach, volunteered...) the
intervals are too narrow. ``regenmap sample design`` draws a sample that makes the
estimate design-based.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from regenmap.errors import ModelError
from regenmap.models.area import AreaEstimates, estimate_from_sample
from regenmap.schema import FIELD_ID, SEASON, FieldStatus, status_column

#: Map stratum of fields the model judged but would not label.
WITHHELD = "withheld"

#: Columns of :func:`adoption_areas`' table, in order.
COLUMNS: tuple[str, ...] = (
    "target", "season", "domain", "class", "mapped_ha", "area_ha", "area_se_ha",
    "area_ci_low_ha", "area_ci_high_ha", "share", "share_ci_low", "share_ci_high",
    "users_accuracy", "producers_accuracy", "n_reference", "domain_accuracy",
    "domain_accuracy_ci_low", "domain_accuracy_ci_high", "assessed_ha", "withheld_ha",
    "not_assessed_ha", "n_fields", "n_visit", "errors_from",
)

CAVEAT = ("The labelled fields stand in for a random sample within each mapped class; if "
          "they were chosen differently from the other fields (easier to reach, volunteered) "
          "the intervals are too narrow. A design-based sample (regenmap sample design) "
          "removes this assumption.")


@dataclass(frozen=True)
class AdoptionOptions:
    """How adoption areas are estimated.

    Attributes
    ----------
    min_reference
        Labelled fields a domain (one group of one season) needs to be estimated from
        its own errors; fewer, and the errors of the whole season are used for it
        (said in ``errors_from``).
    """

    min_reference: int = 20


def adoption_areas(predictions: pd.DataFrame, labels: pd.Series, area_ha: pd.Series, *,
                   target: str, classes: Sequence[str], groups: pd.Series | None = None,
                   group_name: str = "group",
                   options: AdoptionOptions = AdoptionOptions()) -> tuple[pd.DataFrame, list[str]]:
    """Estimate each class's area and share per season and group, with 95 % intervals.

    Parameters
    ----------
    predictions
        One row per field (and season): ``field_id``, optionally ``season``, ``<target>``
        (class or null) and ``<target>_status``, as written by the predict stage.
    labels
        Reference class of the labelled samples, indexed by ``field_id`` or by
        (``field_id``, ``season``); null where unknown.
    area_ha
        Field area in hectares, float, indexed by ``field_id``.
    target, classes
        Target name and its classes (the reference classes).
    groups
        Group of each field (region...), indexed by ``field_id``; None for the season totals only.
    group_name
        Name of the group factor, used in ``domain`` (``region=R1``).
    options
        See :class:`AdoptionOptions`.

    Returns
    -------
    table, notes
        One row per (season, domain, class), columns :data:`COLUMNS`: areas in hectares,
        shares of the assessed area (0-1), accuracies (0-1); ``n_visit`` counts the
        domain's fields withheld (``uncertain`` or without data: they need a field
        visit). ``notes`` are the caveats met (strata without labelled fields...).

    Raises
    ------
    ModelError
        If a required column is missing or no season has labelled fields to learn the
        errors from.
    """
    status_col = status_column(target)
    need = [c for c in (FIELD_ID, target, status_col) if c not in predictions.columns]
    if need:
        raise ModelError(f"adoption areas: the predictions lack column(s) {need}")
    frame = _units(predictions, labels, area_ha, target, status_col, groups)
    rows: list[dict[str, object]] = []
    notes: list[str] = []
    for season, part in frame.groupby("season", sort=True, dropna=False):
        known = part["ref"].isin(list(classes))
        if (part["ref"].notna() & ~known).any():
            other = sorted(set(part.loc[part["ref"].notna() & ~known, "ref"].astype(str)))
            notes.append(f"season {season}: labels of classes the model does not know "
                         f"({', '.join(other[:5])}) are left out of the error matrix")
            part = part.assign(ref=part["ref"].where(known, None))
        pooled = part[part["ref"].notna() & part["judged"]]
        if len(pooled) < 2:
            notes.append(f"season {season}: fewer than two labelled fields with a judgement; "
                         "no adoption estimate")
            continue
        domains: list[tuple[str, pd.DataFrame]] = [("all", part)]
        if groups is not None:
            domains += [(f"{group_name}={g!s}", p)
                        for g, p in part.groupby("group", sort=True) if g is not None]
        for domain, sub in domains:
            own = sub[sub["ref"].notna() & sub["judged"]]
            use, source = ((own, "this domain") if len(own) >= options.min_reference
                           or domain == "all" else (pooled, "the whole season"))
            use, borrowed = _fill_strata(sub, use, pooled)
            if borrowed:
                source += f" (of the whole season for {', '.join(borrowed)})"
            est, dropped = _estimate(sub, use, classes)
            for text in dropped:
                notes.append(f"season {season}, {domain}: {text}")
            if est is None:
                continue
            rows += _rows(est, sub, classes, target=target, season=str(season),
                          domain=domain, source=source, n_ref=len(own))
    if not rows and not notes:
        raise ModelError(f"adoption areas of {target}: no season has labelled fields")
    return pd.DataFrame(rows, columns=list(COLUMNS)), notes


def _units(predictions: pd.DataFrame, labels: pd.Series, area_ha: pd.Series, target: str,
           status_col: str, groups: pd.Series | None) -> pd.DataFrame:
    """Return one row per map unit: season, group, map stratum, reference class, area."""
    p = predictions
    ids = p[FIELD_ID].astype(str)
    seasons = (p[SEASON].astype(object).where(p[SEASON].notna(), None) if SEASON in p.columns
               else pd.Series([None] * len(p), index=p.index, dtype=object))
    status = p[status_col].astype(str).to_numpy()
    ok = status == FieldStatus.OK.value
    judged = ok | (status == FieldStatus.UNCERTAIN.value)
    strata = np.where(ok, p[target].astype(object).to_numpy(), WITHHELD)
    if isinstance(labels.index, pd.MultiIndex):
        key = pd.MultiIndex.from_arrays([ids, seasons.astype(str)])
        flat = labels.copy()
        flat.index = pd.MultiIndex.from_arrays(
            [flat.index.get_level_values(0).astype(str), flat.index.get_level_values(1).astype(str)])
        ref = flat.reindex(key).to_numpy()
    else:
        flat = labels.copy()
        flat.index = flat.index.astype(str)
        ref = flat.reindex(ids).to_numpy()
    areas = pd.to_numeric(area_ha.rename(lambda i: str(i)).reindex(ids), errors="coerce")
    if areas.isna().any():
        missing = ids[areas.isna().to_numpy()].head(5).tolist()
        raise ModelError(f"adoption areas: no area for fields {missing}")
    group = (groups.rename(lambda i: str(i)).reindex(ids).astype(object).to_numpy()
             if groups is not None else np.full(len(p), None, dtype=object))
    ref_obj = pd.Series(ref, dtype=object)
    return pd.DataFrame({"season": seasons.fillna("").astype(str).to_numpy(), "group": group,
                         "stratum": strata, "judged": judged,
                         "ref": ref_obj.where(ref_obj.notna(), None).to_numpy(),
                         "area": areas.to_numpy(float)})


def _fill_strata(domain: pd.DataFrame, reference: pd.DataFrame, pooled: pd.DataFrame
                 ) -> tuple[pd.DataFrame, list[str]]:
    """Give each mapped stratum with fewer than two reference units the season's units of it."""
    have = reference.groupby("stratum").size()
    short = [str(s) for s in pd.unique(domain.loc[domain["judged"], "stratum"])
             if have.get(s, 0) < 2 and (pooled["stratum"] == s).sum() >= 2]
    if not short or reference is pooled:
        return reference, []
    keep = reference[~reference["stratum"].isin(short)]
    return pd.concat([keep, pooled[pooled["stratum"].isin(short)]]), sorted(short)


def _estimate(domain: pd.DataFrame, reference: pd.DataFrame, classes: Sequence[str]
              ) -> tuple[AreaEstimates | None, list[str]]:
    """Estimate a domain's areas from ``reference`` (its own labelled units or the season's)."""
    judged = domain[domain["judged"]]
    mapped = judged.groupby("stratum")["area"].sum()
    counts = judged.groupby("stratum").size()
    have = reference.groupby("stratum").size()
    usable = [s for s in mapped.index if have.get(s, 0) >= 2 and mapped[s] > 0]
    dropped = [f"{mapped[s]:.1f} ha mapped as {s!r} have fewer than two labelled fields there: "
               "left out of the estimate" for s in mapped.index if s not in usable]
    if not usable:
        return None, dropped
    sample = reference[reference["stratum"].isin(usable)]
    sample = sample.assign(map=sample["stratum"])
    rows = [c for c in classes if c in usable] + ([WITHHELD] if WITHHELD in usable else [])
    rows += [s for s in usable if s not in rows]
    # A reference sample larger than its stratum can happen with pooled errors: the
    # pooled units stand for the domain's fields, so the stratum's size is at least theirs.
    big_n = {s: float(max(counts[s], have.get(s, 0))) for s in usable}
    est = estimate_from_sample(sample[["stratum", "map", "ref", "area"]], strata_N=big_n,
                               stratum_area={s: float(mapped[s]) for s in usable},
                               map_classes=rows, ref_classes=list(classes), area_unit="ha",
                               finite_population=False)
    return est, dropped


def _rows(est: AreaEstimates, units: pd.DataFrame, classes: Sequence[str], *, target: str,
          season: str, domain: str, source: str, n_ref: int) -> list[dict[str, object]]:
    """Return the table rows of one domain (one per class)."""
    judged = units["judged"].to_numpy()
    withheld_units = judged & (units["stratum"] == WITHHELD).to_numpy()
    assessed = float(units.loc[judged, "area"].sum())
    withheld = float(units.loc[withheld_units, "area"].sum())
    not_assessed = float(units.loc[~judged, "area"].sum())
    n_visit = int((~judged | withheld_units).sum())
    out = []
    for c in classes:
        area = est.area.get(c)
        share = est.area_share.get(c)
        users = est.users.get(c)
        producers = est.producers.get(c)
        out.append({
            "target": target, "season": season, "domain": domain, "class": c,
            "mapped_ha": float(units.loc[units["stratum"] == c, "area"].sum()),
            "area_ha": area.value if area else np.nan,
            "area_se_ha": area.se if area else np.nan,
            "area_ci_low_ha": max(0.0, area.ci_low) if area else np.nan,
            "area_ci_high_ha": area.ci_high if area else np.nan,
            "share": share.value if share else np.nan,
            "share_ci_low": max(0.0, share.ci_low) if share else np.nan,
            "share_ci_high": min(1.0, share.ci_high) if share else np.nan,
            "users_accuracy": users.value if users else np.nan,
            "producers_accuracy": producers.value if producers else np.nan,
            "n_reference": n_ref, "domain_accuracy": est.overall.value,
            "domain_accuracy_ci_low": max(0.0, est.overall.ci_low),
            "domain_accuracy_ci_high": min(1.0, est.overall.ci_high),
            "assessed_ha": assessed, "withheld_ha": withheld, "not_assessed_ha": not_assessed,
            "n_fields": len(units), "n_visit": n_visit,
            "errors_from": f"held-out labels of {source}",
        })
    return out
