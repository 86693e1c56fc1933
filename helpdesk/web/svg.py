"""Small bar charts as inline SVG, drawn on the server for the dashboard.

Built with xml.etree.ElementTree, so every label (queue names come from config, rules
and agents' #queue commands) is escaped by the XML writer, never pasted into markup,
and the result is always well-formed. Characters XML cannot hold at all (control
characters) are dropped first. No styles, only presentation attributes: the desk's CSP
allows no inline style. A chart is a picture for those who look; each one on a page
comes with a table carrying the same figures for everyone else.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

from markupsafe import Markup

Row = tuple[str, float | None]  # (label, value); None: nothing to show (no data)
Format = Callable[[float], str]

WIDTH = 640
BAR = "#3b6ea5"
INK = "#222222"
RULE = "#999999"
LABEL_CHARS = 22
# XML 1.0 allows tab, newline, carriage return and everything from U+0020 on,
# except the surrogates and U+FFFE/U+FFFF
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    text = clean(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(title: str, height: int) -> ET.Element:
    root = ET.Element("svg", {"xmlns": "http://www.w3.org/2000/svg", "role": "img",
                              "aria-label": clean(title), "viewBox": f"0 0 {WIDTH} {height}",
                              "width": "100%", "font-family": "sans-serif", "font-size": "13"})
    ET.SubElement(root, "title").text = clean(title)
    return root


def _text(parent: ET.Element, x: float, y: float, text: str, anchor: str = "start",
          size: int | None = None) -> None:
    attrs = {"x": _number(x), "y": _number(y), "fill": INK, "text-anchor": anchor}
    if size:
        attrs["font-size"] = str(size)
    ET.SubElement(parent, "text", attrs).text = text


def _bar(parent: ET.Element, x: float, y: float, w: float, h: float, tip: str) -> None:
    rect = ET.SubElement(parent, "rect", {"x": _number(x), "y": _number(y),
                                          "width": _number(max(w, 0)),
                                          "height": _number(max(h, 0)), "fill": BAR})
    ET.SubElement(rect, "title").text = clean(tip)  # what a pointer over the bar shows


def _render(root: ET.Element) -> Markup:
    return Markup(ET.tostring(root, encoding="unicode"))


def hbars(title: str, rows: Sequence[Row], fmt: Format = _number) -> Markup:
    """One horizontal bar per row, labelled on the left, its value at the end: for
    categories (queues, age buckets, statuses) whose names may be long."""
    row_h, top, label_w, value_w = 24, 8, 180, 90
    height = top * 2 + row_h * max(len(rows), 1)
    root = _svg(title, height)
    top_value = max((v for _, v in rows if v), default=0.0)
    scale = (WIDTH - label_w - value_w) / top_value if top_value else 0.0
    for i, (label, value) in enumerate(rows):
        y = top + i * row_h
        _text(root, label_w - 8, y + 16, _short(label), "end")
        shown = "–" if value is None else fmt(value)
        _bar(root, label_w, y + 3, (value or 0) * scale, row_h - 6, f"{label}: {shown}")
        _text(root, label_w + (value or 0) * scale + 6, y + 16, shown)
    if not rows:
        _text(root, WIDTH / 2, top + 16, "nothing to show", "middle")
    return _render(root)


def columns(title: str, rows: Sequence[Row], fmt: Format = _number,
            top_value: float | None = None, empty: str = "") -> Markup:
    """One column per row, left to right, for figures over time; `top_value` fixes the
    scale (100 for a percentage) instead of the largest value. A None leaves a gap.
    `empty`: said across the plot when no row has a value above zero, so that a blank
    chart reads as "none", not as a chart that failed to draw."""
    height, left, bottom, top, right = 220, 48, 36, 12, 8
    root = _svg(title, height)
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    highest = top_value if top_value is not None else max((v for _, v in rows if v), default=0)
    scale = plot_h / highest if highest else 0.0
    base = top + plot_h
    ET.SubElement(root, "line", {"x1": str(left), "y1": str(base), "x2": str(WIDTH - right),
                                 "y2": str(base), "stroke": RULE})
    _text(root, left - 6, top + 10, fmt(highest) if highest else "0", "end", 11)
    _text(root, left - 6, base, "0", "end", 11)
    step = plot_w / max(len(rows), 1)
    every = max(1, -(-len(rows) // 8))  # at most about 8 labels under the axis
    for i, (label, value) in enumerate(rows):
        x = left + i * step
        shown = "no data" if value is None else fmt(value)
        if value is not None:
            h = value * scale
            _bar(root, x + step * 0.15, base - h, step * 0.7, h, f"{label}: {shown}")
        if i % every == 0:
            _text(root, x + step / 2, base + 16, _short(label, 12), "middle", 11)
    if empty and not any(value for _, value in rows):
        _text(root, left + plot_w / 2, top + plot_h / 2, clean(empty), "middle")
    return _render(root)
