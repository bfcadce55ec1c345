"""Pixels of one tile in one acquisition -> one observation row per field.

This is the per-(tile, acquisition) computation of the extraction, with no Dask
and no configuration in it: a notebook can run one tile by hand, the pipeline
wraps it in one task per (tile, acquisition). The fields of a tile are burnt
once per acquisition grid (:func:`build_tile_raster`); each acquisition is read
strip by strip, only the bands its indices need, and reduced with the fused
kernel of :mod:`regenmap.features.zonal` (:func:`observe_acquisition`).

Example
-------
>>> tf = tile_fields(fields, "r0_c0", rows)                      # doctest: +SKIP
>>> raster = build_tile_raster(tf, acq.grid_for(needed_bands(acq, spec.indices)), 0.5)
>>> observe_acquisition(tf, raster, acq, spec).rows              # doctest: +SKIP
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from rasterio.windows import Window

from regenmap.errors import MissingBandError, RegenmapError
from regenmap.features.indices import SpectralIndex
from regenmap.features.zonal import BandInput, MaskInput, ZonalPass, quantile_name
from regenmap.geo.catalog import Acquisition, SceneProblem
from regenmap.geo.grid import GridSpec, crs_string
from regenmap.geo.pixel_need import Coverage, PixelNeed
from regenmap.geo.points import point_cells
from regenmap.geo.raster_read import BandReader, mask_codes
from regenmap.geo.rasterize import FieldIndex, field_index
from regenmap.schema import (
    ACQUISITION_ID,
    FIELD_ID,
    N_PIXELS,
    N_VALID,
    SENSOR,
    STATUS,
    TILE_ID,
    TIME,
    VALID_FRACTION,
    FieldStatus,
    stat_column,
)


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
    point_pixels
        Footprint of point geometries: the cell a point falls in grown by this many cells
        on every side (:func:`regenmap.geo.points.point_cells`).
    """

    tile_id: str
    field_ids: np.ndarray
    wkb: np.ndarray
    crs: str
    point_pixels: int = 0

    @functools.cached_property
    def id_rank(self) -> np.ndarray:
        """(n,) int64 rank of each field in field-id order (one string sort per tile)."""
        rank = np.empty(len(self.field_ids), np.int64)
        rank[np.argsort(self.field_ids, kind="stable")] = np.arange(len(self.field_ids))
        return rank


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
        One row per field of the tile intersecting the acquisition (in field-id order),
        or None.
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
class ObserveSpec:
    """What every (tile, acquisition) task computes.

    Attributes
    ----------
    indices
        Spectral indices to reduce.
    stats
        Statistics per index (``mean``, ``median``, ``std``, ``min``, ``max``, ``count``).
    percentiles
        Extra percentiles (0-100) per index.
    min_pixels
        Fields with fewer valid pixels in an acquisition get NaN statistics there.
    inner_buffer_px
        Inner buffer of each field, in pixels of the acquisition grid.
    threads
        GDAL decode threads per task.
    on_error
        ``record`` returns scene problems; ``fail`` raises the first one.
    skip_blocks
        Leave undecoded the blocks with no usable field pixel (statistics unchanged).
    sensor_bands
        Sensor name -> common band names its profile offers.
    quantile_precision
        None: medians and percentiles are exact. A width in index units (the indices'
        own, dimensionless for NDVI and the like): they come from histograms of bins that
        wide and lie within that width of the exact values (cheaper per field; see
        :class:`~regenmap.features.zonal.ZonalPass`).
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
    quantile_precision: float | None = None

    def __post_init__(self) -> None:
        if self.quantile_precision is not None and not self.quantile_precision > 0:
            raise ValueError(f"quantile_precision={self.quantile_precision}: give a positive "
                             "width in index units, or None for exact quantiles")

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
    # point labels become their footprint on this grid (padded against the inner buffer)
    local = point_cells(local, grid, pixels=fields.point_pixels,
                        pad=inner_buffer_px * grid.resolution)
    xmin, ymin, xmax, ymax = grid.bounds
    hits = shapely.intersects(local, shapely.box(xmin, ymin, xmax, ymax))
    members = np.flatnonzero(hits & ~shapely.is_empty(local))
    if len(members) == 0:
        empty = grid.window_grid(grid.window_of_bounds((xmin, ymin, xmin, ymin)))
        index = field_index(np.empty(0, dtype=object), empty)
        return TileRaster(index, members, Coverage.of_index(index))
    bounds = shapely.total_bounds(local[members])
    xb0, yb0, xb1, yb1 = (float(v) for v in bounds)
    window = grid.window_grid(grid.window_of_bounds((xb0, yb0, xb1, yb1)))
    # built once per tile and grid, straight from the polygons (no id raster)
    index = field_index(local[members], window, buffer=inner_buffer_px * grid.resolution)
    return TileRaster(index, members, Coverage.of_index(index))


#: Rows of a window read and reduced at a time (a multiple of common block heights; one
#: block row of 20 m bands on 512-px blocks). With blocks decoded straight from the file,
#: two tasks side by side at 20,000 fields ran 3-10 % faster on 1024-row strips than on
#: 2048 (the same at 100,000 fields); with GDAL decoding, 512-row strips were 5-8 % slower.
STRIP_ROWS = 1024


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


def observe_acquisition(fields: TileFields, tile_raster: TileRaster, acq: Acquisition,
                        spec: ObserveSpec) -> AcquisitionResult:
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
                      stats=spec.stats, quantile_precision=spec.quantile_precision)
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
                    data = mask_codes(data)
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
    # rows in field-id order through the tile's id ranks (an integer sort per task)
    order = np.argsort(fields.id_rank[members], kind="stable")
    table: dict[str, Any] = {
        FIELD_ID: fields.field_ids[members[order]],
        TIME: np.full(len(members), np.datetime64(acq.time, "ns")),
        SENSOR: acq.sensor,
        ACQUISITION_ID: acq.id,
        TILE_ID: fields.tile_id,
        N_PIXELS: n_pix[order],
        N_VALID: n_val[order],
        VALID_FRACTION: frac[order],
    }
    for idx in spec.indices:
        for s in spec.stat_names():
            values = result.stats[(idx.name, s)][order].astype(np.float32)
            table[stat_column(idx.name, s)] = np.where(enough[order], values, np.float32(np.nan))
    return AcquisitionResult(pd.DataFrame(table), problems, reader.units_read,
                             reader.units_skipped)


def observations_schema(spec: ObserveSpec) -> pa.Schema:
    """Arrow schema of the observations table for ``spec``."""
    cols = [pa.field(FIELD_ID, pa.string()), pa.field(TIME, pa.timestamp("ns")),
            pa.field(SENSOR, pa.string()), pa.field(ACQUISITION_ID, pa.string()),
            pa.field(TILE_ID, pa.string()), pa.field(N_PIXELS, pa.int32()),
            pa.field(N_VALID, pa.int32()), pa.field(VALID_FRACTION, pa.float32())]
    cols += [pa.field(c, pa.float32()) for c in spec.value_columns()]
    return pa.schema(cols)
def index_notes(sensor: str, indices: tuple[SpectralIndex, ...], acquisitions: list[Acquisition]
                ) -> list[str]:
    """One note per index that no acquisition of this sensor can compute (it lacks a band)."""
    notes: list[str] = []
    if not acquisitions:
        return notes
    for idx in indices:
        if any(not missing_bands(a, (idx,)) for a in acquisitions):
            continue
        lack = sorted({b for a in acquisitions for b in missing_bands(a, (idx,)).get(idx.name, [])})
        notes.append(f"{idx.name} needs band(s) {', '.join(lack)}, which no acquisition of "
                     f"sensor {sensor!r} has here (not in the profile, or their files are "
                     "missing or unreadable: see scenes_status.parquet): its columns are NaN")
    return notes


def tile_fields(fields: gpd.GeoDataFrame, tile_id: str, rows: np.ndarray,
                geoms: gpd.GeoSeries | None = None, *, point_pixels: int = 0) -> TileFields:
    """Return the fields of one tile as shipped to workers.

    Parameters
    ----------
    fields
        Fields as read by :func:`regenmap.geo.fields.read_fields` (``field_id``, ``status``,
        geometry); fields whose status is ``error`` get an empty geometry.
    tile_id
        Tile name.
    rows
        (n,) int positions of the tile's fields in ``fields``.
    geoms
        The fields' geometries, row for row, in another CRS (the tile grid's, so that
        workers need not reproject them); ``fields.geometry`` if None.
    point_pixels
        Footprint of point geometries (see :class:`TileFields`).
    """
    sub = fields.iloc[rows]
    source = fields.geometry if geoms is None else geoms
    picked = source.iloc[rows]
    geoms_out = picked.to_numpy().copy()
    bad = (sub[STATUS] == FieldStatus.ERROR.value).to_numpy()
    geoms_out[bad] = shapely.Polygon()
    crs = source.crs.to_string() if source.crs is not None else ""
    return TileFields(tile_id, sub[FIELD_ID].to_numpy(dtype=object).astype(str),
                      shapely.to_wkb(geoms_out), crs_string(crs) if crs else crs, point_pixels)
