"""A tile's fields as a file, and its field index cached on disk by fingerprint.

Extraction ships each tile's fields to the workers as a small Parquet file
(already in the tile grid's CRS, so they are reprojected once per run, in the
driver), not inside the task graph. A tile's field index
(:class:`~regenmap.features.observe.TileRaster`) costs a scanline fill of every
field; it is kept in a cache folder under a key that fingerprints everything it
depends on (the fields' geometries and CRS, the grid, the inner buffer and the
format of this file), so that a second run, a resumed run or another season on
the same fields and grid reads it instead. Cache files are written atomically
and carry a checksum of their arrays; a file that does not load, does not match
its key or fails its checksum is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from affine import Affine

from regenmap.errors import InputError
from regenmap.features.observe import TileFields, TileRaster, build_tile_raster
from regenmap.geo.grid import GridSpec
from regenmap.geo.pixel_need import Coverage
from regenmap.geo.rasterize import FieldIndex, ScanPlan
from regenmap.io import parquet_meta, write_bytes_atomic, write_parquet_atomic
from regenmap.schema import FIELD_ID

log = logging.getLogger(__name__)

#: Version of the cache file's layout and of the burning rule; part of every key.
CACHE_FORMAT = 1
_WKB = "wkb"
_PLAN = tuple(ScanPlan.__dataclass_fields__)


def write_tile_fields(path: str | Path, fields: TileFields) -> Path:
    """Write a tile's fields (ids, WKB geometries, CRS, point footprint) to ``path`` atomically.

    Parameters
    ----------
    path
        Parquet file to write.
    fields
        The tile's fields.
    """
    table = pa.table({FIELD_ID: pa.array(fields.field_ids.astype(str), pa.string()),
                      _WKB: pa.array(list(fields.wkb), pa.binary())})
    return write_parquet_atomic(table, path, meta={"tile_id": fields.tile_id, "crs": fields.crs,
                                                     "point_pixels": fields.point_pixels})


def read_tile_fields(path: str | Path, *, geometry: bool = True) -> TileFields:
    """Read a tile's fields written by :func:`write_tile_fields`.

    Parameters
    ----------
    path
        The file.
    geometry
        Read the geometries too; without them ``wkb`` is empty (what a task that only
        names the fields needs).

    Raises
    ------
    InputError
        If the file is missing or unreadable (naming it).
    """
    try:
        meta = parquet_meta(path)
        table = pq.read_table(path, columns=[FIELD_ID, _WKB] if geometry else [FIELD_ID])
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"cannot read the tile's fields file ({err}); run the extraction "
                         "again to rewrite it", path=str(path)) from None
    ids = np.asarray(table.column(FIELD_ID).to_numpy(zero_copy_only=False), dtype=object)
    wkb = (np.asarray(table.column(_WKB).to_pylist(), dtype=object) if geometry
           else np.empty(0, dtype=object))
    return TileFields(str(meta.get("tile_id", "")), ids.astype(str), wkb, str(meta.get("crs", "")),
                      int(meta.get("point_pixels", 0)))


def index_key(fields: TileFields, grid: GridSpec, inner_buffer_px: float) -> str:
    """Fingerprint of a tile's field index: fields (geometry, CRS, point footprint), grid and inner buffer."""
    h = hashlib.sha256()
    t = grid.transform
    h.update(repr((CACHE_FORMAT, fields.crs, str(grid.crs), tuple(t)[:6], grid.width,
                   grid.height, float(inner_buffer_px), len(fields.wkb),
                   fields.point_pixels)).encode())
    for geom in fields.wkb:
        h.update(len(geom).to_bytes(8, "little"))
        h.update(geom)
    return h.hexdigest()[:32]


def cached_tile_raster(fields: TileFields, grid: GridSpec, inner_buffer_px: float,
                       cache_dir: str | Path | None) -> TileRaster:
    """Return a tile's field index on ``grid``, from the cache when it holds a sound copy.

    Parameters
    ----------
    fields, grid, inner_buffer_px
        As in :func:`~regenmap.features.observe.build_tile_raster`.
    cache_dir
        Cache folder (created if needed); None builds without caching.
    """
    if cache_dir is None:
        return build_tile_raster(fields, grid, inner_buffer_px)
    key = index_key(fields, grid, inner_buffer_px)
    path = Path(cache_dir) / f"field-index-{key}.npz"
    found = load_index(path, key)
    if found is not None:
        return found
    raster = build_tile_raster(fields, grid, inner_buffer_px)
    try:
        save_index(path, key, raster)
    except OSError as err:  # a cache that cannot be written costs only time
        log.warning("field index cache %s not written: %s", path, err)
    return raster


def _arrays(raster: TileRaster) -> dict[str, np.ndarray]:
    index = raster.raster
    g = index.grid
    out = {"members": np.asarray(raster.members, np.int64),
           "n_pixels": np.asarray(index.n_pixels, np.int64),
           "n_fields": np.array([index.n_fields], np.int64),
           "grid_shape": np.array([g.height, g.width], np.int64),
           "grid_transform": np.array(tuple(g.transform)[:6], np.float64),
           "grid_crs": np.array(str(g.crs)),
           "coverage_sat": raster.coverage.sat,
           "coverage_cell": np.array([raster.coverage.cell], np.int64)}
    for name in _PLAN:
        out[f"plan_{name}"] = np.asarray(getattr(index.scan_plan, name))
    return out


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_index(path: str | Path, key: str, raster: TileRaster) -> Path:
    """Write a tile's field index to ``path`` atomically, with its key and a checksum."""
    arrays = _arrays(raster)
    buf = io.BytesIO()
    arrays.update(key=np.array(key), checksum=np.array(_checksum(arrays)))
    np.savez(buf, allow_pickle=False, **arrays)
    return write_bytes_atomic(path, buf.getvalue())


def load_index(path: str | Path, key: str) -> TileRaster | None:
    """Read a cached field index; None when absent, damaged or made for another key."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        with np.load(p, allow_pickle=False) as npz:
            data = {name: npz[name] for name in npz.files}
        stored_key, stored_sum = str(data.pop("key")), str(data.pop("checksum"))
        if stored_key != key or stored_sum != _checksum(data):
            raise ValueError("key or checksum does not match")
        h, w = (int(v) for v in data["grid_shape"])
        grid = GridSpec(str(data["grid_crs"]), Affine(*data["grid_transform"].tolist()), w, h)
        parts: dict[str, Any] = {name: data[f"plan_{name}"] for name in _PLAN}
        parts["span"] = int(parts["span"])
        plan = ScanPlan(**parts)
        index = FieldIndex(grid, int(data["n_fields"][0]), data["n_pixels"], plan)
        return TileRaster(index, data["members"],
                          Coverage(data["coverage_sat"], int(data["coverage_cell"][0])))
    except Exception as err:
        log.warning("field index cache %s is damaged (%s); building it again", p, err)
        return None
