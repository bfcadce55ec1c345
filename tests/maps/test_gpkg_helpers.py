"""regenmap.geo.gpkg: atomic paths, folder checks, chunked writes, styles and metadata."""

from __future__ import annotations

import sqlite3

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from regenmap.errors import InputError, OutputError
from regenmap.geo import gpkg


def test_atomic_path_replaces_only_on_success(tmp_path):
    final = tmp_path / "a.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError), gpkg.atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    with gpkg.atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".a.")
        tmp.write_text("new")
    assert final.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_path_needs_something_written(tmp_path):
    with pytest.raises(OutputError, match="nothing was written"), \
            gpkg.atomic_path(tmp_path / "x.gpkg"):
        pass


def test_check_writable_dir(tmp_path):
    assert gpkg.check_writable_dir(tmp_path) == tmp_path.resolve()
    with pytest.raises(OutputError, match="does not exist"):
        gpkg.check_writable_dir(tmp_path / "missing")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        gpkg.check_writable_dir(f)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        with pytest.raises(OutputError, match=r"read-only \(mode dr-xr-xr-x\)"):
            gpkg.check_writable_dir(ro)
    finally:
        ro.chmod(0o755)


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
