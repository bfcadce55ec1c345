"""Stage ``extract``: scenes + field polygons -> per-field observations, one Parquet file per tile.

One Dask task per (tile, acquisition) runs
:func:`regenmap.features.observe.observe_acquisition` on the tile's window: it reads
only the bands its indices need, masks clouds and nodata, and reduces every field
of the tile. The field raster of a tile is built once per acquisition grid (a task
of its own) and reused by every acquisition on that grid. Each task writes its
rows to a part file; one task per tile streams the parts into the tile's file
(:mod:`regenmap.pipelines.tile_store`), atomically; a run started again skips the
tiles already written by the same inputs and options, and reuses the parts.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa

from regenmap.errors import ConfigError, InputError, picklable_errors
from regenmap.features.indices import resolve_indices
from regenmap.features.observe import (
    ObserveSpec,
    TileFields,
    TileRaster,
    index_notes,
    needed_bands,
    observations_schema,
    observe_acquisition,
    tile_fields,
)
from regenmap.features.plausibility import Implausible, Tally, judge
from regenmap.features.tile_cache import cached_tile_raster, read_tile_fields, write_tile_fields
from regenmap.geo.catalog import Acquisition, SceneProblem
from regenmap.geo.grid import GridSpec
from regenmap.geo.raster_read import RESAMPLING_RULE
from regenmap.io import write_parquet_atomic
from regenmap.pipelines import inputs
from regenmap.pipelines.config import as_config
from regenmap.pipelines.fingerprint import inputs_fingerprint
from regenmap.pipelines.layout import RunLayout
from regenmap.pipelines.log import NullProgress, Progress
from regenmap.pipelines.tile_store import (
    PartInfo,
    file_meta,
    reuse_part,
    tile_is_done,
    write_part,
    write_tile,
)
from regenmap.pipelines.tile_summary import SummaryBuilder, TileSummary, summarise_file
from regenmap.pipelines.tiling import Tile, plan_tiles, reference_grid
from regenmap.provenance import config_hash, stamp
from regenmap.schema import (
    ACQUISITION_ID,
    AREA_HA,
    FIELD_ID,
    FOOTPRINT,
    N_PIXELS,
    OBSERVATIONS_SCHEMA,
    REASON,
    STATUS,
    FieldStatus,
    stat_column,
)

if TYPE_CHECKING:
    from distributed import Client, Future

    from regenmap.pipelines.config import RunConfig

log = logging.getLogger(__name__)

#: Columns of ``scenes_status.parquet`` (one row per scene problem).
SCENE_PATH = "path"
SCENE_SEVERITY = "severity"


@picklable_errors()
def extract_part(fields: TileFields, tile_raster: TileRaster, acq: Acquisition,
                 spec: ObserveSpec, path: Path, schema: pa.Schema, run_key: str,
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
    res = observe_acquisition(fields, tile_raster, acq, spec)
    return write_part(path, res.rows, schema, when, run_key, res.problems,
                      (res.units_read, res.units_skipped))


def write_tile_task(path: Path, parts: list[PartInfo], schema: pa.Schema,
                    metadata: dict[str, Any], value_columns: list[str], stat: str
                    ) -> TileSummary | None:
    """Write a tile's file from its parts (one Dask task); return what the status table needs.

    None when the tile was already written (Dask running the task again): the driver
    then reads the file.
    """
    if tile_is_done(path, str(metadata.get("run_key"))):
        return None
    builder = SummaryBuilder(value_columns, stat)
    write_tile(path, parts, schema, metadata, summary=builder)
    return builder.result()


# --------------------------------------------------------------------------- driver

def extract(config: RunConfig | str | Path, *, client: Client | None = None,
            progress: Progress | None = None) -> dict[str, Path]:
    """Run the extraction stage.

    Parameters
    ----------
    config
        Run configuration, or the path of its YAML file.
    client
        Dask client to run on; else one is opened (and closed) as the CLI does
        (:func:`regenmap.pipelines.cluster.open_client`: address, profile, LocalCluster).
    progress
        Told the plan (tile x acquisition tasks) and each finished task.

    Returns
    -------
    dict
        ``observations``: the folder of ``tile=<id>.parquet`` files; ``fields_status``
        (field_id, status, reason, area_ha, n_pixels); ``scenes_status`` (acquisition_id,
        path, severity, reason).

    Raises
    ------
    ConfigError
        Bad options or no ``scenes`` section.
    InputError
        Unreadable inputs; with ``extract.on_error: fail`` also the first scene problem.
    """
    cfg = as_config(config)
    layout = RunLayout.of(cfg)
    progress = progress or NullProgress()
    if cfg.scenes is None or cfg.fields is None:
        raise ConfigError("scenes: the extraction stage needs a 'scenes' section (path, sensor, "
                          "kind) and the fields, or start from existing observations with "
                          "'observations:'")
    profiles = inputs.sensor_profiles(cfg)
    opts = cfg.extract
    indices = resolve_indices(opts.indices)
    spec = ObserveSpec(indices=indices, stats=tuple(opts.stats),
                       percentiles=tuple(opts.percentiles), min_pixels=opts.min_pixels,
                       inner_buffer_px=opts.inner_buffer_px, threads=opts.read_threads,
                       on_error=opts.on_error, skip_blocks=opts.skip_blocks,
                       quantile_precision=(opts.median_precision if opts.median == "binned"
                                           else None),
                       sensor_bands={p.name: frozenset(p.common_names) for p in profiles})
    fields = inputs.fields(cfg)
    acquisitions, problems = inputs.catalog(cfg, profiles)
    fatal = [p for p in problems if p.severity == "error"]
    if fatal and opts.on_error == "fail":
        raise InputError(f"{fatal[0].reason} (acquisition {fatal[0].acquisition_id or '?'}); "
                         "set extract.on_error: record to skip it and go on", path=fatal[0].path)
    if not acquisitions:
        raise InputError("no usable acquisition: " + "; ".join(p.reason for p in problems[:5]),
                         path=cfg.scenes.path)
    notes = [n for prof in profiles for n in index_notes(
        prof.name, indices, [a for a in acquisitions if a.sensor == prof.name])]
    for note in notes:
        log.warning(note)
    bands = sorted({b for a in acquisitions for b in needed_bands(a, indices)})
    grid = reference_grid(acquisitions, bands)
    # reprojected once per run: the plan and the workers use the tile grid's CRS
    local = fields.geometry.to_crs(grid.crs) if fields.crs is not None else fields.geometry
    plan = plan_tiles(local, grid, opts.tile_size_px)
    run_key = config_hash({"fields": cfg.fields.model_dump(mode="json"),
                           "scenes": cfg.scenes.model_dump(mode="json"),
                           # where the field-index cache lives changes no output
                           "extract": opts.model_dump(mode="json", exclude={"cache_dir"}),
                           "acquisitions": [a.id for a in acquisitions],
                           # contents too: a fields file or scene edited in place
                           "inputs": inputs_fingerprint([cfg.fields.path, cfg.scenes.path,
                                                         cfg.scenes.dates],
                                                        exclude=cfg.out_dir)})
    out = layout.observations_dir
    out.mkdir(parents=True, exist_ok=True)
    meta = stamp(schema=OBSERVATIONS_SCHEMA, config=cfg.model_dump(mode="json"),
                 inputs=[str(cfg.fields.path), str(cfg.scenes.path)])
    meta.update(run_key=run_key, indices={i.name: {"formula": i.formula, "source": i.source}
                                          for i in indices},
                resampling=RESAMPLING_RULE, inner_buffer_px=opts.inner_buffer_px,
                min_pixels=opts.min_pixels, pixel_rule="pixel centre inside the buffered polygon",
                notes=notes)
    pending = [t for t in plan.tiles if not tile_is_done(layout.tile_file(t.id), run_key)]
    summaries: dict[str, TileSummary | None] = {}
    log.info("extract: %d field(s), %d acquisition(s), %d tile(s), %d to compute",
             len(fields), len(acquisitions), len(plan.tiles), len(pending))
    progress.plan(len(pending) * len(acquisitions), tiles=f"0/{len(pending)}")
    if pending:
        if client is None:
            from regenmap.pipelines.cluster import open_client

            with open_client(cfg.cluster) as own:
                summaries = _run(own, pending, fields, local, acquisitions, spec, layout, meta,
                                 opts.tiles_in_flight, progress, cfg.fields.point_pixels or 0)
        else:
            summaries = _run(client, pending, fields, local, acquisitions, spec, layout, meta,
                             opts.tiles_in_flight, progress, cfg.fields.point_pixels or 0)
    parts = layout.parts_dir
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()  # every tile written: no part left
    # what every tile (written now or by an earlier run) recorded, read once
    metas = [file_meta(path) for path in (layout.tile_file(t.id) for t in plan.tiles)
             if path.is_file()]
    problems += [SceneProblem(**p) for m in metas for p in m.get("scene_problems", [])]
    _log_block_units(metas)
    # counts gathered by the tile writers; tiles written before are read back
    stat, values = _checked_columns(spec)
    for tile in plan.tiles:
        path = layout.tile_file(tile.id)
        if summaries.get(tile.id) is None and path.is_file():
            summaries[tile.id] = summarise_file(str(path), values, stat)
    tiles = [done for t in plan.tiles if (done := summaries.get(t.id)) is not None]
    implausible, with_values = _scan_values(tiles)
    problems += [SceneProblem(acq, "", "implausible values: " + "; ".join(p.text() for p in ps),
                              fatal=False, severity="warning") for acq, ps in implausible.items()]
    _write_scene_status(layout.scenes_status, problems, [a.id for a in acquisitions])
    status = _write_field_status(layout, fields, tiles, opts.min_pixels, opts.inner_buffer_px,
                                 covered=_covered(fields, acquisitions, local, grid.crs),
                                 with_values=with_values)
    if implausible:
        first = next(iter(implausible.values()))[0]
        log.warning("%d of %d acquisitions hold implausible values (see %s), e.g. %s",
                    len(implausible), len(acquisitions), layout.scenes_status, first.text())
    if len(implausible) > opts.max_implausible_share * len(acquisitions):
        raise InputError(
            f"{len(implausible)} of {len(acquisitions)} acquisitions hold implausible values, "
            f"e.g. {next(iter(implausible.values()))[0].text()}. Check the sensor profile's "
            "scale and offset for these files (extract.max_implausible_share to go on).",
            path=layout.scenes_status)
    check_usable(status, problems, layout.fields_status)
    return {"observations": out, "fields_status": layout.fields_status,
            "scenes_status": layout.scenes_status}


def tile_raster_task(fields_file: str, grid: GridSpec, inner_buffer_px: float,
                     cache_dir: str | None) -> TileRaster:
    """Return a tile's field index on one grid (one Dask task), from the cache if sound."""
    return cached_tile_raster(read_tile_fields(fields_file), grid, inner_buffer_px, cache_dir)


def _run(client: Client, pending: list[Tile], fields: gpd.GeoDataFrame, local: gpd.GeoSeries,
         acquisitions: list[Acquisition], spec: ObserveSpec, layout: RunLayout,
         meta: dict[str, Any], in_flight: int | None, progress: Progress,
         point_pixels: int = 0) -> dict[str, TileSummary | None]:
    """Extract and write the pending tiles, at most ``in_flight`` at a time.

    Returns each tile's summary from its writer (None: read the tile's file instead).
    """
    from distributed import as_completed

    by_grid: dict[GridSpec, list[Acquisition]] = {}
    for acq in acquisitions:
        by_grid.setdefault(acq.grid_for(needed_bands(acq, spec.indices)), []).append(acq)
    schema = observations_schema(spec)
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    limit = in_flight or 2 * n_workers
    tiles: Iterator[Tile] = iter(pending)
    cache = str(layout.field_index_dir)
    key = meta["run_key"]
    stat, values = _checked_columns(spec)
    which: dict[str, str] = {}

    def submit(tile: Tile) -> Future:
        # The tile's fields go to the workers as a file (the graph holds its path); the
        # tasks reading it can run again anywhere if a worker dies.
        path = write_tile_fields(layout.tile_fields_file(tile.id),
                                 tile_fields(fields, tile.id, tile.rows, local,
                                             point_pixels=point_pixels))
        names = client.submit(read_tile_fields, str(path), geometry=False,
                              key=f"tile-fields-{tile.id}-{key}", pure=False)
        parts = []
        for g, (grid, accs) in enumerate(by_grid.items()):
            ids = client.submit(tile_raster_task, str(path), grid, spec.inner_buffer_px, cache,
                                key=f"field-raster-{tile.id}-{g}-{key}", pure=False)
            parts += [client.submit(extract_part, names, ids, acq, spec,
                                    layout.part_file(tile.id, acq.id), schema, key,
                                    layout.tile_file(tile.id),
                                    key=f"extract-{tile.id}-{acq.id}-{key}",
                                    pure=False) for acq in accs]
        for part in parts:
            part.add_done_callback(
                lambda f: progress.advance() if f.status == "finished" else None)
        written = client.submit(write_tile_task, layout.tile_file(tile.id), parts, schema,
                                {**meta, "tile_id": tile.id}, values, stat,
                                key=f"write-{tile.id}-{key}", pure=False)
        which[str(written.key)] = tile.id
        return written

    queue = as_completed([submit(t) for t in itertools.islice(tiles, limit)])
    summaries: dict[str, TileSummary | None] = {}
    for written, fut in enumerate(queue, start=1):
        # raises the task's error; its problems are in the tile's metadata
        summaries[which[str(fut.key)]] = fut.result()
        progress.advance(0, tiles=f"{written}/{len(pending)}")
        nxt = next(tiles, None)
        if nxt is not None:
            queue.add(submit(nxt))
    for tile in pending:  # the tiles are written: their fields files are no longer needed
        layout.tile_fields_file(tile.id).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        layout.tile_fields_file("").parent.rmdir()  # if empty
    return summaries


def _checked_columns(spec: ObserveSpec) -> tuple[str, list[str]]:
    """Statistic whose values are checked, and its ``<index>_<stat>`` columns."""
    stat = "mean" if "mean" in spec.stat_names() else spec.stat_names()[0]
    return stat, [stat_column(i.name, stat) for i in spec.indices]


def _scan_values(tiles: list[TileSummary]) -> tuple[dict[str, list[Implausible]], set[str]]:
    """Merge the tiles' value counts: implausible acquisitions, fields with a value.

    Returns
    -------
    implausible, with_values
        Acquisition id -> its implausible series; the ids of fields with at least one finite
        index value.
    """
    totals: dict[tuple[str, str], Tally] = {}
    with_values: set[str] = set()
    for summary in tiles:
        with_values.update(summary.field_ids[summary.with_value].astype(str).tolist())
        for key, counts in summary.tallies.items():
            totals[key] = totals.get(key, Tally()) + counts
    out: dict[str, list[Implausible]] = {}
    for (acq, series), counts in totals.items():
        problem = judge(series, counts)
        if problem is not None:
            out.setdefault(acq, []).append(problem)
    return out, with_values


def _log_block_units(metas: list[dict[str, Any]]) -> None:
    """Log how many block units of band files the tiles decoded and skipped."""
    read = sum(int(m.get("block_units", {}).get("read", 0)) for m in metas)
    skipped = sum(int(m.get("block_units", {}).get("skipped", 0)) for m in metas)
    if read + skipped:
        log.info("extract: decoded %d of %d band block units (%.0f%% skipped: no field, or "
                 "every field pixel masked)", read, read + skipped, 100 * skipped / (read + skipped))


def _write_scene_status(path: Path, problems: list[SceneProblem],
                        acquisitions: list[str]) -> None:
    """One row per scene problem; the catalogued acquisitions' ids in the file's metadata."""
    seen: dict[tuple[str, str, str], SceneProblem] = {}
    for p in problems:
        seen.setdefault((p.acquisition_id, p.path, p.reason), p)
    df = pd.DataFrame({ACQUISITION_ID: [p.acquisition_id for p in seen.values()],
                       SCENE_PATH: [p.path for p in seen.values()],
                       SCENE_SEVERITY: [p.severity for p in seen.values()],
                       REASON: [p.reason for p in seen.values()]}).astype(str)
    write_parquet_atomic(df, path, meta={"acquisitions": acquisitions})


def _covered(fields: gpd.GeoDataFrame, acquisitions: list[Acquisition],
             local: gpd.GeoSeries | None = None, local_crs: str | None = None) -> np.ndarray:
    """Whether each field meets the footprint of at least one acquisition (bool, fields' order).

    ``local`` are the fields already reprojected to ``local_crs`` (not done again).
    """
    import shapely

    out = np.zeros(len(fields), dtype=bool)
    boxes: dict[str, list[shapely.Geometry]] = {}
    for acq in acquisitions:
        grid = acq.grid_for(list(acq.assets))
        boxes.setdefault(grid.crs, []).append(shapely.box(*grid.bounds))
    for crs, shapes in boxes.items():
        footprint = shapely.union_all(shapes)
        if local is not None and local_crs is not None and crs == local_crs:
            geoms = local
        else:
            geoms = fields.geometry.to_crs(crs) if fields.crs is not None else fields.geometry
        out |= shapely.intersects(geoms.to_numpy(), footprint)
    return out


def _write_field_status(layout: RunLayout, fields: gpd.GeoDataFrame, tiles: list[TileSummary],
                        min_pixels: int, buffer_px: float, *, covered: np.ndarray | None = None,
                        with_values: set[str] | None = None) -> pd.DataFrame:
    status, reason, n_pix = _field_status(fields, tiles, min_pixels, buffer_px, covered=covered,
                                          with_values=with_values)
    df = pd.DataFrame({FIELD_ID: fields[FIELD_ID].astype(str).to_numpy(), STATUS: status.astype(str),
                       REASON: reason.astype(str),
                       AREA_HA: fields[AREA_HA].to_numpy(dtype=np.float64),
                       N_PIXELS: np.nan_to_num(n_pix.astype(np.float64), nan=0).astype(np.int32),
                       FOOTPRINT: (fields[FOOTPRINT].astype(str).to_numpy()
                                   if FOOTPRINT in fields.columns else "polygon")})
    write_parquet_atomic(df, layout.fields_status)
    return df


def _field_status(fields: gpd.GeoDataFrame, tiles: list[TileSummary], min_pixels: int,
                  buffer_px: float, *, covered: np.ndarray | None = None,
                  with_values: set[str] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Status, reason (object arrays) and largest pixel count of each field, in fields' order.

    Array operations over the fields; only the fields given a reason are visited one by one.
    """
    # per field of each tile: largest pixel count, valid pixels and observations summed
    per_tile = [t.status_frame() for t in tiles]
    if len(per_tile) == 1 and per_tile[0].index.is_unique:
        agg = per_tile[0]  # one tile: nothing to merge
    elif per_tile:
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
    with np.errstate(invalid="ignore"):
        todo = status != FieldStatus.ERROR.value
        no_obs = todo & ~(n_obs > 0)
        small = todo & ~no_obs & (n_pix < min_pixels)
        no_valid = todo & ~no_obs & ~small & (n_val == 0)
    no_value = np.zeros(len(fields), dtype=bool)
    if with_values is not None:
        found = np.fromiter((str(i) in with_values for i in fields[FIELD_ID].tolist()),
                            dtype=bool, count=len(fields))
        no_value = todo & ~no_obs & ~small & ~no_valid & ~found
    inside = (np.zeros(len(fields), dtype=bool) if covered is None
              else np.asarray(covered, dtype=bool))
    extra = np.full(len(fields), "", dtype=object)
    status[no_obs] = FieldStatus.NO_DATA.value
    extra[no_obs & inside] = "scenes cover it but none could be read (see scenes_status.parquet)"
    extra[no_obs & ~inside] = "outside every scene"
    status[small] = FieldStatus.TOO_SMALL.value
    for i in np.flatnonzero(small):
        extra[i] = (f"{int(n_pix[i])} pixel(s) after an inner buffer of {buffer_px:g} px; "
                    f"minimum is {min_pixels} (extract.min_pixels; set it to "
                    f"{max(int(n_pix[i]), 1)} to use such small fields or point samples)")
    status[no_valid] = FieldStatus.NO_DATA.value
    extra[no_valid] = "no valid (cloud-free) pixel in any scene"
    status[no_value] = FieldStatus.NO_DATA.value
    extra[no_value] = ("no index value could be computed in any scene: the bands they need are "
                       "missing or unreadable (see scenes_status.parquet)")
    for i in np.flatnonzero(no_obs | small | no_valid | no_value):
        reason[i] = f"{reason[i]}; {extra[i]}" if reason[i] else extra[i]
    return status, reason, n_pix


def check_usable(status: pd.DataFrame, problems: list[SceneProblem], path: Path) -> None:
    """Stop the run, after the statuses are written, when no field can be labelled.

    Raises
    ------
    InputError
        When every field is withheld (``too_small``, ``no_data``, ``error``), naming the
        counts, the commonest reasons and where the details are.
    """
    usable = status[STATUS] == FieldStatus.OK.value
    if usable.any():
        return
    counts = status[STATUS].value_counts()
    reasons = status[REASON].value_counts().head(3)
    said = "; ".join(f"{n} x {str(r)[:200]}" for r, n in reasons.items())
    scenes = ""
    failed = [p for p in problems if p.severity == "error"]
    if failed:
        scenes = f" {len(failed)} scene problem(s) were met, e.g. {failed[0].reason[:200]}."
    raise InputError(
        f"no field can be labelled: {', '.join(f'{n} {s}' for s, n in counts.items())} "
        f"(of {len(status)}). Commonest reasons: {said}.{scenes} Per-field statuses are in "
        f"{path}.", path=path)
