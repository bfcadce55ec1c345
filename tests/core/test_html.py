"""The shared HTML page helpers: escaping, tables, page shell, embedded PNGs."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from regenmap.html import CSS, Markup, escape, figure_img, page, png_img, table


@pytest.mark.parametrize(("value", "expected"), [
    ("<b>&", "&lt;b&gt;&amp;"),
    (Markup("<b>x</b>"), "<b>x</b>"),
    (3, "3"),
    ('say "hi"', "say &quot;hi&quot;"),
])
def test_escape__cases(value: object, expected: str) -> None:
    assert escape(value) == expected


def test_table_escapes_text_right_aligns_numbers_and_keeps_markup() -> None:
    out = table(["name <x>", "n"], [("<2 ha", 4), (Markup("<i>ok</i>"), np.float32(0.5)),
                                    ("a", np.int64(7))])
    assert out.startswith("<table><thead><tr><th>name &lt;x&gt;</th><th>n</th></tr></thead>")
    assert '<tr><td>&lt;2 ha</td><td class="n">4</td></tr>' in out
    assert '<tr><td><i>ok</i></td><td class="n">0.5</td></tr>' in out
    assert '<td class="n">7</td>' in out


def test_table_without_header() -> None:
    assert table(None, [("a", "b")]) == "<table><tbody><tr><td>a</td><td>b</td></tr></tbody></table>"


def test_page_shell_has_one_inline_stylesheet_and_an_escaped_title() -> None:
    html = page("card <t>", ["<h1>x</h1>", "<p>y</p>"])
    assert html.startswith('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">')
    assert "<title>card &lt;t&gt;</title>" in html
    assert html.count("<style>") == 1 and CSS in html
    assert "<body><h1>x</h1>\n<p>y</p></body></html>\n" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_png_embedding() -> None:
    data = b"\x89PNG\r\n\x1a\nrest"
    img = png_img(data, alt='a "plot"')
    assert img == (f'<img alt="a &quot;plot&quot;" src="data:image/png;base64,'
                   f'{base64.b64encode(data).decode()}">')


def test_figure_embedding() -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [0, 1])
    img = figure_img(fig)
    data = base64.b64decode(img.split("base64,")[1].rstrip('">'))
    assert img.startswith('<img alt="plot" src="data:image/png;base64,')
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
