"""The self-contained HTML run report."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from regenmap.maps.gpkg_contract import write_results
from regenmap.maps.render import render_maps
from regenmap.maps.report import write_report

from .conftest import RUN_INFO, TARGETS, make_observations, make_results

DRIFT = {"warning": "3 of 20 features differ strongly from the training data: ndti_min "
                    "(PSI 0.41)", "drifted": ["ndti_min"]}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report on 20 fields with observations, maps, a model card, drift and evaluation."""
    tmp = tmp_path_factory.mktemp("report")
    fields, preds = make_results(20)
    info = {**RUN_INFO, "drift": DRIFT}
    gpkg = write_results(tmp / "practices.gpkg", fields, preds, targets=TARGETS,
                         run_info=info, observations=make_observations(fields))
    render_maps(gpkg, tmp / "maps", targets=["tillage"])
    card = tmp / "model" / "tillage" / "model_card.html"
    card.parent.mkdir(parents=True)
    card.write_text("<h1>card</h1>")
    return write_report(tmp, gpkg_path=gpkg, run_info=info, model_card=card,
                        evaluation={"tillage": {"accuracy": 0.8125, "f1_macro": 0.77}})


def test_report_sections_and_numbers(report):
    out = report
    html = out.read_text()
    assert out.name == "report.html"
    # self-contained: plots are data URIs, nothing is fetched
    assert not re.search(r'(src|href)="(https?:)?//', html)
    imgs = re.findall(r'<img alt="plot" src="data:image/png;base64,', html)
    # per target: class areas, confidence, time series
    assert len(imgs) == 6
    # links are relative, so the output folder can be moved
    assert 'href="model/tillage/model_card.html"' in html
    assert 'href="maps/map.html"' in html and 'href="practices.gpkg"' in html
    assert DRIFT["warning"] in html
    # 15 ok, 3 uncertain, 2 no_data of 20 (see conftest)
    assert re.search(r"<td>ok</td><td class=\"n\">15</td><td>75.0 %</td>", html)
    assert re.search(r"<td>uncertain</td><td class=\"n\">3</td>", html)
    # 5 ok fields of 0.8 ha per tillage class
    assert html.count('<td class="n">4.0</td>') >= 3
    assert "0.8125" in html and "fields.gpkg" in html and "2024-01-01 to 2024-12-31" in html
    assert "tillage-2024-abc" in html


def test_report_warns_on_unlabelled_and_ood_fields(tmp_path, make_results, targets):
    fields, preds = make_results(10)
    preds["tillage_status"] = "no_data"
    preds["tillage_ood"] = np.linspace(0, 1, 10)
    gpkg = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    html = write_report(tmp_path, gpkg_path=gpkg, run_info={}).read_text()
    assert "tillage: 10 of 10 fields (100 %) have no label" in html
    # 5 of 10 OOD scores (0.56 .. 1.0) exceed 0.5
    assert "tillage: 5 fields (50 %) look unlike the training data" in html
    assert "No observations were given" in html


def test_report_on_empty_results(tmp_path, make_results, targets):
    fields, preds = make_results(2)
    gpkg = write_results(tmp_path / "p.gpkg", fields.iloc[:0], preds.iloc[:0], targets=targets,
                         run_info={})
    html = write_report(tmp_path / "r", gpkg_path=gpkg, run_info={}).read_text()
    assert "0 fields" in html and "No field has a confidence" in html


@pytest.mark.browser
def test_report_renders_in_chromium(tmp_path, report, chromium):
    out = report
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
                    f"--screenshot={shot}", "--window-size=1100,2400", out.resolve().as_uri()],
                   capture_output=True, timeout=120)
    img = imread(shot)
    # the embedded bar chart's class colours are on screen (Tol blue #4477AA)
    blue = np.all(np.abs(img[..., :3] - np.array([68, 119, 170]) / 255) < 3 / 255, axis=-1)
    assert blue.sum() > 1000


def test_the_uncertain_warning_says_why_the_fields_are_uncertain() -> None:
    import pandas as pd

    from regenmap.maps.report import _warnings

    why = (["confidence 0.41 below 0.70: leaning reduced over no_till"] * 3
           + ["unlike the training data: 60% of its features lie outside"] * 2
           + ["this run's mix of predicted classes (...) differs; leaning reduced"] * 4
           + ["ndti_min = 0.1 (training median 0.2) -> no_till"])
    frame = pd.DataFrame({"tillage_status": ["uncertain"] * 9 + ["ok"], "tillage_why": why})
    out = _warnings(frame, {"tillage": ["no_till", "reduced"]}, {}, None, {})
    assert out == ["tillage: 9 fields (90 %) are uncertain: 3 confidence below the threshold, "
                   "2 unlike the training data, 4 withheld with the whole run (see above)."]
