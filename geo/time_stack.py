"""Time-stacked GeoTIFFs: one file per band (or index), one raster band per date.

This is the form Earth Engine and eo-learn exports take: ``B4.tif``,
``ndvi_68dates.tif``, ``SCL.tif``..., each with as many raster bands as dates.
Which band or index a file holds comes from its name: the file stem is split on
``_``, ``-`` and ``.``, and a token (or the whole stem) must name a band of the
sensor profile (native name, alias or common name), its quality band, or a
spectral index. Dates come from the raster band descriptions (ISO 8601) or, when
they are missing, from a sidecar CSV: ``dates=`` if given, else ``<stem>.csv``,
``dates.csv`` or ``timestamps.csv`` beside the file, with a column whose name
contains ``time`` or ``date`` and optionally a 1-based ``band`` column.

Any CRS works (UTM, sinusoidal, geographic): fields are reprojected to it.
Float stacks are taken as physical values (reflectance or index); integer band
stacks get the profile's scale and offset.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

import pandas as pd

from regenmap.errors import InputError
from regenmap.geo.catalog import Acquisition, Asset, SceneProblem, open_grid
from regenmap.geo.grid import GridSpec
from regenmap.geo.sensors import SensorProfile

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
        Sensor profile naming the bands (and the quality band) and their scaling.
    dates
        Sidecar CSV of the dates, used when band descriptions do not hold them.
    index_names
        Names of spectral indices a file may hold precomputed (e.g. ``NDVI``).

    Returns
    -------
    acquisitions, problems
        One acquisition per date; problems name the file (unknown name, date mismatch...).

    Raises
    ------
    InputError
        If nothing usable is found, or dates can be found neither in descriptions nor a CSV.
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
    indices = {n.lower() for n in index_names}
    for f in files:
        name = _layer_name(f.stem, profile, indices)
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
            times = _dates(f, count, descriptions, dates)
        except InputError as err:
            problems.append(SceneProblem("", str(f), str(err)))
            continue
        layers[name] = (f, grid, dtype, nodata, times)
    spectral = {k: v for k, v in layers.items() if k != "__mask__"}
    if not spectral:
        raise InputError("no time-stacked band or index file found: " +
                         "; ".join(p.reason for p in problems[:3]), path=root)
    ref_name, (_, _, _, _, ref_times) = next(iter(spectral.items()))
    for name, (f, _, _, _, times) in list(layers.items()):
        if times != ref_times:
            problems.append(SceneProblem("", str(f), f"its {len(times)} dates differ from those of "
                                         f"the {ref_name!r} stack ({len(ref_times)}); ignored"))
            del layers[name]
    acquisitions: list[Acquisition] = []
    for i, when in enumerate(ref_times):
        acq_id = f"{profile.name}_{when:%Y%m%dT%H%M%S}"
        assets: dict[str, Asset] = {}
        mask = None
        for name, (f, grid, dtype, nodata, _) in layers.items():
            if name == "__mask__":
                mask = Asset(str(f), i + 1, grid)
            elif dtype.startswith("float") or name in indices:
                assets[name] = Asset(str(f), i + 1, grid, 1.0, 0.0, nodata)
            else:
                assets[name] = Asset(str(f), i + 1, grid, profile.scale, profile.offset_at(when),
                                     profile.nodata if profile.nodata is not None else nodata)
        acquisitions.append(Acquisition(id=acq_id, time=when, sensor=profile.name, tile="",
                                        assets=assets, mask=mask,
                                        mask_spec=profile.mask if mask is not None else None))
    return acquisitions, problems


def _layer_name(stem: str, profile: SensorProfile, indices: set[str]) -> str | None:
    tokens = [t for t in re.split(r"[_\-.]+", stem) if t]
    candidates = [stem, *tokens]
    found = []
    for c in candidates:
        band = profile.match_band(c)
        if band is not None:
            found.append(band)
        elif c.lower() in indices:
            found.append(c.lower())
    unique = list(dict.fromkeys(found))
    return unique[0] if unique else None


def _dates(path: Path, count: int, descriptions: tuple[str | None, ...],
           csv: str | Path | None) -> list[datetime]:
    parsed = [_parse_time(d) for d in descriptions]
    if all(p is not None for p in parsed) and len(parsed) == count:
        return [p for p in parsed if p is not None]
    candidates = [Path(csv)] if csv is not None else [
        path.with_suffix(".csv"), path.parent / "dates.csv", path.parent / "timestamps.csv"]
    sidecar = next((c for c in candidates if c.is_file()), None)
    if sidecar is None:
        raise InputError(f"its {count} raster bands have no dates in their descriptions and no "
                         "sidecar CSV was found; give scenes.dates (CSV with a time column)",
                         path=path)
    table = pd.read_csv(sidecar)
    time_col = next((c for c in table.columns if "time" in c.lower() or "date" in c.lower()), None)
    if time_col is None:
        raise InputError("no column whose name contains 'time' or 'date'", path=sidecar)
    band_col = next((c for c in table.columns if c.lower().startswith("band")), None)
    if band_col is not None:
        table = table.sort_values(band_col)
    if len(table) != count:
        raise InputError(f"{len(table)} dates for {count} raster bands of {path.name}", path=sidecar)
    times = pd.to_datetime(table[time_col], utc=True).dt.tz_localize(None)
    return [t.to_pydatetime() for t in times]


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()
