"""Documents built as blocks and rendered twice: Markdown and self-contained HTML.

Model cards and datasheets are lists of :class:`Block` (heading, paragraph, bullet
list, table, image) filled from real numbers, then rendered as Markdown (images
referenced by relative path) and as one HTML page (images embedded as base64, no
external file or script; page, stylesheet and tables from :mod:`regenmap.html`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regenmap.html import Markup, escape, page, png_img, table


@dataclass(frozen=True)
class Block:
    """One element of a card: ``kind`` in h1, h2, h3, p, ul, table, img."""

    kind: str
    content: Any
    extra: Any = None


def render_markdown(blocks: list[Block], *, base: Path | None = None) -> str:
    """Render blocks as GitHub-flavoured Markdown (images linked relative to ``base``)."""
    out: list[str] = []
    for blk in blocks:
        if blk.kind in ("h1", "h2", "h3"):
            out.append("#" * int(blk.kind[1]) + " " + str(blk.content))
        elif blk.kind == "p":
            out.append(str(blk.content))
        elif blk.kind == "ul":
            if blk.content:
                out.append("\n".join(f"- {item}" for item in blk.content))
        elif blk.kind == "table":
            rows = [[str(c).replace("|", "\\|") for c in r] for r in blk.content]
            out.append("\n".join(["| " + " | ".join(rows[0]) + " |",
                                  "|" + "---|" * len(rows[0]),
                                  *["| " + " | ".join(r) + " |" for r in rows[1:]]]))
        elif blk.kind == "img" and blk.content is not None:
            target = Path(blk.content)
            link = os.path.relpath(target, base) if base is not None else target.name
            out.append(f"![{blk.extra}]({Path(link).as_posix()})")
        out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape text and turn ``code`` and **bold** spans into HTML."""
    parts = escape(text).split("`")
    s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    bold = s.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(bold))


def render_html(blocks: list[Block], *, title: str) -> str:
    """Render blocks as one self-contained HTML page (images embedded as base64)."""
    body: list[str] = []
    for blk in blocks:
        if blk.kind in ("h1", "h2", "h3"):
            body.append(f"<{blk.kind}>{_inline(str(blk.content))}</{blk.kind}>")
        elif blk.kind == "p":
            body.append(f"<p>{_inline(str(blk.content))}</p>")
        elif blk.kind == "ul" and blk.content:
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in blk.content) + "</ul>")
        elif blk.kind == "table":
            head, *rows = [[Markup(_inline(str(c))) for c in r] for r in blk.content]
            body.append(table(head, rows))
        elif blk.kind == "img" and blk.content is not None and Path(blk.content).is_file():
            body.append(png_img(Path(blk.content).read_bytes(), str(blk.extra)))
    return page(title, body)
