"""Where pixels and polygons come from and go to: grids, sensors, scenes, fields, GeoPackages."""
