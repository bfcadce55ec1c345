"""Open a GeoPackage in real (headless) QGIS, check it, and render a PNG.

Run with Debian's interpreter, which has PyQGIS::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tools/qgis_check.py out.gpkg \
        --layer fields --png map.png --json report.json

For the layer it checks that QGIS opens it as a valid vector layer, reports
CRS, geometry type, feature count and fields, and whether the default style
stored in ``layer_styles`` was applied when the layer was opened (renderer
type, classification attribute, categories or ranges). It renders the layer
on white and counts non-background pixels. ``--style NAME`` also loads a
named non-default style from the database and renders it to ``--style-png``.

Exit codes: 0 all checks passed; 1 a check failed (lines ``FAIL: ...``);
2 usage error or PyQGIS not importable. The JSON report carries every fact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def _setup_env() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if "XDG_RUNTIME_DIR" not in os.environ:
        runtime = tempfile.mkdtemp(prefix="qgis-runtime-")
        Path(runtime).chmod(0o700)
        os.environ["XDG_RUNTIME_DIR"] = runtime


def _renderer_facts(layer: Any) -> dict[str, Any]:
    renderer = layer.renderer()
    facts: dict[str, Any] = {"renderer": renderer.type() if renderer else None}
    if renderer is None:
        return facts
    if renderer.type() == "categorizedSymbol":
        facts["attribute"] = renderer.classAttribute()
        facts["categories"] = [
            {"value": "" if c.value() is None else str(c.value()), "label": c.label(),
             "colour": c.symbol().color().name()} for c in renderer.categories()]
    elif renderer.type() == "graduatedSymbol":
        facts["attribute"] = renderer.classAttribute()
        facts["ranges"] = [
            {"lower": r.lowerValue(), "upper": r.upperValue(), "label": r.label(),
             "colour": r.symbol().color().name()} for r in renderer.ranges()]
    return facts


def _render(layer: Any, png: Path, width: int = 1000) -> dict[str, Any]:
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    extent = layer.extent()
    if extent.isEmpty():
        extent.grow(1.0)
    extent.scale(1.05)
    aspect = extent.height() / extent.width() if extent.width() else 1.0
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(extent)
    settings.setBackgroundColor(QColor(255, 255, 255))
    settings.setOutputSize(QSize(width, max(50, int(width * aspect))))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(str(png), "PNG")
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    coloured = 0
    colours: dict[str, int] = {}
    step = 2
    for y in range(0, image.height(), step):
        for x in range(0, image.width(), step):
            rgb = image.pixel(x, y) & 0xFFFFFF
            if rgb != 0xFFFFFF:
                coloured += 1
                key = f"#{rgb:06x}"
                colours[key] = colours.get(key, 0) + 1
    total = (image.height() // step + 1) * (image.width() // step + 1)
    top = sorted(colours.items(), key=lambda kv: -kv[1])[:12]
    return {"png": str(png), "size": [image.width(), image.height()], "errors": errors,
            "non_background_fraction": coloured / max(total, 1), "top_colours": dict(top)}


def check(path: Path, layer_name: str, png: Path | None, style: str | None,
          style_png: Path | None) -> tuple[dict[str, Any], list[str]]:
    """Open ``layer_name`` of ``path`` in QGIS; return (facts, failures)."""
    from qgis.core import Qgis, QgsApplication, QgsVectorLayer

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    fails: list[str] = []
    facts: dict[str, Any] = {"qgis_version": Qgis.QGIS_VERSION, "path": str(path),
                             "layer": layer_name}
    uri = f"{path}|layername={layer_name}"
    layer = QgsVectorLayer(uri, layer_name, "ogr")
    try:
        facts["valid"] = layer.isValid()
        if not layer.isValid():
            fails.append(f"layer {layer_name!r} of {path} is not valid in QGIS")
            return facts, fails
        facts["crs"] = layer.crs().authid()
        facts["geometry_type"] = layer.geometryType()
        facts["wkb_type"] = layer.wkbType()
        facts["feature_count"] = layer.featureCount()
        facts["fields"] = {f.name(): f.typeName() for f in layer.fields()}
        facts["style_at_open"] = _renderer_facts(layer)
        facts["widgets"] = {f.name(): layer.editorWidgetSetup(i).type()
                            for i, f in enumerate(layer.fields())}
        facts["value_maps"] = {f.name(): layer.editorWidgetSetup(i).config().get("map")
                               for i, f in enumerate(layer.fields())
                               if layer.editorWidgetSetup(i).type() == "ValueMap"}
        names = layer.listStylesInDatabase()
        facts["styles_in_database"] = list(names[2]) if names and names[0] >= 0 else []
        if png is not None:
            facts["render"] = _render(layer, png)
            if facts["render"]["errors"]:
                fails.append(f"render errors: {facts['render']['errors']}")
        if style is not None:
            ids, style_names = list(names[1]), list(names[2])
            if style not in style_names:
                fails.append(f"style {style!r} not in database ({style_names})")
            else:
                qml, err = layer.getStyleFromDatabase(ids[style_names.index(style)])
                from qgis.PyQt.QtXml import QDomDocument

                doc = QDomDocument()
                doc.setContent(qml)
                ok = layer.importNamedStyle(doc)
                facts["named_style"] = {"name": style, "ok": bool(ok[0]), "error": ok[1] or err,
                                        **_renderer_facts(layer)}
                if style_png is not None:
                    facts["named_style"]["render"] = _render(layer, style_png)
        return facts, fails
    finally:
        del layer
        app.exitQgis()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gpkg", type=Path)
    parser.add_argument("--layer", default="fields")
    parser.add_argument("--png", type=Path)
    parser.add_argument("--style", help="also load this named style from layer_styles")
    parser.add_argument("--style-png", type=Path)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--expect-renderer", help="e.g. categorizedSymbol")
    parser.add_argument("--min-coloured", type=float, default=0.001,
                        help="minimum fraction of non-white pixels in the PNG")
    args = parser.parse_args(argv)
    _setup_env()
    try:
        import qgis.core  # noqa: F401
    except ImportError as exc:
        print(f"PyQGIS not importable with {sys.executable}: {exc}", file=sys.stderr)
        return 2
    if not args.gpkg.is_file():
        print(f"no such file: {args.gpkg}", file=sys.stderr)
        return 2
    facts, fails = check(args.gpkg.resolve(), args.layer, args.png, args.style, args.style_png)
    if args.expect_renderer and facts.get("style_at_open", {}).get("renderer") != \
            args.expect_renderer:
        fails.append(f"renderer at open is {facts.get('style_at_open', {}).get('renderer')}, "
                     f"expected {args.expect_renderer} (stored default style not applied?)")
    if args.png is not None and "render" in facts and \
            facts["render"]["non_background_fraction"] < args.min_coloured:
        fails.append(f"rendered PNG is blank ({facts['render']['non_background_fraction']:.5f} "
                     "non-background)")
    facts["failures"] = fails
    text = json.dumps(facts, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    for f in fails:
        print(f"FAIL: {f}")
    print("RESULT: " + ("FAIL" if fails else "OK"))
    sys.stdout.flush()
    return 1 if fails else 0


if __name__ == "__main__":
    os._exit(main())  # skip Qt teardown, whose crashes would mask the exit status
