"""Observations tables with known phenology and practices.

Factories for tests and benchmarks; not used by the pipeline. Class names are
those of the simulator (:mod:`regenmap.geo.simulate.practices`).

Each field has one cash crop with a piecewise-linear NDVI curve (base, linear
rise, plateau, linear decline), so start and end of season at any amplitude
fraction are known exactly. After harvest a field is either left bare or sown
with a cover crop (a second, weaker green-up); its tillage system sets how
much crop residue (NDTI) stays on the soil after harvest. Acquisitions are
irregular, a share of them cloudy (low ``valid_fraction`` and corrupted values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from regenmap.geo.simulate.practices import COVER_CLASSES, TILLAGE_CLASSES
from regenmap.schema import (
    ACQUISITION_ID,
    FIELD_ID,
    N_PIXELS,
    N_VALID,
    SENSOR,
    TILE_ID,
    TIME,
    VALID_FRACTION,
    stat_column,
)

#: Share of crop residue a tillage system leaves on the soil after harvest.
_RESIDUE_LEFT = {"conventional": 0.1, "reduced": 0.55, "no_till": 0.95}


def trapezoid(t: np.ndarray, start: np.ndarray, rise: np.ndarray, plateau: np.ndarray,
              fall: np.ndarray) -> np.ndarray:
    """Piecewise-linear 0-1-0 pulse: 0 before ``start``, 1 on the plateau, 0 after the fall.

    Parameters
    ----------
    t
        ``(n, k)`` or broadcastable times, days.
    start, rise, plateau, fall
        ``(n, 1)`` days: start of the rise and durations of rise, plateau and fall.

    Returns
    -------
    numpy.ndarray
        Values in [0, 1], same shape as the broadcast inputs.
    """
    up = np.clip((t - start) / rise, 0.0, 1.0)
    down = np.clip((start + rise + plateau + fall - t) / fall, 0.0, 1.0)
    return np.minimum(up, down)


def synthetic_observations(n_fields: int, *, n_obs: int = 80, start: str = "2023-01-01",
                           days: float = 365.0, seed: int = 0,
                           indices: Sequence[str] = ("ndvi", "evi", "ndti", "bsi"),
                           cloud_share: float = 0.15, noise: float = 0.02,
                           sensors: Sequence[str] = ("sentinel2_l2a",)
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return an observations table and the truth behind it.

    Parameters
    ----------
    n_fields
        Number of fields (ids ``f0000000``...).
    n_obs
        Acquisitions per field, at random times in ``[start, start + days)``.
    start, days
        Time span of the series.
    seed
        Seed of every random draw.
    indices
        Index columns to write (``<index>_mean`` float32).
    cloud_share
        Share of acquisitions that are cloudy: ``valid_fraction`` below 0.5 and values
        pulled toward a cloud signature.
    noise
        Standard deviation of the Gaussian noise added to every index.
    sensors
        Sensor names, drawn at random per acquisition.

    Returns
    -------
    observations, truth
        The table, and per field: ``field_id``, ``tillage``, ``winter_cover``,
        ``sos``, ``eos`` (days since ``start`` at 20 % of the amplitude),
        ``pos_start``, ``pos_end`` (the plateau), ``peak``, ``base``.
    """
    rng = np.random.default_rng(seed)
    n, k = n_fields, n_obs
    sos0 = rng.uniform(60, 140, (n, 1))
    rise = rng.uniform(35, 55, (n, 1))
    plateau = rng.uniform(10, 30, (n, 1))
    fall = rng.uniform(25, 40, (n, 1))
    base = rng.uniform(0.12, 0.18, (n, 1))
    peak = rng.uniform(0.75, 0.9, (n, 1))
    till = rng.integers(0, len(TILLAGE_CLASSES), n)
    cover = rng.integers(0, len(COVER_CLASSES), n)
    harvest = sos0 + rise + plateau + fall

    t = np.sort(rng.uniform(0, days, (n, k)), axis=1)
    crop = trapezoid(t, sos0, rise, plateau, fall)
    c_start = harvest + rng.uniform(10, 25, (n, 1))
    c_peak = rng.uniform(0.45, 0.6, (n, 1))
    sown = cover[:, None] == COVER_CLASSES.index("cover_crop")
    green_cover = trapezoid(t, c_start, np.full((n, 1), 45.0), np.full((n, 1), 400.0),
                            np.full((n, 1), 10.0)) * sown
    ndvi = base + (peak - base) * crop + (c_peak - base) * green_cover * (crop == 0)
    g = np.clip((ndvi - 0.15) / 0.7, 0.0, 1.0)

    # Soil surface after harvest: residue (NDTI ~0.14) until tillage lowers it.
    till_day = harvest + rng.uniform(5, 30, (n, 1))
    residue_left = np.array([_RESIDUE_LEFT[c] for c in TILLAGE_CLASSES])[till][:, None]
    after_till = t >= till_day
    residue = np.where(t < harvest, 0.6, np.where(after_till, residue_left, 1.0))
    soil_ndti = 0.02 + 0.12 * residue
    soil_bsi = 0.18 - 0.14 * residue
    ndti = g * 0.12 + (1 - g) * soil_ndti
    bsi = g * -0.35 + (1 - g) * soil_bsi
    evi = 2.5 * (ndvi - 0.08) * 0.9

    cloudy = rng.random((n, k)) < cloud_share
    vf = np.where(cloudy, rng.uniform(0.0, 0.5, (n, k)), rng.uniform(0.8, 1.0, (n, k)))
    data = {"ndvi": ndvi, "evi": evi, "ndti": ndti, "bsi": bsi}
    ids = np.char.add("f", np.char.zfill(np.arange(n).astype(str), 7))
    t0 = np.datetime64(pd.Timestamp(start).value, "ns")
    times = t0 + (t * 86_400e9).astype("timedelta64[ns]")
    cols: dict[str, object] = {
        FIELD_ID: np.repeat(ids, k).astype(object),
        TIME: times.ravel(),
        SENSOR: np.asarray(sensors, dtype=object)[rng.integers(0, len(sensors), n * k)],
        ACQUISITION_ID: np.char.add("a", np.round(t.ravel()).astype(np.int64).astype(str)),
        TILE_ID: "t0",
        N_PIXELS: np.full(n * k, 100, dtype=np.int32),
        N_VALID: np.round(vf.ravel() * 100).astype(np.int32),
        VALID_FRACTION: vf.ravel().astype(np.float32),
    }
    for name in indices:
        v = data[name] + rng.normal(0.0, noise, (n, k))
        v = np.where(cloudy, 0.5 * v + 0.1, v)
        cols[stat_column(name, "mean")] = v.ravel().astype(np.float32)
    obs = pd.DataFrame(cols)
    truth = pd.DataFrame({
        FIELD_ID: ids.astype(str), "tillage": np.asarray(TILLAGE_CLASSES)[till],
        "winter_cover": np.asarray(COVER_CLASSES)[cover],
        "sos": (sos0 + 0.2 * rise)[:, 0], "eos": (harvest - 0.2 * fall)[:, 0],
        "pos_start": (sos0 + rise)[:, 0], "pos_end": (sos0 + rise + plateau)[:, 0],
        "peak": peak[:, 0], "base": base[:, 0], "harvest": harvest[:, 0],
    })
    return obs, truth
