"""Clouds, cloud shadows, thin cirrus, swath-edge nodata and atmosphere per acquisition.

* Cloud cover per acquisition is drawn from a mixture (clear, few clouds, broken,
  overcast) that is cloudier in winter, as in multi-year Sentinel-2 cloud statistics
  over western Europe (Sudmanns et al. 2020 report 60-70 % mean cloud cover).
* Clouds are spatially coherent: a multi-octave smooth noise field (coarsest 3 km)
  thresholded at the quantile that gives the drawn cover; opacity rises over a soft
  edge, so thin cloud edges exist and the faintest ones are not flagged in SCL (as
  Sen2Cor misses them).
* Shadows are the cloud opacity field displaced by ``h * tan(solar zenith)`` toward the
  anti-solar azimuth (sun in the south-south-east at the ~10:50 UTC overpass, so
  shadows fall north-north-west), with cloud-base height 0.5-2 km.
* Thin cirrus (on ~20 % of dates) adds a flat reflectance and is flagged SCL 10 where
  thick enough.
* On ~12 % of dates the region lies at the edge of the orbit swath: pixels beyond a
  straight line tilted ~12 degrees from north (the descending ground track) are
  nodata (DN 0, SCL 0).
* A per-acquisition additive residual of the atmospheric correction and a surface
  wetness index (see :mod:`regenmap.geo.simulate.phenology`) vary from date to date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from regenmap.geo.simulate.noise import SmoothNoise
from regenmap.geo.simulate.params import ATMOS_SIGMA, LATITUDE_DEG

_MAX_SHADOW_M = 5000.0
_EDGE_SOFTNESS = 0.5  # noise standard deviations over which opacity rises to 1


@dataclass(frozen=True)
class Sky:
    """Atmospheric state of one acquisition over the whole region.

    Attributes
    ----------
    cloud_cover
        Target fraction of the region under cloud (0-1).
    clouds
        Smooth noise whose upper tail is the cloud field.
    threshold
        Noise value above which a pixel is cloudy (inf when clear).
    shadow_shift_m
        (dx, dy) from a cloud to its shadow (metres; +y is north).
    cirrus
        Smooth noise of the cirrus layer, or None.
    cirrus_strength
        Maximum cirrus opacity (0-1).
    swath_edge
        (x, y, side) of the swath edge line: a point on it and which side (+1 east, -1
        west) is outside the swath; None when the region is fully imaged.
    atmos_residual
        Additive reflectance error per band (6,), in BAND_ORDER.
    wetness
        Surface wetness 0-1.
    """

    cloud_cover: float
    clouds: SmoothNoise
    threshold: float
    shadow_shift_m: tuple[float, float]
    cirrus: SmoothNoise | None
    cirrus_strength: float
    swath_edge: tuple[float, float, float] | None
    atmos_residual: NDArray[np.float64]
    wetness: float


def solar_zenith_deg(doy: float, latitude_deg: float = LATITUDE_DEG) -> float:
    """Approximate solar zenith (degrees) near local noon on day of year ``doy``."""
    declination = 23.44 * np.sin(2 * np.pi * (doy - 81.0) / 365.0)
    return float(latitude_deg - declination + 3.0)  # +3: overpass ~1 h before solar noon


def _draw_cover(rng: np.random.Generator, doy: float) -> float:
    summer = 0.5 - 0.5 * np.cos(2 * np.pi * (doy - 15.0) / 365.0)  # 0 mid-Jan, 1 mid-July
    p_clear = 0.22 + 0.2 * summer
    u = rng.random()
    if u < p_clear:
        return 0.0
    if u < p_clear + 0.3:
        return float(rng.uniform(0.01, 0.15))
    if u < p_clear + 0.55:
        return float(rng.uniform(0.15, 0.55))
    return float(rng.uniform(0.6, 1.0))


def draw_sky(rng: np.random.Generator, *, doy: float, wetness: float,
             bounds: tuple[float, float, float, float]) -> Sky:
    """Draw the atmosphere of one acquisition.

    Parameters
    ----------
    rng
        Source of randomness for this acquisition only.
    doy
        Day of year of the acquisition.
    wetness
        Surface wetness 0-1 of this date.
    bounds
        (xmin, ymin, xmax, ymax) of the region, metres.
    """
    xmin, ymin, xmax, ymax = bounds
    w, h = xmax - xmin, ymax - ymin
    cover = _draw_cover(rng, doy)
    clouds = SmoothNoise.create(rng, x0=xmin, y0=ymax, width_m=w, height_m=h, scale_m=3000.0,
                                octaves=4, persistence=0.55, margin_m=_MAX_SHADOW_M)
    if cover <= 0.0:
        threshold = float("inf")
    else:
        xs = np.linspace(xmin, xmax, 96)
        ys = np.linspace(ymax, ymin, 96)
        sample = clouds.on_grid(xs, ys)
        threshold = float(np.quantile(sample, 1.0 - cover)) - 0.3 * _EDGE_SOFTNESS
    height = rng.uniform(500.0, 2000.0)
    length = min(height * np.tan(np.radians(solar_zenith_deg(doy))), _MAX_SHADOW_M)
    azimuth = np.radians(340.0 + rng.normal(0.0, 5.0))
    shift = (float(length * np.sin(azimuth)), float(length * np.cos(azimuth)))
    cirrus = None
    strength = 0.0
    if rng.random() < 0.2:
        cirrus = SmoothNoise.create(rng, x0=xmin, y0=ymax, width_m=w, height_m=h,
                                    scale_m=5000.0, octaves=2)
        strength = float(rng.uniform(0.3, 1.0))
    edge = None
    if rng.random() < 0.12:
        edge = (float(xmin + w * rng.uniform(0.3, 0.8)), float(ymin + h * 0.5),
                float(rng.choice([-1.0, 1.0])))
    residual = rng.normal(0.0, 1.0, ATMOS_SIGMA.size) * ATMOS_SIGMA
    return Sky(cloud_cover=cover, clouds=clouds, threshold=threshold, shadow_shift_m=shift,
               cirrus=cirrus, cirrus_strength=strength, swath_edge=edge,
               atmos_residual=residual, wetness=wetness)


@dataclass(frozen=True)
class SkyLayers:
    """Per-pixel atmospheric layers of one chunk, all float32 (rows, cols) in 0-1."""

    cloud: NDArray[np.float32]
    shadow: NDArray[np.float32]
    cirrus: NDArray[np.float32]
    any_cloud: bool
    any_cirrus: bool


def _opacity(noise: NDArray[np.float32], threshold: float) -> NDArray[np.float32]:
    x = np.clip((noise - threshold) / _EDGE_SOFTNESS, 0.0, 1.0)
    return np.asarray(x**0.8, dtype=np.float32)


def sky_layers(sky: Sky, xs: NDArray[np.float64], ys: NDArray[np.float64]) -> SkyLayers:
    """Cloud opacity, shadow strength and cirrus opacity on the grid ``ys x xs``.

    Parameters
    ----------
    sky
        The acquisition's atmosphere.
    xs, ys
        Pixel-centre easting (ncols,) and northing (nrows,), metres.
    """
    shape = (ys.size, xs.size)
    if np.isfinite(sky.threshold):
        cloud = _opacity(sky.clouds.on_grid(xs, ys), sky.threshold)
        dx, dy = sky.shadow_shift_m
        cast = _opacity(sky.clouds.on_grid(xs - dx, ys - dy), sky.threshold)
        shadow = cast * (1.0 - cloud)
    else:
        cloud = np.zeros(shape, dtype=np.float32)
        shadow = np.zeros(shape, dtype=np.float32)
    if sky.cirrus is not None:
        ci = np.clip(sky.cirrus.on_grid(xs, ys) * 0.5 + 0.3, 0.0, 1.0) * sky.cirrus_strength
        cirrus = ci.astype(np.float32)
    else:
        cirrus = np.zeros(shape, dtype=np.float32)
    return SkyLayers(cloud=cloud, shadow=shadow, cirrus=cirrus,
                     any_cloud=bool(cloud.any() or shadow.any()), any_cirrus=bool(cirrus.any()))


def outside_swath(sky: Sky, xs: NDArray[np.float64], ys: NDArray[np.float64]
                  ) -> NDArray[np.bool_]:
    """Flag (True) where the grid ``ys x xs`` lies beyond the swath edge (nodata)."""
    if sky.swath_edge is None:
        return np.zeros((ys.size, xs.size), dtype=bool)
    x0, y0, side = sky.swath_edge
    tilt = np.radians(12.0)
    # signed distance to the line through (x0, y0) heading 12 degrees east of north
    s = (xs[None, :] - x0) * np.cos(tilt) - (ys[:, None] - y0) * np.sin(tilt)
    return np.asarray(side * s > 0.0)
