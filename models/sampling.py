"""A reference sample for accuracy and area: strata, sample sizes and a seeded draw.

The units are fields (or field x season). Strata are the mapped class of one
target, ``withheld`` for fields the map gives no class, optionally crossed with other
factors (region, season, field-size class). The sample size is the smallest that
gives every class-area proportion the target standard error under the chosen
allocation (Cochran's stratified formula, as Olofsson et al. 2014 use it, with the
unit values ``area x indicator``); fields are then drawn by simple random sampling
without replacement within strata, reproducibly from a seed, among the eligible
fields only (exclusions), with an optional cap on fields per administrative unit.

The draw is described by each field's stratum, the stratum's eligible count
``N_h`` and its inclusion probability (``n_h / N_h``, or its Monte Carlo estimate
when the cap changes it): what :func:`regenmap.models.area.estimate_from_sample` needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from regenmap.errors import ModelError
from regenmap.models.area import ALLOCATIONS, allocate, cochran_sample_size

#: Map class of fields the map gives no class (status not ok): a stratum of its own.
WITHHELD = "withheld"
#: Joins the parts of a stratum name, e.g. ``no_till | R2``.
STRATUM_SEP = " | "
#: Fewest units per stratum: a stratum variance needs two.
MIN_UNITS = 2
#: Repeated draws estimating inclusion probabilities when a cap per unit binds.
CAP_DRAWS = 400


@dataclass(frozen=True)
class DesignOptions:
    """How a reference sample is sized and drawn.

    Attributes
    ----------
    target_se
        Standard error to reach for the estimated area share of every class
        (0.02: +/- about 4 points at 95 %).
    n
        A fixed total sample size instead (the target is then reported, not imposed).
    allocation
        ``neyman`` (least variance for the expected spread of each stratum),
        ``proportional`` (to the number of fields: every field the same inclusion
        probability), ``equal``, or ``olofsson`` (in proportion to the strata's
        mapped area, strata below ``min_per_stratum`` raised to it: the compromise of
        Olofsson et al. 2014, sect. 5.1.2, who suggest 50-100 for rare classes).
    min_per_stratum
        Fewest fields per stratum, for every rule (at least 2, and no more than the
        stratum holds).
    expected_accuracy
        The accuracy the map is expected to have, for planning (user's accuracy of
        every class); None uses the model's own class probabilities of each field.
    max_per_unit
        At most this many fields in one administrative unit (None: no cap).
    seed
        Seed of the draw: same inputs and seed, same sample.
    """

    target_se: float = 0.02
    n: int | None = None
    allocation: str = "neyman"
    min_per_stratum: int = 5
    expected_accuracy: float | None = None
    max_per_unit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.allocation not in ALLOCATIONS:
            raise ModelError(f"allocation={self.allocation!r}: use one of {list(ALLOCATIONS)}")
        if not 0 < self.target_se < 1:
            raise ModelError(f"target_se={self.target_se}: give a standard error in (0, 1), "
                             "e.g. 0.02")
        if self.n is not None and self.n < 1:
            raise ModelError(f"n={self.n}: give a positive sample size")
        if self.min_per_stratum < MIN_UNITS:
            raise ModelError(f"min_per_stratum={self.min_per_stratum}: at least {MIN_UNITS} "
                             "fields per stratum are needed to estimate its variance")
        if self.expected_accuracy is not None and not 0 < self.expected_accuracy <= 1:
            raise ModelError(f"expected_accuracy={self.expected_accuracy}: give a value in (0, 1]")
        if self.max_per_unit is not None and self.max_per_unit < 1:
            raise ModelError(f"max_per_unit={self.max_per_unit}: give a positive number")


@dataclass
class Design:
    """A drawn reference sample.

    Attributes
    ----------
    sample
        The drawn rows of the frame (all its columns) plus ``stratum``,
        ``inclusion_prob`` (float) and ``stratum_N`` (eligible fields of the stratum).
    strata
        One row per stratum: ``stratum``, ``map_class``, ``N`` (fields), ``N_eligible``,
        ``area_ha``, ``area_eligible_ha``, ``n`` (drawn), ``expected_sd`` (planning spread
        of the unit values).
    summary
        JSON-able description: options, sample size asked and drawn, the standard
        error expected for each class, exclusions, notes.
    """

    sample: pd.DataFrame
    strata: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def stratum_labels(map_class: pd.Series, factors: pd.DataFrame | None = None) -> pd.Series:
    """Name the stratum of each unit: its map class (or ``withheld``) and the factors.

    Parameters
    ----------
    map_class
        Map class per unit; null means withheld.
    factors
        Other stratifying columns (region, season, size class), aligned with ``map_class``.

    Returns
    -------
    pandas.Series
        str, e.g. ``no_till``, ``withheld | R3``.
    """
    out = map_class.astype(object).where(map_class.notna(), WITHHELD).astype(str)
    if factors is not None:
        for col in factors.columns:
            out = out + STRATUM_SEP + factors[col].astype(str).to_numpy()
    return out


def _planning_proba(frame: pd.DataFrame, classes: list[str], proba_cols: list[str],
                    expected_accuracy: float | None) -> np.ndarray:
    """Return the class probabilities used for planning, float (n, k)."""
    mapped = frame["map_class"].astype(object)
    k = len(classes)
    if expected_accuracy is None and proba_cols:
        p = frame[proba_cols].to_numpy(dtype=float)
    else:
        p = np.full((len(frame), k), np.nan)
        u = 1.0 if expected_accuracy is None else expected_accuracy
        for j, c in enumerate(classes):
            hit = (mapped == c).to_numpy()
            p[hit] = (1 - u) / max(k - 1, 1)
            p[hit, j] = u if k > 1 else 1.0
    missing = ~np.isfinite(p).all(axis=1)
    if missing.any():
        # Fields without probabilities (withheld without data): the classes' mapped shares.
        shares = np.array([(mapped == c).sum() for c in classes], dtype=float)
        prior = shares / shares.sum() if shares.sum() > 0 else np.full(k, 1.0 / k)
        p[missing] = prior
    return p


def _stratum_sd(area: np.ndarray, p: np.ndarray, codes: np.ndarray, h: int) -> np.ndarray:
    """Return the expected SD of ``area x 1[reference = j]`` in each stratum, float (H, k)."""
    k = p.shape[1]
    n = np.bincount(codes, minlength=h).astype(float)
    m1 = np.zeros((h, k))
    m2 = np.zeros((h, k))
    np.add.at(m1, codes, area[:, None] * p)
    np.add.at(m2, codes, (area ** 2)[:, None] * p)
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 /= n[:, None]
        m2 /= n[:, None]
    return np.sqrt(np.clip(np.nan_to_num(m2 - m1 ** 2), 0.0, None))


def expected_se(n_h: np.ndarray, big_n: np.ndarray, sd: np.ndarray, total_area: float
                ) -> np.ndarray:
    """Return the expected standard error of each class's area share for the allocation ``n_h``.

    ``V_j = sum_h N_h^2 (1 - n_h / N_h) S_hj^2 / n_h / A^2`` (strata with ``n_h = 0``
    and ``N_h > 0`` make it infinite).

    Parameters
    ----------
    n_h, big_n
        int (H,) sample and eligible population sizes.
    sd
        float (H, k) planning SDs of the unit values (hectares).
    total_area
        Area of the eligible fields (hectares).

    Returns
    -------
    numpy.ndarray
        float (k,) standard errors of the area shares.
    """
    n_h = np.asarray(n_h, dtype=float)
    big_n = np.asarray(big_n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.where(n_h[:, None] > 0,
                        big_n[:, None] ** 2 * (1 - n_h[:, None] / big_n[:, None]) * sd ** 2
                        / np.maximum(n_h[:, None], 1),
                        np.where((big_n[:, None] > 0) & (sd > 0), np.inf, 0.0))
    return np.sqrt(term.sum(axis=0)) / total_area


def _allocation(n: int, big_n: np.ndarray, area_h: np.ndarray, sd_mean: np.ndarray,
                opts: DesignOptions) -> np.ndarray:
    # The paper's rule shares by mapped area; the others by number of fields.
    sizes = area_h if opts.allocation == "olofsson" else big_n
    return allocate(n, sizes, rule=opts.allocation, stds=sd_mean,
                    minimum=opts.min_per_stratum, available=big_n)


def plan_sizes(big_n: np.ndarray, area_h: np.ndarray, sd: np.ndarray, total_area: float,
               opts: DesignOptions) -> tuple[np.ndarray, int, list[str]]:
    """Per-stratum sample sizes reaching ``opts.target_se`` for every class (or summing to ``opts.n``).

    Starts from Cochran's size for the rule's allocation fractions (largest over the
    classes) and raises it until the allocation, capped by the eligible fields and
    given its minimums, reaches the target.

    Returns
    -------
    n_h, cochran_n, notes
        int (H,) sizes; the uncapped Cochran size; notes (target not reachable...).
    """
    notes: list[str] = []
    avail = big_n.astype(np.int64)
    total_n = int(avail.sum())
    sd_mean = np.sqrt(np.mean(sd ** 2, axis=1))
    minimum = np.minimum(avail, opts.min_per_stratum)
    if opts.n is not None:
        if opts.n < int(minimum.sum()):
            notes.append(f"n={opts.n} is below {int(minimum.sum())}, the minimum of "
                         f"{opts.min_per_stratum} fields in each of {len(big_n)} strata: "
                         "the minimums win")
        n_h = _allocation(max(opts.n, int(minimum.sum())), big_n, area_h, sd_mean, opts)
        return n_h, int(opts.n), notes
    w = big_n / big_n.sum()
    scale = big_n.sum() / total_area  # unit values in hectares -> shares of the area
    fractions = _allocation(100_000, big_n, area_h, sd_mean, opts).astype(float) + 1e-12
    cochran = max(cochran_sample_size(w, sd[:, j] * scale, opts.target_se,
                                      population=float(big_n.sum()), fractions=fractions)
                  for j in range(sd.shape[1]))

    def reaches(n: int) -> tuple[bool, np.ndarray]:
        n_h = _allocation(n, big_n, area_h, sd_mean, opts)
        return bool(expected_se(n_h, big_n, sd, total_area).max() <= opts.target_se), n_h

    # Smallest n whose capped, rounded allocation reaches the target (bisection from
    # Cochran's size, which ignores the caps and the minimums).
    lo = min(max(cochran, int(minimum.sum())), total_n)
    ok, n_h = reaches(lo)
    if not ok:
        hi = total_n
        _, n_hi = reaches(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            ok_mid, n_mid = reaches(mid)
            if ok_mid:
                hi, n_hi = mid, n_mid
            else:
                lo = mid
        n_h = n_hi
    if expected_se(n_h, big_n, sd, total_area).max() > opts.target_se:
        notes.append(f"the target standard error {opts.target_se} cannot be reached even "
                     "with every eligible field")
    return n_h, cochran, notes


def _draw(groups: list[np.ndarray], n_h: np.ndarray, units: np.ndarray | None,
          cap: int | None, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Draw a simple random sample within each stratum (row positions); say whether the cap bound."""
    chosen: list[np.ndarray] = []
    used: dict[Any, int] = {}
    bound = False
    for members, size in zip(groups, n_h, strict=True):
        perm = rng.permutation(members)
        if cap is None or units is None:
            chosen.append(perm[:size])
            continue
        took: list[int] = []
        for i in perm:
            if len(took) >= size:
                break
            u = units[i]
            if used.get(u, 0) >= cap:
                bound = True
                continue
            used[u] = used.get(u, 0) + 1
            took.append(i)
        chosen.append(np.asarray(took, dtype=np.int64))
    return (np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)), bound


def design_sample(frame: pd.DataFrame, classes: list[str], options: DesignOptions, *,
                  factors: list[str] | None = None, unit_column: str | None = None
                  ) -> Design:
    """Size and draw a stratified reference sample of fields.

    Parameters
    ----------
    frame
        One row per unit (field, or field x season) with ``key`` (unique str id),
        ``map_class`` (class or null when withheld), ``area_ha`` (float, > 0),
        ``eligible`` (bool: False for excluded fields), optionally ``p_<class>``
        columns (the model's probabilities, for planning), the ``factors`` columns
        and ``unit_column``.
    classes
        The target's classes, in model order.
    options
        Sizes and draw.
    factors
        Columns crossed with the map class to make strata (e.g. ``["region"]``).
    unit_column
        Column of the administrative unit capped by ``options.max_per_unit``.

    Returns
    -------
    Design

    Raises
    ------
    ModelError
        Missing columns, duplicate keys, no eligible field, a cap without unit column.
    """
    need = ["key", "map_class", "area_ha", "eligible", *(factors or [])]
    if unit_column:
        need.append(unit_column)
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ModelError(f"the sampling frame lacks column(s) {missing}")
    if frame["key"].duplicated().any():
        dup = frame.loc[frame["key"].duplicated(), "key"].head(5).tolist()
        raise ModelError(f"the sampling frame has duplicate field keys, e.g. {dup}")
    if options.max_per_unit is not None and not unit_column:
        raise ModelError("max_per_unit needs the column of the administrative unit "
                         "(unit_column)")
    df = frame.sort_values("key", kind="stable").reset_index(drop=True)
    area = pd.to_numeric(df["area_ha"], errors="coerce").to_numpy(float)
    if not np.isfinite(area).all() or (area <= 0).any():
        raise ModelError("every field needs a positive area_ha to be sampled; "
                         f"{int((~np.isfinite(area) | (area <= 0)).sum())} have none")
    bad = sorted(set(df["map_class"].dropna().astype(str)) - set(classes))
    if bad:
        raise ModelError(f"map classes {bad[:5]} are not classes of the target {classes}")
    df["stratum"] = stratum_labels(df["map_class"], df[factors] if factors else None)
    eligible = df["eligible"].astype(bool).to_numpy()
    if not eligible.any():
        raise ModelError("no field is eligible for the sample: every field is excluded")
    proba_cols = [f"p_{c}" for c in classes]
    have_proba = all(c in df.columns for c in proba_cols)
    p = _planning_proba(df, classes, proba_cols if have_proba else [], options.expected_accuracy)
    names = sorted(df["stratum"].unique())
    codes = pd.Categorical(df["stratum"], categories=names).codes.astype(np.int64)
    el = df.loc[eligible]
    ecodes = codes[eligible]
    h = len(names)
    big_n = np.bincount(ecodes, minlength=h)
    sd = _stratum_sd(area[eligible], p[eligible], ecodes, h)
    total_area = float(area[eligible].sum())
    area_h = np.bincount(ecodes, weights=area[eligible], minlength=h)
    n_h, cochran, notes = plan_sizes(big_n, area_h, sd, total_area, options)
    rng = np.random.default_rng(options.seed)
    groups = [np.flatnonzero(ecodes == i) for i in range(h)]
    units = el[unit_column].astype(str).to_numpy() if unit_column else None
    picked, bound = _draw(groups, n_h, units, options.max_per_unit, rng)
    drawn = np.bincount(ecodes[picked], minlength=h)
    prob = np.where(big_n > 0, drawn / np.maximum(big_n, 1), 0.0)[ecodes]
    if bound:
        counts = np.zeros(len(el))
        sim = np.random.default_rng([options.seed, 1])
        for _ in range(CAP_DRAWS):
            counts[_draw(groups, n_h, units, options.max_per_unit, sim)[0]] += 1
        counts[picked] += 1
        prob = counts / (CAP_DRAWS + 1)
        notes.append(f"the cap of {options.max_per_unit} fields per {unit_column} changed "
                     "the draw: inclusion probabilities are estimated from "
                     f"{CAP_DRAWS} repeated draws")
    short = [names[i] for i in range(h) if drawn[i] < n_h[i]]
    if short:
        notes.append(f"stratum(s) {short[:5]} got fewer fields than planned (cap per unit)")
    sample = el.iloc[picked].copy()
    sample["inclusion_prob"] = prob[picked]
    sample["stratum_N"] = big_n[ecodes[picked]]
    sample = sample.sort_values(["stratum", "key"], kind="stable").reset_index(drop=True)
    mapped = df["map_class"].astype(object).where(df["map_class"].notna(), WITHHELD).astype(str)
    strata = pd.DataFrame({
        "stratum": names,
        "map_class": [mapped[codes == i].iloc[0] for i in range(h)],
        "N": np.bincount(codes, minlength=h),
        "N_eligible": big_n,
        "area_ha": np.bincount(codes, weights=area, minlength=h),
        "area_eligible_ha": area_h,
        "n": drawn,
        "expected_sd": np.sqrt(np.mean(sd ** 2, axis=1)),
    })
    se = expected_se(drawn, big_n, sd, total_area)
    summary = {
        "options": {"target_se": options.target_se, "n": options.n,
                    "allocation": options.allocation, "min_per_stratum": options.min_per_stratum,
                    "expected_accuracy": options.expected_accuracy,
                    "max_per_unit": options.max_per_unit, "seed": options.seed},
        "factors": list(factors or []),
        "unit_column": unit_column,
        "planning": "model probabilities" if options.expected_accuracy is None and have_proba
                    else f"expected accuracy {options.expected_accuracy}",
        "cochran_n": cochran,
        "n": len(sample),
        "n_strata": h,
        "n_fields": len(df),
        "n_eligible": int(eligible.sum()),
        "excluded_area_ha": float(area[~eligible].sum()),
        "eligible_area_ha": total_area,
        "expected_se": {str(c): float(v) for c, v in zip(classes, se, strict=True)},
        "notes": notes,
    }
    return Design(sample=sample, strata=strata, summary=summary)


__all__ = ["STRATUM_SEP", "WITHHELD", "Design", "DesignOptions", "design_sample",
           "expected_se", "plan_sizes", "stratum_labels"]
