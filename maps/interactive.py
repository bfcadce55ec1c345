"""Interactive HTML map (folium/Leaflet) that works offline from a local file.

folium loads Leaflet, jQuery and Bootstrap from CDNs by default; here the map
references none of them: the Leaflet 1.9.3 JS/CSS vendored in ``assets/``
(BSD-2-Clause) are inlined, and no tile basemap is added (there may be no
network). One overlay per target (class) and per target confidence, switched
in the layer control; clicking a field shows class, confidence, status and
reasons.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Final

import folium
import geopandas as gpd
import numpy as np
import shapely

from regenmap.io import atomic_path
from regenmap.maps.static import confidence_colours, shown_classes
from regenmap.maps.styles import (
    CONFIDENCE_BREAKS,
    CONFIDENCE_COLOURS,
    NO_CONFIDENCE_COLOUR,
    OTHER_COLOUR,
    OTHER_LABEL,
    OUTLINE_COLOUR,
    class_colours,
    class_label,
)
from regenmap.schema import (
    FIELD_ID,
    class_column,
    confidence_column,
    reason_column,
    status_column,
)

#: Most fields put in one HTML map; beyond it the largest fields are kept and
#: the map says how many are shown (a browser cannot hold millions of polygons).
MAX_FEATURES: Final = 20_000
#: Simplification tolerance, degrees (about 1 m): invisible on screen, halves the file.
SIMPLIFY_DEG: Final = 1e-5


def _asset(name: str) -> bytes:
    return resources.files("regenmap.maps").joinpath("assets", name).read_bytes()


def leaflet_inline() -> tuple[str, str]:
    """Return ``(<style>, <script>)`` elements holding the vendored Leaflet CSS and JS."""
    css = _asset("leaflet.css").decode()
    for img in ("layers-2x.png", "layers.png"):
        uri = "data:image/png;base64," + base64.b64encode(_asset(img)).decode()
        css = css.replace(f"url(images/{img})", f"url({uri})")
    css = css.replace("url(images/marker-icon.png)", "none")
    js = _asset("leaflet.js").decode()
    return f"<style>{css}</style>", f"<script>{js}</script>"


def _legend_html(targets: Mapping[str, Sequence[str]]) -> str:
    rows = []
    for t, classes in targets.items():
        colours = class_colours(classes)
        items = "".join(f'<div><i style="background:{colours[c]}"></i>{html.escape(class_label(c))}'
                        "</div>" for c in classes)
        items += f'<div><i style="background:{OTHER_COLOUR}"></i>{OTHER_LABEL}</div>'
        rows.append(f"<b>{html.escape(t)}</b>{items}")
    conf = "".join(f'<div><i style="background:{c}"></i>{CONFIDENCE_BREAKS[i]:.1f} - '
                   f"{CONFIDENCE_BREAKS[i + 1]:.1f}</div>" for i, c in enumerate(CONFIDENCE_COLOURS))
    conf += f'<div><i style="background:{NO_CONFIDENCE_COLOUR}"></i>no confidence</div>'
    rows.append(f"<b>confidence</b>{conf}")
    style = ("position:fixed;bottom:18px;right:10px;z-index:9999;background:white;"
             "padding:6px 8px;font:12px sans-serif;border:1px solid #888;border-radius:4px;"
             "max-height:60%;overflow:auto")
    return (f'<div id="regenmap-legend" style="{style}">{"".join(rows)}</div>'
            "<style>#regenmap-legend i{display:inline-block;width:12px;height:12px;"
            "margin-right:5px;border:1px solid #333;vertical-align:middle}</style>")


def _banner_html(text: str) -> str:
    style = ("position:fixed;top:10px;left:50px;z-index:9999;background:#fff8d0;"
             "padding:4px 8px;font:12px sans-serif;border:1px solid #aa9")
    return f'<div id="regenmap-banner" style="{style}">{html.escape(text)}</div>'


def _geojson(frame: gpd.GeoDataFrame, props: Mapping[str, Any]) -> dict[str, Any]:
    geoms = shapely.simplify(frame.geometry.to_numpy(), SIMPLIFY_DEG, preserve_topology=True)
    # 6 decimals of a degree are ~0.1 m: enough on screen, and a third of the file size.
    geoms = shapely.transform(geoms, lambda xy: np.round(xy, 6))
    texts = shapely.to_geojson(geoms)
    features = []
    keys = list(props)
    for i, geom in enumerate(geoms):
        if geom is None or geom.is_empty:
            continue
        p = {}
        for k in keys:
            v = props[k][i]
            p[k] = None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v
        features.append({"type": "Feature", "properties": p, "geometry": json.loads(texts[i])})
    return {"type": "FeatureCollection", "features": features}


def html_map(frame: gpd.GeoDataFrame, targets: Mapping[str, Sequence[str]], out: Path, *,
             title: str = "regenmap practices", max_features: int = MAX_FEATURES) -> Path:
    """Write an offline interactive map of the results to ``out`` (HTML), atomically.

    Parameters
    ----------
    frame
        The results layer (as from :func:`regenmap.maps.gpkg_contract.read_results`).
    targets
        ``{target: [class, ...]}``.
    out
        Destination ``.html``.
    title
        Page title.
    max_features
        Largest number of fields drawn; the biggest (by area) are kept and a
        banner says so.
    """
    n_total = len(frame)
    note = None
    if n_total > max_features:
        area = frame.geometry.area.to_numpy()
        keep = np.sort(np.argsort(-area, kind="stable")[:max_features])
        frame = frame.iloc[keep]
        note = (f"Showing the {max_features:,} largest of {n_total:,} fields; open the "
                "GeoPackage in QGIS for all of them.")
    wgs = frame.to_crs("EPSG:4326") if frame.crs is not None else frame
    wgs = wgs.reset_index(drop=True)
    if wgs.empty:
        centre, bounds = [0.0, 0.0], None
    else:
        minx, miny, maxx, maxy = wgs.total_bounds
        centre, bounds = [(miny + maxy) / 2, (minx + maxx) / 2], [[miny, minx], [maxy, maxx]]
    fmap = folium.Map(location=centre, zoom_start=13, tiles=None, control_scale=True,
                      prefer_canvas=len(wgs) > 2000, zoom_snap=0.25)
    fmap.default_js = []
    fmap.default_css = []
    css, js = leaflet_inline()
    root: Any = fmap.get_root()  # a branca Figure (header/html/script)
    root.header.add_child(folium.Element(css), name="leaflet_css_inline", index=0)
    root.header.add_child(folium.Element(js), name="leaflet_js_inline", index=1)
    root.header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"))
    ids = wgs[FIELD_ID].astype(str).to_numpy(dtype=object)
    # Thin outlines when there are many fields, or at regional zoom they hide the fills.
    weight = 1.0 if len(wgs) <= 2000 else 0.25
    for n_t, (t, classes) in enumerate(targets.items()):
        palette = class_colours(classes)
        shown = shown_classes(wgs, t)
        conf = wgs[confidence_column(t)].to_numpy(dtype="float64")
        cls = wgs[class_column(t)].to_numpy(dtype=object)
        # folium's popups insert values as HTML: escape text that came from input files.
        props: dict[str, Any] = {
            "field_id": [html.escape(i) for i in ids],
            "class": [None if c is None or c != c else html.escape(str(c)) for c in cls],
            "confidence": [round(float(v), 3) if np.isfinite(v) else None for v in conf],
            "status": [html.escape(str(v)) for v in wgs[status_column(t)]],
            "why": [None if w is None or w != w else html.escape(str(w))
                    for w in wgs[reason_column(t)]],
            "fill": [palette.get(c, OTHER_COLOUR) if c is not None else OTHER_COLOUR
                     for c in shown],
            "conf_fill": confidence_colours(conf).tolist(),
        }
        data = _geojson(wgs, props)
        if not data["features"]:  # folium's popups need at least one feature
            continue
        for kind, key in (("class", "fill"), ("confidence", "conf_fill")):
            group = folium.FeatureGroup(name=f"{t}: {kind}", show=n_t == 0 and kind == "class",
                                        overlay=True)
            folium.GeoJson(
                data, name=f"{t}: {kind}",
                style_function=lambda f, key=key: {"fillColor": f["properties"][key],
                                                   "color": OUTLINE_COLOUR, "weight": weight,
                                                   "fillOpacity": 0.85},
                highlight_function=lambda f: {"weight": 2.5, "color": "#000000"},
                popup=folium.GeoJsonPopup(
                    fields=["field_id", "class", "confidence", "status", "why"],
                    aliases=["field", t, "confidence", "status", "why"], labels=True),
                tooltip=folium.GeoJsonTooltip(fields=["field_id", "class"],
                                              aliases=["field", t]),
            ).add_to(group)
            group.add_to(fmap)
    folium.LayerControl(collapsed=False).add_to(fmap)
    if bounds is not None:
        fmap.fit_bounds(bounds)
    root.html.add_child(folium.Element(_legend_html(targets)))
    if n_total == 0:
        note = "No fields in these results."
    if note:
        root.html.add_child(folium.Element(_banner_html(note)))
    with atomic_path(out) as tmp:
        fmap.save(str(tmp))
    return out
