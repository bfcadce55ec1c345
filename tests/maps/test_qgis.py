"""The results GeoPackage opened in real, headless QGIS (Debian's python3-qgis)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from regenmap.maps.gpkg_contract import write_results
from regenmap.maps.styles import OTHER_COLOUR, OTHER_LABEL, class_colours, class_label

pytestmark = pytest.mark.qgis

CHECKER = Path(__file__).resolve().parents[2] / "tools" / "qgis_check.py"


def _check(python: str, gpkg: Path, tmp: Path, *extra: str) -> tuple[int, dict, str]:
    report = tmp / f"{gpkg.stem}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    proc = subprocess.run([python, str(CHECKER), str(gpkg), "--json", str(report), *extra],
                          capture_output=True, text=True, timeout=180, env=env)
    facts = json.loads(report.read_text()) if report.is_file() else {}
    return proc.returncode, facts, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_opens_valid_and_styled_in_qgis(tmp_path, make_results, targets, run_info, qgis_python):
    fields, preds = make_results(20)
    out = write_results(tmp_path / "practices.gpkg", fields, preds, targets=targets,
                        run_info=run_info)
    png, conf_png = tmp_path / "qgis_class.png", tmp_path / "qgis_confidence.png"
    code, facts, log = _check(qgis_python, out, tmp_path, "--png", str(png),
                              "--expect-renderer", "categorizedSymbol",
                              "--style", "tillage: confidence", "--style-png", str(conf_png))
    assert code == 0, log
    assert facts["valid"] is True
    assert facts["crs"] == "EPSG:32631"
    assert facts["feature_count"] == 20
    assert facts["fields"]["tillage"] == "String" and facts["fields"]["tillage_conf"] == "Real"
    style = facts["style_at_open"]
    assert style["renderer"] == "categorizedSymbol"
    assert '"tillage_status"' in style["attribute"]
    cats = style["categories"]
    colours = class_colours(targets["tillage"])
    assert [c["value"] for c in cats] == [*targets["tillage"], ""]
    assert [c["label"] for c in cats] == [*map(class_label, targets["tillage"]), OTHER_LABEL]
    assert [c["colour"] for c in cats] == [*(colours[c].lower() for c in targets["tillage"]),
                                           OTHER_COLOUR.lower()]
    assert facts["styles_in_database"] == ["tillage: class", "tillage: confidence",
                                           "winter_cover: class", "winter_cover: confidence"]
    # Rendered: every class colour and the grey of the 5 unlabelled fields are drawn.
    drawn = facts["render"]["top_colours"]
    for colour in [*colours.values(), OTHER_COLOUR]:
        assert colour.lower() in drawn, (colour, drawn)
    assert facts["render"]["non_background_fraction"] > 0.2
    named = facts["named_style"]
    assert named["ok"] and named["renderer"] == "graduatedSymbol"
    assert len(named["ranges"]) == 7
    assert named["render"]["non_background_fraction"] > 0.2
    # Confidences 0.4, 0.525, 0.65, 0.775, 0.9 fall in [0, .5), [.5, .6), [.6, .7), [.7, .8),
    # [.9, 1]: the same classes as the static and HTML maps; no field is in [.8, .9).
    conf_drawn = named["render"]["top_colours"]
    for colour in ("#fde725", "#7ad151", "#22a884", "#2a788e", "#440154", "#dddddd"):
        assert colour in conf_drawn, (colour, conf_drawn)
    assert "#414487" not in conf_drawn
    assert png.stat().st_size > 5000 and conf_png.stat().st_size > 5000


def test_empty_results_open_as_a_typed_polygon_layer(tmp_path, make_results, targets, qgis_python):
    fields, preds = make_results(2)
    out = write_results(tmp_path / "empty.gpkg", fields.iloc[:0], preds.iloc[:0],
                        targets=targets, run_info={})
    code, facts, log = _check(qgis_python, out, tmp_path, "--expect-renderer",
                              "categorizedSymbol")
    assert code == 0, log
    assert facts["valid"] and facts["feature_count"] == 0
    assert facts["geometry_type"] == 2  # polygon, not "no geometry"
    assert facts["fields"]["tillage_conf"] == "Real"


def test_reprojected_non_ascii_output_in_qgis(tmp_path, make_results, qgis_python):
    targets = {"bodenbearbeitung": ["pflug", "direktsaat_ü"]}
    fields, preds = make_results(6, targets=targets, prefix="Ø")
    out = write_results(tmp_path / "ergebnis ü.gpkg", fields, preds, targets=targets,
                        run_info={}, crs="EPSG:3035")
    code, facts, log = _check(qgis_python, out, tmp_path, "--png", str(tmp_path / "u.png"),
                              "--expect-renderer", "categorizedSymbol")
    assert code == 0, log
    assert facts["crs"] == "EPSG:3035"
    assert [c["value"] for c in facts["style_at_open"]["categories"]] == ["pflug",
                                                                          "direktsaat_ü", ""]


REAL_FIELDS = (Path(__file__).resolve().parents[3] / "shared" / "data" / "lem_west_bahia_fields"
               / "fields_monthly_landuse.gpkg")


def test_real_fields_west_bahia(tmp_path, qgis_python):
    """100 real fields (EPSG:4326, centre pivots, 3-577 ha; LEM dataset, CC-BY-4.0)."""
    if not REAL_FIELDS.is_file():
        pytest.skip(f"real sample data not found at {REAL_FIELDS}")
    import numpy as np
    import pandas as pd
    import pyogrio

    fields = pyogrio.read_dataframe(REAL_FIELDS)
    fields["field_id"] = fields["id"].astype(str)
    # A winter-cover-like label from the real June 2020 land use (second-season crop or not).
    june = fields["Jun_2020"].astype(str)
    cover = june.isin(["Brachiaria", "Millet", "Sorghum"]).to_numpy()
    preds = pd.DataFrame({
        "field_id": fields["field_id"], "winter_cover": np.where(cover, "cover_crop", "bare"),
        "winter_cover_conf": 0.9, "winter_cover_status": "ok", "winter_cover_why": "June: " + june,
        "winter_cover_p_cover_crop": np.where(cover, 0.9, 0.1),
        "winter_cover_p_bare": np.where(cover, 0.1, 0.9)})
    targets = {"winter_cover": ["cover_crop", "bare"]}
    out = write_results(tmp_path / "bahia.gpkg", fields[["field_id", "area_ha", "geometry"]],
                        preds, targets=targets, run_info={"inputs": [str(REAL_FIELDS)]})
    code, facts, log = _check(qgis_python, out, tmp_path, "--png", str(tmp_path / "bahia.png"),
                              "--expect-renderer", "categorizedSymbol")
    assert code == 0, log
    assert facts["feature_count"] == 100 and facts["crs"] == "EPSG:4326"
    drawn = facts["render"]["top_colours"]
    # 37 fields with a second-season crop in June 2020 (Brachiaria 15, Millet 12, Sorghum 10)
    assert int(cover.sum()) == 37
    assert "#228833" in drawn and "#ee6677" in drawn
