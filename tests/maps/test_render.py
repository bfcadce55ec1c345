"""Static PNG maps and the offline HTML map (checked in headless Chromium)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from regenmap.errors import OutputError, SchemaError
from regenmap.maps.gpkg_contract import write_results
from regenmap.maps.render import render_maps
from regenmap.maps.static import _nice_length
from regenmap.maps.styles import CONFIDENCE_COLOURS, OTHER_COLOUR, class_colours

from .conftest import RUN_INFO, TARGETS, make_results


def _rgb(hex_colour: str) -> np.ndarray:
    h = hex_colour.lstrip("#")
    return np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)])


def _pixels_of(img: np.ndarray, hex_colour: str, tol: int = 3) -> int:
    rgb = (img[..., :3] * 255).round() if img.dtype.kind == "f" else img[..., :3]
    return int(np.all(np.abs(rgb - _rgb(hex_colour)) <= tol, axis=-1).sum())


@pytest.fixture(scope="module")
def gpkg(tmp_path_factory) -> Path:
    from regenmap.maps.gpkg_contract import write_results as write

    tmp = tmp_path_factory.mktemp("render")
    fields, preds = make_results(20)
    return write(tmp / "practices.gpkg", fields, preds, targets=TARGETS, run_info=RUN_INFO)


@pytest.fixture(scope="module")
def rendered(gpkg) -> list[Path]:
    """Every map of the 20-field results, rendered once for this module."""
    return render_maps(gpkg, gpkg.parent / "maps")


def test_render_maps_writes_pngs_and_html(rendered, targets):
    paths = rendered
    names = [p.name for p in paths]
    assert names == ["tillage_class.png", "tillage_confidence.png", "winter_cover_class.png",
                     "winter_cover_confidence.png", "map.html"]
    img = imread(paths[0])
    # 15 labelled tillage fields, 5 per class, and 5 grey ones, drawn with their colours.
    counts = {c: _pixels_of(img, colour) for c, colour in class_colours(targets["tillage"]).items()}
    grey = _pixels_of(img, OTHER_COLOUR)
    assert min(counts.values()) > 1000
    # equal field areas: each class's pixel count is within 10 % of the others
    assert max(counts.values()) < 1.1 * min(counts.values())
    assert grey == pytest.approx(np.mean(list(counts.values())), rel=0.15)
    conf = imread(paths[1])
    for colour in (CONFIDENCE_COLOURS[0], CONFIDENCE_COLOURS[-1]):
        assert _pixels_of(conf, colour) > 1000


def test_render_subset_and_unknown_target(tmp_path, gpkg):
    assert [p.name for p in render_maps(gpkg, tmp_path / "m", targets=["winter_cover"])] == [
        "winter_cover_class.png", "winter_cover_confidence.png", "map.html"]
    with pytest.raises(OutputError, match="no target"):
        render_maps(gpkg, tmp_path / "m", targets=["yield"])
    with pytest.raises(OutputError, match="does not exist"):
        render_maps(gpkg, tmp_path / "missing" / "maps")


def test_render_refuses_foreign_file(tmp_path):
    foreign = tmp_path / "x.gpkg"
    foreign.write_bytes(b"not a gpkg")
    with pytest.raises(SchemaError):
        render_maps(foreign, tmp_path)


def test_geographic_and_empty_results_render(tmp_path, make_results, targets):
    fields, preds = make_results(6, crs="EPSG:32631")
    geo = write_results(tmp_path / "g.gpkg", fields, preds, targets=targets, run_info={},
                        crs="EPSG:4326")
    assert len(render_maps(geo, tmp_path / "g", targets=["tillage"])) == 3
    empty = write_results(tmp_path / "e.gpkg", fields.iloc[:0], preds.iloc[:0], targets=targets,
                          run_info={})
    paths = render_maps(empty, tmp_path / "e", targets=["tillage"])
    assert all(p.stat().st_size > 1000 for p in paths)


# Runs in a fresh interpreter: a notebook user has chosen a backend before importing regenmap.
_BACKEND_SCRIPT = """
import json, sys
import matplotlib
matplotlib.use("svg")
from regenmap.maps import render_maps, write_report
gpkg, out = sys.argv[1], sys.argv[2]
after_import = matplotlib.get_backend()
render_maps(gpkg, out + "/maps")
write_report(out, gpkg_path=gpkg, run_info={})
print(json.dumps([after_import, matplotlib.get_backend()]))
"""


def test_maps_and_report_leave_the_matplotlib_backend_alone(tmp_path, gpkg):
    proc = subprocess.run([sys.executable, "-c", _BACKEND_SCRIPT, str(gpkg), str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["svg", "svg"]
    assert (tmp_path / "report.html").is_file() and (tmp_path / "maps" / "map.html").is_file()


@pytest.mark.parametrize(("span_m", "bar_m"), [(1000, 200), (640, 200), (12_000, 5000), (90, 20)])
def test_nice_length__scale_bar_of_a_map_span(span_m, bar_m):
    assert _nice_length(span_m) == bar_m


def test_html_is_offline(rendered):
    html = rendered[-1].read_text()
    # Nothing is fetched: no external script, stylesheet, image or tile URL.
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)
    assert "tile.openstreetmap" not in html and "cdn." not in html
    assert "Leaflet 1.9.3" in html
    assert "F004" in html and "ndti drop 0.12" in html


@pytest.mark.browser
def test_html_map_shows_fields_in_chromium(tmp_path, rendered, targets, chromium):
    html = rendered[-1]
    shot = tmp_path / "screenshot.png"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1000,800", "--virtual-time-budget=5000", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    img = imread(shot)
    # Leaflet drew the fields: each class colour of the default overlay covers many pixels
    # (its SVG renderer blends the 0.85 fill opacity with the grey map background).
    background = np.array([221, 221, 221]) / 255
    fill = 0.85
    for colour in class_colours(targets["tillage"]).values():
        blended = fill * _rgb(colour) / 255 + (1 - fill) * background
        hit = np.all(np.abs(img[..., :3] - blended) < 4 / 255, axis=-1).sum()
        assert hit > 500, (colour, hit)


@pytest.mark.browser
def test_html_popup_shows_class_confidence_status_reason(tmp_path, rendered, chromium):
    html = rendered[-1].read_text()
    layer = re.search(r"var (geo_json_[0-9a-f]+) = L\.geoJson", html).group(1)
    # Click the 5th field: F004, class reduced (4 % 3 = 1), confidence 0.4 + 0.5 * 4 / 4.
    click = (f"<script>setTimeout(function(){{var l={layer}.getLayers()[4];"
             "l.fire('click', {latlng: l.getBounds().getCenter()}, true);}, 300);</script>")
    page = tmp_path / "click.html"
    page.write_text(html.replace("</html>", click + "</html>"))
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         "--virtual-time-budget=5000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    popup = re.search(r'class="leaflet-popup-content"[^>]*>(.*?)</table>', proc.stdout, re.S)
    assert popup, proc.stderr[-2000:]
    text = re.sub(r"<[^>]+>", " ", popup.group(1))
    words = " ".join(text.split())
    assert "field F004" in words
    assert "tillage reduced" in words
    assert "confidence 0.9" in words
    assert "status ok" in words
    assert "why ndti drop 0.12; 9 clear observations" in words


def test_render_and_report_refuse_a_read_only_folder(tmp_path, gpkg):
    from regenmap.maps.report import write_report

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="read-only"):
            render_maps(gpkg, ro)
        with pytest.raises(OutputError, match="read-only"):
            render_maps(gpkg, ro / "maps")  # cannot be created either
        with pytest.raises(OutputError, match="read-only"):
            write_report(ro, gpkg_path=gpkg, run_info={})
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_html_escapes_text_from_input_files(tmp_path, make_results, targets):
    fields, preds = make_results(3)
    evil = "<img src=x onerror=alert(1)>"
    fields.loc[0, "field_id"] = preds.loc[0, "field_id"] = evil
    preds.loc[2, "tillage_why"] = "<script>alert(2)</script>"
    gpkg = write_results(tmp_path / "p.gpkg", fields, preds, targets=targets, run_info={})
    html = render_maps(gpkg, tmp_path / "m", targets=["tillage"])[-1].read_text()
    assert evil not in html and "<script>alert(2)" not in html
    # escaped, then JSON-encoded by folium (& -> \u0026)
    assert "\\u0026lt;img src=x onerror=alert(1)\\u0026gt;" in html


def test_rasterised_drawing_for_many_fields(tmp_path, gpkg, targets, monkeypatch):
    from regenmap.maps import static

    monkeypatch.setattr(static, "RASTERIZE_ABOVE", 5)  # 20 fields take the raster path
    paths = render_maps(gpkg, tmp_path / "r", targets=["tillage"])
    img = imread(paths[0])
    counts = {c: _pixels_of(img, colour) for c, colour in class_colours(targets["tillage"]).items()}
    assert min(counts.values()) > 1000
    assert max(counts.values()) < 1.1 * min(counts.values())
    assert _pixels_of(img, OTHER_COLOUR) == pytest.approx(np.mean(list(counts.values())), rel=0.15)
