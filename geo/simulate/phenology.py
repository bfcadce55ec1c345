"""Crop calendars and practices turned into cover fractions per field and date.

Every field surface is a linear mixture of three endmembers: green vegetation (gv),
non-photosynthetic vegetation (npv: standing dead canopy and crop residue on the
ground) and bare soil. Their fractions follow the field's main crop and practices
through one calendar year (northern-hemisphere temperate, northern France):

* winter crops (wheat, barley, rapeseed) are green in January, green up in March-April,
  senesce in June and are harvested in July; spring crops (spring barley, maize, sugar
  beet, potato) are sown between March and May, peak in summer and are harvested from
  August (barley) to November (beet). Dates vary by field (a few days to weeks).
* harvest leaves residue: cereals 60-90 % ground cover (30 % of cereal fields have
  their straw baled: less), maize 55-85 %, rapeseed 50-80 %, beet and potato 5-25 %.
* tillage buries residue. Retention per pass follows the USDA/CTIC conservation
  tillage definitions (conservation tillage keeps at least 30 % residue cover) and
  measured burial fractions (Shelton et al., NebGuide G95-1133; USDA-NRCS RUSLE2
  operation database): mouldboard plough 85-97 % buried, chisel/disc 35-60 %,
  direct drilling 3-15 %. Conventional fields get a stubble pass then a plough (a
  fifth of them plough only in spring, after the simulated year), reduced fields one
  shallow pass, no-till fields none (burndown herbicide or direct drilling only).
* residue decays by about 0.25 % of its cover per day (half-life ~9 months in a cool
  temperate climate; Steiner et al. 1999 report 0.1-0.5 %/day for cereal residue).
* cover crops (mustard, phacelia mixes) are sown 1-3 weeks after harvest and grow on
  thermal time above 4 degC with a climatological temperature curve (full cover after
  ~450 degree-days), so covers sown after early October stay thin. Spring-crop fields
  that had a cover the previous autumn carry it until it is terminated in Jan-March.
* the label is the practice after this year's harvest; last autumn's practice (seen
  on spring-crop fields until sowing) agrees on 70 % of cover-crop fields, and 20 % of
  bare fields had a cover last autumn; cover crops fail (10-35 % cover) on a fifth of
  fields, and a third of last autumn's covers were frost-killed in January-February;
  on bare fields weeds and
  volunteers germinate after harvest or after the stubble pass and live until the
  plough, a herbicide or the next sowing (dense volunteer cereal, 20-50 % cover, on 30 %
  of them; all winter where the plough waits for spring), and half of the
  early-harvested bare fields are sown to the next winter cereal in October.

Sources for the calendars: Arvalis / ITB crop calendars for northern France and
Belgium; Sentinel-2 NDVI profiles in Veloso et al. 2017 (Remote Sensing of
Environment 199, 415-426).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from regenmap.geo.simulate.params import (
    EM_ASPHALT,
    EM_CALC,
    EM_GRAVEL,
    EM_GV,
    EM_NPV,
    EM_SOIL,
    EM_TREE,
    EM_WATER,
    ENDMEMBERS,
    FIRST_FIELD_LABEL,
    LABEL_GRASS,
    LABEL_HEDGE,
    LABEL_ROAD,
    LABEL_TRACK,
    LABEL_WATER,
)

Range = tuple[float, float]


@dataclass(frozen=True)
class CropCalendar:
    """Day-of-year ranges (uniform draws per field) of one crop's season.

    Attributes
    ----------
    winter
        Sown in the previous autumn (green in January).
    winter_gv
        Green cover in January (winter crops only).
    greenup
        Mid-point of green-up (emergence + canopy closure for spring crops).
    peak_gv
        Maximum green cover.
    senescence
        Mid-point of senescence (green to dry).
    dry_ratio
        Standing dead canopy at harvest relative to peak green cover.
    harvest
        Harvest day.
    residue
        Residue ground cover left by harvest.
    """

    winter: bool
    winter_gv: Range
    greenup: Range
    peak_gv: Range
    senescence: Range
    dry_ratio: Range
    harvest: Range
    residue: Range


CALENDARS: Final[dict[str, CropCalendar]] = {
    "winter_wheat": CropCalendar(True, (0.2, 0.4), (80, 100), (0.85, 0.97), (170, 182),
                                 (0.75, 0.9), (196, 215), (0.6, 0.9)),
    "winter_barley": CropCalendar(True, (0.25, 0.45), (72, 92), (0.8, 0.95), (158, 170),
                                  (0.7, 0.85), (182, 196), (0.6, 0.9)),
    "rapeseed": CropCalendar(True, (0.35, 0.55), (65, 85), (0.85, 0.97), (158, 170),
                             (0.7, 0.85), (186, 200), (0.5, 0.8)),
    "spring_barley": CropCalendar(False, (0.0, 0.0), (120, 135), (0.8, 0.93), (180, 192),
                                  (0.7, 0.85), (208, 225), (0.6, 0.9)),
    "maize": CropCalendar(False, (0.0, 0.0), (160, 180), (0.85, 0.97), (245, 262),
                          (0.65, 0.8), (270, 300), (0.55, 0.85)),
    "sugar_beet": CropCalendar(False, (0.0, 0.0), (145, 160), (0.85, 0.97), (330, 340),
                               (0.1, 0.2), (275, 320), (0.1, 0.25)),
    "potato": CropCalendar(False, (0.0, 0.0), (150, 165), (0.8, 0.93), (215, 228),
                           (0.3, 0.45), (240, 265), (0.05, 0.15)),
}
#: Spring sowing / planting day relative to green-up mid-point (days before).
_SOW_BEFORE_GREENUP: Final = (35.0, 50.0)

RESIDUE_DECAY_PER_DAY: Final = 0.0025
COVER_BASE_TEMP_C: Final = 4.0
COVER_GDD_MID: Final = 300.0
COVER_GDD_WIDTH: Final = 70.0


def air_temperature_c(doy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Climatological daily mean air temperature (degC) in northern France.

    A sinusoid with a 3.0 degC January and an 18.6 degC July mean (Météo-France
    1991-2020 normals for Reims / Saint-Quentin, rounded).
    """
    return 10.8 + 7.8 * np.sin(2 * np.pi * (doy - 110.0) / 365.0)


def _logistic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -50, 50)))


def _u(rng: np.random.Generator, r: Range, n: int) -> NDArray[np.float64]:
    return rng.uniform(r[0], r[1], n)


@dataclass(frozen=True)
class FieldSeason:
    """Drawn calendar and practice events of every field (day of year, float).

    NaN means the event does not happen within the simulated year.
    """

    greenup: NDArray[np.float64]
    senescence: NDArray[np.float64]
    harvest: NDArray[np.float64]
    sowing: NDArray[np.float64]
    first_pass: NDArray[np.float64]
    plough: NDArray[np.float64]
    cover_sowing: NDArray[np.float64]
    next_sowing: NDArray[np.float64]
    residue_at_harvest: NDArray[np.float64]

    def as_columns(self) -> dict[str, NDArray[np.float64]]:
        """Return the events as named columns (for the ground-truth table)."""
        return {f"{k}_doy" if k != "residue_at_harvest" else k: v
                for k, v in self.__dict__.items()}


def _practice_pick(tillage: NDArray[np.str_], values: dict[str, NDArray[np.float64]]
                   ) -> NDArray[np.float64]:
    out = np.full(tillage.size, np.nan)
    for name, v in values.items():
        out = np.where(tillage == name, v, out)
    return out


def field_fractions(rng: np.random.Generator, doy: NDArray[np.float64],
                    crop: NDArray[np.str_], tillage: NDArray[np.str_],
                    winter_cover: NDArray[np.str_]
                    ) -> tuple[NDArray[np.float32], FieldSeason]:
    """Green vegetation, residue and soil cover of every field at every date.

    Parameters
    ----------
    rng
        Source of the per-field calendar draws.
    doy
        Acquisition day of year (float, 1-365), shape (n_dates,).
    crop, tillage, winter_cover
        Per-field labels, shape (n_fields,).

    Returns
    -------
    fractions
        float32 (n_dates, n_fields, 3): gv, npv, soil cover fractions, summing to 1.
    season
        The drawn calendar and event days per field.
    """
    n = crop.size
    cal_keys = ("winter_gv", "greenup", "peak_gv", "senescence", "dry_ratio", "harvest",
                "residue")
    p = {k: np.zeros(n) for k in cal_keys}
    winter = np.zeros(n, dtype=bool)
    for name, cal in CALENDARS.items():
        sel = crop == name
        k = int(sel.sum())
        winter[sel] = cal.winter
        for key in cal_keys:
            p[key][sel] = _u(rng, getattr(cal, key), k)
    baled = (np.isin(crop, ["winter_wheat", "winter_barley", "spring_barley"])
             & (rng.random(n) < 0.3))
    p["residue"] = np.where(baled, 0.6 * p["residue"], p["residue"])
    sowing = np.where(winter, np.nan, p["greenup"] - _u(rng, _SOW_BEFORE_GREENUP, n))
    cover = winter_cover == "cover_crop"
    conv, red = (tillage == "conventional"), (tillage == "reduced")

    # --- state on 1 January: last year's residue after last autumn's operations
    r = _practice_pick(tillage, {"conventional": _u(rng, (0.02, 0.1), n),
                                 "reduced": _u(rng, (0.2, 0.4), n),
                                 "no_till": _u(rng, (0.4, 0.7), n)})
    # last autumn's cover on spring-crop fields, terminated before sowing
    # the label is this year's post-harvest practice; last autumn's usually agrees
    prev_had_cover = ~winter & np.where(cover, rng.random(n) < 0.7, rng.random(n) < 0.2)
    prev_cover = np.where(prev_had_cover, _u(rng, (0.15, 0.65), n), 0.0)
    # a third of last autumn's covers were frost-killed (mustard) in January-February
    frost_killed = rng.random(n) < 0.33
    term = np.where(prev_cover > 0, np.minimum(np.where(frost_killed, _u(rng, (10.0, 45.0), n),
                                                        _u(rng, (25.0, 80.0), n)), sowing - 10.0),
                    np.nan)
    seedbed = _practice_pick(tillage, {"conventional": _u(rng, (0.2, 0.5), n),
                                       "reduced": _u(rng, (0.5, 0.75), n),
                                       "no_till": _u(rng, (0.85, 0.95), n)})

    # --- after harvest
    harvest = p["harvest"]
    first_pass = harvest + np.where(cover, _u(rng, (3, 15), n), _u(rng, (5, 35), n))
    first_keep = np.where(conv, np.where(cover, _u(rng, (0.25, 0.45), n), _u(rng, (0.45, 0.7), n)),
                          np.where(red, _u(rng, (0.4, 0.75), n), _u(rng, (0.85, 0.97), n)))
    # no-till: the "pass" is a direct drill (cover) or a burndown spray (bare)
    # a fifth of conventional farms plough in spring, after the simulated year
    autumn_plough = conv & ~cover & (rng.random(n) >= 0.2)
    plough = np.where(autumn_plough, harvest + _u(rng, (25, 70), n), np.nan)
    plough_keep = _u(rng, (0.03, 0.15), n)
    cover_sowing = np.where(cover, first_pass + _u(rng, (1, 7), n), np.nan)
    # a fifth of cover crops establish poorly (dry seedbed, slugs)
    cover_max = np.where(rng.random(n) < 0.2, _u(rng, (0.1, 0.35), n), _u(rng, (0.5, 0.9), n))
    next_crop = ~cover & (harvest < 250) & (rng.random(n) < 0.5)
    next_sowing = np.where(next_crop, _u(rng, (275, 305), n), np.nan)
    next_keep = _practice_pick(tillage, {"conventional": _u(rng, (0.5, 0.8), n),
                                         "reduced": _u(rng, (0.6, 0.85), n),
                                         "no_till": _u(rng, (0.85, 0.95), n)})
    next_max = _u(rng, (0.12, 0.3), n)
    # volunteers and weeds on bare fields; a stubble pass makes them germinate ("false
    # seedbed"); dense volunteer cereal on 30 % of bare fields
    weed_max = np.where(cover, 0.0, np.where(rng.random(n) < 0.3, _u(rng, (0.2, 0.5), n),
                                             _u(rng, (0.02, 0.15), n)))
    weed_start = np.where(conv | red, first_pass, harvest)
    # killed by the plough (conventional; volunteers stay all winter before a spring
    # plough), a herbicide (reduced) or a burndown spray (no-till), or the next sowing
    weed_end = np.where(conv, plough, np.where(red, first_pass + _u(rng, (30, 70), n),
                                               harvest + _u(rng, (40, 80), n)))
    weed_end = np.fmin(weed_end, next_sowing)

    # --- residue ground cover through the year, event by event
    # (day, kept fraction, added cover, harvest adds crop residue on the free ground)
    events: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], bool]] = [
        (term, np.ones(n), 0.6 * prev_cover, False),  # dead cover becomes residue
        (sowing, seedbed, np.zeros(n), False),
        (harvest, np.ones(n), np.zeros(n), True),
        (first_pass, first_keep, np.zeros(n), False),
        (plough, plough_keep, np.zeros(n), False),
        (next_sowing, next_keep, np.zeros(n), False),
    ]
    n_dates = doy.size
    residue = np.empty((n_dates, n))
    t_prev = 0.0
    for i, t in enumerate(doy):
        r = r * np.exp(-RESIDUE_DECAY_PER_DAY * (t - t_prev))
        for day, keep, add, is_harvest in events:
            hit = (day > t_prev) & (day <= t)
            new = r + p["residue"] * (1 - r) if is_harvest else r * keep + add
            r = np.where(hit, np.minimum(0.95, new), r)
        residue[i] = r
        t_prev = float(t)

    t = doy[:, None]
    growing = t < harvest[None, :]
    up = _logistic((t - p["greenup"]) / 9.0)
    down = _logistic((t - p["senescence"]) / 7.0)
    base = np.where(winter, p["winter_gv"], 0.0)
    gv_crop = (base + (p["peak_gv"] - base) * up) * (1.0 - down) * growing
    dry = p["dry_ratio"] * p["peak_gv"] * down * np.maximum(up, winter) * growing
    gv_prev = prev_cover * np.where(np.isnan(term), 0.0, 1.0 - _logistic((t - term) / 4.0))
    # cover crop on thermal time since sowing
    gdd = _degree_days(doy, cover_sowing)
    gv_cover = cover_max * _logistic((gdd - COVER_GDD_MID) / COVER_GDD_WIDTH)
    gv_cover *= 1.0 - 0.25 * _logistic((t - 345.0) / 7.0)  # December frost
    gv_next = np.where(np.isnan(next_sowing), 0.0,
                       next_max * _logistic((t - next_sowing - 30.0) / 10.0))
    weeds = (weed_max * _logistic((t - weed_start - 25.0) / 6.0) * (t >= weed_start)
             * ~(t >= weed_end))
    gv = np.clip(gv_crop + gv_prev + gv_cover + gv_next + weeds, 0.0, 0.97)
    dry = np.minimum(dry, 1.0 - gv)
    ground = 1.0 - gv - dry
    frac = np.stack([gv, dry + residue * ground, (1.0 - residue) * ground], axis=-1)
    season = FieldSeason(greenup=p["greenup"], senescence=p["senescence"], harvest=harvest,
                         sowing=sowing, first_pass=first_pass, plough=plough,
                         cover_sowing=cover_sowing, next_sowing=next_sowing,
                         residue_at_harvest=p["residue"])
    return frac.astype(np.float32), season


def _degree_days(doy: NDArray[np.float64], start: NDArray[np.float64]) -> NDArray[np.float64]:
    """Growing degree-days above COVER_BASE_TEMP_C from ``start`` to each date, (dates, fields)."""
    days = np.arange(0.0, 367.0)
    cum = np.concatenate([[0.0], np.cumsum(np.maximum(air_temperature_c(days) - COVER_BASE_TEMP_C,
                                                      0.0))])
    at = np.interp(doy, np.arange(cum.size) - 0.5, cum)
    s = np.interp(np.nan_to_num(start, nan=400.0), np.arange(cum.size) - 0.5, cum)
    out = at[:, None] - s[None, :]
    return np.where(np.isnan(start)[None, :], 0.0, np.maximum(out, 0.0))


def moisture_index(rng: np.random.Generator, doy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Surface wetness per acquisition, 0 (dry) to 1 (wet), wetter in winter, (n_dates,)."""
    seasonal = 0.45 + 0.25 * np.cos(2 * np.pi * (doy - 15.0) / 365.0)
    return np.clip(seasonal + rng.normal(0.0, 0.18, doy.size), 0.0, 1.0)


def abundance_table(field_frac: NDArray[np.float32], doy: NDArray[np.float64],
                    soil_brightness: NDArray[np.float64], calcareous: NDArray[np.float64]
                    ) -> NDArray[np.float32]:
    """Endmember abundances of every label (non-field surfaces, then fields) per date.

    Parameters
    ----------
    field_frac
        (n_dates, n_fields, 3) gv, npv, soil fractions from :func:`field_fractions`.
    doy
        (n_dates,) day of year.
    soil_brightness
        (n_fields,) multiplier of the soil endmembers (soil type variation), about 1.
    calcareous
        (n_fields,) share (0-1) of the calcareous soil in each field's soil.

    Returns
    -------
    numpy.ndarray
        float32 (n_dates, FIRST_FIELD_LABEL + n_fields, len(ENDMEMBERS)).
    """
    n_dates, n_fields, _ = field_frac.shape
    out = np.zeros((n_dates, FIRST_FIELD_LABEL + n_fields, len(ENDMEMBERS)), dtype=np.float32)
    season = np.sin(np.pi * np.clip((doy - 60.0) / 240.0, 0.0, 1.0))  # 0 in winter, 1 in June
    leaf = _logistic((doy - 118.0) / 6.0) * (1.0 - _logistic((doy - 300.0) / 8.0))
    out[:, LABEL_GRASS, EM_GV] = 0.45 + 0.4 * season
    out[:, LABEL_GRASS, EM_NPV] = 0.35 - 0.25 * season
    out[:, LABEL_GRASS, EM_SOIL] = 1.0 - out[:, LABEL_GRASS, EM_GV] - out[:, LABEL_GRASS, EM_NPV]
    out[:, LABEL_HEDGE, EM_TREE] = 0.15 + 0.8 * leaf
    out[:, LABEL_HEDGE, EM_NPV] = 0.6 * (1.0 - leaf)
    out[:, LABEL_HEDGE, EM_GV] = 0.1 * (1.0 - leaf)
    out[:, LABEL_HEDGE, EM_SOIL] = 1.0 - out[:, LABEL_HEDGE, [EM_TREE, EM_NPV, EM_GV]].sum(axis=1)
    out[:, LABEL_ROAD, EM_ASPHALT] = 1.0
    out[:, LABEL_TRACK, EM_GRAVEL] = 0.8
    out[:, LABEL_TRACK, EM_SOIL] = 0.2 - 0.1 * season
    out[:, LABEL_TRACK, EM_GV] = 0.1 * season
    out[:, LABEL_WATER, EM_WATER] = 0.95
    out[:, LABEL_WATER, EM_GV] = 0.05 * season
    out[:, FIRST_FIELD_LABEL:, EM_GV] = field_frac[..., 0]
    out[:, FIRST_FIELD_LABEL:, EM_NPV] = field_frac[..., 1]
    soil = field_frac[..., 2] * soil_brightness[None, :]
    out[:, FIRST_FIELD_LABEL:, EM_SOIL] = soil * (1.0 - calcareous[None, :])
    out[:, FIRST_FIELD_LABEL:, EM_CALC] = soil * calcareous[None, :]
    return out
