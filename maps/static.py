"""Static PNG maps: class map and confidence map per target.

Figures are :class:`matplotlib.figure.Figure` objects built outside pyplot's
state, so drawing maps never changes the user's matplotlib backend.

Each map has a legend, a scale bar (in metres or kilometres, drawn in a
projected CRS) and a north arrow. Geographic inputs are drawn in their local
UTM zone so the scale bar is true. Above :data:`RASTERIZE_ABOVE` fields the
polygons are rasterised at the figure's resolution instead of drawn one by
one, which keeps a million-field map to seconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from regenmap.io import atomic_path
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
from regenmap.schema import FieldStatus, class_column, confidence_column, status_column

#: Above this many fields, polygons are rasterised rather than drawn as patches.
RASTERIZE_ABOVE: Final = 20_000
FIGSIZE_IN: Final = (9.0, 7.5)
DPI: Final = 110


def plot_frame(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Return ``frame`` in a projected CRS with metre units (its own if it has one)."""
    crs = frame.crs
    if crs is None:
        return frame
    if crs.is_geographic or crs.axis_info[0].unit_name not in ("metre", "meter"):
        if frame.empty:
            return frame.to_crs("EPSG:3857")
        return frame.to_crs(frame.estimate_utm_crs())
    return frame


def shown_classes(frame: gpd.GeoDataFrame, target: str) -> np.ndarray:
    """Return the class shown per field: the label where status is ok, else None."""
    ok = frame[status_column(target)].to_numpy(dtype=object) == FieldStatus.OK.value
    out = frame[class_column(target)].to_numpy(dtype=object, copy=True)
    out[~ok | pd.isna(out)] = None
    return out


def confidence_colours(conf: np.ndarray) -> np.ndarray:
    """Return the hex colour of each confidence: classes ``[lo, hi)``, the last closed.

    Parameters
    ----------
    conf
        float (n,) confidences in [0, 1], NaN where there is none.

    Returns
    -------
    numpy.ndarray
        object (n,) of ``"#RRGGBB"``; NaN gets the "no confidence" grey.
    """
    idx = np.searchsorted(np.asarray(CONFIDENCE_BREAKS), conf, side="right") - 1
    idx = np.clip(idx, 0, len(CONFIDENCE_COLOURS) - 1)
    out = np.asarray(CONFIDENCE_COLOURS, dtype=object)[idx]
    out[~np.isfinite(conf)] = NO_CONFIDENCE_COLOUR
    return out


def _nice_length(span_m: float) -> float:
    raw = span_m / 5
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for step in (1, 2, 5, 10):
        if step * power >= raw:
            return step * power
    return 10 * power  # pragma: no cover


def add_scale_bar(ax: Axes) -> None:
    """Draw a two-segment scale bar in the lower left, for axes in metres."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    bx, by = x0 + 0.04 * (x1 - x0), y0 + 0.05 * (y1 - y0)
    h = 0.012 * (y1 - y0)
    for i, fc in enumerate(("black", "white")):
        ax.add_patch(Rectangle((bx + i * length / 2, by), length / 2, h, facecolor=fc,
                               edgecolor="black", linewidth=0.8, zorder=5))
    text = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1}
    for x, label in ((bx, "0"), (bx + length / 2, ""), (bx + length, text)):
        if label:
            ax.text(x, by + 1.8 * h, label, ha="center", va="bottom", fontsize=8, zorder=5,
                    bbox=box)


def add_north_arrow(ax: Axes) -> None:
    """Draw a north arrow right of the map, under the legend (grid north of the CRS)."""
    ax.annotate("N", xy=(1.07, 0.2), xytext=(1.07, 0.06), xycoords="axes fraction",
                ha="center", va="center", fontsize=11, fontweight="bold", zorder=6,
                annotation_clip=False,
                arrowprops={"facecolor": "black", "width": 4, "headwidth": 11,
                            "headlength": 10})


def _draw(ax: Axes, frame: gpd.GeoDataFrame, colours: Sequence[str]) -> None:
    if len(frame) > RASTERIZE_ABOVE:
        _draw_raster(ax, frame, colours)
    else:
        frame.plot(ax=ax, color=list(colours), edgecolor=OUTLINE_COLOUR, linewidth=0.3)


def _draw_raster(ax: Axes, frame: gpd.GeoDataFrame, colours: Sequence[str]) -> None:
    from rasterio.features import rasterize
    from rasterio.transform import Affine

    keep = ~(frame.geometry.isna() | frame.geometry.is_empty).to_numpy()
    frame = frame[keep]
    colours = [c for c, k in zip(colours, keep, strict=True) if k]
    minx, miny, maxx, maxy = frame.total_bounds
    width = int(FIGSIZE_IN[0] * DPI * 1.5)
    height = max(1, int(width * (maxy - miny) / max(maxx - minx, 1e-9)))
    palette = sorted(set(colours))
    index = {c: i + 1 for i, c in enumerate(palette)}
    values = np.fromiter((index[c] for c in colours), dtype="uint8", count=len(colours))
    img = rasterize(zip(frame.geometry.to_numpy(), values, strict=True), out_shape=(height, width),
                    transform=Affine((maxx - minx) / width, 0.0, minx,
                                     0.0, -(maxy - miny) / height, maxy), fill=0,
                    dtype="uint8")
    cmap = ListedColormap([(1, 1, 1, 0), *(to_rgba(c) for c in palette)])
    ax.imshow(img, extent=(minx, maxx, miny, maxy), cmap=cmap, vmin=0, vmax=len(palette),
              interpolation="nearest", origin="upper")


def _finish(fig: Figure, ax: Axes, frame: gpd.GeoDataFrame, title: str, out: Path, handles: list[Patch],
            legend_title: str) -> Path:
    if not frame.empty:
        minx, miny, maxx, maxy = frame.total_bounds
        # Room below for the scale bar.
        span = max(maxx - minx, maxy - miny, 1.0)
        ax.set_xlim(minx - 0.04 * span, maxx + 0.04 * span)
        ax.set_ylim(miny - 0.14 * span, maxy + 0.04 * span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])
    crs = frame.crs.to_string() if frame.crs is not None else "unknown CRS"
    ax.set_xlabel(f"{len(frame):,} fields, drawn in {crs}", fontsize=8)
    ax.set_ylabel("")
    if frame.empty:
        ax.text(0.5, 0.5, "no fields in these results", ha="center", va="center",
                transform=ax.transAxes, fontsize=12, color="#555555")
    else:
        add_scale_bar(ax)
        add_north_arrow(ax)
    ax.legend(handles=handles, title=legend_title, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=8, title_fontsize=9, frameon=False)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    return out


def class_map(frame: gpd.GeoDataFrame, target: str, classes: Sequence[str], out: Path) -> Path:
    """Write the class map of one target to ``out`` (PNG).

    Fields whose status is not ``ok`` are grey ("other / uncertain"); the
    legend gives each class's number of fields.
    """
    frame = plot_frame(frame)
    palette = class_colours(classes)
    shown = shown_classes(frame, target)
    colours = [palette.get(c, OTHER_COLOUR) if c is not None else OTHER_COLOUR for c in shown]
    fig = Figure(figsize=FIGSIZE_IN)
    ax = fig.subplots()
    if not frame.empty:
        _draw(ax, frame, colours)
    n_other = sum(1 for c in shown if c is None or c not in palette)
    handles = [Patch(facecolor=palette[c], edgecolor=OUTLINE_COLOUR,
                     label=f"{class_label(c)} ({int(np.sum(shown == c)):,})") for c in classes]
    handles.append(Patch(facecolor=OTHER_COLOUR, edgecolor=OUTLINE_COLOUR,
                         label=f"{OTHER_LABEL} ({n_other:,})"))
    return _finish(fig, ax, frame, f"{target}: predicted class", out, handles, target)


def confidence_map(frame: gpd.GeoDataFrame, target: str, out: Path) -> Path:
    """Write the confidence map of one target to ``out`` (PNG), in the QGIS style's classes."""
    frame = plot_frame(frame)
    conf = frame[confidence_column(target)].to_numpy(dtype="float64")
    colours = confidence_colours(conf).tolist()
    fig = Figure(figsize=FIGSIZE_IN)
    ax = fig.subplots()
    if not frame.empty:
        _draw(ax, frame, colours)
    handles = [Patch(facecolor=c, edgecolor=OUTLINE_COLOUR,
                     label=f"{CONFIDENCE_BREAKS[i]:.1f} - {CONFIDENCE_BREAKS[i + 1]:.1f}")
               for i, c in enumerate(CONFIDENCE_COLOURS)][::-1]
    handles.append(Patch(facecolor=NO_CONFIDENCE_COLOUR, edgecolor=OUTLINE_COLOUR,
                         label=f"no confidence ({int(np.sum(~np.isfinite(conf))):,})"))
    return _finish(fig, ax, frame, f"{target}: confidence (max class probability)", out, handles,
                   "confidence")
