"""Constants of the simulated region: sizes, bands, SCL codes, endmember spectra.

Physical values and their sources
---------------------------------
Radiometry (ESA, *Sentinel-2 Products Specification Document*, S2-PDGS-TAS-DI-PSD,
issue 14.9, and the processing-baseline 04.00 note of January 2022): L2A surface
reflectance is stored as ``DN = (reflectance + 0.1) * 10000`` (``BOA_ADD_OFFSET = -1000``,
``BOA_QUANTIFICATION_VALUE = 10000``), ``DN = 0`` is nodata; the encoding and the band
file names are those of :mod:`regenmap.geo.sentinel2`. Scene classification
(SCL) codes are those of Sen2Cor: 0 nodata, 1 saturated/defective, 2 dark area,
3 cloud shadow, 4 vegetation, 5 not vegetated, 6 water, 7 unclassified, 8 cloud medium
probability, 9 cloud high probability, 10 thin cirrus, 11 snow/ice.

Endmember reflectances at the Sentinel-2 band centres (B02 490 nm, B03 560 nm,
B04 665 nm, B08 842 nm, B11 1610 nm, B12 2190 nm) are rounded literature values:

* green vegetation: typical closed crop canopy (USGS Spectral Library version 7,
  Kokaly et al. 2017, crop and grass canopies; Jacquemoud & Baret PROSAIL ranges).
* crop residue (non-photosynthetic vegetation): dry wheat and maize straw, whose
  cellulose/lignin absorption near 2.1 um lowers B12 relative to B11 (Daughtry 2001;
  Daughtry et al. 2005, 2006; Nagler et al. 2000). NDTI of dry residue about 0.15-0.20.
* bare soil: loamy agricultural soil, reflectance rising through the VNIR and almost
  flat from 1.6 to 2.2 um, NDTI about 0.02-0.06 (van Deventer et al. 1997; Daughtry et
  al. 2005; Zheng et al. 2012). A second, brighter calcareous soil (chalky loams of
  Champagne/Picardy) has the carbonate absorption near 2.3 um reaching into B12, so its
  NDTI is about 0.09 (Clark et al. 1990 on carbonate bands; Serbin et al. 2009 on soil
  mineralogy confounding residue indices). Each field mixes the two soils in its own
  spatially correlated proportion, a realistic confounder of the tillage signal.
* water, asphalt, gravel and deciduous tree canopy: USGS splib07 and ASTER/ECOSTRESS
  library spectra convolved by eye to the band centres.
* wetting darkens soil and residue, more in the SWIR, and shrinks the residue-soil
  NDTI contrast (Daughtry & Hunt 2008; Serbin et al. 2009). Modelled as a blend toward
  the wet spectra with a per-acquisition moisture index.

Cloud spectra are bright and nearly flat in the VNIR, lower in the SWIR (water droplet
absorption), as in Sentinel-2 L1C cloud reflectances (Coluzzi et al. 2018).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

Size = Literal["tiny", "small", "medium", "large"]

#: Sentinel-2 band files written per acquisition: (band, resolution in metres).
BANDS_10M: Final = ("B02", "B03", "B04", "B08")
BANDS_20M: Final = ("B11", "B12")
#: Band order of all reflectance arrays in this package.
BAND_ORDER: Final = ("B02", "B03", "B04", "B08", "B11", "B12")
STAC_NAMES: Final = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir",
                     "B11": "swir16", "B12": "swir22"}

#: Sen2Cor scene classification codes.
SCL_NODATA: Final = 0
SCL_SHADOW: Final = 3
SCL_VEGETATION: Final = 4
SCL_NOT_VEGETATED: Final = 5
SCL_WATER: Final = 6
SCL_UNCLASSIFIED: Final = 7
SCL_CLOUD_MEDIUM: Final = 8
SCL_CLOUD_HIGH: Final = 9
SCL_CIRRUS: Final = 10
SCL_VALID_CODES: Final = frozenset(range(12))

#: Sentinel-2 tile and UTM zone the region is placed in (northern France / Belgium).
TILE_ID: Final = "T31UFQ"
CRS: Final = "EPSG:32631"
#: Upper-left corner of the region (metres, EPSG:32631); on the 60 m S2 grid.
ORIGIN_X: Final = 640020.0
ORIGIN_Y: Final = 5560020.0
LATITUDE_DEG: Final = 50.2
YEAR: Final = 2023

#: GeoTIFF block size (pixels) of the written scenes.
BLOCK: Final = 256

# --- land-cover labels other than fields (fields are FIRST_FIELD_LABEL + i) --------------
LABEL_GRASS: Final = 0  # grass margins and small grassland patches
LABEL_HEDGE: Final = 1  # hedgerows and copses (deciduous trees)
LABEL_ROAD: Final = 2  # asphalt roads
LABEL_TRACK: Final = 3  # gravel farm tracks
LABEL_WATER: Final = 4  # ponds
FIRST_FIELD_LABEL: Final = 5

# --- endmembers ---------------------------------------------------------------------------
#: Endmember names, in the order of the second axis of abundance arrays.
ENDMEMBERS: Final = ("gv", "npv", "soil", "calc_soil", "tree", "asphalt", "gravel", "water")
EM_GV, EM_NPV, EM_SOIL, EM_CALC, EM_TREE, EM_ASPHALT, EM_GRAVEL, EM_WATER = range(8)

#: Reflectance (unitless, 0-1) of each endmember in BAND_ORDER, dry conditions.
SPECTRA_DRY: Final = np.array([
    # B02    B03    B04    B08    B11    B12
    [0.030, 0.075, 0.040, 0.460, 0.230, 0.105],  # gv: green crop canopy
    [0.095, 0.135, 0.175, 0.270, 0.375, 0.270],  # npv: dry straw residue (NDTI ~0.16)
    [0.075, 0.105, 0.145, 0.205, 0.315, 0.285],  # soil: dry loam (NDTI ~0.05)
    [0.120, 0.160, 0.200, 0.260, 0.380, 0.320],  # calcareous loam: CO3 band lowers B12 (~0.09)
    [0.025, 0.050, 0.030, 0.330, 0.160, 0.070],  # tree: deciduous canopy, leaf-on
    [0.075, 0.085, 0.095, 0.115, 0.150, 0.140],  # asphalt
    [0.150, 0.180, 0.210, 0.250, 0.320, 0.300],  # gravel / limestone chippings
    [0.055, 0.050, 0.030, 0.020, 0.010, 0.006],  # water (turbid pond)
], dtype=np.float64)

#: Reflectance of the same endmembers when wet (only npv and soil change).
SPECTRA_WET: Final = SPECTRA_DRY.copy()
SPECTRA_WET[EM_NPV] = [0.060, 0.085, 0.110, 0.195, 0.225, 0.175]  # wet residue, NDTI ~0.13
SPECTRA_WET[EM_SOIL] = [0.050, 0.070, 0.095, 0.140, 0.190, 0.170]  # wet loam, NDTI ~0.06
SPECTRA_WET[EM_CALC] = [0.080, 0.110, 0.140, 0.180, 0.240, 0.205]  # wet calcareous, ~0.08

#: Thick cloud top reflectance and thin cirrus (added) reflectance per band.
CLOUD_SPECTRUM: Final = np.array([0.46, 0.45, 0.45, 0.47, 0.36, 0.26])
CIRRUS_SPECTRUM: Final = np.array([0.05, 0.05, 0.05, 0.05, 0.04, 0.03])
#: Fraction of surface reflectance left in a cloud shadow (diffuse light; blue keeps most).
SHADOW_TRANSMISSION: Final = np.array([0.50, 0.42, 0.38, 0.33, 0.30, 0.30])
#: Sensor noise (1 sigma, reflectance) per band, of the order of S2 noise at typical radiance.
NOISE_SIGMA: Final = np.array([0.004, 0.003, 0.003, 0.004, 0.004, 0.004])
#: Per-acquisition residual of the atmospheric correction (1 sigma, reflectance, additive).
ATMOS_SIGMA: Final = np.array([0.006, 0.004, 0.003, 0.003, 0.002, 0.002])


@dataclass(frozen=True)
class SizeSpec:
    """Extent and density of one region size.

    Attributes
    ----------
    width_px, height_px
        Grid of the 10 m bands (even numbers so the 20 m grid nests exactly).
    target_fields
        Number of cells asked of the landscape generator; merging and the 0.5 ha
        minimum leave about 90 % of them as fields.
    n_regions_x, n_regions_y
        Spatial blocks used as hold-out regions.
    block_m
        Typical spacing of the main roads (metres).
    supersample
        Sub-pixels per 10 m pixel side used to compute mixed-pixel area fractions.
    chunk_rows
        Rows of the 10 m grid rendered at once (bounds memory).
    """

    width_px: int
    height_px: int
    target_fields: int
    n_regions_x: int
    n_regions_y: int
    block_m: float
    supersample: int
    chunk_rows: int


SIZES: Final[dict[str, SizeSpec]] = {
    "tiny": SizeSpec(192, 192, 70, 2, 2, 700.0, 4, 192),
    "small": SizeSpec(384, 384, 340, 2, 2, 900.0, 4, 384),
    "medium": SizeSpec(1280, 1280, 2170, 3, 2, 1300.0, 4, 256),
    "large": SizeSpec(5120, 5120, 21700, 3, 2, 1500.0, 4, 256),
}

#: Acquisitions per year by default (one every 5 days, Sentinel-2A and 2B together).
DEFAULT_N_DATES: Final = 73
