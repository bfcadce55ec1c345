"""Field-team sample files: GeoPackage with a form, CSV, read back; opened in real QGIS."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from regenmap.errors import InputError
from regenmap.maps.sample_gpkg import FORM_COLUMNS, METHODS, OUTCOMES, read_collected, write_sample
from regenmap.maps.styles import TOL_BRIGHT

CHECKER = Path(__file__).resolve().parents[2] / "tools" / "qgis_check.py"
STRATA = pd.DataFrame({"code": ["S01", "S02", "S03"], "stratum": ["no_till", "reduced", "withheld"],
                       "map_class": ["no_till", "reduced", "withheld"], "N": [40, 30, 5],
                       "N_eligible": [40, 28, 5], "area_ha": [32.0, 24.0, 4.0],
                       "n": [4, 4, 4]})


def _sample(make_results) -> gpd.GeoDataFrame:  # type: ignore[no-untyped-def]
    fields, _ = make_results(12)
    s = fields.copy()
    s["sample"] = "design"
    s["cluster"] = np.repeat([1, 2, 3], 4)
    s["visit_order"] = np.tile([1, 2, 3, 4], 3)
    s["stratum"] = np.tile(["S01", "S02", "S03"], 4)
    s["inclusion_prob"] = 0.1
    s["area_ha"] = 0.8
    return s


def test_form_is_written_empty_with_centroids(tmp_path, make_results, targets):
    g, c = write_sample(tmp_path / "d.gpkg", tmp_path / "d.csv", _sample(make_results),
                        targets=targets, info={"design": {"n": 12}}, strata=STRATA)
    layer = gpd.read_file(g, layer="sample")
    assert len(layer) == 12 and layer.crs == "EPSG:32631"
    for col in [*targets, *FORM_COLUMNS]:
        assert layer[col].isna().all(), col
    csv = pd.read_csv(c, dtype=str)
    assert csv.columns[:4].tolist() == ["field_id", "sample", "cluster", "visit_order"]
    # The first box (x 500000-500100, y 5450000-5450080, UTM 31N) lies at about 3.0 E, 49.2 N.
    assert float(csv.loc[0, "lon"]) == pytest.approx(3.0, abs=0.01)
    assert float(csv.loc[0, "lat"]) == pytest.approx(49.2, abs=0.01)
    assert float(csv.loc[0, "x"]) == pytest.approx(500_050, abs=1)
    strata = gpd.read_file(g, layer="strata")
    assert strata.columns[:4].tolist() == ["code", "stratum", "map_class", "n_fields"]
    assert strata["n_sample"].tolist() == [4, 4, 4]
    back = read_collected(c)
    assert back["field_id"].tolist() == csv["field_id"].tolist()
    assert read_collected(g)["tillage"].isna().all()


def test_enum_constraints_declare_the_choices(tmp_path, make_results, targets):
    import sqlite3

    g, _ = write_sample(tmp_path / "d.gpkg", tmp_path / "d.csv", _sample(make_results),
                        targets=targets, info={}, strata=STRATA)
    with sqlite3.connect(g) as con:
        rows = con.execute("SELECT constraint_name, value FROM gpkg_data_column_constraints "
                           "WHERE constraint_type = 'enum'").fetchall()
    by = {}
    for name, value in rows:
        by.setdefault(name, []).append(value)
    assert sorted(by["sample_tillage"]) == sorted(targets["tillage"])
    assert sorted(by["sample_outcome"]) == sorted(OUTCOMES)
    assert sorted(by["sample_method"]) == sorted(METHODS)


def test_reading_a_foreign_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_collected(tmp_path / "missing.csv")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"unsupported file type '\.xlsx'"):
        read_collected(tmp_path / "x.xlsx")


@pytest.mark.qgis
def test_opens_styled_with_its_form_in_qgis(tmp_path, make_results, targets, qgis_python):
    g, _ = write_sample(tmp_path / "d.gpkg", tmp_path / "d.csv", _sample(make_results),
                        targets=targets, info={"design": {"n": 12}}, strata=STRATA)
    png, report = tmp_path / "sample.png", tmp_path / "sample.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run([qgis_python, str(CHECKER), str(g), "--layer", "sample", "--png",
                           str(png), "--json", str(report), "--expect-renderer",
                           "categorizedSymbol", "--style", "strata"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    facts = json.loads(report.read_text())
    assert facts["valid"] and facts["feature_count"] == 12
    style = facts["style_at_open"]
    assert style["attribute"] == '"cluster"'
    assert [c["value"] for c in style["categories"]] == ["1", "2", "3", ""]
    assert facts["styles_in_database"] == ["visits", "progress", "strata"]
    # The form: drop-downs of the classes, outcome and method; a calendar for the date.
    widgets = facts["widgets"]
    assert widgets["tillage"] == widgets["outcome"] == widgets["method"] == "ValueMap"
    assert widgets["visit_date"] == "DateTime"
    choices = [next(iter(d.values())) for d in facts["value_maps"]["tillage"]]
    assert choices[1:] == targets["tillage"]
    drawn = facts["render"]["top_colours"]
    for colour in TOL_BRIGHT[:3]:
        assert colour.lower() in drawn, (colour, drawn)
    assert facts["named_style"]["ok"] and facts["named_style"]["attribute"] == '"stratum"'


def test_passes_gdal_validation(tmp_path, make_results, targets, gdal_validator_python):
    g, _ = write_sample(tmp_path / "d.gpkg", tmp_path / "d.csv", _sample(make_results),
                        targets=targets, info={"design": {"n": 12}}, strata=STRATA)
    proc = subprocess.run([gdal_validator_python, "-m", "osgeo_utils.samples.validate_gpkg",
                           "--extra", "--warning-as-error", str(g)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stdout + proc.stderr
