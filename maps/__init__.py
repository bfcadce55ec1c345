"""What people look at: styled GeoPackages, maps and the run report.

The public functions are re-exported here lazily, so that importing
``regenmap.maps`` does not pull in matplotlib or folium until they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from regenmap._lazy import lazy_getattr

if TYPE_CHECKING:
    from regenmap.maps.gpkg_contract import read_results, validate_results, write_results
    from regenmap.maps.interactive import result_map
    from regenmap.maps.render import render_maps
    from regenmap.maps.report import write_report

_EXPORTS = {
    "write_results": "regenmap.maps.gpkg_contract",
    "read_results": "regenmap.maps.gpkg_contract",
    "validate_results": "regenmap.maps.gpkg_contract",
    "render_maps": "regenmap.maps.render",
    "result_map": "regenmap.maps.interactive",
    "write_report": "regenmap.maps.report",
}

__all__ = ["read_results", "render_maps", "result_map", "validate_results", "write_report",
           "write_results"]

__getattr__ = lazy_getattr(__name__, _EXPORTS)
