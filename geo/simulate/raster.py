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
              (regenmap.geo.sentinel2.reflectance_to_dn)

Within-field variability multiplies the green, residue and soil abundances by smooth
random fields (15 %, 20 % and 8 % standard deviation, 60-250 m correlation).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import rasterio.features
import shapely
from affine import Affine
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from regenmap.errors import ConfigError
from regenmap.geo.sentinel2 import NODATA, reflectance_to_dn
from regenmap.geo.simulate.noise import SmoothNoise
from regenmap.geo.simulate.params import (
    CIRRUS_SPECTRUM,
    CLOUD_SPECTRUM,
    EM_CALC,
    EM_GV,
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
    counts
        (rows, cols, TOP_K) uint8 sub-pixel counts of each label (one byte per slot:
        the large region keeps 25 M pixels in memory).
    n_sub
        Sub-pixels per pixel; ``counts / n_sub`` are area fractions.
    """

    labels: NDArray[np.integer]
    counts: NDArray[np.uint8]
    n_sub: int

    @property
    def fractions(self) -> NDArray[np.float32]:
        """Area fractions (rows, cols, TOP_K), summing to 1 per pixel (after the top 3)."""
        c = self.counts.astype(np.float32)
        return np.asarray(c / c.sum(axis=-1, keepdims=True), dtype=np.float32)


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
    labels = np.repeat(sub[:, :1], k, axis=1)
    counts = np.zeros((n, k), dtype=np.int64)
    counts[:, 0] = m
    mixed = np.flatnonzero((sub != sub[:, :1]).any(axis=1))  # most pixels hold one label
    if mixed.size == 0:
        return labels, counts
    srt = np.sort(sub[mixed], axis=1)
    start = np.ones(srt.shape, dtype=bool)
    start[:, 1:] = srt[:, 1:] != srt[:, :-1]
    pos = np.sort(np.where(start, np.arange(m, dtype=np.int16)[None, :], np.int16(m)), axis=1)
    nxt = np.concatenate([pos[:, 1:], np.full((mixed.size, 1), m, dtype=np.int16)], axis=1)
    length = np.where(pos < m, nxt - pos, 0).astype(np.int16)
    lab = np.take_along_axis(srt, np.minimum(pos, m - 1), axis=1)
    order = np.argsort(-length, axis=1, kind="stable")[:, :k]
    kk = order.shape[1]  # fewer than k when there are fewer sub-pixels
    labels[mixed, :kk] = np.take_along_axis(lab, order, axis=1)
    counts[mixed, :kk] = np.take_along_axis(length, order, axis=1)
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
    counts = np.empty((height, width, TOP_K), dtype=np.uint8)
    if s * s > 255:
        raise ConfigError(f"supersample {s} too large: at most 15 sub-pixels per side")
    geoms = np.asarray([g for gs, _ in layers for g in gs], dtype=object)
    values = np.asarray([int(v) for _, vs in layers for v in vs], dtype=np.int64)
    tree = shapely.STRtree(geoms)
    fine = transform @ Affine.scale(1.0 / s)
    for r0 in range(0, height, chunk_rows):
        r1 = min(height, r0 + chunk_rows)
        top, bottom = transform.f + r0 * transform.e, transform.f + r1 * transform.e
        box = shapely.box(transform.c, bottom, transform.c + width * transform.a, top)
        hit = np.sort(tree.query(box, predicate="intersects"))  # keep the drawing order
        # shapely's C GeoJSON writer is much faster than rasterio's __geo_interface__ walk
        shapes = [(json.loads(t), int(v)) for t, v in
                  zip(shapely.to_geojson(geoms[hit]), values[hit], strict=True)]
        if not shapes:
            sub = np.full(((r1 - r0) * s, width * s), fill, dtype=dtype)
        else:
            sub = rasterio.features.rasterize(
                shapes, out_shape=((r1 - r0) * s, width * s), fill=fill,
                transform=fine @ Affine.translation(0, r0 * s), dtype=np.dtype(dtype).name)
        blocks = sub.reshape(r1 - r0, s, width, s).transpose(0, 2, 1, 3).reshape(-1, s * s)
        lab, cnt = top_labels(blocks)
        labels[r0:r1] = lab.reshape(r1 - r0, width, TOP_K)
        counts[r0:r1] = cnt.reshape(r1 - r0, width, TOP_K)
    return PixelCover(labels=labels, counts=counts, n_sub=s * s)


@dataclass(frozen=True)
class ChunkMix:
    """Compact pixel cover of one chunk of rows, ready for per-date mixing.

    Attributes
    ----------
    main
        (pixels,) int32 label of every pixel's largest share.
    mixed
        (n_mixed,) int32 indices of the pixels holding more than one label.
    labels
        (TOP_K, n_mixed) int32 labels of the mixed pixels.
    fractions
        (TOP_K, n_mixed) float32 area fractions of the mixed pixels.
    """

    main: NDArray[np.int32]
    mixed: NDArray[np.int32]
    labels: NDArray[np.int32]
    fractions: NDArray[np.float32]


def chunk_mix(cover: PixelCover, rows: slice) -> ChunkMix:
    """Extract the :class:`ChunkMix` of the 10 m rows ``rows`` from a pixel cover."""
    lab = cover.labels[rows].reshape(-1, TOP_K)
    cnt = cover.counts[rows].reshape(-1, TOP_K).astype(np.float32)
    mixed = np.flatnonzero(cnt[:, 1] > 0).astype(np.int32)  # most pixels hold one label
    frac = cnt[mixed] / cnt[mixed].sum(axis=1, keepdims=True)
    return ChunkMix(main=lab[:, 0].astype(np.int32), mixed=mixed,
                    labels=np.ascontiguousarray(lab[mixed].T, dtype=np.int32),
                    fractions=np.ascontiguousarray(frac.T, dtype=np.float32))


def mix_abundances(mix: ChunkMix, abundance: NDArray[np.float32]) -> NDArray[np.float32]:
    """Area-weighted endmember abundances of the pixels of one chunk.

    Parameters
    ----------
    mix
        The chunk's pixel cover.
    abundance
        (n_labels, n_endmembers) abundances of every label on one date.

    Returns
    -------
    numpy.ndarray
        float32 (n_endmembers, pixels), band-first so each endmember is contiguous.
    """
    table = np.ascontiguousarray(abundance.T, dtype=np.float32)
    out = np.empty((table.shape[0], mix.main.size), dtype=np.float32)
    for m in range(table.shape[0]):
        np.take(table[m], mix.main, out=out[m])
        acc = table[m].take(mix.labels[0]) * mix.fractions[0]
        for k in range(1, TOP_K):
            acc += table[m].take(mix.labels[k]) * mix.fractions[k]
        out[m, mix.mixed] = acc
    return out


@dataclass(frozen=True)
class Texture:
    """Static within-field variability: multipliers of gv, npv and soil abundance."""

    gv: SmoothNoise
    npv: SmoothNoise
    soil: SmoothNoise

    def multipliers(self, xs: NDArray[np.float64], ys: NDArray[np.float64]
                    ) -> NDArray[np.float32]:
        """Multipliers of the (gv, npv, soil) abundances on the grid, (3, rows, cols)."""
        return np.stack([np.clip(1.0 + 0.15 * self.gv.on_grid(xs, ys), 0.3, 1.7),
                         np.clip(1.0 + 0.20 * self.npv.on_grid(xs, ys), 0.3, 1.7),
                         np.clip(1.0 + 0.08 * self.soil.on_grid(xs, ys), 0.6, 1.4)]
                        ).astype(np.float32)


def _upsample(a: NDArray[Any]) -> NDArray[Any]:
    """Repeat every value of a 20 m array into its 2x2 block of 10 m pixels."""
    return np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)


def _block_mean(a: NDArray[np.floating]) -> NDArray[np.float32]:
    """2x2 block mean of a (rows, cols) array with even rows and cols."""
    s = a[0::2, 0::2] + a[1::2, 0::2]
    s += a[0::2, 1::2]
    s += a[1::2, 1::2]
    return np.asarray(s * 0.25, dtype=np.float32)


def render_chunk(ab: NDArray[np.float32], texture: NDArray[np.floating], sky: Sky,
                 xs: NDArray[np.float64], ys: NDArray[np.float64], rng: np.random.Generator
                 ) -> dict[str, NDArray[np.uint16]]:
    """Digital numbers of all bands and SCL for one chunk of rows of one acquisition.

    Parameters
    ----------
    ab
        (n_endmembers, rows * cols) abundances of the chunk's pixels from
        :func:`mix_abundances` (rows even in number); modified in place.
    texture
        (3, rows, cols) multipliers of the gv, npv and soil abundances.
    sky
        Atmosphere of this date.
    xs, ys
        Pixel-centre coordinates of the chunk's 10 m columns and rows (metres).
    rng
        Source of sensor noise for this chunk and date.

    Returns
    -------
    dict
        ``B02, B03, B04, B08`` (rows, cols) and ``B11, B12, SCL`` (rows/2, cols/2), uint16.
    """
    rows, cols = ys.size, xs.size
    # band-first layout: every per-band array below is contiguous
    tex = texture.reshape(3, -1)
    ab[EM_GV : EM_SOIL + 1] *= tex  # gv, npv, soil are the first three
    ab[EM_CALC] *= tex[2]
    spectra = (1.0 - sky.wetness) * SPECTRA_DRY + sky.wetness * SPECTRA_WET
    # einsum, not BLAS: a (6 x 7) product gains nothing from threads that oversubscribe cores
    top = np.einsum("mb,mp->bp", spectra.astype(np.float32), ab).reshape(6, rows, cols)
    top += sky.atmos_residual.astype(np.float32)[:, None, None]

    # 20 m grid: nodata beyond the swath edge is decided per 20 m pixel
    xs20 = 0.5 * (xs[0::2] + xs[1::2])
    ys20 = 0.5 * (ys[0::2] + ys[1::2])
    nodata20 = outside_swath(sky, xs20, ys20)
    nodata10 = _upsample(nodata20)
    # clouds are smooth at 20 m and less: evaluate them there, repeat them at 10 m
    layers = sky_layers(sky, xs20, ys20)
    if layers.any_cloud:
        cloud = _upsample(layers.cloud)
        shade = 1.0 - _upsample(layers.shadow)[None] * (
            1.0 - SHADOW_TRANSMISSION.astype(np.float32))[:, None, None]
        top *= (1.0 - cloud)[None] * shade
        top += cloud[None] * CLOUD_SPECTRUM.astype(np.float32)[:, None, None]
    if layers.any_cirrus:
        cirrus = _upsample(layers.cirrus)
        top += cirrus[None] * CIRRUS_SPECTRUM.astype(np.float32)[:, None, None]

    out: dict[str, NDArray[np.uint16]] = {}
    sigma = NOISE_SIGMA.astype(np.float32)
    b10 = top[:4] + rng.standard_normal((4, rows, cols), dtype=np.float32) * sigma[:4, None, None]
    for i, band in enumerate(("B02", "B03", "B04", "B08")):
        dn = reflectance_to_dn(b10[i])
        dn[nodata10] = NODATA
        out[band] = dn
    for i, band in enumerate(("B11", "B12")):
        b20 = _block_mean(top[4 + i])
        b20 += rng.standard_normal(b20.shape, dtype=np.float32) * sigma[4 + i]
        dn = reflectance_to_dn(b20)
        dn[nodata20] = NODATA
        out[band] = dn
    red20 = _block_mean(b10[2])
    nir20 = _block_mean(b10[3])
    ndvi20 = (nir20 - red20) / np.maximum(nir20 + red20, 1e-6)
    water20 = _block_mean(ab[EM_WATER].reshape(rows, cols)) > 0.5
    out["SCL"] = scene_classification(
        cloud=layers.cloud, shadow=layers.shadow, cirrus=layers.cirrus, ndvi=ndvi20,
        water=water20, nodata=nodata20, cirrus_flag=0.5 * sky.cirrus_strength)
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
