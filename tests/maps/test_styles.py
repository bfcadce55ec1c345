"""QGIS styles (QML) and palettes, without QGIS."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from regenmap.maps.static import confidence_colours
from regenmap.maps.styles import (
    CONFIDENCE_COLOURS,
    NO_CONFIDENCE_COLOUR,
    OTHER_COLOUR,
    OTHER_LABEL,
    class_colours,
    class_style_qml,
    confidence_style_qml,
)


def _qml(text: str) -> ET.Element:
    assert text.startswith("<!DOCTYPE qgis")
    return ET.fromstring(text.split("\n", 1)[1])


def test_known_practices_keep_their_colour_and_others_stay_distinct():
    assert class_colours(["conventional", "reduced", "no_till"]) == {
        "conventional": "#EE6677", "reduced": "#CCBB44", "no_till": "#228833"}
    assert class_colours(["bare", "cover_crop"]) == {"bare": "#EE6677", "cover_crop": "#228833"}
    many = class_colours([f"class {i}" for i in range(15)] )
    assert len(set(many.values())) == 15 and OTHER_COLOUR not in many.values()
    mixed = class_colours(["x", "no_till", "y"])
    assert mixed["no_till"] == "#228833" and len(set(mixed.values())) == 3


def test_class_style_has_every_class_and_a_catch_all():
    root = _qml(class_style_qml("tillage", ["conventional", "no_till"]))
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol"
    assert renderer.get("attr") == ('CASE WHEN "tillage_status" = \'ok\' THEN "tillage" END')
    cats = renderer.findall("categories/category")
    assert [c.get("value") for c in cats] == ["conventional", "no_till", ""]
    assert cats[-1].get("label") == OTHER_LABEL
    colours = [s.find("layer/Option/Option[@name='color']").get("value")
               for s in renderer.findall("symbols/symbol")]
    assert colours == ["238,102,119,255", "34,136,51,255", "187,187,187,255"]
    assert root.find("labeling/settings/rendering").get("scaleMax") == "25000"


def test_quotes_in_names_are_escaped():
    root = _qml(class_style_qml('it"s', ["o'clock"]))
    attr = root.find("renderer-v2").get("attr")
    assert attr == 'CASE WHEN "it""s_status" = \'ok\' THEN "it""s" END'
    assert root.find("renderer-v2/categories/category").get("value") == "o'clock"


def test_confidence_ranges_agree_with_the_static_maps():
    root = _qml(confidence_style_qml("tillage"))
    ranges = [(float(r.get("lower")), float(r.get("upper")))
              for r in root.findall("renderer-v2/ranges/range")]
    colours = [s.find("layer/Option/Option[@name='color']").get("value")
               for s in root.findall("renderer-v2/symbols/symbol")]

    def qgis_colour(value: float) -> str:  # QGIS takes the first range with lo <= v <= hi
        for (lo, hi), colour in zip(ranges, colours, strict=True):
            if lo <= value <= hi:
                return colour
        raise AssertionError(value)

    def rgba(hex_colour: str) -> str:
        h = hex_colour.lstrip("#")
        return ",".join(str(int(h[i:i + 2], 16)) for i in (0, 2, 4)) + ",255"

    values = np.array([0.0, 0.3, 0.5, 0.55, 0.6, 0.7, 0.79, 0.8, 0.9, 0.95, 1.0])
    for v, colour in zip(values, confidence_colours(values), strict=True):
        assert qgis_colour(float(v)) == rgba(colour), v
    assert qgis_colour(-1.0) == rgba(NO_CONFIDENCE_COLOUR)  # NULL -> coalesce(-1)
    assert confidence_colours(np.array([np.nan]))[0] == NO_CONFIDENCE_COLOUR
    assert len(ranges) == len(CONFIDENCE_COLOURS) + 1
