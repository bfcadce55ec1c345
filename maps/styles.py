"""Colour-blind-safe palettes and QGIS styles (QML) for the output layer.

The QML documents are generated here from the target's classes (no QGIS at
run time) and stored in the GeoPackage's ``layer_styles`` table, so the
``fields`` layer opens styled in QGIS. They use only elements QGIS 3.22 reads;
newer QGIS versions read them too.

Palettes: Paul Tol's "bright" qualitative scheme (distinct for the common
colour-vision deficiencies, grey reserved for "other"), extended by his
"muted" scheme beyond six classes; the confidence ramp samples viridis
(perceptually uniform and colour-blind safe), light yellow = low confidence.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from regenmap.schema import FieldStatus, class_column, confidence_column, status_column

#: Paul Tol's "bright" qualitative scheme without its grey (kept for "other").
TOL_BRIGHT: tuple[str, ...] = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377")
#: Paul Tol's "muted" scheme, used after the bright colours run out.
TOL_MUTED: tuple[str, ...] = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933",
                              "#DDCC77", "#CC6677", "#882255", "#AA4499")
#: Colour of fields without a trustworthy label (uncertain, no data, withheld).
OTHER_COLOUR = "#BBBBBB"
OTHER_LABEL = "other / uncertain"
#: Confidence class breaks and viridis colours, light = low confidence, dark = high.
CONFIDENCE_BREAKS: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CONFIDENCE_COLOURS: tuple[str, ...] = ("#FDE725", "#7AD151", "#22A884", "#2A788E",
                                       "#414487", "#440154")
NO_CONFIDENCE_COLOUR = "#DDDDDD"
OUTLINE_COLOUR = "#333333"


#: Colours of well-known practice classes, so a map reads the same in every run:
#: regenerative practices green, intermediate yellow, conventional / bare red
#: (Tol's bright green and red differ strongly in lightness, so they stay
#: distinct with red-green colour blindness).
KNOWN_CLASS_COLOURS: dict[str, str] = {
    "no_till": "#228833", "cover_crop": "#228833", "cover": "#228833",
    "permanent_cover": "#66CCEE", "permanent": "#66CCEE",
    "reduced_till": "#CCBB44", "reduced": "#CCBB44", "min_till": "#CCBB44",
    "conventional_till": "#EE6677", "conventional": "#EE6677", "bare": "#EE6677",
}


def class_colours(classes: Sequence[str]) -> dict[str, str]:
    """Map each class to a colour-blind-safe hex colour.

    Well-known practice names (:data:`KNOWN_CLASS_COLOURS`, case-insensitive)
    keep their colour; the other classes take the unused colours of Tol's
    bright then muted schemes, in the order given.

    Parameters
    ----------
    classes
        Class names of one target, in the model's order.

    Returns
    -------
    dict[str, str]
        ``{class: "#RRGGBB"}``, distinct for up to 15 classes.
    """
    out: dict[str, str] = {}
    for c in classes:
        known = KNOWN_CLASS_COLOURS.get(c.lower())
        if known is not None and known not in out.values():
            out[c] = known
    free = [p for p in TOL_BRIGHT + TOL_MUTED if p not in out.values()]
    i = 0
    for c in classes:
        if c not in out:
            out[c] = free[i % len(free)] if free else OTHER_COLOUR
            i += 1
    return {c: out[c] for c in classes}


def class_label(class_name: str) -> str:
    """Human-readable legend label of a class, e.g. ``no_till`` -> ``No till``."""
    text = class_name.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else class_name


def confidence_classes() -> list[tuple[float, float, str, str]]:
    """Return ``(lower, upper, colour, label)`` of each confidence class."""
    out = []
    for i, colour in enumerate(CONFIDENCE_COLOURS):
        lo, hi = CONFIDENCE_BREAKS[i], CONFIDENCE_BREAKS[i + 1]
        out.append((lo, hi, colour, f"{lo:.1f} - {hi:.1f}"))
    return out


def _rgba(hex_colour: str, alpha: int = 255) -> str:
    h = hex_colour.lstrip("#")
    return f"{int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha}"


def _quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _fill_symbol(parent: ET.Element, name: str, colour: str) -> None:
    sym = ET.SubElement(parent, "symbol", {"type": "fill", "name": name, "alpha": "1",
                                           "clip_to_extent": "1", "force_rhr": "0"})
    layer = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1",
                                         "locked": "0", "pass": "0"})
    opts = ET.SubElement(layer, "Option", {"type": "Map"})
    props = {"color": _rgba(colour), "outline_color": _rgba(OUTLINE_COLOUR),
             # Outlines 1.5 m wide on the ground (any CRS): crisp when zoomed in to fields,
             # vanishing at regional scale where millions of mm-wide outlines would
             # paint the whole map grey.
             "outline_style": "solid", "outline_width": "1.5",
             "outline_width_unit": "RenderMetersInMapUnits",
             "style": "solid", "joinstyle": "bevel"}
    for key, value in props.items():
        ET.SubElement(opts, "Option", {"name": key, "value": value, "type": "QString"})


def _document(renderer: ET.Element, *, label_expression: str | None) -> str:
    root = ET.Element("qgis", {"version": "3.22.16-Białowieża",
                               "styleCategories": "Symbology|Labeling",
                               "labelsEnabled": "1" if label_expression else "0"})
    root.append(renderer)
    if label_expression:
        labeling = ET.SubElement(root, "labeling", {"type": "simple"})
        settings = ET.SubElement(labeling, "settings", {"calloutType": "simple"})
        ET.SubElement(settings, "text-style", {
            "fieldName": label_expression, "isExpression": "1", "fontSize": "8",
            "fontSizeUnit": "Point", "textColor": "20,20,20,255", "fontFamily": "DejaVu Sans",
            "namedStyle": "Book", "multilineHeight": "1", "textOpacity": "1"})
        ET.SubElement(settings, "text-buffer", {"bufferDraw": "1", "bufferSize": "0.7",
                                                 "bufferSizeUnits": "MM",
                                                 "bufferColor": "255,255,255,255",
                                                 "bufferOpacity": "0.8"})
        ET.SubElement(settings, "text-format", {"wrapChar": "\n", "multilineAlign": "1"})
        # Horizontal placement inside the polygon (placement="1": OverPoint/centroid).
        ET.SubElement(settings, "placement", {"placement": "1", "centroidInside": "1",
                                               "fitInPolygonOnly": "1"})
        # Labels only when zoomed in (1:1 to 1:25 000): a region of a million
        # fields stays fast and readable.
        ET.SubElement(settings, "rendering", {"scaleVisibility": "1", "scaleMin": "1",
                                               "scaleMax": "25000", "obstacle": "1",
                                               "drawLabels": "1"})
    ET.SubElement(root, "blendMode").text = "0"
    ET.SubElement(root, "featureBlendMode").text = "0"
    ET.SubElement(root, "layerGeometryType").text = "2"  # polygon
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


def shown_class_expression(target: str) -> str:
    """QGIS expression of the class drawn for ``target``: the label only where status is ok.

    Uncertain, no-data, too-small and failed fields evaluate to NULL and so
    fall into the "other / uncertain" category, whatever the class column holds.
    """
    return (f"CASE WHEN {_quote(status_column(target))} = {_literal(FieldStatus.OK.value)} "
            f"THEN {_quote(class_column(target))} END")


def class_style_qml(target: str, classes: Sequence[str]) -> str:
    """Return a QML categorised by the class of ``target`` with an "other / uncertain" category.

    Parameters
    ----------
    target
        Target name (its class column is :func:`regenmap.schema.class_column`).
    classes
        The target's classes, in the model's order (fixes the colours).

    Returns
    -------
    str
        QML document: ``categorizedSymbol`` renderer, one category per class
        plus an all-other-values category (``value=""``), and labels
        ``<class> <confidence>`` visible below 1:25 000.
    """
    colours = class_colours(classes)
    renderer = ET.Element("renderer-v2", {"type": "categorizedSymbol",
                                          "attr": shown_class_expression(target),
                                          "symbollevels": "0", "enableorderby": "0",
                                          "forceraster": "0", "referencescale": "-1"})
    cats = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, c in enumerate(classes):
        ET.SubElement(cats, "category", {"value": c, "symbol": str(i), "label": class_label(c),
                                         "render": "true"})
        _fill_symbol(symbols, str(i), colours[c])
    n = len(classes)
    ET.SubElement(cats, "category", {"value": "", "symbol": str(n), "label": OTHER_LABEL,
                                     "render": "true"})
    _fill_symbol(symbols, str(n), OTHER_COLOUR)
    source = ET.SubElement(renderer, "source-symbol")
    _fill_symbol(source, "0", OTHER_COLOUR)
    label = (f"coalesce({_quote(class_column(target))}, {_quote(status_column(target))}) "
             f"|| '\\n' || coalesce(format_number({_quote(confidence_column(target))}, 2), '')")
    return _document(renderer, label_expression=label)


def confidence_style_qml(target: str) -> str:
    """Return a QML graduated on the confidence of ``target``.

    Fields without a confidence (no data, too small, error) are drawn in a
    light grey "no confidence" class (the expression maps NULL to -1), so no
    field disappears from the map.
    """
    expr = f"coalesce({_quote(confidence_column(target))}, -1)"
    renderer = ET.Element("renderer-v2", {"type": "graduatedSymbol", "attr": expr,
                                          "graduatedMethod": "GraduatedColor",
                                          "symbollevels": "0", "enableorderby": "0",
                                          "forceraster": "0", "referencescale": "-1"})
    ranges = ET.SubElement(renderer, "ranges")
    symbols = ET.SubElement(renderer, "symbols")
    classes = [(-1.0, 0.0, NO_CONFIDENCE_COLOUR, "no confidence (no label)"),
               *confidence_classes()]
    for i, (lo, hi, colour, label) in enumerate(classes):
        # QGIS takes the first range with lower <= v <= upper; shaving the upper
        # bounds makes the classes [lo, hi) like the static and HTML maps (0.9 is
        # in 0.9 - 1.0), the last one closed.
        upper = hi if i == len(classes) - 1 else hi - 1e-9
        ET.SubElement(ranges, "range", {"lower": f"{lo:.10f}", "upper": f"{upper:.10f}",
                                        "symbol": str(i), "label": label, "render": "true"})
        _fill_symbol(symbols, str(i), colour)
    source = ET.SubElement(renderer, "source-symbol")
    _fill_symbol(source, "0", NO_CONFIDENCE_COLOUR)
    mode = ET.SubElement(renderer, "classificationMethod", {"id": "Custom"})
    ET.SubElement(mode, "symmetricMode", {"enabled": "0", "symmetrypoint": "0",
                                           "astride": "0"})
    ET.SubElement(mode, "labelFormat", {"format": "%1 - %2", "labelprecision": "2",
                                         "trimtrailingzeroes": "0"})
    return _document(renderer, label_expression=None)


# --------------------------------------------------------------------------- generic styles
def categorized_style_qml(expression: str, categories: Sequence[tuple[str, str, str]], *,
                          other_label: str | None = OTHER_LABEL,
                          label_expression: str | None = None,
                          label_max_scale: int = 25_000,
                          form: str | None = None) -> str:
    """Return a QML categorised on a QGIS expression, with an optional form section.

    Parameters
    ----------
    expression
        QGIS expression (or quoted column) whose value picks the category.
    categories
        ``(value, legend label, "#RRGGBB")`` per category, in legend order.
    other_label
        Label of a grey catch-all category for any other value (None: no catch-all).
    label_expression
        QGIS expression of the map labels (None: no labels).
    label_max_scale
        Labels are drawn from 1:1 to 1:``label_max_scale``.
    form
        XML of the attribute form (``fieldConfiguration``, ``aliases``, ``editable``
        elements, see :func:`form_qml`) appended to the document.

    Returns
    -------
    str
        The QML document.
    """
    renderer = ET.Element("renderer-v2", {"type": "categorizedSymbol", "attr": expression,
                                          "symbollevels": "0", "enableorderby": "0",
                                          "forceraster": "0", "referencescale": "-1"})
    cats = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (value, label, colour) in enumerate(categories):
        ET.SubElement(cats, "category", {"value": value, "symbol": str(i), "label": label,
                                         "render": "true"})
        _fill_symbol(symbols, str(i), colour)
    if other_label is not None:
        n = len(categories)
        ET.SubElement(cats, "category", {"value": "", "symbol": str(n), "label": other_label,
                                         "render": "true"})
        _fill_symbol(symbols, str(n), OTHER_COLOUR)
    source = ET.SubElement(renderer, "source-symbol")
    _fill_symbol(source, "0", OTHER_COLOUR)
    text = _document(renderer, label_expression=label_expression)
    if label_expression and label_max_scale != 25_000:
        text = text.replace('scaleMax="25000"', f'scaleMax="{int(label_max_scale)}"')
    if form:
        text = text.replace('styleCategories="Symbology|Labeling"',
                            'styleCategories="Symbology|Labeling|Fields|Forms"')
        text = text.replace("</qgis>", form + "</qgis>")
    return text


def form_qml(value_maps: Mapping[str, Sequence[tuple[str, str]]], *, dates: Sequence[str] = (),
             read_only: Sequence[str] = (), aliases: dict[str, str] | None = None) -> str:
    """Return the attribute-form part of a QML: drop-down lists, date pickers, locked columns.

    Parameters
    ----------
    value_maps
        ``{column: [(shown text, stored value), ...]}``: a drop-down (ValueMap widget)
        with these choices and an empty one.
    dates
        Columns edited with a calendar (``yyyy-MM-dd``).
    read_only
        Columns the form shows but does not let the user change.
    aliases
        ``{column: label shown in the form}``.

    Returns
    -------
    str
        XML elements (``fieldConfiguration``, ``aliases``, ``editable``) to append to a QML.
    """
    config = ET.Element("fieldConfiguration")
    for col, choices in value_maps.items():
        fld = ET.SubElement(config, "field", {"name": col, "configurationFlags": "None"})
        widget = ET.SubElement(fld, "editWidget", {"type": "ValueMap"})
        opts = ET.SubElement(ET.SubElement(widget, "config"), "Option", {"type": "Map"})
        lst = ET.SubElement(opts, "Option", {"name": "map", "type": "List"})
        for shown, stored in [("(not recorded)", "{2839923C-8B7D-419E-B84B-CA2FE9B80EC7}"),
                              *choices]:
            item = ET.SubElement(lst, "Option", {"type": "Map"})
            ET.SubElement(item, "Option", {"name": shown, "value": stored, "type": "QString"})
    for col in dates:
        fld = ET.SubElement(config, "field", {"name": col, "configurationFlags": "None"})
        widget = ET.SubElement(fld, "editWidget", {"type": "DateTime"})
        opts = ET.SubElement(ET.SubElement(widget, "config"), "Option", {"type": "Map"})
        for name, value, kind in (("allow_null", "true", "bool"),
                                  ("calendar_popup", "true", "bool"),
                                  ("field_format", "yyyy-MM-dd", "QString"),
                                  ("display_format", "yyyy-MM-dd", "QString")):
            ET.SubElement(opts, "Option", {"name": name, "value": value, "type": kind})
    alias = ET.Element("aliases")
    for i, (col, text) in enumerate((aliases or {}).items()):
        ET.SubElement(alias, "alias", {"field": col, "index": str(i), "name": text})
    editable = ET.Element("editable")
    for col in read_only:
        ET.SubElement(editable, "field", {"name": col, "editable": "0"})
    return "".join(ET.tostring(e, encoding="unicode") for e in (config, alias, editable))
