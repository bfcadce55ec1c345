"""read_fields: any OGR format, ids as strings, invalid/empty geometry recorded, duplicates named."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from regenmap.errors import CRSError, FieldError, InputError
from regenmap.geo.fields import read_fields

BOWTIE = shapely.Polygon([(0, 0), (100, 100), (100, 0), (0, 100)])


def table(ids: list[object], geoms: list[object], crs: str | None = "EPSG:32631"
          ) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"pid": ids, "crop": ["wheat"] * len(ids)}, geometry=geoms, crs=crs)


@pytest.mark.parametrize("name,driver", [("f.gpkg", "GPKG"), ("f.shp", "ESRI Shapefile"),
                                         ("f.geojson", "GeoJSON"), ("f.fgb", "FlatGeobuf"),
                                         ("f.parquet", None)])
def test_formats_ids_area_and_columns(tmp_path: Path, name: str, driver: str | None) -> None:
    gdf = table([7, 8], [shapely.box(0, 0, 100, 100), shapely.box(200, 0, 400, 100)])
    path = tmp_path / name
    if driver is None:
        gdf.to_parquet(path)
    else:
        gdf.to_file(path, driver=driver)
    out = read_fields(path, id_column="pid")
    assert list(out.columns[:5]) == ["field_id", "geometry", "area_ha", "status", "reason"]
    assert "crop" in out.columns
    out = out.sort_values("field_id")  # FlatGeobuf's spatial index may reorder rows
    assert out["field_id"].tolist() == ["7", "8"]
    assert out["area_ha"].tolist() == pytest.approx([1.0, 2.0])
    assert (out["status"] == "ok").all()


def test_invalid_geometry_repaired_and_recorded_empty_recorded(tmp_path: Path) -> None:
    gdf = table(["a", "b", "c"], [BOWTIE, shapely.Polygon(), shapely.box(0, 0, 10, 10)])
    gdf.to_file(tmp_path / "f.gpkg")
    out = read_fields(tmp_path / "f.gpkg", id_column="pid").set_index("field_id")
    assert out.loc["a", "status"] == "ok"
    assert "make_valid" in out.loc["a", "reason"] and "Self-intersection" in out.loc["a", "reason"]
    assert out.loc["a", "geometry"].is_valid
    assert out.loc["a", "area_ha"] == pytest.approx(0.5)  # two triangles of 2500 m2
    assert out.loc["b", "status"] == "error" and "empty" in out.loc["b", "reason"]
    assert out.loc["c", "reason"] == ""


def test_geographic_area_in_hectares(tmp_path: Path) -> None:
    gdf = table(["a"], [shapely.box(5.0, 49.0, 5.01, 49.01)], crs="EPSG:4326")
    gdf.to_file(tmp_path / "f.geojson", driver="GeoJSON")
    out = read_fields(tmp_path / "f.geojson", id_column="pid")
    # 0.01 deg x 0.01 deg at 49 N: about 1112 m x 730 m
    assert out["area_ha"].iloc[0] == pytest.approx(1112 * 730 / 10_000, rel=0.01)


def test_duplicates_missing_column_missing_file_and_crs(tmp_path: Path) -> None:
    table(["a", "b", "a", "c", "c"], [shapely.box(0, 0, 1, 1)] * 5).to_file(tmp_path / "d.gpkg")
    with pytest.raises(FieldError, match=r"2 duplicate pid value\(s\): 'a', 'c'"):
        read_fields(tmp_path / "d.gpkg", id_column="pid")
    with pytest.raises(FieldError, match="no id column 'field_id'"):
        read_fields(tmp_path / "d.gpkg")
    with pytest.raises(InputError, match="not found"):
        read_fields(tmp_path / "missing.gpkg")
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        table(["a"], [shapely.box(0, 0, 1, 1)], crs=None).to_file(tmp_path / "n.geojson",
                                                                   driver="GeoJSON")
    (tmp_path / "n.shp").write_bytes(b"")
    with pytest.raises((CRSError, InputError)):
        read_fields(tmp_path / "n.shp", id_column="pid")


def test_a_file_with_several_layers_needs_one_named(tmp_path: Path) -> None:
    path = tmp_path / "two.gpkg"
    table(["a", "b", "c"], [shapely.box(i, 0, i + 1, 1) for i in range(3)]).to_file(
        path, layer="fields")
    table([f"d{i}" for i in range(40)], [shapely.box(i, 5, i + 1, 6) for i in range(40)]).to_file(
        path, layer="decoy")
    with pytest.raises(FieldError) as caught:
        read_fields(path, id_column="pid")
    message = str(caught.value)
    assert message.startswith(f"{path}: the file holds 2 layers: ")
    assert "'fields' (3 features, Polygon)" in message and "'decoy' (40 features, Polygon)" in message
    assert "Name the one to read (layer)" in message
    assert len(read_fields(path, layer="decoy", id_column="pid")) == 40
    with pytest.raises(FieldError, match=r"no layer 'feilds'; the file's layers are 'fields'"):
        read_fields(path, layer="feilds", id_column="pid")


def test_an_empty_layer_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gpkg"
    table([], [], crs="EPSG:32631").to_file(path, layer="fields")
    with pytest.raises(FieldError, match=r"empty\.gpkg: layer 'fields' holds no field polygon "
                                         r"\(0 features\)"):
        read_fields(path, id_column="pid")


def test_shapefile_names_cut_to_ten_characters_are_recognised(tmp_path: Path) -> None:
    from regenmap.geo.fields import truncated_columns

    path = tmp_path / "labels.shp"
    columns = ["field_id", "winter_cov", "tillage"]
    assert truncated_columns(path, columns, ["winter_cover", "tillage", "region"]) == {
        "winter_cover": "winter_cov"}
    assert truncated_columns(tmp_path / "labels.gpkg", columns, ["winter_cover"]) == {}
    with pytest.raises(FieldError, match=r"\['winter_cover', 'winter_cov_2023'\] all read as "
                                         r"'winter_cov'"):
        truncated_columns(path, columns, ["winter_cover", "winter_cov_2023"])
