"""Interactive HTML maps (folium/Leaflet) that work offline.

folium loads Leaflet, jQuery and Bootstrap from CDNs by default; here the maps
reference none of them: the Leaflet 1.9.3 JS/CSS vendored in ``assets/``
(BSD-2-Clause) are inlined, and no tile basemap is added (there may be no
network).

* :func:`html_map` writes the run's map file: one overlay per target (class)
  and per target confidence, switched in the layer control; clicking a field
  shows class, confidence, status and reasons.
* :func:`result_map` returns one target's map for a notebook (inline, no file).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import folium
import geopandas as gpd
import numpy as np
import shapely

from regenmap.errors import InputError
from regenmap.io import atomic_path, write_text_atomic
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


def _legend_html(targets: Mapping[str, Sequence[str]], *, confidence: bool = True) -> str:
    rows = []
    for t, classes in targets.items():
        colours = class_colours(classes)
        items = "".join(f'<div><i style="background:{colours[c]}"></i>{html.escape(class_label(c))}'
                        "</div>" for c in classes)
        items += f'<div><i style="background:{OTHER_COLOUR}"></i>{OTHER_LABEL}</div>'
        rows.append(f"<b>{html.escape(t)}</b>{items}")
    if confidence:
        conf = "".join(f'<div><i style="background:{c}"></i>{CONFIDENCE_BREAKS[i]:.1f} - '
                       f"{CONFIDENCE_BREAKS[i + 1]:.1f}</div>"
                       for i, c in enumerate(CONFIDENCE_COLOURS))
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


def _largest(frame: gpd.GeoDataFrame, max_features: int) -> tuple[gpd.GeoDataFrame, str | None]:
    """Keep the ``max_features`` largest fields (in their order); say so if any were dropped."""
    n_total = len(frame)
    if n_total <= max_features:
        return frame, None
    area = frame.geometry.area.to_numpy()
    keep = np.sort(np.argsort(-area, kind="stable")[:max_features])
    return frame.iloc[keep], (f"Showing the {max_features:,} largest of {n_total:,} fields; "
                              "open the GeoPackage in QGIS for all of them.")


def _offline_map(frame: gpd.GeoDataFrame, *, title: str) -> tuple[folium.Map, gpd.GeoDataFrame]:
    """Return an empty folium map around ``frame`` with Leaflet inlined, and ``frame`` in WGS84.

    No tile layer and no external script or stylesheet: the page works offline.
    """
    wgs = frame.to_crs("EPSG:4326") if frame.crs is not None else frame
    wgs = wgs.reset_index(drop=True)
    if wgs.empty:
        centre = [0.0, 0.0]
    else:
        minx, miny, maxx, maxy = wgs.total_bounds
        centre = [(miny + maxy) / 2, (minx + maxx) / 2]
    fmap = folium.Map(location=centre, zoom_start=13, tiles=None, control_scale=True,
                      prefer_canvas=len(wgs) > 2000, zoom_snap=0.25)
    fmap.default_js = []
    fmap.default_css = []
    css, js = leaflet_inline()
    root: Any = fmap.get_root()  # a branca Figure (header/html/script)
    root.header.add_child(folium.Element(css), name="leaflet_css_inline", index=0)
    root.header.add_child(folium.Element(js), name="leaflet_js_inline", index=1)
    root.header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"))
    return fmap, wgs


def _finish_map(fmap: folium.Map, wgs: gpd.GeoDataFrame, legend: str, note: str | None) -> None:
    """Fit the view to the fields and add the legend and the banner (if any)."""
    if not wgs.empty:
        minx, miny, maxx, maxy = wgs.total_bounds
        fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    root: Any = fmap.get_root()
    root.html.add_child(folium.Element(legend))
    if note:
        root.html.add_child(folium.Element(_banner_html(note)))


def _field_properties(wgs: gpd.GeoDataFrame, target: str, classes: Sequence[str]
                      ) -> dict[str, Any]:
    """Per-field popup/tooltip values of one target (HTML-escaped) and fill colours."""
    palette = class_colours(classes)
    shown = shown_classes(wgs, target)
    conf = wgs[confidence_column(target)].to_numpy(dtype="float64")
    cls = wgs[class_column(target)].to_numpy(dtype=object)
    ids = wgs[FIELD_ID].astype(str).to_numpy(dtype=object)
    # folium's popups insert values as HTML: escape text that came from input files.
    return {
        "field_id": [html.escape(i) for i in ids],
        "class": [None if c is None or c != c else html.escape(str(c)) for c in cls],
        "confidence": [round(float(v), 3) if np.isfinite(v) else None for v in conf],
        "status": [html.escape(str(v)) for v in wgs[status_column(target)]],
        "why": [None if w is None or w != w else html.escape(str(w))
                for w in wgs[reason_column(target)]],
        "fill": [palette.get(c, OTHER_COLOUR) if c is not None else OTHER_COLOUR
                 for c in shown],
        "conf_fill": confidence_colours(conf).tolist(),
    }


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
    frame, note = _largest(frame, max_features)
    fmap, wgs = _offline_map(frame, title=title)
    # Thin outlines when there are many fields, or at regional zoom they hide the fills.
    weight = 1.0 if len(wgs) <= 2000 else 0.25
    for n_t, (t, classes) in enumerate(targets.items()):
        data = _geojson(wgs, _field_properties(wgs, t, classes))
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
    _finish_map(fmap, wgs, _legend_html(targets),
                "No fields in these results." if n_total == 0 else note)
    with atomic_path(out) as tmp:
        fmap.save(str(tmp))
    return out


@dataclass(frozen=True)
class ResultMap:
    """An offline interactive map of one target, shown inline by Jupyter.

    Attributes
    ----------
    page
        The map as a complete HTML page (Leaflet inlined).
    target
        The target whose classes colour the fields.
    height_px
        Height of the inline frame in a notebook.
    """

    page: str
    target: str
    height_px: int = 600

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.page, quote=True)}" '
                f'style="width:100%;height:{self.height_px}px;border:1px solid #ccc"></iframe>')

    def save(self, path: str | Path) -> Path:
        """Write the map as a standalone HTML file, atomically; return its path."""
        return write_text_atomic(path, self.page)


def result_map(frame: gpd.GeoDataFrame, targets: Mapping[str, Sequence[str]],
               target: str | None = None, *, height_px: int = 600, tiles: str | None = None,
               attribution: str | None = None, max_features: int = MAX_FEATURES) -> ResultMap:
    """Draw one target's classes on an interactive map that works offline.

    Fields are coloured by class where their status is ``ok`` and grey where the
    label is withheld; hovering a field shows its id, class, confidence and
    status. Leaflet is inlined (no CDN) and, unless ``tiles`` is given, there is
    no background layer, so nothing is fetched from the network.

    Parameters
    ----------
    frame
        The results layer, as from :func:`regenmap.maps.read_results` (any CRS).
    targets
        ``{target: [class, ...]}``, e.g. ``frame.attrs["targets"]``.
    target
        Target to colour by; the first of ``targets`` if None.
    height_px
        Height of the map in a notebook.
    tiles
        Optional background: a tile URL template (``https://.../{z}/{x}/{y}.png``)
        or a provider name known to folium (``"OpenStreetMap"``); fetched by the browser.
    attribution
        Attribution of a tile URL (its host name if omitted).
    max_features
        Largest number of fields drawn; the biggest (by area) are kept and a
        banner says so.

    Returns
    -------
    ResultMap
        Shown inline by Jupyter; ``.page`` is the HTML, ``.save(path)`` writes it.

    Raises
    ------
    InputError
        If ``targets`` is empty or ``target`` is not one of them.

    Examples
    --------
    >>> from regenmap.maps import read_results
    >>> frame = read_results("out/practices.gpkg")  # doctest: +SKIP
    >>> result_map(frame, frame.attrs["targets"], "tillage")  # doctest: +SKIP
    """
    if not targets:
        raise InputError("the results name no target")
    name = next(iter(targets)) if target is None else target
    if name not in targets:
        raise InputError(f"target {name!r} is not in the results; targets: {', '.join(targets)}")
    classes = list(targets[name])
    n_total = len(frame)
    frame, note = _largest(frame, max_features)
    fmap, wgs = _offline_map(frame, title=f"regenmap: {name}")
    if tiles:
        attr = attribution or (urlsplit(tiles).hostname if "//" in tiles else None)
        folium.TileLayer(tiles=tiles, attr=attr, name="background").add_to(fmap)
    props = _field_properties(wgs, name, classes)
    props["class"] = ["(none)" if c is None else c for c in props["class"]]
    data = _geojson(wgs, props)
    if data["features"]:
        weight = 1.0 if len(wgs) <= 2000 else 0.25
        folium.GeoJson(
            data, name=name,
            style_function=lambda f: {"fillColor": f["properties"]["fill"],
                                      "color": OUTLINE_COLOUR, "weight": weight,
                                      "fillOpacity": 0.85},
            highlight_function=lambda f: {"weight": 2.5, "color": "#000000"},
            tooltip=folium.GeoJsonTooltip(fields=["field_id", "class", "confidence", "status"],
                                          aliases=["field", name, "confidence", "status"]),
        ).add_to(fmap)
    _finish_map(fmap, wgs, _legend_html({name: classes}, confidence=False),
                "No fields in these results." if n_total == 0 else note)
    return ResultMap(page=fmap.get_root().render(), target=name, height_px=height_px)
