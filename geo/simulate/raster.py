"""Mixed-pixel cover of the 10 m grid and rendering of Sentinel-2 L2A-like band values.

Mixed pixels: the landscape is rasterised on a grid ``supersample`` times finer than
10 m; each 10 m pixel keeps its (up to) three most frequent labels with their area
fractions. Because reflectance mixes linearly with area (the linear mixing model,
e.g. Adams et al. 1986), a pixel's reflectance is the area-weighted sum of its
labels' reflectances; 20 m bands are the 2x2 means of the 10 m surface reflectance,
so edge pixels of both resolutions mix field, road and hedge consistently.

Per pixel and date (in reflectance units, BAND_ORDER):

    surface = sum_m abundance_m * spectrum_m(wetness) + atmospheric residual
    top     = (1 - cloud) * surface * (1 - shadow * (1 - T_shadow))
              + cloud * cloud_spectrum + cirrus * cirrus_spectrum
    DN      = round((top + noise + 0.1) * 10000), clipped to 1..65535, 0 = nodata

Within-field variability multiplies the green, residue and soil abundances by smooth
random fields (15 %, 20 % and 8 % standard deviation, 60-250 m correlation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio.features
from affine import Affine
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from regenmap.geo.simulate.noise import SmoothNoise
from regenmap.geo.simulate.params import (
    BOA_ADD_OFFSET,
    BOA_QUANTIFICATION,
    CIRRUS_SPECTRUM,
    CLOUD_SPECTRUM,
    EM_GV,
    EM_NPV,
    EM_SOIL,
    EM_WATER,
    NOISE_SIGMA,
    SCL_CIRRUS,
    SCL_CLOUD_HIGH,
    SCL_CLOUD_MEDIUM,
    SCL_NODATA,
    SCL_NOT_VEGETATED,
    SCL_SHADOW,
    SCL_UNCLASSIFIED,
    SCL_VEGETATION,
    SCL_WATER,
    SHADOW_TRANSMISSION,
    SPECTRA_DRY,
    SPECTRA_WET,
)
from regenmap.geo.simulate.sky import Sky, outside_swath, sky_layers

TOP_K = 3


@dataclass(frozen=True)
class PixelCover:
    """The up-to-three labels covering each 10 m pixel and their area fractions.

    Attributes
    ----------
    labels
        (rows, cols, TOP_K) label ids (uint16 or int32), most abundant first.
    fractions
        (rows, cols, TOP_K) float32 area fractions, summing to 1 per pixel.
    """

    labels: NDArray[np.integer]
    fractions: NDArray[np.float32]


def top_labels(sub: NDArray[np.integer], k: int = TOP_K
               ) -> tuple[NDArray[np.integer], NDArray[np.int64]]:
    """Most frequent ``k`` values per row and their counts.

    Parameters
    ----------
    sub
        (n, m) integer labels of the m sub-pixels of n pixels.
    k
        How many labels to keep.

    Returns
    -------
    labels, counts
        (n, k) each; unused slots have count 0 (their label repeats the first).
    """
    n, m = sub.shape
    srt = np.sort(sub, axis=1)
    start = np.ones((n, m), dtype=bool)
    start[:, 1:] = srt[:, 1:] != srt[:, :-1]
    pos = np.sort(np.where(start, np.arange(m)[None, :], m), axis=1)
    nxt = np.concatenate([pos[:, 1:], np.full((n, 1), m)], axis=1)
    length = np.where(pos < m, nxt - pos, 0)
    lab = np.take_along_axis(srt, np.minimum(pos, m - 1), axis=1)
    order = np.argsort(-length, axis=1, kind="stable")[:, :k]
    labels = np.take_along_axis(lab, order, axis=1)
    counts = np.take_along_axis(length, order, axis=1)
    if counts.shape[1] < k:  # fewer sub-pixels than k
        pad = k - counts.shape[1]
        labels = np.concatenate([labels, np.repeat(labels[:, :1], pad, axis=1)], axis=1)
        counts = np.concatenate([counts, np.zeros((n, pad), dtype=counts.dtype)], axis=1)
    return labels, counts


def pixel_cover(layers: Sequence[tuple[Sequence[BaseGeometry], Sequence[int]]], *,
                transform: Affine, width: int, height: int, supersample: int, fill: int,
                chunk_rows: int, dtype: type[np.integer]) -> PixelCover:
    """Area fractions of the top labels of every 10 m pixel.

    Parameters
    ----------
    layers
        (geometries, label per geometry) drawn in order; later layers cover earlier ones.
    transform
        Affine transform of the 10 m grid.
    width, height
        10 m grid size.
    supersample
        Sub-pixels per pixel side.
    fill
        Label of the background.
    chunk_rows
        10 m rows rasterised at once (bounds memory).
    dtype
        Integer dtype of the labels.
    """
    s = supersample
    labels = np.empty((height, width, TOP_K), dtype=dtype)
    fractions = np.empty((height, width, TOP_K), dtype=np.float32)
    shapes = [(g, int(v)) for geoms, values in layers for g, v in zip(geoms, values, strict=True)]
    fine = transform * Affine.scale(1.0 / s)
    for r0 in range(0, height, chunk_rows):
        r1 = min(height, r0 + chunk_rows)
        sub = rasterio.features.rasterize(
            shapes, out_shape=((r1 - r0) * s, width * s), fill=fill,
            transform=fine * Affine.translation(0, r0 * s), dtype=np.dtype(dtype).name)
        blocks = sub.reshape(r1 - r0, s, width, s).transpose(0, 2, 1, 3).reshape(-1, s * s)
        lab, cnt = top_labels(blocks)
        frac = cnt / cnt.sum(axis=1, keepdims=True)
        labels[r0:r1] = lab.reshape(r1 - r0, width, TOP_K)
        fractions[r0:r1] = frac.reshape(r1 - r0, width, TOP_K).astype(np.float32)
    return PixelCover(labels=labels, fractions=fractions)


@dataclass(frozen=True)
class Texture:
    """Static within-field variability: multipliers of gv, npv and soil abundance."""

    gv: SmoothNoise
    npv: SmoothNoise
    soil: SmoothNoise


def to_dn(reflectance: NDArray[np.floating]) -> NDArray[np.uint16]:
    """L2A digital numbers from surface reflectance (processing baseline >= 04.00)."""
    dn = np.rint((reflectance + BOA_ADD_OFFSET) * BOA_QUANTIFICATION)
    return np.clip(dn, 1, 65535).astype(np.uint16)


def _block_mean(a: NDArray[np.floating]) -> NDArray[np.float32]:
    """2x2 block mean of (rows, cols, ...) with even rows and cols."""
    r, c = a.shape[:2]
    return np.asarray(a.reshape(r // 2, 2, c // 2, 2, *a.shape[2:]).mean(axis=(1, 3)),
                      dtype=np.float32)


def render_chunk(cover: PixelCover, rows: slice, abundance: NDArray[np.float32], sky: Sky,
                 texture: Texture, xs: NDArray[np.float64], ys: NDArray[np.float64],
                 rng: np.random.Generator) -> dict[str, NDArray[np.uint16]]:
    """Digital numbers of all bands and SCL for one chunk of rows of one acquisition.

    Parameters
    ----------
    cover
        Pixel cover of the whole 10 m grid.
    rows
        10 m rows of the chunk (even start and stop).
    abundance
        (n_labels, n_endmembers) endmember abundances of every label on this date.
    sky
        Atmosphere of this date.
    texture
        Within-field variability fields.
    xs, ys
        Pixel-centre coordinates of the chunk's 10 m columns and rows (metres).
    rng
        Source of sensor noise for this chunk and date.

    Returns
    -------
    dict
        ``B02, B03, B04, B08`` (rows, cols) and ``B11, B12, SCL`` (rows/2, cols/2), uint16.
    """
    lab = cover.labels[rows]
    frac = cover.fractions[rows]
    ab = np.einsum("rck,rckm->rcm", frac, abundance[lab], dtype=np.float32)
    ab[..., EM_GV] *= np.clip(1.0 + 0.15 * texture.gv.on_grid(xs, ys), 0.3, 1.7)
    ab[..., EM_NPV] *= np.clip(1.0 + 0.20 * texture.npv.on_grid(xs, ys), 0.3, 1.7)
    ab[..., EM_SOIL] *= np.clip(1.0 + 0.08 * texture.soil.on_grid(xs, ys), 0.6, 1.4)
    spectra = (1.0 - sky.wetness) * SPECTRA_DRY + sky.wetness * SPECTRA_WET
    surface = ab @ spectra.astype(np.float32) + sky.atmos_residual.astype(np.float32)

    # 20 m grid: nodata beyond the swath edge is decided per 20 m pixel
    xs20 = 0.5 * (xs[0::2] + xs[1::2])
    ys20 = 0.5 * (ys[0::2] + ys[1::2])
    nodata20 = outside_swath(sky, xs20, ys20)
    nodata10 = np.repeat(np.repeat(nodata20, 2, axis=0), 2, axis=1)
    layers = sky_layers(sky, xs, ys)
    cloud = layers.cloud[..., None]
    shade = 1.0 - layers.shadow[..., None] * (1.0 - SHADOW_TRANSMISSION.astype(np.float32))
    top = ((1.0 - cloud) * surface * shade + cloud * CLOUD_SPECTRUM.astype(np.float32)
           + layers.cirrus[..., None] * CIRRUS_SPECTRUM.astype(np.float32))

    out: dict[str, NDArray[np.uint16]] = {}
    noise10 = rng.standard_normal((*top.shape[:2], 4), dtype=np.float32)
    b10 = top[..., :4] + noise10 * NOISE_SIGMA[:4].astype(np.float32)
    for i, band in enumerate(("B02", "B03", "B04", "B08")):
        dn = to_dn(b10[..., i])
        dn[nodata10] = 0
        out[band] = dn
    top20 = _block_mean(top[..., 4:6])
    noise20 = rng.standard_normal(top20.shape, dtype=np.float32)
    b20 = top20 + noise20 * NOISE_SIGMA[4:6].astype(np.float32)
    for i, band in enumerate(("B11", "B12")):
        dn = to_dn(b20[..., i])
        dn[nodata20] = 0
        out[band] = dn
    red20 = _block_mean(b10[..., 2])
    nir20 = _block_mean(b10[..., 3])
    ndvi20 = (nir20 - red20) / np.maximum(nir20 + red20, 1e-6)
    water20 = _block_mean(ab[..., EM_WATER]) > 0.5
    out["SCL"] = scene_classification(
        cloud=_block_mean(layers.cloud), shadow=_block_mean(layers.shadow),
        cirrus=_block_mean(layers.cirrus), ndvi=ndvi20, water=water20, nodata=nodata20,
        cirrus_flag=0.5 * sky.cirrus_strength)
    return out


def scene_classification(*, cloud: NDArray[np.float32], shadow: NDArray[np.float32],
                         cirrus: NDArray[np.float32], ndvi: NDArray[np.floating],
                         water: NDArray[np.bool_], nodata: NDArray[np.bool_],
                         cirrus_flag: float) -> NDArray[np.uint16]:
    """Sen2Cor-like SCL codes at 20 m from the true layers (with Sen2Cor-like omissions).

    Faint cloud edges (opacity < 0.05) and weak shadows (< 0.35) stay unflagged, as
    Sen2Cor misses them; opacity 0.05-0.15 is "unclassified" (7), 0.15-0.6 "medium
    probability" (8), above "high probability" (9).
    """
    scl = np.full(cloud.shape, SCL_NOT_VEGETATED, dtype=np.uint16)
    scl[ndvi > 0.35] = SCL_VEGETATION
    scl[water] = SCL_WATER
    if cirrus_flag > 0:
        scl[cirrus > cirrus_flag] = SCL_CIRRUS
    scl[shadow > 0.35] = SCL_SHADOW
    scl[cloud > 0.05] = SCL_UNCLASSIFIED
    scl[cloud > 0.15] = SCL_CLOUD_MEDIUM
    scl[cloud > 0.6] = SCL_CLOUD_HIGH
    scl[nodata] = SCL_NODATA
    return scl
