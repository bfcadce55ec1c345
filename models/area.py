"""Design-based accuracy and area: the stratified estimators of Olofsson et al. (2014).

Two entry points share one result type (:class:`AreaEstimates`):

* :func:`estimate_from_counts` — the paper's form. Strata are the map classes,
  ``counts[i, j]`` is the number of sample units mapped as class ``i`` whose
  reference class is ``j``, and ``weights[i]`` the mapped share (or mapped area)
  of class ``i``. Returns the error matrix in area proportions, overall, user's and
  producer's accuracy and the error-adjusted area of every class, each with its
  standard error and 95 % interval (Olofsson et al. 2014, eqs. 2-11; Olofsson
  et al. 2013). Use it to turn any confusion matrix of a probability sample (a
  reference sample, or held-out fields drawn at random within map classes) into
  error-adjusted areas.
* :func:`estimate_from_sample` — the same quantities from unit-level data when the
  strata are not the map classes (class x region, a ``withheld`` stratum...), units
  have unequal sizes (fields of so many hectares) or unequal inclusion
  probabilities: Horvitz-Thompson totals within strata and combined ratio
  estimators (Stehman 2014, Int. J. Remote Sens. 35:4923-4939). With equal unit sizes,
  strata equal to map classes and no finite-population correction it gives exactly
  the numbers of :func:`estimate_from_counts`.

Planning a sample: :func:`cochran_sample_size` (Cochran 1977 eq. 5.25; Olofsson
et al. 2014 eq. 13) and :func:`allocate` (proportional, equal, Neyman, and the
paper's compromise of a fixed minimum for small strata with the rest proportional).

Intervals are ``estimate +/- 1.96 * SE``, the paper's normal quantile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from regenmap.errors import ModelError

#: Two-sided 95 % normal quantile as the paper rounds it (1.959964 would move the
#: sixth digit of its printed areas: 16,281 instead of 16,282 ha).
Z95: float = 1.96

Allocation = Literal["proportional", "equal", "neyman", "olofsson"]
ALLOCATIONS: tuple[str, ...] = ("proportional", "equal", "neyman", "olofsson")


@dataclass(frozen=True)
class Estimate:
    """One estimated quantity with its standard error and 95 % interval.

    Attributes
    ----------
    value
        Point estimate (NaN when undefined, e.g. the user's accuracy of a class never mapped).
    se
        Standard error (NaN when it cannot be estimated, e.g. one unit in a stratum).
    ci_low, ci_high
        ``value -/+ z * se``; not clipped (a proportion's interval may leave [0, 1]
        when the sample is small: that is information, not an error).
    """

    value: float
    se: float
    ci_low: float = field(init=False)
    ci_high: float = field(init=False)
    z: float = Z95

    def __post_init__(self) -> None:
        object.__setattr__(self, "ci_low", self.value - self.z * self.se)
        object.__setattr__(self, "ci_high", self.value + self.z * self.se)

    @property
    def half_width(self) -> float:
        """Half the 95 % interval, ``z * se`` (the paper's "+/-" figure)."""
        return self.z * self.se

    def covers(self, truth: float) -> bool:
        """Whether the interval holds ``truth``."""
        return bool(self.ci_low <= truth <= self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able ``{value, se, ci95: [low, high]}``."""
        return {"value": self.value, "se": self.se, "ci95": [self.ci_low, self.ci_high]}


@dataclass(frozen=True)
class AreaEstimates:
    """Design-based accuracy and area of one map against its reference sample.

    Attributes
    ----------
    map_classes
        Row labels (map classes or strata of the map; may hold classes absent from
        the reference, e.g. ``withheld``).
    ref_classes
        Column labels (reference classes).
    proportions
        float (n_map, n_ref): estimated share of the total area mapped as row ``i``
        with reference class ``j`` (the paper's ``p_ij``, Table 9).
    total_area
        Area (or number of units) the proportions are shares of, in ``area_unit``.
    area_unit
        ``"ha"``, ``"pixels"``, ``"fields"`` ... as given.
    overall
        Overall accuracy: share of the area whose map class is its reference class,
        among the area mapped with a reference class (rows not in ``ref_classes``
        are left out of its domain).
    users, producers
        Per class: user's accuracy (of the map class; absent for rows that are not
        reference classes) and producer's accuracy (of the reference class).
    area_share
        Per reference class: estimated share of the total area (the paper's ``p_.j``).
    area
        Per reference class: error-adjusted area, ``total_area * area_share``.
    mapped_area
        Per map class: the area the map gives it (``total_area * W_i``).
    n
        Sample units per map class (row totals of the sample).
    notes
        Caveats (strata with fewer than two units, classes never sampled...).
    """

    map_classes: tuple[str, ...]
    ref_classes: tuple[str, ...]
    proportions: np.ndarray
    total_area: float
    area_unit: str
    overall: Estimate
    users: dict[str, Estimate]
    producers: dict[str, Estimate]
    area_share: dict[str, Estimate]
    area: dict[str, Estimate]
    mapped_area: dict[str, float]
    n: dict[str, int]
    notes: tuple[str, ...] = ()

    def table(self) -> pd.DataFrame:
        """One row per class: mapped area, error-adjusted area and accuracies with intervals.

        Columns: ``class``, ``n``, ``mapped_area``, ``area``, ``area_se``,
        ``area_ci_low``, ``area_ci_high``, ``area_share``, ``area_share_se``,
        ``users``, ``users_se``, ``users_ci_low``, ``users_ci_high``,
        ``producers`` (and its ``_se``, ``_ci_low``, ``_ci_high``); classes in
        reference order, then map-only rows (e.g. ``withheld``).
        """
        rows = []
        names = list(self.ref_classes) + [c for c in self.map_classes
                                           if c not in self.ref_classes]
        nan = Estimate(float("nan"), float("nan"))
        for c in names:
            row: dict[str, Any] = {"class": c, "n": self.n.get(c, 0),
                                   "mapped_area": self.mapped_area.get(c, 0.0)}
            for key, est in (("area", self.area.get(c, nan)),
                             ("area_share", self.area_share.get(c, nan)),
                             ("users", self.users.get(c, nan)),
                             ("producers", self.producers.get(c, nan))):
                row[key] = est.value
                row[f"{key}_se"] = est.se
                row[f"{key}_ci_low"] = est.ci_low
                row[f"{key}_ci_high"] = est.ci_high
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (strict JSON through :func:`regenmap.io.json_text`)."""
        return {
            "map_classes": list(self.map_classes),
            "ref_classes": list(self.ref_classes),
            "total_area": self.total_area,
            "area_unit": self.area_unit,
            "proportions": self.proportions.tolist(),
            "overall_accuracy": self.overall.to_dict(),
            "users_accuracy": {c: e.to_dict() for c, e in self.users.items()},
            "producers_accuracy": {c: e.to_dict() for c, e in self.producers.items()},
            "area_share": {c: e.to_dict() for c, e in self.area_share.items()},
            "area": {c: e.to_dict() for c, e in self.area.items()},
            "mapped_area": dict(self.mapped_area),
            "n": dict(self.n),
            "notes": list(self.notes),
            "z": Z95,
        }


# --------------------------------------------------------------------------- paper form
def estimate_from_counts(counts: np.ndarray | pd.DataFrame, weights: Sequence[float] | np.ndarray
                         | Mapping[str, float], *, map_classes: Sequence[str] | None = None,
                         ref_classes: Sequence[str] | None = None, total_area: float | None = None,
                         area_unit: str = "") -> AreaEstimates:
    """Olofsson et al. (2014) estimators from an error matrix of sample counts.

    Parameters
    ----------
    counts
        int or float (n_map, n_ref): sample units per map class (rows, the strata)
        and reference class (columns). A DataFrame gives the class names (index =
        map classes, columns = reference classes). Rows that are not reference
        classes (e.g. ``withheld``) are allowed: they count in the areas but not in
        the accuracies.
    weights
        Per map class (row), its mapped area or share of the area (normalised to sum
        to 1; a mapping is read by class name). The paper's ``W_i`` or ``A_m,i``.
    map_classes, ref_classes
        Names of rows and columns when ``counts`` is an array (``"0", "1"...`` if omitted).
    total_area
        Area the shares are of; the sum of ``weights`` if omitted (so giving mapped
        areas in hectares gives areas in hectares).
    area_unit
        Unit of ``total_area``, recorded in the result.

    Returns
    -------
    AreaEstimates

    Raises
    ------
    ModelError
        Mismatched shapes, negative counts or weights, a stratum with weight but no unit.

    Notes
    -----
    With ``p_ij = W_i n_ij / n_i.``: overall accuracy ``sum_i p_ii`` (eq. 1) with
    ``V = sum_i W_i^2 U_i (1 - U_i) / (n_i. - 1)`` (eq. 5); user's accuracy
    ``U_i = p_ii / p_i.`` (eq. 2) with ``V = U_i (1 - U_i) / (n_i. - 1)`` (eq. 6);
    producer's accuracy ``P_j = p_jj / p_.j`` (eq. 3) with the variance of eq. 7;
    area share ``p_.j`` (eq. 9) with ``V = sum_i W_i^2 (n_ij/n_i.)(1 - n_ij/n_i.) / (n_i. - 1)``
    (eq. 10); area ``A * p_.j`` (eq. 11).
    """
    if isinstance(counts, pd.DataFrame):
        map_classes = [str(c) for c in counts.index] if map_classes is None else map_classes
        ref_classes = [str(c) for c in counts.columns] if ref_classes is None else ref_classes
        counts = counts.to_numpy(dtype=float)
    n = np.asarray(counts, dtype=float)
    if n.ndim != 2:
        raise ModelError(f"counts must be a 2-D error matrix (map x reference), got shape {n.shape}")
    rows = [str(c) for c in (map_classes if map_classes is not None else range(n.shape[0]))]
    cols = [str(c) for c in (ref_classes if ref_classes is not None else range(n.shape[1]))]
    if len(rows) != n.shape[0] or len(cols) != n.shape[1]:
        raise ModelError(f"counts have shape {n.shape} but {len(rows)} map and {len(cols)} "
                         "reference class names were given")
    if isinstance(weights, Mapping):
        missing = [c for c in rows if c not in weights]
        if missing:
            raise ModelError(f"weights lack map class(es) {missing}; give one per row of counts")
        w = np.array([float(weights[c]) for c in rows])
    else:
        w = np.asarray(weights, dtype=float)
    if w.shape != (n.shape[0],):
        raise ModelError(f"weights have {w.size} values for {n.shape[0]} map classes; give one "
                         "mapped area or share per row of counts")
    if (n < 0).any() or (w < 0).any() or not np.isfinite(w).all():
        raise ModelError("counts and weights must be finite and non-negative")
    empty = [rows[i] for i in range(len(rows)) if w[i] > 0 and n[i].sum() == 0]
    if empty:
        raise ModelError(f"map class(es) {empty} have mapped area but no sample unit: the "
                         "error-adjusted areas cannot be estimated; sample them")
    # The paper's estimators are the stratified ones with unit-level indicators: expand.
    strata, ref = [], []
    for i in range(n.shape[0]):
        for j in range(n.shape[1]):
            k = round(float(n[i, j]))
            if abs(k - n[i, j]) > 1e-9:
                raise ModelError("counts must be whole numbers of sample units")
            strata += [rows[i]] * k
            ref += [cols[j]] * k
    sample = pd.DataFrame({"stratum": strata, "map": strata, "ref": ref})
    total = float(w.sum()) if total_area is None else float(total_area)
    shares = w / w.sum()
    return estimate_from_sample(sample, stratum_weights=dict(zip(rows, shares, strict=True)),
                                map_classes=rows, ref_classes=cols, total_area=total,
                                area_unit=area_unit, finite_population=False)


# --------------------------------------------------------------------------- unit-level form
def _stratum_terms(sample: pd.DataFrame, strata_N: Mapping[str, float] | None,
                   stratum_weights: Mapping[str, float] | None, finite: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Expansion weight of each unit, its stratum code and the per-stratum variance factor."""
    codes, names = pd.factorize(sample["stratum"].astype(str))
    n_h = np.bincount(codes, minlength=len(names)).astype(float)
    notes = []
    if strata_N is not None:
        missing = [s for s in names if s not in strata_N]
        if missing:
            raise ModelError(f"stratum sizes lack stratum(s) {missing[:5]}; give the number "
                             "of population units (or their area) of every sampled stratum")
        big_n = np.array([float(strata_N[s]) for s in names])
        bad = [s for s, nn, bn in zip(names, n_h, big_n, strict=True) if nn > bn + 1e-9]
        if bad:
            raise ModelError(f"stratum(s) {bad[:5]} hold more sample units than population units")
    elif stratum_weights is not None:
        big_n = np.array([float(stratum_weights[s]) for s in names])
        finite = False
    else:
        raise ModelError("give the stratum sizes (strata_N) or weights (stratum_weights)")
    if "weight" in sample.columns:
        d = pd.to_numeric(sample["weight"], errors="coerce").to_numpy(float)
        if not np.isfinite(d).all() or (d <= 0).any():
            raise ModelError("sample weights (1 / inclusion probability) must be positive")
        # Normalise within each stratum so the weights add up to the stratum size.
        sums = np.bincount(codes, weights=d, minlength=len(names))
        d = d * (big_n / sums)[codes]
    else:
        d = (big_n / n_h)[codes]
    fpc = np.where(finite, np.clip(1.0 - n_h / np.where(big_n > 0, big_n, 1.0), 0.0, 1.0), 1.0)
    single = [s for s, nn in zip(names, n_h, strict=True) if nn < 2]
    if single:
        notes.append(f"stratum(s) {single[:5]} hold one sample unit: their variance cannot be "
                     "estimated and is taken as 0 (standard errors are too small)")
    return d, codes, fpc, notes


@dataclass(frozen=True)
class _Weights:
    """Expansion weights of the sample units and what their variance needs.

    ``d`` float (n,) expansion weights; ``codes`` int (n,) stratum of each unit;
    ``fpc`` float (H,) finite-population factors; ``aux`` float (n,) unit areas when the
    weights are calibrated to known stratum areas (separate ratio estimator), else None.
    """

    d: np.ndarray
    codes: np.ndarray
    fpc: np.ndarray
    aux: np.ndarray | None = None


def _total_and_var(y: np.ndarray, w: _Weights) -> tuple[np.ndarray, np.ndarray]:
    """Stratified totals and variances of the columns of ``y`` (n, m).

    Horvitz-Thompson within strata; with ``w.aux`` the variance is that of the residuals
    ``y - R_h aux`` of the separate ratio estimator (its linearisation, Cochran 1977 6.9).
    """
    d, codes, fpc = w.d, w.codes, w.fpc
    k = len(fpc)
    ty = np.zeros((k, y.shape[1]))
    np.add.at(ty, codes, d[:, None] * y)
    resid = y
    if w.aux is not None:
        ta = np.bincount(codes, weights=d * w.aux, minlength=k)
        ratio = ty / np.where(ta > 0, ta, 1.0)[:, None]
        resid = y - ratio[codes] * w.aux[:, None]
    n_h = np.bincount(codes, minlength=k).astype(float)
    z = d[:, None] * resid  # expanded values
    tz = np.zeros((k, y.shape[1]))
    np.add.at(tz, codes, z)
    mean = tz / np.maximum(n_h, 1)[:, None]
    ss = np.zeros((k, y.shape[1]))
    np.add.at(ss, codes, (z - mean[codes]) ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_h = np.where(n_h[:, None] > 1, fpc[:, None] * n_h[:, None] / (n_h[:, None] - 1) * ss,
                         0.0)
    return ty.sum(axis=0), var_h.sum(axis=0)


def _ratio(num: np.ndarray, den: np.ndarray, w: _Weights) -> Estimate:
    """Return the combined ratio ``sum y / sum x`` with its linearised variance (Stehman 2014)."""
    (ty, tx), _ = _total_and_var(np.column_stack([num, den]), w)
    if tx <= 0:
        return Estimate(float("nan"), float("nan"))
    r = ty / tx
    _, v = _total_and_var((num - r * den)[:, None], w)
    return Estimate(float(r), float(np.sqrt(v[0]) / tx))


def estimate_from_sample(sample: pd.DataFrame, *, strata_N: Mapping[str, float] | None = None,
                         stratum_weights: Mapping[str, float] | None = None,
                         map_classes: Sequence[str] | None = None,
                         ref_classes: Sequence[str] | None = None,
                         total_area: float | None = None, area_unit: str = "",
                         finite_population: bool = True,
                         domain: np.ndarray | None = None,
                         stratum_area: Mapping[str, float] | None = None) -> AreaEstimates:
    """Accuracy and area from a stratified probability sample of units (fields, pixels).

    Parameters
    ----------
    sample
        One row per sample unit with columns ``stratum`` (design stratum), ``map``
        (map class or e.g. ``withheld``), ``ref`` (reference class), optionally
        ``area`` (the unit's size, e.g. hectares; 1 for every unit if absent: counts
        of units) and ``weight`` (1 / inclusion probability, when units of a stratum
        were not drawn with equal probability; rescaled to the stratum size).
    strata_N
        Population units per stratum (``N_h``): fields of the stratum eligible for the draw.
    stratum_weights
        Instead of ``strata_N``: each stratum's share of the area (the paper's ``W_h``,
        infinite population of equal units, no finite-population correction).
    map_classes, ref_classes
        Row and column order of the result (the classes met in ``sample`` if omitted).
    total_area
        With ``stratum_weights``: the area the shares are of. With ``strata_N`` the
        estimated total of ``area`` is used.
    area_unit
        Unit of the areas, recorded.
    finite_population
        Apply the finite-population correction ``1 - n_h / N_h`` (with ``strata_N``).
    domain
        bool (n,): estimate for a domain only (e.g. one region): units outside it count
        as zero, as in the domain estimators of Cochran (1977, sect. 5A.14).
    stratum_area
        Known total of ``area`` in each stratum (e.g. the mapped hectares of each map
        class). The weights are then calibrated to it: within a stratum every total is
        the known area times the sample's area share (the separate ratio estimator,
        Cochran 1977 sect. 6.9), the analogue for units of unequal size of the paper's
        ``W_i n_ij / n_i.``, and much more precise than expanding by ``N_h / n_h`` when
        fields differ in size. Variances are those of the ratio residuals.

    Returns
    -------
    AreaEstimates
        Proportions, accuracies and areas; areas in the unit of ``area`` (or of
        ``total_area``).

    Notes
    -----
    Every quantity is a stratified total (area of a class: Horvitz-Thompson, or
    calibrated to ``stratum_area``) or a combined ratio of two of them (accuracies,
    shares) with the linearised variance of Stehman (2014). With units of equal size,
    strata equal to the map classes and ``stratum_weights``, the formulas are those of
    Olofsson et al. (2014), calibrated or not.
    """
    need = [c for c in ("stratum", "map", "ref") if c not in sample.columns]
    if need:
        raise ModelError(f"the reference sample lacks column(s) {need}; it needs stratum, map "
                         "and ref (and optionally area and weight)")
    if len(sample) == 0:
        raise ModelError("the reference sample is empty")
    s = sample.reset_index(drop=True)
    mp = s["map"].astype(str).to_numpy()
    rf = s["ref"].astype(str).to_numpy()
    rows = list(map_classes) if map_classes is not None else sorted(set(mp))
    cols = list(ref_classes) if ref_classes is not None else sorted(set(rf))
    unknown = sorted(set(rf) - set(cols))
    if unknown:
        raise ModelError(f"reference classes {unknown[:5]} are not in ref_classes {cols}")
    unknown = sorted(set(mp) - set(rows))
    if unknown:
        raise ModelError(f"map classes {unknown[:5]} are not in map_classes {rows}")
    a = (pd.to_numeric(s["area"], errors="coerce").to_numpy(float) if "area" in s.columns
         else np.ones(len(s)))
    if not np.isfinite(a).all() or (a < 0).any():
        raise ModelError("unit areas must be finite and non-negative")
    a_all = a.copy()
    if domain is not None:
        a = a * np.asarray(domain, dtype=bool)
    d, codes, fpc, notes = _stratum_terms(s, strata_N, stratum_weights, finite_population)
    if stratum_weights is not None and strata_N is None:
        # Shares: each stratum's expanded values must add to its share; units count 1.
        scale = 1.0 if total_area is None else float(total_area)
        d = d * scale
    w = _Weights(d, codes, fpc)
    if stratum_area is not None:
        names = list(pd.unique(s["stratum"].astype(str)))
        missing = [h for h in names if h not in stratum_area]
        if missing:
            raise ModelError(f"stratum_area lacks stratum(s) {missing[:5]}")
        known = np.array([float(stratum_area[h]) for h in names])
        est = np.bincount(codes, weights=d * a_all, minlength=len(names))
        if (est <= 0).any():
            raise ModelError("a stratum's sampled units have no area: cannot calibrate to "
                             "its known area")
        w = _Weights(d * (known / est)[codes], codes, fpc, aux=a_all)
    # y[:, i*m + j] = area of units mapped i with reference j.
    mi = np.array([rows.index(v) for v in mp])
    rj = np.array([cols.index(v) for v in rf])
    k_map, k_ref = len(rows), len(cols)
    cell = np.zeros((len(s), k_map * k_ref))
    cell[np.arange(len(s)), mi * k_ref + rj] = a
    totals, _ = _total_and_var(cell, w)
    total = float(totals.sum())
    if total <= 0:
        raise ModelError("the sample's units have no area in this domain")
    props = totals.reshape(k_map, k_ref) / total
    est_share: dict[str, Estimate] = {}
    est_area: dict[str, Estimate] = {}
    for j, c in enumerate(cols):
        y = a * (rj == j)
        est_share[c] = _ratio(y, a, w)
        t, v = _total_and_var(y[:, None], w)
        est_area[c] = Estimate(float(t[0]), float(np.sqrt(v[0])))
    users: dict[str, Estimate] = {}
    producers: dict[str, Estimate] = {}
    for c in cols:
        j = cols.index(c)
        correct = a * (rj == j) * (mi == rows.index(c) if c in rows else False)
        if c in rows:
            users[c] = _ratio(correct, a * (mi == rows.index(c)), w)
        producers[c] = _ratio(correct, a * (rj == j), w)
    labelled = np.isin(mi, [rows.index(c) for c in cols if c in rows])
    agree = np.array([rows[m] == cols[r] for m, r in zip(mi, rj, strict=True)])
    overall = _ratio(a * agree, a * labelled, w)
    n_map = {r: int((mi == i).sum()) for i, r in enumerate(rows)}
    mapped = props.sum(axis=1) * total
    for c in cols:
        if c in rows and n_map[c] == 0:
            notes.append(f"map class {c!r} has no sample unit: its user's accuracy is undefined")
    return AreaEstimates(map_classes=tuple(rows), ref_classes=tuple(cols), proportions=props,
                         total_area=total, area_unit=area_unit, overall=overall, users=users,
                         producers=producers, area_share=est_share, area=est_area,
                         mapped_area={r: float(mapped[i]) for i, r in enumerate(rows)},
                         n=n_map, notes=tuple(notes))


# --------------------------------------------------------------------------- planning
def cochran_sample_size(weights: Sequence[float] | np.ndarray, stds: Sequence[float] | np.ndarray,
                        target_se: float, *, population: float | None = None,
                        fractions: Sequence[float] | np.ndarray | None = None) -> int:
    """Sample size giving a stratified estimate of a proportion a target standard error.

    Parameters
    ----------
    weights
        float (H,): stratum weights ``W_h`` (shares of the population; normalised).
    stds
        float (H,): expected standard deviation of the unit values in each stratum,
        e.g. ``sqrt(U_h (1 - U_h))`` for the overall accuracy (Olofsson et al. 2014,
        eq. 13) or ``sqrt(p_hj (1 - p_hj))`` for the share of class ``j``.
    target_se
        Standard error to reach (e.g. 0.01 for +/- 2 points at 95 %).
    population
        Number of population units ``N`` (finite-population correction); infinite if omitted.
    fractions
        float (H,): share of the sample given to each stratum (an allocation); Neyman's
        optimum ``W_h S_h / sum W S`` if omitted, which gives the paper's
        ``n = (sum W_h S_h / S(O))^2``.

    Returns
    -------
    int
        The smallest whole sample size reaching ``target_se`` (at least 1).

    Notes
    -----
    ``V = sum W_h^2 S_h^2 / n_h - sum W_h S_h^2 / N`` with ``n_h = n f_h`` (Cochran
    1977, eq. 5.25) solved for ``n``.
    """
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    sd = np.asarray(stds, dtype=float)
    if w.shape != sd.shape:
        raise ModelError(f"weights ({w.size}) and stds ({sd.size}) must have one value per stratum")
    if not target_se > 0:
        raise ModelError(f"target_se={target_se}: give a positive standard error, e.g. 0.01")
    if fractions is None:
        total = float(np.sum(w * sd))
        f = w * sd / total if total > 0 else w
    else:
        f = np.asarray(fractions, dtype=float)
        f = f / f.sum()
    live = w * sd > 0
    if not live.any():
        return 1
    if (f[live] <= 0).any():
        raise ModelError("an allocation gives no unit to a stratum with variance; the target "
                         "standard error cannot be reached")
    num = float(np.sum(w[live] ** 2 * sd[live] ** 2 / f[live]))
    den = target_se ** 2 + (float(np.sum(w * sd ** 2)) / population if population else 0.0)
    return max(1, int(np.ceil(num / den - 1e-9)))


def allocate(n: int, sizes: Sequence[float] | np.ndarray, *, rule: str = "proportional",
             stds: Sequence[float] | np.ndarray | None = None, minimum: int = 0,
             available: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Split a sample of ``n`` units among strata.

    Parameters
    ----------
    n
        Total sample size.
    sizes
        float (H,): stratum sizes or weights (area or number of units).
    rule
        ``proportional`` to size; ``equal``; ``neyman`` (proportional to size x ``stds``,
        the allocation of least variance); ``olofsson`` (Olofsson et al. 2014,
        sect. 5.1.2: every stratum whose proportional share is below ``minimum`` gets
        ``minimum``, the rest of the sample is proportional to size).
    stds
        float (H,): expected standard deviations, for ``neyman``.
    minimum
        Least units per stratum (for every rule; capped by ``available``).
    available
        int (H,): units that can be drawn in each stratum (after exclusions); the
        allocation never exceeds it and gives the excess to the other strata.

    Returns
    -------
    numpy.ndarray
        int (H,) sample sizes summing to ``min(n, sum(available))``; largest-remainder rounding.
    """
    size = np.asarray(sizes, dtype=float)
    h = size.size
    cap = (np.asarray(available, dtype=np.int64) if available is not None
           else np.full(h, np.iinfo(np.int64).max // 4))
    if rule not in ALLOCATIONS:
        raise ModelError(f"allocation rule {rule!r} is not known; use one of {list(ALLOCATIONS)}")
    if rule == "neyman":
        if stds is None:
            raise ModelError("the neyman allocation needs the expected standard deviation "
                             "of each stratum (stds)")
        score = size * np.asarray(stds, dtype=float)
        if score.sum() <= 0:
            score = size.copy()
    elif rule == "equal":
        score = (size > 0).astype(float)
    else:
        score = size.copy()
    target = min(int(n), int(cap.sum()))
    floor = np.where(size > 0, np.minimum(cap, minimum), 0).astype(np.int64)
    if floor.sum() >= target:  # the minimums alone take the whole sample
        out = floor.copy()
        while out.sum() > target:
            out[int(np.argmax(out))] -= 1
        return out
    return _water_fill(target, score, floor, cap)


def _water_fill(target: int, score: np.ndarray, floor: np.ndarray, cap: np.ndarray
                ) -> np.ndarray:
    """Share ``target`` by ``score``; strata below ``floor`` or above ``cap`` are pinned there.

    Pinned strata leave the rest to the free ones, again in proportion to their score,
    until no free stratum falls outside its bounds; whole numbers by largest remainder.
    """
    h = len(score)
    pinned = np.full(h, -1.0)
    ideal = np.zeros(h)
    for _ in range(2 * h + 2):
        free = pinned < 0
        rest = target - pinned[~free].sum()
        weights = np.where(free, score, 0.0)
        if weights.sum() <= 0:
            weights = np.where(free & (cap > 0), 1.0, 0.0)
        ideal = np.where(free, rest * weights / max(weights.sum(), 1e-300), pinned)
        low = free & (ideal < floor)
        high = free & (ideal > cap)
        if not (low.any() or high.any()):
            break
        pinned[low] = floor[low]
        pinned[high] = cap[high]
    out = np.floor(ideal + 1e-9).astype(np.int64)
    order = np.argsort(-(ideal - out), kind="stable")
    for i in order:
        if out.sum() >= target:
            break
        if out[i] < cap[i]:
            out[i] += 1
    for i in np.argsort(-(cap - out), kind="stable"):  # rounding left units: any room
        if out.sum() >= target:
            break
        out[i] += min(int(cap[i] - out[i]), target - int(out.sum()))
    return out


__all__ = ["ALLOCATIONS", "Z95", "AreaEstimates", "Estimate", "allocate", "cochran_sample_size",
           "estimate_from_counts", "estimate_from_sample"]
