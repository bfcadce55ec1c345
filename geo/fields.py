"""Read field polygons from any OGR vector format and normalise them once.

Identity is ``field_id`` (string, unique). Invalid geometry is repaired with
:func:`shapely.make_valid` (keeping only its polygonal part) and recorded;
empty or missing geometry is recorded with status ``error``. No row is
dropped: every input field comes out with a status and a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from regenmap.errors import CRSError, FieldError, InputError
from regenmap.geo.points import footprint_text, is_point
from regenmap.schema import AREA_HA, FIELD_ID, FOOTPRINT, REASON, STATUS, FieldStatus

#: The longest column name a Shapefile (dBASE table) holds; longer names are cut when written.
DBF_NAME_LIMIT = 10
_PARQUET = (".parquet", ".geoparquet")


def vector_layers(path: str | Path) -> list[tuple[str, str]]:
    """List the layers of a vector file: name and geometry type of each.

    Raises
    ------
    InputError
        If the file cannot be opened as a vector data source.
    """
    try:
        return [(str(name), str(gtype)) for name, gtype in pyogrio.list_layers(path)]
    except (DataSourceError, DataLayerError, OSError) as err:
        raise InputError(f"cannot read the vector file: {err}", path=path) from None


def describe_layers(path: str | Path) -> str:
    """Describe the layers of a vector file for a message: ``'a' (315 features, Polygon), ...``."""
    parts = []
    for name, gtype in vector_layers(path):
        try:
            n = int(pyogrio.read_info(path, layer=name, force_feature_count=True)["features"])
        except (DataSourceError, DataLayerError, OSError):
            n = -1
        parts.append(f"{name!r} ({n if n >= 0 else '?'} features, {gtype})")
    return ", ".join(parts)


def choose_layer(path: str | Path, layer: str | None) -> str | None:
    """Return the layer to read from a vector file: ``layer``, or the only one; never a guess.

    Returns
    -------
    str or None
        The layer's name (None for GeoParquet, which has none).

    Raises
    ------
    FieldError
        If the file holds several layers and none is named, or the named one is not there
        (the message lists the layers, with their sizes and geometry types).
    """
    if Path(path).suffix.lower() in _PARQUET:
        return layer
    names = [name for name, _ in vector_layers(path)]
    if layer is not None and layer not in names:
        raise FieldError(f"no layer {layer!r}; the file's layers are {describe_layers(path)}. "
                         "Name one of them (layer).", path=path)
    if layer is None and len(names) > 1:
        raise FieldError(f"the file holds {len(names)} layers: {describe_layers(path)}. Name "
                         "the one to read (layer); none is chosen for you.", path=path)
    return layer if layer is not None else (names[0] if names else None)


def check_field_file(path: str | Path, layer: str | None = None) -> str | None:
    """Check from its metadata alone that a field file holds fields; return the layer to read.

    Cheap (no geometry is read), so a job can stop at once on a bad field file, before
    starting a cluster.

    Raises
    ------
    InputError
        If the file cannot be opened.
    FieldError
        If it holds several layers and none is named (see :func:`choose_layer`), or the
        layer holds no feature.
    """
    p = Path(path)
    if p.suffix.lower() in _PARQUET:
        import pyarrow.parquet as pq

        try:
            n = pq.ParquetFile(p).metadata.num_rows
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read fields: {err}", path=p) from None
    else:
        layer = choose_layer(p, layer)
        try:
            n = int(pyogrio.read_info(p, layer=layer, force_feature_count=True)["features"])
        except (DataSourceError, DataLayerError, OSError) as err:
            raise InputError(f"cannot read fields: {err}", path=p) from None
    if n == 0:
        where = f"layer {layer!r}" if layer else "the file"
        raise FieldError(f"{where} holds no field polygon (0 features); give the file (and "
                         "layer) with the fields to map.", path=p)
    return layer


def truncated_columns(path: str | Path, columns: Iterable[str], wanted: Iterable[str]
                      ) -> dict[str, str]:
    """Find the columns of a Shapefile that are wanted names cut to :data:`DBF_NAME_LIMIT` characters.

    A Shapefile stores column names in a dBASE table, which holds at most 10
    characters: a column written as ``winter_cover`` reads back as ``winter_cov``.

    Parameters
    ----------
    path
        The vector file; anything but a Shapefile (``.shp``, ``.dbf``) has none.
    columns
        Its columns.
    wanted
        Column names looked for.

    Returns
    -------
    dict
        Wanted name -> the column holding it, for each wanted name that is missing, longer
        than the limit and whose cut form is a column.

    Raises
    ------
    FieldError
        If two wanted names are cut to the same column (which one it holds is unknown).
    """
    if Path(path).suffix.lower() not in (".shp", ".dbf"):
        return {}
    have = set(map(str, columns))
    found = {w: w[:DBF_NAME_LIMIT] for w in wanted
             if w not in have and len(w) > DBF_NAME_LIMIT and w[:DBF_NAME_LIMIT] in have}
    by_column: dict[str, list[str]] = {}
    for name, column in found.items():
        by_column.setdefault(column, []).append(name)
    clash = {c: names for c, names in by_column.items() if len(names) > 1}
    if clash:
        column, names = next(iter(clash.items()))
        raise FieldError(f"Shapefile column names are cut to {DBF_NAME_LIMIT} characters: "
                         f"{names} all read as {column!r}, so which one it holds is unknown. "
                         "Give names of at most 10 characters, or use a GeoPackage.", path=path)
    return found


def read_fields(path: str | Path, *, layer: str | None = None, id_column: str = FIELD_ID,
                point_pixels: int | None = None) -> gpd.GeoDataFrame:
    """Read field polygons and check their identity and geometry.

    Parameters
    ----------
    path
        GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet (``.parquet``) or any OGR vector.
    layer
        Layer of a multi-layer file; required when the file holds several layers.
    id_column
        Column holding the unique field identifier; renamed to ``field_id`` and read as string.
    point_pixels
        How point geometries (point labels, pixel samples) are read: None refuses them
        (status ``error``, saying how to accept them); 0 takes the pixel each point falls
        in, N a square of 2N+1 pixels around it (made on each scene's grid at extraction).

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``field_id`` (str), ``geometry`` (polygonal, in the file's CRS), ``area_ha``
        (float64, hectares, computed in an equal-area CRS when the file is geographic),
        ``status`` (``ok`` or ``error``), ``reason`` (``""`` when nothing to say),
        ``footprint`` (``polygon``, or how a point is read), then the file's other columns.
        Row order is the file's.

    Raises
    ------
    InputError
        If the file is missing or unreadable.
    FieldError
        If the file holds several layers and none is named, the layer holds no field, or
        the id column is missing or has duplicate or missing ids (naming them).
    CRSError
        If the file has no CRS.
    """
    p = Path(path)
    if not p.exists() and "://" not in str(path):
        raise InputError("fields file not found", path=p)
    layer = check_field_file(p, layer)
    try:
        if p.suffix.lower() in _PARQUET:
            gdf = gpd.read_parquet(p)
        else:
            gdf = gpd.read_file(p, layer=layer, engine="pyogrio")
    except (DataSourceError, DataLayerError, OSError, ValueError) as err:
        raise InputError(f"cannot read fields: {err}", path=p) from None
    if id_column not in gdf.columns:
        raise FieldError(f"no id column {id_column!r}; columns are {sorted(map(str, gdf.columns))}. "
                         "Name the id column (id_column).", path=p)
    if gdf.crs is None:
        raise CRSError("fields have no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:4326)", path=p)
    ids = gdf[id_column]
    if ids.isna().any():
        rows = np.flatnonzero(ids.isna().to_numpy())[:10].tolist()
        raise FieldError(f"{int(ids.isna().sum())} field(s) have no {id_column} (rows {rows})",
                         path=p)
    ids = ids.astype(str)
    dup = ids[ids.duplicated(keep=False)].unique()
    if len(dup):
        shown = ", ".join(map(repr, dup[:10])) + (" ..." if len(dup) > 10 else "")
        raise FieldError(f"{len(dup)} duplicate {id_column} value(s): {shown}; ids must be unique",
                         path=p)
    gdf = gdf.rename(columns={id_column: FIELD_ID}) if id_column != FIELD_ID else gdf.copy()
    gdf[FIELD_ID] = ids.to_numpy()
    geoms, status, reason = _check_geometry(gdf.geometry.to_numpy(), point_pixels)
    gdf = gdf.set_geometry(gpd.GeoSeries(geoms, index=gdf.index, crs=gdf.crs))
    gdf[STATUS] = status
    gdf[REASON] = reason
    gdf[AREA_HA] = area_ha(gdf.geometry)
    points = is_point(geoms)
    gdf[FOOTPRINT] = np.where(points, footprint_text(point_pixels or 0), "polygon") \
        if point_pixels is not None else "polygon"
    first = [FIELD_ID, "geometry", AREA_HA, STATUS, REASON, FOOTPRINT]
    return gdf[first + [c for c in gdf.columns if c not in first]]


def _check_geometry(geoms: np.ndarray, point_pixels: int | None = None
                    ) -> tuple[np.ndarray, list[str], list[str]]:
    out = np.array(geoms, dtype=object)
    points = is_point(out) & ~shapely.is_empty(out)
    # with point_pixels, points are kept as points: their footprint is made per scene grid
    polygons = ~points if point_pixels is not None else np.ones(len(out), dtype=bool)
    status = [FieldStatus.OK.value] * len(out)
    reason = [""] * len(out)
    missing = np.array([g is None for g in out], dtype=bool)
    empty = ~missing & shapely.is_empty(out)
    for i in np.flatnonzero(missing | empty):
        status[i] = FieldStatus.ERROR.value
        reason[i] = "missing geometry" if missing[i] else "empty geometry"
        out[i] = shapely.Polygon()
    valid = shapely.is_valid(out)
    for i in np.flatnonzero(~valid & polygons):
        why = shapely.is_valid_reason(out[i])
        fixed = _polygonal(shapely.make_valid(out[i]))
        if fixed.is_empty:
            status[i] = FieldStatus.ERROR.value
            reason[i] = f"invalid geometry ({why}) that make_valid could not repair to a polygon"
        else:
            reason[i] = f"invalid geometry ({why}) repaired with make_valid"
        out[i] = fixed
    not_poly = polygons & ~shapely.is_empty(out) & ~np.isin(shapely.get_type_id(out), [3, 6])
    for i in np.flatnonzero(not_poly):
        fixed = _polygonal(out[i])
        if fixed.is_empty:
            status[i] = FieldStatus.ERROR.value
            reason[i] = f"geometry is a {out[i].geom_type}, not a polygon"
            if points[i]:
                reason[i] += (": to use point labels, set fields.point_pixels (0 = the pixel "
                              "each point falls in, N = a square of 2N+1 pixels around it)")
        out[i] = fixed
    return out, status, reason


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep only the polygonal parts of a geometry (make_valid may return collections)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def area_ha(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area of each geometry in hectares: planar in a projected CRS, equal-area when geographic.

    Parameters
    ----------
    geoms
        Geometries with a CRS.

    Returns
    -------
    numpy.ndarray
        float64 (n,) hectares (0 for empty geometries).
    """
    crs = geoms.crs
    if crs is not None and crs.is_geographic:
        geoms = geoms.to_crs("EPSG:6933")  # equal-area world CRS
    return np.asarray(pd.Series(geoms.area).to_numpy(dtype=np.float64) / 10_000.0)
