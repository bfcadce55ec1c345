"""regenmap.geo.gpkg: atomic paths, folder checks, chunked writes, styles and metadata."""

from __future__ import annotations

import sqlite3

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from regenmap.errors import InputError
from regenmap.geo import gpkg


def test_is_geopackage(tmp_path):
    g = tmp_path / "g.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0, 0)], crs="EPSG:4326").to_file(g)
    assert gpkg.is_geopackage(g)
    s = tmp_path / "s.sqlite"
    sqlite3.connect(s).execute("CREATE TABLE t (a)").connection.close()
    assert not gpkg.is_geopackage(s)
    assert not gpkg.is_geopackage(tmp_path / "none.gpkg")
    with pytest.raises(InputError, match="not a GeoPackage"):
        gpkg.list_tables(s)


def test_write_chunks_types_empty_first_chunk(tmp_path):
    out = tmp_path / "c.gpkg"
    empty = gpd.GeoDataFrame({"name": pd.Series([], dtype=object),
                              "value": pd.Series([], dtype="float64")},
                             geometry=gpd.GeoSeries([], crs="EPSG:32631"))
    full = gpd.GeoDataFrame({"name": ["a", "b"], "value": [1.5, 2.5]},
                            geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1)],
                            crs="EPSG:32631")
    n = gpkg.write_chunks(out, [empty, full, full], layer="l", geometry_type="MultiPolygon",
                          promote_to_multi=True, description="test layer")
    assert n == 4
    assert gpkg.list_tables(out) == {"l": "features"}
    assert gpkg.geometry_column(out, "l") == ("geom", "MULTIPOLYGON")
    assert gpkg.layer_columns(out, "l")["value"] == "REAL"
    assert gpkg.read_sql(out, "SELECT description FROM gpkg_contents").iloc[0, 0] == "test layer"
    assert len(gpkg.read_layer(out, "l")) == 4


def test_styles_and_metadata_round_trip(tmp_path):
    out = tmp_path / "s.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.box(0, 0, 1, 1)],
                     crs="EPSG:32631").to_file(out, layer="fields")
    gpkg.write_layer_styles(out, [gpkg.LayerStyle("fields", "geom", "one", "<qgis/>", True),
                                  gpkg.LayerStyle("fields", "geom", "two", "<qgis/>")])
    rows = gpkg.read_sql(out, "SELECT id, styleName, useAsDefault, owner FROM layer_styles")
    assert rows.values.tolist() == [[1, "one", 1, "regenmap"], [2, "two", 0, "regenmap"]]
    gpkg.add_metadata(out, {"ünïcode": "ok", "n": 3}, standard_uri="urn:test", tables=["fields"])
    assert gpkg.read_metadata(out, standard_uri="urn:test") == [{"ünïcode": "ok", "n": 3}]
    assert gpkg.read_metadata(out, standard_uri="urn:other") == []
