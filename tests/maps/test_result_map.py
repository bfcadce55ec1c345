"""The notebook map of one target: offline Leaflet, class colours, legend and tooltip."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from regenmap.errors import InputError
from regenmap.maps.gpkg_contract import read_results, write_results
from regenmap.maps.interactive import ResultMap, leaflet_inline, result_map
from regenmap.maps.styles import OTHER_COLOUR, OTHER_LABEL, class_colours

from .conftest import TARGETS, make_results

TILES = "https://tiles.example.org/{z}/{x}/{y}.png"


@pytest.fixture(scope="module")
def frame(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The 20-field results (5 ok per tillage class, 3 uncertain, 2 no_data), as read back."""
    fields, preds = make_results(20)
    gpkg = write_results(tmp_path_factory.mktemp("result_map") / "practices.gpkg", fields, preds,
                         targets=TARGETS, run_info={})
    return read_results(gpkg)


def _features(page: str) -> list[dict]:
    """The GeoJSON features embedded in the page by folium."""
    start = page.index('{"features": [')
    data, _ = json.JSONDecoder().raw_decode(page[start:])
    return data["features"]


def test_result_map__offline_by_default_with_inline_leaflet(frame) -> None:
    page = result_map(frame, frame.attrs["targets"]).page
    css, js = (part.replace("\r\n", "\n") for part in leaflet_inline())  # as rendered
    assert css in page and js in page and "Leaflet 1.9.3" in page
    # nothing is fetched: no script, stylesheet, image or tile URL outside Leaflet's own source
    rest = page.replace(css, "").replace(js, "")
    assert not re.search(r"https?://", rest), re.findall(r".{40}https?://.{40}", rest)[:3]
    assert not re.search(r'(src|href)="//', rest)


def test_result_map__legend_colours_and_tooltip(frame) -> None:
    m = result_map(frame, frame.attrs["targets"])  # first target: tillage
    assert m.target == "tillage"
    legend = re.search(r'<div id="regenmap-legend".*?</div></div>', m.page).group(0)
    colours = class_colours(TARGETS["tillage"])
    for label in ("Conventional", "Reduced", "No till", OTHER_LABEL):
        assert label in legend
    assert all(colours[c] in legend for c in TARGETS["tillage"]) and OTHER_COLOUR in legend
    assert "confidence" not in legend and "winter_cover" not in legend
    feats = {f["properties"]["field_id"]: f["properties"] for f in _features(m.page)}
    assert len(feats) == 20
    # ok fields in their class colour; uncertain (F005: conf 0.4) and no_data (F000) grey
    assert feats["F002"]["status"] == "ok" and feats["F002"]["class"] == "no_till"
    assert feats["F002"]["fill"] == colours["no_till"]
    assert feats["F005"]["status"] == "uncertain" and feats["F005"]["fill"] == OTHER_COLOUR
    assert feats["F000"]["status"] == "no_data" and feats["F000"]["fill"] == OTHER_COLOUR
    assert feats["F000"]["class"] == "(none)" and feats["F000"]["confidence"] is None
    assert feats["F004"]["confidence"] == 0.9
    assert '"field_id", "class", "confidence", "status"' in m.page  # the tooltip's fields


def test_result_map__other_target_and_background_tiles(frame) -> None:
    m = result_map(frame, frame.attrs["targets"], "winter_cover", tiles=TILES,
                   attribution="Example tiles", height_px=450)
    assert m.target == "winter_cover"
    assert TILES in m.page and "Example tiles" in m.page
    assert "No till" not in m.page and "Cover" in m.page
    shown = m._repr_html_()
    assert shown.startswith('<iframe srcdoc="') and "height:450px" in shown
    assert "&lt;div id=&quot;regenmap-legend&quot;" in shown  # the page, escaped into srcdoc


@pytest.mark.parametrize(("targets", "target", "match"), [
    ({}, None, "no target"),
    (TARGETS, "yield", "'yield' is not in the results"),
])
def test_result_map__refuses_unknown_targets(frame, targets, target, match) -> None:
    with pytest.raises(InputError, match=match):
        result_map(frame, targets, target)


def test_result_map__empty_results_and_saving(frame, tmp_path: Path) -> None:
    m = result_map(frame.iloc[:0], TARGETS)
    assert isinstance(m, ResultMap) and "No fields in these results." in m.page
    out = m.save(tmp_path / "map.html")
    assert out.read_text(encoding="utf-8") == m.page


@pytest.mark.browser
def test_result_map_shows_fields_and_legend_in_chromium(tmp_path, frame, chromium) -> None:
    page = result_map(frame, frame.attrs["targets"]).save(tmp_path / "map.html")
    shot = tmp_path / "map.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
                    "--virtual-time-budget=5000", f"--screenshot={shot}",
                    "--window-size=900,700", page.resolve().as_uri()],
                   capture_output=True, timeout=120, check=False)
    rgb = (imread(shot)[..., :3] * 255).round()

    def pixels(hex_colour: str, opacity: float = 1.0) -> int:
        # Leaflet blends the 0.85 fill opacity with the grey (#ddd) map background
        want = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        want = opacity * want + (1 - opacity) * 221
        return int(np.all(np.abs(rgb - want) <= 4, axis=-1).sum())

    # filled fields in every class colour and in grey (withheld)
    for colour in [*class_colours(TARGETS["tillage"]).values(), OTHER_COLOUR]:
        assert pixels(colour, 0.85) > 500, colour
    # the legend's swatches (opaque, 12 px) for the three classes and the grey
    for colour in [*class_colours(TARGETS["tillage"]).values(), OTHER_COLOUR]:
        assert pixels(colour) >= 50, colour
