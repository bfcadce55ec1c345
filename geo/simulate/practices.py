"""Regions, main crops and practice labels of the simulated fields.

Practices are correlated with the region (farms in one area share machinery,
advisers and soils) and mildly with the crop (root crops are rarely direct-drilled;
conservation-tillage farms more often grow cover crops), but every class is present
in every region and no class falls below ~15 % overall, so models can learn them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

TILLAGE_CLASSES: Final = ("conventional", "reduced", "no_till")
COVER_CLASSES: Final = ("bare", "cover_crop")
TARGETS: Final = {"tillage": list(TILLAGE_CLASSES), "winter_cover": list(COVER_CLASSES)}

#: Main crops of a northern-French / Belgian rotation and their share of fields.
CROPS: Final = ("winter_wheat", "winter_barley", "rapeseed", "spring_barley", "maize",
                "sugar_beet", "potato")
CROP_SHARE: Final = np.array([0.30, 0.12, 0.10, 0.12, 0.18, 0.10, 0.08])
#: Relative odds of (conventional, reduced, no_till) per crop.
_CROP_TILLAGE_ODDS: Final = {
    "potato": np.array([1.6, 1.0, 0.35]),
    "sugar_beet": np.array([1.3, 1.0, 0.6]),
}
MIN_PER_REGION: Final = 2
#: Smallest share of any class over the whole region.
MIN_SHARE: Final = 0.17


@dataclass(frozen=True)
class Labels:
    """Per-field attributes, aligned with the field order.

    Attributes
    ----------
    region
        Region name per field ("R1".."Rn"), contiguous spatial blocks.
    crop
        Main crop of the simulated year.
    tillage
        "conventional", "reduced" or "no_till".
    winter_cover
        "cover_crop" or "bare".
    """

    region: NDArray[np.str_]
    crop: NDArray[np.str_]
    tillage: NDArray[np.str_]
    winter_cover: NDArray[np.str_]


def assign_regions(cx: NDArray[np.float64], cy: NDArray[np.float64],
                   bounds: tuple[float, float, float, float], nx: int, ny: int
                   ) -> NDArray[np.str_]:
    """Name the rectangular block (row-major from the north-west) holding each centroid."""
    xmin, ymin, xmax, ymax = bounds
    col = np.clip(((cx - xmin) / (xmax - xmin) * nx).astype(int), 0, nx - 1)
    row = np.clip(((ymax - cy) / (ymax - ymin) * ny).astype(int), 0, ny - 1)
    return np.asarray([f"R{k + 1}" for k in row * nx + col])


def _ensure_each_class(rng: np.random.Generator, labels: NDArray[np.str_],
                       groups: NDArray[np.str_], classes: tuple[str, ...]) -> None:
    """Relabel random fields in place so each class has MIN_PER_REGION fields per group."""
    for g in np.unique(groups):
        for cls in classes:
            members = np.flatnonzero(groups == g)
            missing = MIN_PER_REGION - int((labels[members] == cls).sum())
            if missing <= 0:
                continue
            counts = {c: int((labels[members] == c).sum()) for c in classes}
            donor = max(counts, key=lambda c: counts[c])
            pool = members[labels[members] == donor]
            labels[rng.choice(pool, size=min(missing, pool.size), replace=False)] = cls


def _ensure_share(rng: np.random.Generator, labels: NDArray[np.str_],
                  classes: tuple[str, ...]) -> None:
    """Relabel random fields of the largest class in place until each class has MIN_SHARE."""
    need = int(np.ceil(MIN_SHARE * labels.size))
    for cls in classes:
        missing = need - int((labels == cls).sum())
        if missing <= 0:
            continue
        counts = {c: int((labels == c).sum()) for c in classes}
        pool = np.flatnonzero(labels == max(counts, key=lambda c: counts[c]))
        labels[rng.choice(pool, size=missing, replace=False)] = cls


def assign_labels(rng: np.random.Generator, region: NDArray[np.str_]) -> Labels:
    """Draw crop, tillage and winter cover per field.

    Each region leans toward one tillage system and one cover practice; crop odds
    tilt tillage; a no-till field is more likely to carry a cover crop.

    Parameters
    ----------
    rng
        Source of randomness.
    region
        Region name per field.

    Returns
    -------
    Labels
        Attributes per field.
    """
    n = region.size
    names = sorted(np.unique(region).tolist(), key=lambda r: int(r[1:]))
    crop = rng.choice(np.asarray(CROPS), size=n, p=CROP_SHARE / CROP_SHARE.sum())
    tillage = np.empty(n, dtype=object)
    cover = np.empty(n, dtype=object)
    offset = int(rng.integers(3))
    for k, r in enumerate(names):
        idx = np.flatnonzero(region == r)
        # region k favours tillage class (k + offset) % 3, then the next one
        base = np.roll(np.array([0.48, 0.30, 0.22]), (k + offset) % 3)
        for i in idx:
            odds = base * _CROP_TILLAGE_ODDS.get(str(crop[i]), np.ones(3))
            tillage[i] = TILLAGE_CLASSES[rng.choice(3, p=odds / odds.sum())]
        p_cover = rng.uniform(0.35, 0.65)
        bonus = np.where(tillage[idx] == "no_till", 0.15,
                         np.where(tillage[idx] == "conventional", -0.1, 0.0))
        cover[idx] = np.where(rng.random(idx.size) < p_cover + bonus, "cover_crop", "bare")
    till_arr = tillage.astype(str)
    cover_arr = cover.astype(str)
    for arr, classes in ((till_arr, TILLAGE_CLASSES), (cover_arr, COVER_CLASSES)):
        _ensure_share(rng, arr, classes)
        _ensure_each_class(rng, arr, region, classes)
    return Labels(region=region, crop=crop.astype(str), tillage=till_arr, winter_cover=cover_arr)
