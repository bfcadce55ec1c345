"""Where pixels and polygons come from and go to: grids, sensors, scenes, fields, GeoPackages.

Public names are imported on first use::

    import regenmap.geo as rg
    fields = rg.read_fields("fields.gpkg")
    acqs, problems = rg.scan_band_files("scenes/", profile)
    stack = rg.read_stack(acqs[:5], acqs[0].grid_for(["red", "nir"]), ["red", "nir"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regenmap._lazy import lazy_getattr

if TYPE_CHECKING:
    from regenmap.geo.catalog import Acquisition, Asset, SceneProblem, scan_band_files
    from regenmap.geo.fields import area_ha, read_fields
    from regenmap.geo.grid import GridSpec
    from regenmap.geo.raster_read import read_asset
    from regenmap.geo.rasterize import rasterize_fields
    from regenmap.geo.sensors import SensorProfile
    from regenmap.geo.stac import read_stac
    from regenmap.geo.stack import read_stack
    from regenmap.geo.time_stack import scan_time_stacks

_EXPORTS = {
    "GridSpec": "regenmap.geo.grid",
    "SensorProfile": "regenmap.geo.sensors",
    "Acquisition": "regenmap.geo.catalog",
    "Asset": "regenmap.geo.catalog",
    "SceneProblem": "regenmap.geo.catalog",
    "read_fields": "regenmap.geo.fields",
    "area_ha": "regenmap.geo.fields",
    "scan_band_files": "regenmap.geo.catalog",
    "scan_time_stacks": "regenmap.geo.time_stack",
    "read_stac": "regenmap.geo.stac",
    "rasterize_fields": "regenmap.geo.rasterize",
    "read_stack": "regenmap.geo.stack",
    "read_asset": "regenmap.geo.raster_read",
}

__all__ = [
    "Acquisition", "Asset", "GridSpec", "SceneProblem", "SensorProfile", "area_ha",
    "rasterize_fields", "read_asset", "read_fields", "read_stac", "read_stack",
    "scan_band_files", "scan_time_stacks",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
