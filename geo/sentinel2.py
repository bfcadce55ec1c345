"""Sentinel-2 L2A file conventions: band file names, native resolutions, DN encoding.

The one place that says how regenmap *writes* Sentinel-2 Level-2A band files: the
simulator (:mod:`regenmap.geo.simulate`) and the test writers
(:mod:`regenmap.geo.testing`) both use it. Reading is described by the sensor
profile ``configs/sensors/sentinel2_l2a.yaml`` (file-name pattern, scale, offset
rules, nodata); a test checks that the two agree.

Encoding (ESA, *Sentinel-2 Products Specification Document*, and the processing
baseline 04.00 note of January 2022): surface reflectance is stored as uint16

    DN = round(reflectance * BOA_QUANTIFICATION_VALUE - BOA_ADD_OFFSET)
       = round((reflectance + 0.1) * 10000)

with ``DN = 0`` reserved for nodata. A valid reflectance never encodes to the
nodata value: DNs are clipped to ``1..65535`` (reflectance at or below -0.1
encodes to 1), and only NaN (no value) encodes to 0.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: DN added to every band from processing baseline 04.00 (25 January 2022) on.
BOA_ADD_OFFSET: Final = -1000
#: DN per unit of reflectance.
BOA_QUANTIFICATION_VALUE: Final = 10000
#: DN marking a pixel without value, in every band (and code 0 of SCL).
NODATA: Final = 0
#: Smallest and largest DN of a valid pixel.
DN_MIN: Final = 1
DN_MAX: Final = 65535
#: Native resolution (metres) of each L2A band and of the scene classification (SCL).
RESOLUTION_M: Final = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20,
                       "B07": 20, "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
                       "SCL": 20}
#: Format of the sensing time in file names, e.g. ``20230412T104629``.
TIME_FORMAT: Final = "%Y%m%dT%H%M%S"

_TIME_RE: Final = re.compile(r"\d{8}T\d{6}")
_TILE_RE: Final = re.compile(r"T?(\d{2}[A-Z]{3})")
# reflectance offset and scale as Python floats: float32 input stays float32 (NumPy >= 2)
_REFLECTANCE_OFFSET: Final = -BOA_ADD_OFFSET / BOA_QUANTIFICATION_VALUE  # 0.1
_QUANTIFICATION: Final = float(BOA_QUANTIFICATION_VALUE)


def band_resolution(band: str) -> int:
    """Native resolution in metres of an L2A band (``B04`` -> 10, ``B11`` -> 20, ``SCL`` -> 20).

    Raises
    ------
    ValueError
        If ``band`` is not a Sentinel-2 L2A band name.
    """
    try:
        return RESOLUTION_M[band]
    except KeyError:
        raise ValueError(f"{band!r} is not a Sentinel-2 L2A band; use one of "
                         f"{', '.join(RESOLUTION_M)}") from None


def band_filename(tile: str, when: datetime | str, band: str,
                  resolution_m: int | None = None) -> str:
    """File name of one L2A band, e.g. ``T31UFQ_20230412T104629_B04_10m.tif``.

    Parameters
    ----------
    tile
        MGRS tile, with or without the leading ``T`` (``31UFQ`` or ``T31UFQ``).
    when
        Sensing time, or its text in :data:`TIME_FORMAT` (``20230412T104629``).
    band
        Band name (``B04``, ``B8A``, ``SCL``).
    resolution_m
        Resolution written in the name; the band's native one if None.

    Raises
    ------
    ValueError
        If the tile, time text or band is not of Sentinel-2's form.
    """
    m = _TILE_RE.fullmatch(tile)
    if m is None:
        raise ValueError(f"{tile!r} is not an MGRS tile such as 31UFQ")
    if isinstance(when, str):
        if not _TIME_RE.fullmatch(when):
            raise ValueError(f"sensing time {when!r} is not of the form 20230412T104629")
        stamp = when
    else:
        stamp = when.strftime(TIME_FORMAT)
    res = band_resolution(band) if resolution_m is None else int(resolution_m)
    return f"T{m.group(1)}_{stamp}_{band}_{res}m.tif"


def reflectance_to_dn(reflectance: ArrayLike) -> NDArray[np.uint16]:
    """Encode surface reflectance as L2A digital numbers (processing baseline >= 04.00).

    ``DN = round((reflectance + 0.1) * 10000)`` clipped to ``1..65535``: a valid
    reflectance never becomes the nodata value 0. NaN encodes to 0 (nodata).
    Float32 input is computed in float32, anything else in float64.
    """
    refl = np.asarray(reflectance)
    if refl.dtype not in (np.float32, np.float64):
        refl = refl.astype(np.float64)
    dn = np.asarray(np.rint((refl + _REFLECTANCE_OFFSET) * _QUANTIFICATION))
    np.clip(dn, DN_MIN, DN_MAX, out=dn)
    np.copyto(dn, NODATA, where=np.isnan(dn))
    return dn.astype(np.uint16)


def dn_to_reflectance(dn: ArrayLike) -> NDArray[np.float64]:
    """Decode L2A digital numbers to surface reflectance; nodata (0) becomes NaN."""
    values = np.asarray(dn, dtype=np.float64)
    return np.where(values == NODATA, np.nan, (values + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE)
