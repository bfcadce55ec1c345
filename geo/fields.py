"""Read field polygons from any OGR vector format and normalise them once.

Identity is ``field_id`` (string, unique). Invalid geometry is repaired with
:func:`shapely.make_valid` (keeping only its polygonal part) and recorded;
empty or missing geometry is recorded with status ``error``. No row is
dropped: every input field comes out with a status and a reason.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from regenmap.errors import CRSError, FieldError, InputError
from regenmap.geo.points import footprint_text, is_point
from regenmap.schema import AREA_HA, FIELD_ID, FOOTPRINT, REASON, STATUS, FieldStatus


def read_fields(path: str | Path, *, layer: str | None = None, id_column: str = FIELD_ID,
                point_pixels: int | None = None) -> gpd.GeoDataFrame:
    """Read field polygons and check their identity and geometry.

    Parameters
    ----------
    path
        GeoPackage, Shapefile, GeoJSON, FlatGeobuf, GeoParquet (``.parquet``) or any OGR vector.
    layer
        Layer of a multi-layer file; the first one if None.
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
        If the id column is missing or has duplicate or missing ids (naming them).
    CRSError
        If the file has no CRS.
    """
    p = Path(path)
    if not p.exists() and "://" not in str(path):
        raise InputError("fields file not found", path=p)
    try:
        if p.suffix.lower() in (".parquet", ".geoparquet"):
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
