"""Self-contained HTML pages: one page shell and stylesheet, escaped tables, embedded PNGs.

Used by the model card (:mod:`regenmap.models.card`) and the run report
(:mod:`regenmap.maps.report`). Pages fetch nothing: images are embedded as
``data:`` URIs, the stylesheet is inline.

Text is escaped wherever it is inserted; a value that is already HTML (a link,
a colour swatch) is wrapped in :class:`Markup` to be inserted as it is.
"""

from __future__ import annotations

import base64
import html
import io
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol


class Markup(str):
    """A string that is already HTML: :func:`escape` and :func:`table` insert it unchanged."""

    __slots__ = ()


class SavesFigure(Protocol):
    """Anything with matplotlib's ``Figure.savefig``."""

    def savefig(self, fname: Any, **kwargs: Any) -> None:
        """Save the figure to ``fname`` (a path or a binary file object)."""


#: The one stylesheet of regenmap's pages.
CSS: Final = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1050px;padding:0 18px;"
    "color:#222}"
    "h1{font-size:24px;margin-top:22px}"
    "h2{font-size:19px;border-bottom:1px solid #ccc;margin-top:28px;padding-bottom:2px}"
    "h3{font-size:16px}"
    "table{border-collapse:collapse;margin:6px 0 12px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}td.n{text-align:right}"
    "th{background:#f2f2f2}"
    "img{max-width:100%;margin:6px 0}code{background:#f5f5f5}"
    "pre{background:#f7f7f7;padding:8px;overflow:auto;max-height:380px}"
    ".warn{background:#fff4d6;border-left:4px solid #d9a400;padding:6px 10px;margin:6px 0}"
    ".ok{background:#e9f6ec;border-left:4px solid #2b8a3e;padding:6px 10px}"
    ".swatch{display:inline-block;width:11px;height:11px;border:1px solid #333;margin-right:5px}"
    ".muted{color:#666}"
)


def escape(value: Any) -> str:
    """Return ``value`` as HTML text: :class:`Markup` unchanged, anything else escaped."""
    if isinstance(value, Markup):
        return str(value)
    return html.escape(str(value))


def page(title: str, body: str | Iterable[str]) -> str:
    """Return a complete HTML page with the shared stylesheet.

    Parameters
    ----------
    title
        Page title (escaped).
    body
        HTML of the body, or its parts (joined by newlines).
    """
    content = body if isinstance(body, str) else "\n".join(body)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"{content}</body></html>\n")


def _cell(tag: str, value: Any) -> str:
    numeric = isinstance(value, numbers.Real) and tag == "td"
    return f'<{tag} class="n">{escape(value)}</{tag}>' if numeric else f"<{tag}>{escape(value)}</{tag}>"


def table(header: Sequence[Any] | None, rows: Iterable[Sequence[Any]]) -> str:
    """Return an HTML table; every cell is escaped unless it is :class:`Markup`.

    Numbers (Python or NumPy) are right-aligned (``<td class="n">``).

    Parameters
    ----------
    header
        Column titles, or None for a table without a header row.
    rows
        Cell values per row.
    """
    head = ("<thead><tr>" + "".join(_cell("th", h) for h in header) + "</tr></thead>"
            if header else "")
    body = "".join("<tr>" + "".join(_cell("td", v) for v in row) + "</tr>" for row in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def png_img(data: bytes, alt: str = "plot") -> str:
    """Return an ``<img>`` element embedding PNG bytes as a ``data:`` URI."""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def figure_img(fig: SavesFigure, *, alt: str = "plot", dpi: int = 96) -> str:
    """Return an ``<img>`` element embedding a matplotlib figure as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return png_img(buf.getvalue(), alt)
