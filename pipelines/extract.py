"""Extraction stage: scenes + field polygons -> per-field observations, one Parquet file per tile.

One Dask task per (tile, acquisition) reads only the tile's window and the
bands its indices need, masks clouds and nodata, and reduces every field of the
tile with the fused kernel of :mod:`regenmap.features.zonal`. The field raster
of a tile is built once per acquisition grid (a task of its own) and reused by
every acquisition on that grid. Each task writes its rows to a part file; one
task per tile streams the parts into ``out_dir/observations/tile=<id>.parquet``
(:mod:`regenmap.pipelines.tile_store`), atomically; a run started again skips the
tiles already written by the same inputs and options, and reuses the parts.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from rasterio.windows import Window

from regenmap.errors import (
    ConfigError,
    InputError,
    MissingBandError,
    RegenmapError,
)
from regenmap.features.indices import SpectralIndex, resolve_indices
from regenmap.features.zonal import BandInput, MaskInput, ZonalPass, quantile_name
from regenmap.geo.catalog import Acquisition, SceneProblem, scan_band_files
from regenmap.geo.fields import read_fields
from regenmap.geo.grid import GridSpec
from regenmap.geo.pixel_need import Coverage, PixelNeed
from regenmap.geo.raster_read import RESAMPLING_RULE, BandReader
from regenmap.geo.rasterize import FieldIndex, rasterize_fields
from regenmap.geo.sensors import SensorProfile
from regenmap.io import write_parquet_atomic
from regenmap.pipelines.fingerprint import inputs_fingerprint
from regenmap.pipelines.tile_store import (
    PARTS_DIR,
    PartInfo,
    file_meta,
    part_path,
    reuse_part,
    tile_is_done,
    tile_path,
    write_part,
    write_tile,
)
from regenmap.pipelines.tiling import Tile, TilePlan, plan_tiles, reference_grid
from regenmap.provenance import config_hash, stamp
from regenmap.schema import (
    ACQUISITION_ID,
    AREA_HA,
    FIELD_ID,
    N_PIXELS,
    N_VALID,
    OBSERVATIONS_SCHEMA,
    REASON,
    SENSOR,
    STATUS,
    TILE_ID,
    TIME,
    VALID_FRACTION,
    FieldStatus,
    stat_column,
)

if TYPE_CHECKING:
    from distributed import Client, Future

    from regenmap.pipelines.config import RunConfig, ScenesInput

log = logging.getLogger(__name__)

#: Columns of ``scenes_status.parquet`` (one row per scene problem).
SCENE_PATH = "path"
SCENE_SEVERITY = "severity"


# --------------------------------------------------------------------------- config helpers
def load_sensor_profile(name: str, *, base_dir: Path | None = None) -> SensorProfile:
    """Load a sensor profile by built-in name (``configs/sensors/<name>.yaml``) or YAML path.

    Raises
    ------
    ConfigError
        If no such profile exists (listing the built-in ones) or it is invalid.
    """
    from regenmap.pipelines.config import read_yaml

    candidates = [Path(name)]
    if base_dir is not None:
        candidates.insert(0, base_dir / name)
    path = next((p for p in candidates if p.suffix in (".yaml", ".yml") and p.is_file()), None)
    if path is None:
        builtin = builtin_sensor_dir()
        path = builtin / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in builtin.glob("*.yaml"))
            raise ConfigError(f"scenes.sensor: no sensor profile {name!r}; built-in profiles: "
                              f"{', '.join(known)}, or give the path of a profile YAML")
    return SensorProfile.from_mapping(read_yaml(path), source=str(path))


def builtin_sensor_dir() -> Path:
    """Folder of the built-in sensor profiles (``configs/sensors``)."""
    from regenmap.pipelines.config import CONFIGS_DIR

    return CONFIGS_DIR / "sensors"


def build_catalog(scenes: ScenesInput, profiles: SensorProfile | list[SensorProfile]
                  ) -> tuple[list[Acquisition], list[SceneProblem]]:
    """Catalogue the scenes of a run, whatever their layout, for one or several sensors.

    With several profiles each scans the same input; a profile matching nothing is
    recorded as a warning (an error if no profile matches anything).
    """
    if isinstance(profiles, list):
        if len(profiles) == 1:
            return build_catalog(scenes, profiles[0])
        acquisitions: list[Acquisition] = []
        problems: list[SceneProblem] = []
        for prof in profiles:
            try:
                acqs, probs = build_catalog(scenes, prof)
            except InputError as err:
                problems.append(SceneProblem("", str(scenes.path), f"sensor {prof.name}: {err}",
                                             fatal=False, severity="warning"))
                continue
            acquisitions += acqs
            problems += probs
        if not acquisitions:
            raise InputError("no sensor profile matches any scene: "
                             + "; ".join(p.reason for p in problems), path=scenes.path)
        acquisitions.sort(key=lambda a: (a.time, a.id))
        return acquisitions, problems
    profile = profiles
    if scenes.kind == "band_files":
        return scan_band_files(scenes.path, profile)
    if scenes.kind == "time_stack":
        from regenmap.features.indices import available_indices
        from regenmap.geo.time_stack import scan_time_stacks

        return scan_time_stacks(scenes.path, profile, dates=scenes.dates,
                                index_names=available_indices())
    from regenmap.geo.stac import read_stac

    return read_stac(scenes.path, profile)


# --------------------------------------------------------------------------- task payloads
@dataclass(frozen=True)
class TileFields:
    """The fields of one tile, shipped to workers.

    Attributes
    ----------
    tile_id
        Tile name.
    field_ids
        (n,) field ids (str).
    wkb
        (n,) WKB of the geometries in ``crs`` (empty polygon for unusable fields).
    crs
        CRS of the field geometries.
    """

    tile_id: str
    field_ids: np.ndarray
    wkb: np.ndarray
    crs: str


@dataclass(frozen=True)
class TileRaster:
    """Field raster of a tile on one acquisition grid.

    Attributes
    ----------
    raster
        Field index (runs of the field raster) of the members on the tile's window of the grid.
    members
        (m,) positions (in the tile's field list) of fields intersecting the grid; only
        they get observation rows for acquisitions on this grid.
    coverage
        Where the window has field pixels (coarse cells), to leave blocks without
        fields undecoded.
    """

    raster: FieldIndex
    members: np.ndarray
    coverage: Coverage


@dataclass(frozen=True)
class AcquisitionResult:
    """What one (tile, acquisition) task returns.

    Attributes
    ----------
    rows
        One row per field of the tile intersecting the acquisition, or None.
    problems
        Scene problems met (with ``on_error='record'``).
    units_read, units_skipped
        Block units of the band files decoded, and left undecoded because they hold no
        field pixel or only masked ones.
    """

    rows: pd.DataFrame | None
    problems: list[SceneProblem]
    units_read: int = 0
    units_skipped: int = 0


@dataclass(frozen=True)
class ExtractSpec:
    """What every (tile, acquisition) task computes.

    Attributes
    ----------
    indices, stats, percentiles, min_pixels, inner_buffer_px, threads, on_error, skip_blocks
        As in :class:`~regenmap.pipelines.sections.ExtractConfig`.
    sensor_bands
        Sensor name -> common band names its profile offers.
    """

    indices: tuple[SpectralIndex, ...]
    stats: tuple[str, ...]
    percentiles: tuple[float, ...]
    min_pixels: int
    inner_buffer_px: float
    threads: int
    on_error: str
    sensor_bands: dict[str, frozenset[str]] | None = None
    skip_blocks: bool = True

    def stat_names(self) -> list[str]:
        """Statistic names in output order (``mean``, ``median``, ``std``, ``p10``...)."""
        names = [s for s in self.stats]
        names += [quantile_name(q) for q in self.percentiles if quantile_name(q) not in names]
        return names

    def quantiles(self) -> list[float]:
        """Quantiles (percent) the kernel must compute."""
        qs = [float(q) for q in self.percentiles]
        if "median" in self.stats:
            qs.append(50.0)
        return sorted(set(qs))

    def value_columns(self) -> list[str]:
        """``<index>_<stat>`` columns in output order."""
        return [stat_column(i.name, s) for i in self.indices for s in self.stat_names()]


def needed_bands(acq: Acquisition, indices: tuple[SpectralIndex, ...]) -> list[str]:
    """Bands (or precomputed index layers) of ``acq`` that ``indices`` need and it has."""
    out: list[str] = []
    for idx in indices:
        own = idx.name.lower()
        need = (own,) if own in acq.assets else idx.bands
        out.extend(b for b in need if b in acq.assets and b not in out)
    return out


def missing_bands(acq: Acquisition, indices: tuple[SpectralIndex, ...]) -> dict[str, list[str]]:
    """Index name -> bands it needs that ``acq`` lacks (empty if computable)."""
    out: dict[str, list[str]] = {}
    for idx in indices:
        if idx.name.lower() in acq.assets:
            continue
        lack = [b for b in idx.bands if b not in acq.assets]
        if lack:
            out[idx.name] = lack
    return out


# --------------------------------------------------------------------------- worker tasks
def build_tile_raster(fields: TileFields, grid: GridSpec, inner_buffer_px: float) -> TileRaster:
    """Reproject a tile's fields to ``grid``'s CRS and burn them on their window of ``grid``."""
    geoms = gpd.GeoSeries.from_wkb(fields.wkb, crs=fields.crs)
    local = geoms.to_crs(grid.crs).to_numpy() if fields.crs != grid.crs else geoms.to_numpy()
    xmin, ymin, xmax, ymax = grid.bounds
    hits = shapely.intersects(local, shapely.box(xmin, ymin, xmax, ymax))
    members = np.flatnonzero(hits & ~shapely.is_empty(local))
    if len(members) == 0:
        empty = grid.window_grid(grid.window_of_bounds((xmin, ymin, xmin, ymin)))
        index = rasterize_fields(np.empty(0, dtype=object), empty).index()
        return TileRaster(index, members, Coverage.of_index(index))
    bounds = shapely.total_bounds(local[members])
    xb0, yb0, xb1, yb1 = (float(v) for v in bounds)
    window = grid.window_grid(grid.window_of_bounds((xb0, yb0, xb1, yb1)))
    raster = rasterize_fields(local[members], window, buffer=inner_buffer_px * grid.resolution)
    # the run index (built here, once per tile and grid) replaces the id raster
    index = raster.index()
    return TileRaster(index, members, Coverage.of_index(index))


#: Rows of a window read and reduced at a time (a multiple of common block heights; 512-row
#: strips measured no faster and 5-8% slower end to end, so strips only bound memory).
STRIP_ROWS = 2048


def strip_rows(window: GridSpec, source: GridSpec, rows: int | None = None
               ) -> list[tuple[int, int]]:
    """Cut a window's rows into strips whose edges fall on multiples of ``rows`` of ``source``.

    Aligned with the source file's rows, each block row of the file is decoded once.
    ``rows`` defaults to :data:`STRIP_ROWS`.
    """
    rows = STRIP_ROWS if rows is None else rows
    offset = round((source.transform.f - window.transform.f) / window.transform.e)
    first = (-offset) % rows or rows
    edges = [0, *range(first, window.height, rows), window.height]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def extract_acquisition(fields: TileFields, tile_raster: TileRaster, acq: Acquisition,
                        spec: ExtractSpec) -> AcquisitionResult:
    """Observations of one tile's fields in one acquisition (one Dask task).

    The quality band of each strip is read first; with ``spec.skip_blocks`` the band
    files' blocks holding no field pixel, or only masked ones, are then left undecoded
    (the statistics are the same: such pixels count for nothing).

    Raises
    ------
    InputError
        With ``on_error='fail'``, naming the file and band that could not be read.
    """
    members = tile_raster.members
    if len(members) == 0:
        return AcquisitionResult(None, [])
    import numba

    numba.set_num_threads(min(spec.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    window = tile_raster.raster.grid
    problems: list[SceneProblem] = []
    lack = missing_bands(acq, spec.indices)
    for idx_name, lacking in lack.items():
        offered = (spec.sensor_bands or {}).get(acq.sensor, frozenset())
        if lacking and all(b in offered for b in lacking):
            # The sensor has the band but this acquisition does not (file missing/unreadable).
            problem = SceneProblem(acq.id, "", f"{idx_name} needs band(s) {lacking} that this "
                                   "acquisition lacks; its statistics are NaN", fatal=False)
            if spec.on_error == "fail":
                raise MissingBandError(f"acquisition {acq.id}: {problem.reason}")
            problems.append(problem)
    zonal = ZonalPass(tile_raster.raster, spec.indices, percentiles=spec.quantiles(),
                      stats=spec.stats)
    names = needed_bands(acq, spec.indices)
    reader = BandReader(threads=spec.threads)
    try:
        with reader:
            # strip by strip: a strip is reduced while its pixels are still in cache, and
            # only a strip of each band is held
            for r0, r1 in strip_rows(window, acq.assets[names[0]].grid if names else window):
                strip = window.window_grid(Window(0, r0, window.width, r1 - r0))
                need = PixelNeed(tile_raster.coverage, r0) if spec.skip_blocks else None
                mask = None
                if acq.mask is not None and acq.mask_spec is not None:
                    # outside the quality raster: code -1, which the lookup drops
                    data, rows, cols = reader.read_native(acq.mask, strip, fill=-1, need=need)
                    if np.issubdtype(data.dtype, np.floating):
                        data = np.where(np.isfinite(data), data, -1).astype(np.int32)
                    keep = acq.mask_spec.valid_lookup()
                    mask = MaskInput(data, keep, rows, cols)
                    if need is not None:
                        need = need.with_mask(data, keep, rows, cols)
                bands: dict[str, BandInput] = {}
                for name in names:
                    asset = acq.assets[name]
                    data, rows, cols = reader.read_native(asset, strip, need=need)
                    bands[name] = BandInput(data, asset.scale, asset.offset, asset.nodata, rows,
                                            cols)
                if need is not None and not need.any(0, r1 - r0, 0, window.width):
                    zonal.skip(r0, r1 - r0)  # no usable field pixel: nothing was decoded
                else:
                    zonal.feed(r0, bands, mask=mask, height=r1 - r0)
    except RegenmapError as err:
        if spec.on_error == "fail":
            raise
        return AcquisitionResult(None, [SceneProblem(acq.id, getattr(err, "path", "") or "",
                                                     f"tile {fields.tile_id}: {err}")])
    result = zonal.result()
    n_pix = result.n_pixels.astype(np.int32)
    n_val = result.n_valid.astype(np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n_pix > 0, n_val / np.maximum(n_pix, 1), np.nan).astype(np.float32)
    enough = n_val >= spec.min_pixels
    table: dict[str, Any] = {
        FIELD_ID: fields.field_ids[members],
        TIME: np.full(len(members), np.datetime64(acq.time, "ns")),
        SENSOR: acq.sensor,
        ACQUISITION_ID: acq.id,
        TILE_ID: fields.tile_id,
        N_PIXELS: n_pix,
        N_VALID: n_val,
        VALID_FRACTION: frac,
    }
    for idx in spec.indices:
        for s in spec.stat_names():
            values = result.stats[(idx.name, s)].astype(np.float32)
            table[stat_column(idx.name, s)] = np.where(enough, values, np.float32(np.nan))
    return AcquisitionResult(pd.DataFrame(table), problems, reader.units_read,
                             reader.units_skipped)


def extract_part(fields: TileFields, tile_raster: TileRaster, acq: Acquisition,
                 spec: ExtractSpec, path: Path, schema: pa.Schema, run_key: str,
                 tile_file: Path) -> PartInfo:
    """Extract one tile and acquisition into its part file (one Dask task).

    A part written before by a run with the same ``run_key`` (and no problem) is reused;
    nothing is done when ``tile_file`` is already written by that run (Dask running the
    task again after its tile was finished).
    """
    when = np.datetime64(acq.time, "ns")
    if tile_is_done(tile_file, run_key):
        return PartInfo(str(path), when, 0)
    done = reuse_part(path, run_key)
    if done is not None:
        return done
    res = extract_acquisition(fields, tile_raster, acq, spec)
    return write_part(path, res.rows, schema, when, run_key, res.problems,
                      (res.units_read, res.units_skipped))


# --------------------------------------------------------------------------- driver
def observations_schema(spec: ExtractSpec) -> pa.Schema:
    """Arrow schema of the observations table for ``spec``."""
    cols = [pa.field(FIELD_ID, pa.string()), pa.field(TIME, pa.timestamp("ns")),
            pa.field(SENSOR, pa.string()), pa.field(ACQUISITION_ID, pa.string()),
            pa.field(TILE_ID, pa.string()), pa.field(N_PIXELS, pa.int32()),
            pa.field(N_VALID, pa.int32()), pa.field(VALID_FRACTION, pa.float32())]
    cols += [pa.field(c, pa.float32()) for c in spec.value_columns()]
    return pa.schema(cols)


def extract(config: RunConfig | str | Path, *, client: Client | None = None) -> Path:
    """Run the extraction stage.

    Parameters
    ----------
    config
        Run configuration, or the path of its YAML file.
    client
        Dask client to run on; a cluster from ``config.cluster`` is started (and stopped) if None.

    Returns
    -------
    pathlib.Path
        ``config.out_dir / "observations"``, holding ``tile=<id>.parquet`` files. Also writes
        ``config.out_dir / "fields_status.parquet"`` (field_id, status, reason, area_ha,
        n_pixels) and ``config.out_dir / "scenes_status.parquet"`` (acquisition_id, path,
        severity, reason).

    Raises
    ------
    ConfigError
        Bad options or no ``scenes`` section.
    InputError
        Unreadable inputs; with ``extract.on_error: fail`` also the first scene problem.
    """
    from regenmap.pipelines.config import RunConfig, load_config

    cfg = config if isinstance(config, RunConfig) else load_config(config)
    if cfg.scenes is None:
        raise ConfigError("scenes: the extraction stage needs a 'scenes' section (path, sensor, "
                          "kind), or start from existing observations with 'observations:'")
    opts = cfg.extract
    base = cfg.source.parent if cfg.source else None
    names = [cfg.scenes.sensor] if isinstance(cfg.scenes.sensor, str) else cfg.scenes.sensor
    profiles = [load_sensor_profile(n, base_dir=base) for n in names]
    indices = resolve_indices(opts.indices)
    spec = ExtractSpec(indices=indices, stats=tuple(opts.stats),
                       percentiles=tuple(opts.percentiles), min_pixels=opts.min_pixels,
                       inner_buffer_px=opts.inner_buffer_px, threads=opts.read_threads,
                       on_error=opts.on_error, skip_blocks=opts.skip_blocks,
                       sensor_bands={p.name: frozenset(p.common_names) for p in profiles})
    fields = read_fields(cfg.fields.path, layer=cfg.fields.layer, id_column=cfg.fields.id_column)
    acquisitions, problems = build_catalog(cfg.scenes, profiles)
    fatal = [p for p in problems if p.severity == "error"]
    if fatal and opts.on_error == "fail":
        raise InputError(f"{fatal[0].reason} (acquisition {fatal[0].acquisition_id or '?'}); "
                         "set extract.on_error: record to skip it and go on", path=fatal[0].path)
    if not acquisitions:
        raise InputError("no usable acquisition: " + "; ".join(p.reason for p in problems[:5]),
                         path=cfg.scenes.path)
    notes = [n for prof in profiles for n in sensor_notes(
        prof, indices, [a for a in acquisitions if a.sensor == prof.name])]
    for note in notes:
        log.warning(note)
    bands = sorted({b for a in acquisitions for b in needed_bands(a, indices)})
    plan = plan_tiles(fields.geometry, reference_grid(acquisitions, bands), opts.tile_size_px)
    run_key = config_hash({"fields": cfg.fields.model_dump(mode="json"),
                           "scenes": cfg.scenes.model_dump(mode="json"),
                           "extract": opts.model_dump(mode="json"),
                           "acquisitions": [a.id for a in acquisitions],
                           # contents too: a fields file or scene edited in place
                           "inputs": inputs_fingerprint([cfg.fields.path, cfg.scenes.path,
                                                         cfg.scenes.dates],
                                                        exclude=cfg.out_dir)})
    out = cfg.out_dir / "observations"
    out.mkdir(parents=True, exist_ok=True)
    meta = stamp(schema=OBSERVATIONS_SCHEMA, config=cfg.model_dump(mode="json"),
                 inputs=[str(cfg.fields.path), str(cfg.scenes.path)])
    meta.update(run_key=run_key, indices={i.name: {"formula": i.formula, "source": i.source}
                                          for i in indices},
                resampling=RESAMPLING_RULE, inner_buffer_px=opts.inner_buffer_px,
                min_pixels=opts.min_pixels, pixel_rule="pixel centre inside the buffered polygon",
                notes=notes)
    pending = [t for t in plan.tiles if not tile_is_done(tile_path(out, t.id), run_key)]
    log.info("extract: %d field(s), %d acquisition(s), %d tile(s), %d to compute",
             len(fields), len(acquisitions), len(plan.tiles), len(pending))
    if pending:
        if client is None:
            from regenmap.pipelines.cluster import get_client

            with get_client(cfg.cluster) as own:
                _run(own, pending, fields, acquisitions, spec, out, meta, opts.tiles_in_flight)
        else:
            _run(client, pending, fields, acquisitions, spec, out, meta, opts.tiles_in_flight)
    parts = out / PARTS_DIR
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()  # every tile written: no part left
    # what every tile (written now or by an earlier run) recorded, read once
    metas = [file_meta(path) for path in (tile_path(out, t.id) for t in plan.tiles)
             if path.is_file()]
    problems += [SceneProblem(**p) for m in metas for p in m.get("scene_problems", [])]
    _log_block_units(metas)
    _write_scene_status(cfg.out_dir / "scenes_status.parquet", problems)
    _write_field_status(cfg.out_dir / "fields_status.parquet", fields, out, plan, opts.min_pixels,
                        opts.inner_buffer_px)
    return out


def sensor_notes(profile: SensorProfile, indices: tuple[SpectralIndex, ...],
                 acquisitions: list[Acquisition]) -> list[str]:
    """One note per index that no acquisition of this sensor can compute (it lacks a band)."""
    notes: list[str] = []
    if not acquisitions:
        return notes
    for idx in indices:
        if any(not missing_bands(a, (idx,)) for a in acquisitions):
            continue
        lack = sorted({b for a in acquisitions for b in missing_bands(a, (idx,)).get(idx.name, [])})
        notes.append(f"{idx.name} needs band(s) {', '.join(lack)}, which sensor {profile.name!r} "
                     f"does not provide here: its columns are NaN")
    return notes


def _tile_fields(fields: gpd.GeoDataFrame, tile: Tile) -> TileFields:
    sub = fields.iloc[tile.rows]
    geoms = sub.geometry.to_numpy().copy()
    bad = (sub[STATUS] == FieldStatus.ERROR.value).to_numpy()
    geoms[bad] = shapely.Polygon()
    crs = fields.crs.to_string() if fields.crs is not None else ""
    from regenmap.geo.grid import crs_string

    return TileFields(tile.id, sub[FIELD_ID].to_numpy(dtype=object).astype(str),
                      shapely.to_wkb(geoms), crs_string(crs) if crs else crs)


def _identity(value: Any) -> Any:
    """Return ``value``: puts an object into the task graph with lineage."""
    return value


def _run(client: Client, pending: list[Tile], fields: gpd.GeoDataFrame,
         acquisitions: list[Acquisition], spec: ExtractSpec, out: Path, meta: dict[str, Any],
         in_flight: int | None) -> None:
    """Extract and write the pending tiles, at most ``in_flight`` at a time."""
    from distributed import as_completed

    by_grid: dict[GridSpec, list[Acquisition]] = {}
    for acq in acquisitions:
        by_grid.setdefault(acq.grid_for(needed_bands(acq, spec.indices)), []).append(acq)
    schema = observations_schema(spec)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    limit = in_flight or 2 * n_workers
    tiles: Iterator[Tile] = iter(pending)

    def submit(tile: Tile) -> Future:
        # A task, not client.scatter: its data lives in the graph, so the scheduler can
        # recompute it on another worker if the one holding it dies.
        tf_future = client.submit(_identity, _tile_fields(fields, tile),
                                  key=f"tile-fields-{tile.id}-{meta['run_key']}", pure=False)
        parts = []
        for g, (grid, accs) in enumerate(by_grid.items()):
            ids = client.submit(build_tile_raster, tf_future, grid, spec.inner_buffer_px,
                                key=f"field-raster-{tile.id}-{g}-{meta['run_key']}", pure=False)
            parts += [client.submit(extract_part, tf_future, ids, acq, spec,
                                    part_path(out, tile.id, acq.id), schema, meta["run_key"],
                                    tile_path(out, tile.id),
                                    key=f"extract-{tile.id}-{acq.id}-{meta['run_key']}",
                                    pure=False) for acq in accs]
        return client.submit(write_tile, tile_path(out, tile.id), parts, schema,
                             {**meta, "tile_id": tile.id}, key=f"write-{tile.id}-{meta['run_key']}",
                             pure=False)

    queue = as_completed([submit(t) for t in itertools.islice(tiles, limit)])
    for fut in queue:
        fut.result()  # raises the task's error; its problems are in the tile's metadata
        nxt = next(tiles, None)
        if nxt is not None:
            queue.add(submit(nxt))


def _log_block_units(metas: list[dict[str, Any]]) -> None:
    """Log how many block units of band files the tiles decoded and skipped."""
    read = sum(int(m.get("block_units", {}).get("read", 0)) for m in metas)
    skipped = sum(int(m.get("block_units", {}).get("skipped", 0)) for m in metas)
    if read + skipped:
        log.info("extract: decoded %d of %d band block units (%.0f%% skipped: no field, or "
                 "every field pixel masked)", read, read + skipped, 100 * skipped / (read + skipped))


def _write_scene_status(path: Path, problems: list[SceneProblem]) -> None:
    seen: dict[tuple[str, str, str], SceneProblem] = {}
    for p in problems:
        seen.setdefault((p.acquisition_id, p.path, p.reason), p)
    df = pd.DataFrame({ACQUISITION_ID: [p.acquisition_id for p in seen.values()],
                       SCENE_PATH: [p.path for p in seen.values()],
                       SCENE_SEVERITY: [p.severity for p in seen.values()],
                       REASON: [p.reason for p in seen.values()]}).astype(str)
    write_parquet_atomic(df, path)


def _write_field_status(path: Path, fields: gpd.GeoDataFrame, out: Path, plan: TilePlan,
                        min_pixels: int, buffer_px: float) -> None:
    cols = [FIELD_ID, N_PIXELS, N_VALID]
    files = [tile_path(out, t.id) for t in plan.tiles if tile_path(out, t.id).is_file()]
    # tile by tile (a field is in one tile), so only one tile's rows are in memory
    per_tile = [pd.read_parquet(f, columns=cols).groupby(FIELD_ID).agg(
        n_pixels=(N_PIXELS, "max"), n_valid=(N_VALID, "sum"), n_obs=(N_PIXELS, "size"))
        for f in files]
    if per_tile:
        agg = pd.concat(per_tile).groupby(level=0).agg(
            n_pixels=("n_pixels", "max"), n_valid=("n_valid", "sum"), n_obs=("n_obs", "sum"))
    else:
        agg = pd.DataFrame({"n_pixels": [], "n_valid": [], "n_obs": []}, index=pd.Index([]))
    agg = agg.reindex(fields[FIELD_ID].to_numpy())
    status = fields[STATUS].to_numpy(dtype=object).copy()
    reason = fields[REASON].to_numpy(dtype=object).copy()
    n_pix = agg["n_pixels"].to_numpy()
    n_obs = agg["n_obs"].to_numpy()
    n_val = agg["n_valid"].to_numpy()
    for i in range(len(fields)):
        if status[i] == FieldStatus.ERROR.value:
            continue
        extra = ""
        if not n_obs[i] > 0:
            status[i], extra = FieldStatus.NO_DATA.value, "outside every scene"
        elif n_pix[i] < min_pixels:
            status[i] = FieldStatus.TOO_SMALL.value
            extra = (f"{int(n_pix[i])} pixel(s) after an inner buffer of {buffer_px:g} px; "
                     f"minimum is {min_pixels} (extract.min_pixels)")
        elif n_val[i] == 0:
            status[i], extra = FieldStatus.NO_DATA.value, "no valid (cloud-free) pixel in any scene"
        if extra:
            reason[i] = f"{reason[i]}; {extra}" if reason[i] else extra
    df = pd.DataFrame({FIELD_ID: fields[FIELD_ID].astype(str).to_numpy(), STATUS: status.astype(str),
                       REASON: reason.astype(str),
                       AREA_HA: fields[AREA_HA].to_numpy(dtype=np.float64),
                       N_PIXELS: np.nan_to_num(n_pix.astype(np.float64), nan=0).astype(np.int32)})
    write_parquet_atomic(df, path)
