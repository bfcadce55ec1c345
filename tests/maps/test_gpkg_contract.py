"""The results GeoPackage: contract, provenance, styles, atomicity and bad input."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from regenmap.errors import FieldError, OutputError, SchemaError
from regenmap.maps.gpkg_contract import (
    METADATA_URI,
    read_results,
    read_run,
    write_results,
)
from regenmap.schema import GPKG_SCHEMA


def _sql(path: Path, query: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_columns_types_and_counts(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(20)
    out = write_results(tmp_path / "practices.gpkg", fields, preds, targets=targets,
                        run_info=run_info)
    got = read_results(out)
    assert len(got) == 20
    assert got.crs.to_epsg() == 32631
    assert list(got.columns[:6]) == ["field_id", "tillage", "tillage_status", "tillage_conf",
                                     "tillage_why", "tillage_p_conventional"]
    assert set(got.geom_type) == {"MultiPolygon"}
    # 100 m x 80 m boxes are 0.8 ha.
    np.testing.assert_allclose(got["area_ha"], 0.8)
    assert got.loc[got.field_id == "F000", "tillage"].isna().all()
    assert got.loc[got.field_id == "F003", "tillage"].item() == "conventional"
    assert got.loc[got.field_id == "F004", "tillage_conf"].item() == pytest.approx(0.9)
    assert got["tillage_model"].unique().tolist() == ["tillage-2024-abc"]
    assert got["winter_cover_model"].unique().tolist() == ["wc-2024-def"]
    declared = {r[1]: r[2] for r in _sql(out, 'PRAGMA table_info("fields")')}
    assert declared["field_id"] == "TEXT" and declared["tillage_conf"] == "REAL"
    assert _sql(out, "SELECT geometry_type_name, srs_id FROM gpkg_geometry_columns "
                     "WHERE table_name='fields'") == [("MULTIPOLYGON", 32631)]
    run = read_run(out)
    assert run["schema"]["gpkg_schema"] == GPKG_SCHEMA
    # fields 0-1 no_data; 5, 10, 15 uncertain (confidence 0.4); the other 15 ok.
    assert run["counts"]["tillage/ok"] == "15"
    assert run["counts"]["tillage/uncertain"] == "3"
    assert run["counts"]["tillage/no_data"] == "2"
    # ok fields per class: 5 each x 0.8 ha; winter cover: 8 cover, 7 bare.
    assert float(run["class_area_ha"]["tillage/reduced"]) == pytest.approx(4.0)
    assert float(run["class_area_ha"]["winter_cover/cover"]) == pytest.approx(6.4)
    assert float(run["class_area_ha"]["winter_cover/bare"]) == pytest.approx(5.6)
    assert run["time_range"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert json.loads(run["run"]["config"])["model"]["confidence_threshold"] == 0.5
    assert run["versions"]["lightgbm"] == "4.7.0"
    assert json.loads(run["targets"]["tillage"]) == targets["tillage"]
    assert run["extra"]["name"] == "test run"


def test_provenance_in_gpkg_metadata(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(5)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info=run_info)
    rows = _sql(out, "SELECT id, md_scope, md_standard_uri, mime_type, metadata FROM gpkg_metadata")
    ours = [r for r in rows if r[2] == METADATA_URI]
    assert len(ours) == 1
    doc = json.loads(ours[0][4])
    assert ours[0][1:4] == ("dataset", METADATA_URI, "application/json")
    assert doc["schema"] == GPKG_SCHEMA and doc["targets"] == targets
    refs = _sql(out, f"SELECT reference_scope, table_name FROM gpkg_metadata_reference "
                     f"WHERE md_file_id = {ours[0][0]}")
    assert ("geopackage", None) in refs and ("table", "fields") in refs and ("table", "run") in refs
    ext = _sql(out, "SELECT table_name, extension_name FROM gpkg_extensions "
                    "WHERE extension_name='gpkg_metadata'")
    assert sorted(ext) == [("gpkg_metadata", "gpkg_metadata"),
                           ("gpkg_metadata_reference", "gpkg_metadata")]


def test_layer_styles_match_layer(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(5)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info=run_info)
    geom_col = _sql(out, "SELECT column_name FROM gpkg_geometry_columns "
                         "WHERE table_name='fields'")[0][0]
    rows = _sql(out, "SELECT f_table_catalog, f_table_schema, f_table_name, f_geometry_column, "
                     "styleName, useAsDefault, styleQML FROM layer_styles ORDER BY id")
    assert [r[4] for r in rows] == ["tillage: class", "tillage: confidence",
                                    "winter_cover: class", "winter_cover: confidence"]
    assert all(r[:4] == ("", "", "fields", geom_col) for r in rows)
    assert [r[5] for r in rows] == [1, 0, 0, 0]
    assert 'type="categorizedSymbol"' in rows[0][6]
    assert 'type="graduatedSymbol"' in rows[1][6]


def test_observations_table_and_per_field_summary(tmp_path, make_results, make_observations,
                                                  targets, run_info):
    fields, preds = make_results(4)
    obs = make_observations(fields)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info=run_info,
                        observations=obs)
    got = read_results(out)
    # 12 acquisitions of which every 4th has valid_fraction 0: 9 used, mean 9 * 0.9 / 12.
    assert got["n_obs"].tolist() == [9, 9, 9, 9]
    np.testing.assert_allclose(got["valid_fraction"], 0.675)
    table = gpd.read_file(out, layer="observations")
    assert len(table) == 48
    assert pd.api.types.is_datetime64_any_dtype(table["time"])
    assert str(table["time"].dt.tz) == "UTC"
    assert table["time"].iloc[0] == pd.Timestamp("2024-01-10", tz="UTC")


def test_reprojection_and_passthrough(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(5)
    fields["Betriebsgröße_ha"] = np.arange(5, dtype=float)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info=run_info,
                        crs="EPSG:4326", passthrough=["Betriebsgröße_ha"])
    got = read_results(out)
    assert got.crs.to_epsg() == 4326
    assert got["Betriebsgröße_ha"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    # area stays that of the fields' own CRS
    np.testing.assert_allclose(got["area_ha"], 0.8)
    assert 2.99 < got.total_bounds[0] < 3.01  # UTM 31N, x=500 km is the 3 E meridian


def test_non_ascii_ids_targets_and_classes(tmp_path, make_results, run_info):
    targets = {"bodenbearbeitung": ["pflug", "mulchsaat", "direktsaat_ü"],
               "couverture": ["été", "hiver"]}
    fields, preds = make_results(6, targets=targets, prefix="Feld-Ø")
    out = write_results(tmp_path / "é résultats.gpkg", fields, preds, targets=targets,
                        run_info={})
    got = read_results(out)
    assert got["field_id"].tolist()[0] == "Feld-Ø000"
    assert "bodenbearbeitung_p_direktsaat_ü" in got.columns
    assert got.attrs["targets"] == targets
    assert (got["couverture"].dropna() != "").all()


def test_fields_without_prediction_get_error_status(tmp_path, make_results, targets):
    fields, preds = make_results(6)
    preds = preds[preds.field_id != "F004"]
    _, extra = make_results(2, prefix="X")
    preds = pd.concat([preds, extra], ignore_index=True)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    got = read_results(out)
    # the 2 predictions of unknown fields are counted, not silently lost
    assert read_run(out)["run"]["predictions_without_field"] == "2"
    row = got[got.field_id == "F004"].iloc[0]
    assert len(got) == 6
    assert row["tillage_status"] == "error"
    assert row["tillage_why"] == "no prediction row for this field"
    assert pd.isna(row["tillage"])


def test_empty_results_give_a_typed_layer(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(3)
    out = write_results(tmp_path / "p.gpkg", fields.iloc[:0], preds.iloc[:0], targets=targets,
                        run_info=run_info)
    assert _sql(out, "SELECT geometry_type_name FROM gpkg_geometry_columns "
                     "WHERE table_name='fields'") == [("MULTIPOLYGON",)]
    declared = {r[1]: r[2] for r in _sql(out, 'PRAGMA table_info("fields")')}
    assert declared["tillage"] == "TEXT"
    assert declared["tillage_conf"] == "REAL"
    assert declared["area_ha"] == "REAL"
    got = read_results(out)
    assert len(got) == 0 and got.crs.to_epsg() == 32631
    assert read_run(out)["counts"]["tillage/ok"] == "0"


def test_chunked_write_equals_single_write(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(23)
    a = read_results(write_results(tmp_path / "a.gpkg", fields, preds, targets=targets,
                                   run_info=run_info, chunk_rows=4))
    b = read_results(write_results(tmp_path / "b.gpkg", fields, preds, targets=targets,
                                   run_info=run_info))
    pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    assert read_run(tmp_path / "a.gpkg")["counts"] == read_run(tmp_path / "b.gpkg")["counts"]


def test_geoparquet_beside(tmp_path, make_results, targets, run_info):
    fields, preds = make_results(5)
    write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info=run_info,
                  geoparquet=True)
    got = gpd.read_parquet(tmp_path / "p.parquet")
    assert len(got) == 5 and got.crs.to_epsg() == 32631
    assert got["tillage_conf"].iloc[4] == pytest.approx(0.9)
    ref = read_results(tmp_path / "p.gpkg")
    pd.testing.assert_frame_equal(pd.DataFrame(got.drop(columns="geometry")),
                                  pd.DataFrame(ref.drop(columns="geometry")), check_dtype=False)
    assert got.geometry.geom_equals(ref.geometry).all()
    # a foreign Parquet file of the same name is not replaced
    foreign = tmp_path / "q.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    fields2, preds2 = make_results(2)
    with pytest.raises(OutputError, match="not written by regenmap"):
        write_results(tmp_path / "q.gpkg", fields2, preds2, targets=targets, run_info={},
                      geoparquet=True)
    assert not (tmp_path / "q.gpkg").exists()  # checked before anything is written


# --------------------------------------------------------------------------- bad input
def test_missing_target_column_is_a_clear_error(tmp_path, make_results, targets):
    fields, preds = make_results(4)
    with pytest.raises(SchemaError, match=r"tillage_p_reduced.*target 'tillage'"):
        write_results(tmp_path / "p.gpkg", fields, preds.drop(columns="tillage_p_reduced"),
                      targets=targets, run_info={})
    with pytest.raises(SchemaError, match="winter_cover"):
        write_results(tmp_path / "p.gpkg", fields, preds.drop(columns="winter_cover"),
                      targets=targets, run_info={})
    assert not list(tmp_path.iterdir())


def test_unknown_status_and_duplicate_ids(tmp_path, make_results, targets):
    fields, preds = make_results(4)
    bad = preds.assign(tillage_status="maybe")
    with pytest.raises(SchemaError, match="unknown status values"):
        write_results(tmp_path / "p.gpkg", fields, bad, targets=targets, run_info={})
    dup = pd.concat([fields, fields.iloc[:1]])
    with pytest.raises(FieldError, match="duplicate field_id"):
        write_results(tmp_path / "p.gpkg", dup, preds, targets=targets, run_info={})


def test_missing_folder(tmp_path, make_results, targets):
    fields, preds = make_results(2)
    with pytest.raises(OutputError, match="does not exist"):
        write_results(tmp_path / "nope" / "p.gpkg", fields, preds, targets=targets, run_info={})


def test_read_only_folder(tmp_path, make_results, targets):
    fields, preds = make_results(2)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="read-only"):
            write_results(ro / "p.gpkg", fields, preds, targets=targets, run_info={})
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_refuses_to_replace_a_foreign_file(tmp_path, make_results, targets):
    fields, preds = make_results(3)
    foreign = tmp_path / "practices.gpkg"
    gpd.GeoDataFrame({"name": ["theirs"]}, geometry=[shapely.Point(0, 0)],
                     crs="EPSG:4326").to_file(foreign, driver="GPKG")
    before = _sha(foreign)
    with pytest.raises(OutputError, match=r"not written by regenmap.*overwrite=True"):
        write_results(foreign, fields, preds, targets=targets, run_info={})
    assert _sha(foreign) == before
    text = tmp_path / "notes.gpkg"
    text.write_text("my notes")
    with pytest.raises(OutputError, match="not written by regenmap"):
        write_results(text, fields, preds, targets=targets, run_info={})
    write_results(foreign, fields, preds, targets=targets, run_info={}, overwrite=True)
    assert len(read_results(foreign)) == 3


def test_replaces_its_own_output(tmp_path, make_results, targets):
    fields, preds = make_results(3)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    fields5, preds5 = make_results(5)
    write_results(out, fields5, preds5, targets=targets, run_info={})
    assert len(read_results(out)) == 5


def test_failure_midway_leaves_existing_output_intact(tmp_path, make_results, targets,
                                                      monkeypatch):
    from regenmap.maps import gpkg_contract

    fields, preds = make_results(12)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    before = _sha(out)
    real = gpkg_contract._output_chunk
    calls = []

    def crash_on_third_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # two chunks are already appended to the temporary file
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(gpkg_contract, "_output_chunk", crash_on_third_chunk)
    fields5, preds5 = make_results(12, prefix="G")
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_results(out, fields5, preds5, targets=targets, run_info={}, chunk_rows=4)
    assert len(calls) == 3
    assert _sha(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.gpkg"]
    assert read_results(out)["field_id"].iloc[0] == "F000"


def test_read_results_rejects_foreign_and_older_files(tmp_path, make_results, targets):
    foreign = tmp_path / "foreign.gpkg"
    gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0, 0)], crs="EPSG:4326").to_file(foreign)
    with pytest.raises(SchemaError, match="not a regenmap results GeoPackage"):
        read_results(foreign)
    text = tmp_path / "x.gpkg"
    text.write_text("hello")
    with pytest.raises(SchemaError, match="not a GeoPackage"):
        read_results(text)
    fields, preds = make_results(3)
    old = write_results(tmp_path / "old.gpkg", fields, preds, targets=targets, run_info={})
    con = sqlite3.connect(old)
    con.execute("UPDATE run SET value='regenmap.gpkg/0' WHERE key='gpkg_schema'")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match=r"regenmap.gpkg/0.*reads regenmap.gpkg/1"):
        read_results(old)


def test_read_results_rejects_missing_columns(tmp_path, make_results, targets):
    fields, preds = make_results(3)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    con = sqlite3.connect(out)
    con.execute('ALTER TABLE fields DROP COLUMN "tillage_p_reduced"')
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="tillage_p_reduced missing"):
        read_results(out)


def test_gdal_geopackage_validator(tmp_path, make_results, make_observations, targets, run_info,
                                   gdal_validator_python):
    fields, preds = make_results(8)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info=run_info,
                        observations=make_observations(fields))
    empty = write_results(tmp_path / "e.gpkg", fields.iloc[:0], preds.iloc[:0], targets=targets,
                          run_info=run_info)
    for path in (out, empty):
        proc = subprocess.run([gdal_validator_python, "-m", "osgeo_utils.samples.validate_gpkg",
                               "--extra", "--warning-as-error", str(path)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": ""})
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_observations_can_stay_out_of_the_gpkg(tmp_path, make_results, make_observations,
                                               targets):
    fields, preds = make_results(3)
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={},
                        observations=make_observations(fields), store_observations=False)
    assert "observations" not in gpd.list_layers(out)["name"].tolist()
    assert read_results(out)["n_obs"].tolist() == [9, 9, 9]
    run = read_run(out)
    assert run["run"]["has_observations"] == "false"
    # the time range still comes from the observations: 12 acquisitions every 30 days
    assert run["time_range"] == {"start": "2024-01-10T00:00:00", "end": "2024-12-05T00:00:00"}


def test_null_and_3d_geometries_are_kept(tmp_path, make_results, targets):
    from regenmap.maps.render import render_maps

    fields, preds = make_results(4)
    geoms = fields.geometry.to_numpy()
    geoms[1] = None
    geoms[2] = shapely.force_3d(geoms[2], 12.0)
    fields = fields.set_geometry(gpd.GeoSeries(geoms, crs=fields.crs))
    out = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    got = read_results(out)
    assert len(got) == 4 and got.geometry.isna().tolist() == [False, True, False, False]
    assert not got.geometry.has_z.any()
    assert np.isnan(got["area_ha"].iloc[1])  # unknown, not 0
    assert len(render_maps(out, tmp_path / "m", targets=["tillage"])) == 3
