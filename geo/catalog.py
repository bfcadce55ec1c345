"""Scene catalog: one record per acquisition with its time, sensor, grid and band assets.

Scenes come from a folder of band files (:func:`scan_band_files`), a
time-stacked GeoTIFF (:mod:`regenmap.geo.time_stack`) or a STAC catalog
(:mod:`regenmap.geo.stac`); all produce :class:`Acquisition` records, so the
extraction does not care where they came from. Problems met while cataloguing
(unreadable file, no CRS, missing band) are returned as :class:`SceneProblem`
records, never dropped silently.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from regenmap.errors import ConfigError, CRSError, InputError
from regenmap.geo.grid import GridSpec
from regenmap.geo.sensors import MASK_KEY, MaskSpec, SensorProfile

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")


@dataclass(frozen=True)
class Asset:
    """One raster band of one acquisition.

    Attributes
    ----------
    href
        File path or GDAL-readable URI (``/vsicurl/...``, ``s3://...``).
    band
        1-based raster band in that file.
    grid
        The file's grid.
    scale, offset
        physical value = raw * scale + offset (1 and 0 for float files already in units).
    nodata
        Raw value marking missing pixels, or None.
    """

    href: str
    band: int
    grid: GridSpec
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None


@dataclass(frozen=True)
class Acquisition:
    """One acquisition (sensor, time, tile) with its band assets.

    Attributes
    ----------
    id
        Unique id, e.g. ``sentinel2_l2a_T31UFQ_20230412T104629``.
    time
        Acquisition time (UTC, naive).
    sensor
        Sensor profile name.
    tile
        The sensor's tile / path-row id, or ``""``.
    assets
        Common band name (or precomputed index name, lower-case) -> asset.
    mask
        Quality band asset, or None.
    mask_spec
        How to decode ``mask``.
    """

    id: str
    time: datetime
    sensor: str
    tile: str
    assets: dict[str, Asset] = field(hash=False)
    mask: Asset | None = None
    mask_spec: MaskSpec | None = None

    @property
    def crs(self) -> str:
        """CRS of the acquisition's assets."""
        return next(iter(self.assets.values())).grid.crs

    def grid_for(self, names: list[str] | tuple[str, ...]) -> GridSpec:
        """Return the finest grid among the assets named (all assets if none of them exist)."""
        chosen = [self.assets[n].grid for n in names if n in self.assets] or \
            [a.grid for a in self.assets.values()]
        return min(chosen, key=lambda g: (g.resolution, -g.width))


@dataclass(frozen=True)
class SceneProblem:
    """A problem with one scene file or acquisition.

    Attributes
    ----------
    acquisition_id
        Affected acquisition, or ``""`` if unknown.
    path
        Offending file, or ``""``.
    reason
        What is wrong and how to fix it.
    fatal
        True if the acquisition is unusable (it is then left out of the catalog).
    severity
        ``error`` (something needed is wrong: stops a run with ``on_error: fail``) or
        ``warning`` (informational, e.g. an unknown band file that is ignored).
    """

    acquisition_id: str
    path: str
    reason: str
    fatal: bool = True
    severity: str = "error"


def open_grid(href: str) -> tuple[GridSpec, int, str, float | None, tuple[str | None, ...]]:
    """Read a raster's grid, band count, dtype, nodata and band descriptions.

    Raises
    ------
    InputError
        If the file cannot be opened (missing, truncated, not a raster).
    CRSError
        If the raster has no CRS.
    """
    try:
        # a file without georeferencing is reported by GridSpec, with the fix; not warned twice
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(href)
        with ds:
            grid = GridSpec.from_dataset(ds, path=href)
            return grid, ds.count, ds.dtypes[0], ds.nodata, tuple(ds.descriptions)
    except RasterioIOError as err:
        raise InputError(f"cannot open raster: {err}. Check that the file exists and is a "
                         "complete GeoTIFF/COG (re-download it if truncated).", path=href) from None


def scan_band_files(folder: str | Path, profile: SensorProfile
                    ) -> tuple[list[Acquisition], list[SceneProblem]]:
    """Catalogue a folder of per-band (or per-date multi-band) files of one sensor.

    Files are matched recursively by ``profile.filename_pattern``; files that do
    not match are ignored (logged at debug level). Files of one date and tile
    form one acquisition.

    Parameters
    ----------
    folder
        Folder holding the files.
    profile
        Validated sensor profile.

    Returns
    -------
    acquisitions
        Sorted by time then id; those missing their mask band or every band are left out.
    problems
        One record per unreadable file, raster without CRS, missing or unknown band.

    Raises
    ------
    InputError
        If ``folder`` does not exist or holds no file matching the pattern.
    ConfigError
        If the profile describes time stacks (``layout: time_stack``), whose file names
        carry no date.
    """
    if profile.layout == "time_stack" or profile.filename_pattern is None:
        raise ConfigError(f"sensor profile {profile.name!r} has layout 'time_stack': its files "
                          "hold one raster band per date and no date in their names; catalogue "
                          "them as time stacks (scenes kind 'time_stack'), or give the profile "
                          "layout 'band_files' and a filename_pattern with a date group")
    root = Path(folder)
    if not root.is_dir():
        raise InputError("scenes folder not found; set scenes.path to the folder holding the "
                         "band files", path=root)
    groups: dict[tuple[str, str], list[tuple[Path, dict[str, str]]]] = defaultdict(list)
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in RASTER_SUFFIXES or not path.is_file():
            continue
        parts = profile.parse_filename(path.name)
        if parts is None:
            log.debug("%s: name does not match the %s pattern; ignored", path, profile.name)
            continue
        groups[(parts["date"], parts.get("tile", ""))].append((path, parts))
    if not groups:
        raise InputError(f"no file name matches the {profile.name!r} sensor profile's pattern "
                         f"{profile.filename_pattern!r}; check scenes.sensor", path=root)
    acquisitions: list[Acquisition] = []
    problems: list[SceneProblem] = []
    for (date_text, tile), files in groups.items():
        try:
            when = profile.parse_date(date_text)
        except ValueError:
            problems.append(SceneProblem("", str(files[0][0]), f"date {date_text!r} does not "
                                         f"match date_format {profile.date_format!r}"))
            continue
        acq_id = "_".join(p for p in (profile.name, tile, date_text) if p)
        baseline = next((parts["baseline"] for _, parts in files if "baseline" in parts), None)
        acq, probs = _assemble(acq_id, when, tile, files, profile, baseline)
        problems.extend(probs)
        if acq is not None:
            acquisitions.append(acq)
    acquisitions.sort(key=lambda a: (a.time, a.id))
    return acquisitions, problems


def _assemble(acq_id: str, when: datetime, tile: str, files: list[tuple[Path, dict[str, str]]],
              profile: SensorProfile, baseline: str | None
              ) -> tuple[Acquisition | None, list[SceneProblem]]:
    problems: list[SceneProblem] = []
    assets: dict[str, Asset] = {}
    masks: dict[str, tuple[Asset, MaskSpec]] = {}
    for path, parts in files:
        try:
            grid, count, dtype, file_nodata, descriptions = open_grid(str(path))
        except (InputError, CRSError) as err:
            # The acquisition goes on without this band (indices needing it get NaN)
            # unless it is the quality band, which is reported below.
            problems.append(SceneProblem(acq_id, str(path), str(err), fatal=False))
            continue
        if profile.layout == "multiband":
            layers, found_masks, probs = _multiband_layers(path, count, descriptions, profile,
                                                           acq_id)
            problems += probs
            for key, band in layers.items():
                assets[key] = layer_asset(profile, key, str(path), band, grid, dtype,
                                          file_nodata, when, baseline)
            for spec, band in found_masks:
                masks.setdefault(spec.band, (Asset(str(path), band, grid, nodata=None), spec))
            continue
        target = profile.match_band(parts["band"])
        quality = profile.match_mask(parts["band"])
        if quality is not None:
            masks.setdefault(quality.band, (Asset(str(path), 1, grid, nodata=None), quality))
        elif target is None:
            problems.append(SceneProblem(acq_id, str(path), f"band {parts['band']!r} is not in "
                                         f"sensor profile {profile.name!r}; ignored", fatal=False,
                                         severity="warning"))
        else:
            assets[target] = layer_asset(profile, target, str(path), 1, grid, dtype, file_nodata,
                                         when, baseline)
    chosen = next((masks[m.band] for m in profile.masks if m.band in masks), None)
    if profile.mask is not None and chosen is None:
        names = " or ".join(m.band for m in profile.masks)
        problems.append(SceneProblem(acq_id, str(files[0][0].parent), f"quality band "
                                     f"{names} is missing or unreadable; the acquisition "
                                     "is skipped because clouds could not be masked"))
        return None, problems
    if not assets:
        problems.append(SceneProblem(acq_id, str(files[0][0].parent), "no readable band"))
        return None, problems
    mask, mask_spec = chosen if chosen is not None else (None, None)
    crs = {a.grid.crs for a in assets.values()} | ({mask.grid.crs} if mask else set())
    if len(crs) > 1:
        problems.append(SceneProblem(acq_id, str(files[0][0].parent),
                                     f"bands of one acquisition are in different CRSs {sorted(crs)}"))
        return None, problems
    return Acquisition(id=acq_id, time=when, sensor=profile.name, tile=tile, assets=assets,
                       mask=mask, mask_spec=mask_spec), problems


def _multiband_layers(path: Path, count: int, descriptions: tuple[str | None, ...],
                      profile: SensorProfile, acq_id: str
                      ) -> tuple[dict[str, int], list[tuple[MaskSpec, int]], list[SceneProblem]]:
    """Find the raster band of each band, index layer and quality band of a multi-band file.

    A layer with an ``index`` is at that raster band; one without is found by the raster
    band descriptions (Earth Engine exports name their bands ``B4``, ``SR_B4``...).
    """
    problems: list[SceneProblem] = []
    named = {(d or "").strip().upper(): i for i, d in enumerate(descriptions, start=1) if d}
    layers: dict[str, int] = {}
    found: list[tuple[MaskSpec, int]] = []
    entries: list[tuple[str, str, int | None, tuple[str, ...], MaskSpec | None]] = \
        [(b.common_name, b.native, b.index, b.names(), None) for b in profile.bands] + \
        [(il.key, il.name, il.index, il.names(), None) for il in profile.index_layers] + \
        [(MASK_KEY, m.band, m.index, m.names(), m) for m in profile.masks]
    used: set[int] = set()
    for key, native, index, names, spec in entries:
        if index is not None and index > count:
            problems.append(SceneProblem(acq_id, str(path), f"band {native} expected at raster "
                                         f"band {index} but the file has {count} band(s)",
                                         fatal=False))
            continue
        band = index if index is not None else next((named[n] for n in names if n in named), None)
        if band is None:
            continue  # not in this file: indices needing it are reported by the extraction
        used.add(band)
        if spec is not None:
            found.append((spec, band))
        else:
            layers[key] = band
    if not used:
        problems.append(SceneProblem(acq_id, str(path), "no raster band description names a "
                                     f"band of sensor profile {profile.name!r} (descriptions: "
                                     f"{list(descriptions)}); give each band an 'index' "
                                     "(1-based raster band) in the profile", fatal=False))
    for name, i in named.items():
        if i not in used:
            problems.append(SceneProblem(acq_id, str(path), f"raster band {i} ({name!r}) is not "
                                         f"in sensor profile {profile.name!r}; ignored",
                                         fatal=False, severity="warning"))
    return layers, found, problems


def layer_asset(profile: SensorProfile, key: str, href: str, band: int, grid: GridSpec,
                dtype: str, file_nodata: float | None, when: datetime,
                baseline: str | None = None) -> Asset:
    """Return the asset of one band or index layer, with the scaling of its DNs.

    Float files are taken to hold physical values already (e.g. exports in reflectance):
    scale 1, offset 0, their own nodata (and NaN) mark missing pixels. Integer files get
    the profile's scaling of that layer (:meth:`SensorProfile.scaling`) and its nodata, or
    the file's own when the profile declares none.

    Parameters
    ----------
    profile
        Sensor profile.
    key
        Common band name or index layer key (``red``, ``ndvi``).
    href, band
        File (GDAL path) and 1-based raster band.
    grid, dtype, file_nodata
        The file's grid, data type and nodata, from :func:`open_grid`.
    when, baseline
        Acquisition time and processing baseline (for offsets that change over time).
    """
    if dtype.startswith("float"):
        return Asset(href, band, grid, 1.0, 0.0, file_nodata)
    scale, offset, nodata = profile.scaling(key, when, baseline)
    return Asset(href, band, grid, scale, offset, file_nodata if nodata is None else nodata)
