"""Time-stacked GeoTIFFs: one file per band (or index), one raster band per date.

This is the form Earth Engine, AppEEARS and eo-learn exports take: ``B4.tif``,
``ndvi_68dates.tif``, ``SCL.tif``, ``MOD13Q1_NDVI.tif``..., each with as many
raster bands as dates. Which band or index a file holds comes from its name: a
``time_stack`` profile's ``filename_pattern`` ``band`` group when it matches,
else the file stem is split on ``_``, ``-`` and ``.``, and a token (or the whole
stem) must name a band of the sensor profile (native name, alias or common
name), one of its quality bands, one of its index layers, or a spectral index.
Dates come from the raster band descriptions, a header-less list of dates or a
CSV (:mod:`regenmap.geo.stack_dates`).

Any CRS works (UTM, MODIS sinusoidal, geographic): fields are reprojected to it.
Float stacks are taken as physical values (reflectance or index); integer stacks
get the profile's scale, offset and nodata of that band or index layer (MODIS
NDVI: DN x 0.0001, fill -3000).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

from regenmap.errors import InputError
from regenmap.geo.catalog import Acquisition, Asset, SceneProblem, layer_asset, open_grid
from regenmap.geo.grid import GridSpec
from regenmap.geo.sensors import MASK_KEY, MaskSpec, SensorProfile
from regenmap.geo.stack_dates import band_dates

_STACK_SUFFIXES = (".tif", ".tiff", ".vrt")


def scan_time_stacks(path: str | Path, profile: SensorProfile, *, dates: str | Path | None = None,
                     index_names: Collection[str] = ()
                     ) -> tuple[list[Acquisition], list[SceneProblem]]:
    """Catalogue one time-stacked GeoTIFF or a folder of them (one per band or index).

    Parameters
    ----------
    path
        A GeoTIFF or a folder of GeoTIFFs.
    profile
        Sensor profile naming the bands (and the quality band) and their scaling; any
        layout (``time_stack`` profiles need no date in file names).
    dates
        Dates file (a header-less list, one date per line, or a CSV with a time column)
        used for every stack instead of the band descriptions.
    index_names
        Names of spectral indices a file may hold precomputed (e.g. ``NDVI``), besides the
        profile's own index layers.

    Returns
    -------
    acquisitions, problems
        One acquisition per date; problems name the file (unknown name, date mismatch...).

    Raises
    ------
    InputError
        If nothing usable is found, or dates can be found neither in descriptions nor a file.
    """
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix.lower() in _STACK_SUFFIXES)
    elif root.is_file():
        files = [root]
    else:
        raise InputError("time stack not found; set scenes.path to a GeoTIFF or a folder of them",
                         path=root)
    problems: list[SceneProblem] = []
    layers: dict[str, tuple[Path, GridSpec, str, float | None, list[datetime]]] = {}
    masks: dict[str, MaskSpec] = {}
    indices = {n.lower() for n in index_names}
    for f in files:
        name, spec = _layer_name(f.stem, profile, indices)
        if name is None:
            problems.append(SceneProblem("", str(f), "file name names no band, quality band or "
                                         f"index of sensor profile {profile.name!r}; ignored",
                                         fatal=False, severity="warning"))
            continue
        if name in layers:
            problems.append(SceneProblem("", str(f), f"a second file for {name!r} (first: "
                                         f"{layers[name][0].name}); ignored", fatal=False))
            continue
        try:
            grid, count, dtype, nodata, descriptions = open_grid(str(f))
            times = band_dates(f, count, descriptions, dates)
        except InputError as err:
            problems.append(SceneProblem("", str(f), str(err)))
            continue
        layers[name] = (f, grid, dtype, nodata, times)
        if spec is not None:
            masks[name] = spec
    spectral = {k: v for k, v in layers.items() if k not in masks}
    if not spectral:
        raise InputError("no time-stacked band or index file found: " +
                         "; ".join(p.reason for p in problems[:3]), path=root)
    ref_name, (_, _, _, _, ref_times) = next(iter(spectral.items()))
    for name, (f, _, _, _, times) in list(layers.items()):
        if times != ref_times:
            problems.append(SceneProblem("", str(f), f"its {len(times)} dates differ from those of "
                                         f"the {ref_name!r} stack ({len(ref_times)}); ignored"))
            del layers[name]
    # the profile's preferred quality band among the stacks found (e.g. SCL before QA60)
    mask_name = next((k for m in profile.masks for k, s in masks.items()
                      if s == m and k in layers), None)
    mask_spec = masks[mask_name] if mask_name is not None else None
    if profile.mask is not None and mask_name is None:
        problems.append(SceneProblem("", str(root), "no quality band stack ("
                                     + " or ".join(m.band for m in profile.masks)
                                     + ") found: pixels are used without cloud masking",
                                     fatal=False, severity="warning"))
    acquisitions: list[Acquisition] = []
    for i, when in enumerate(ref_times):
        acq_id = f"{profile.name}_{when:%Y%m%dT%H%M%S}"
        assets: dict[str, Asset] = {}
        for name, (f, grid, dtype, nodata, _) in layers.items():
            if name not in masks:
                assets[name] = layer_asset(profile, name, str(f), i + 1, grid, dtype, nodata, when)
        mask = None
        if mask_name is not None:
            mask = Asset(str(layers[mask_name][0]), i + 1, layers[mask_name][1])
        acquisitions.append(Acquisition(id=acq_id, time=when, sensor=profile.name, tile="",
                                        assets=assets, mask=mask, mask_spec=mask_spec))
    return acquisitions, problems


def _layer_name(stem: str, profile: SensorProfile, indices: set[str]
                ) -> tuple[str | None, MaskSpec | None]:
    """Return what a stack file holds (band, index or quality key) and its mask decoding."""
    candidates = [stem, *(t for t in re.split(r"[_\-.]+", stem) if t)]
    if profile.layout == "time_stack":
        parts = profile.parse_filename(stem)
        if parts is not None and "band" in parts:
            candidates.insert(0, parts["band"])
    for c in candidates:
        spec = profile.match_mask(c)
        if spec is not None:
            return f"{MASK_KEY}{spec.band}", spec
        key = profile.match_band(c)
        if key is not None:
            return key, None
        if c.lower() in indices:
            return c.lower(), None
    return None, None
