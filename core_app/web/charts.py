"""Charts and the province map as SVG, drawn on the server: no JavaScript, nothing external.

Colours are SVG presentation attributes, not `style`, so the page's CSP (no inline styles) holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

MAP_FILE = Path(__file__).resolve().parent.parent / "static" / "map" / "vn-provinces-34.geojson"
BAR = "#1f5f99"
SCALE = ("#e8f0f8", "#b9d2ea", "#7fb0d9", "#3f86c2", "#1f5f99", "#0d3b66")
EMPTY = "#f2f2f2"


def _fmt(n: float) -> str:
    return f"{int(n):,}".replace(",", ".")


def bars(rows: Sequence[dict[str, Any]], label: Callable[[Any], str], measure: str = "received",
         title: str = "", width: int = 380) -> Markup:
    """Horizontal bars, one per row, the value at the end of each bar."""
    if not rows:
        return Markup("")
    bar_h, gap, left = 22, 6, 150
    height = len(rows) * (bar_h + gap) + 30
    top = max((r[measure] for r in rows), default=0) or 1
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, r in enumerate(rows):
        y = 20 + i * (bar_h + gap)
        w = (width - left - 60) * r[measure] / top
        name = escape(label(r["key"]) or "—")
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="13" fill="#222">{name}</text>'
                   f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{BAR}"><title>{name}: '
                   f'{_fmt(r[measure])}</title></rect>'
                   f'<text x="{left + w + 6:.1f}" y="{y + 15}" font-size="13" fill="#222">{_fmt(r[measure])}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()


def columns(rows: Sequence[dict[str, Any]], series: Sequence[tuple[str, str, str]], title: str = "",
            width: int = 640, height: int = 240) -> Markup:
    """Grouped columns per row (e.g. per month), one colour per series (key, label, colour)."""
    if not rows:
        return Markup("")
    left, bottom, top_pad = 40, 40, 24
    plot_h = height - bottom - top_pad
    top = max((r[k] for r in rows for k, _, _ in series), default=0)
    step = 10 ** max(0, int(math.log10(max(top, 1))))
    top = max(2, math.ceil(top / step) * step)
    top += top % 2  # an even top keeps the middle grid line on a whole number
    slot = (width - left - 10) / len(rows)
    bw = max(2.0, min(18.0, (slot - 6) / len(series)))
    out = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for frac in (0, 0.5, 1):
        y = top_pad + plot_h * (1 - frac)
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10" fill="#555">'
                   f'{_fmt(top * frac)}</text>')
    for i, r in enumerate(rows):
        x0 = left + i * slot + (slot - bw * len(series)) / 2
        for j, (k, name, colour) in enumerate(series):
            h = plot_h * r[k] / top
            out.append(f'<rect x="{x0 + j * bw:.1f}" y="{top_pad + plot_h - h:.1f}" width="{bw - 1:.1f}" '
                       f'height="{h:.1f}" fill="{colour}"><title>{escape(r["key"])} — {escape(name)}: '
                       f'{_fmt(r[k])}</title></rect>')
        out.append(f'<text x="{left + i * slot + slot / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                   f'font-size="10" fill="#333">{escape(r["key"])}</text>')
    lx = left
    for _, name, colour in series:
        out.append(f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{height - 7}" font-size="11" fill="#333">{escape(name)}</text>')
        lx += 20 + 7 * len(name)
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()


@lru_cache(maxsize=1)
def _provinces() -> list[dict[str, Any]]:
    return json.loads(MAP_FILE.read_text())["features"]


# The archipelagos are not in the admin-1 source; the map marks them with their administering unit.
ISLANDS = (((111.9, 16.5), "Quần đảo Hoàng Sa (TP Đà Nẵng)", "Hoang Sa archipelago (Da Nang)"),
           ((114.0, 9.9), "Quần đảo Trường Sa (tỉnh Khánh Hòa)", "Truong Sa archipelago (Khanh Hoa)"))
LON0, LON1, LAT0, LAT1 = 102.0, 116.4, 8.2, 23.6
KX = math.cos(math.radians(16))  # equirectangular, true to scale at Vietnam's middle latitude


def _project(width: float) -> tuple[Callable[[float, float], tuple[float, float]], float]:
    s = width / ((LON1 - LON0) * KX)
    height = (LAT1 - LAT0) * s

    def proj(lon: float, lat: float) -> tuple[float, float]:
        return (lon - LON0) * KX * s, (LAT1 - lat) * s
    return proj, height


def choropleth(values: dict[str, int], names: dict[str, str], link: Callable[[str], str] | None,
               lang: str = "vi", title: str = "", width: int = 520) -> Markup:
    """The 34 provinces shaded by value (5 classes), each linking to its drill-down."""
    proj, height = _project(width)
    top = max(values.values(), default=0)
    # Up to five classes with whole-number bounds; few cases give fewer classes, never "1–0".
    uppers = sorted({max(1, math.ceil(top * f / 5)) for f in range(1, 6)}) if top else []

    def colour(v: int) -> str:
        if not v:
            return EMPTY
        i = next(i for i, hi in enumerate(uppers) if v <= hi)
        return SCALE[1 + round(i * 4 / max(1, len(uppers) - 1))] if len(uppers) > 1 else SCALE[3]

    out = [f'<svg class="map" role="img" viewBox="0 0 {width} {height:.0f}" width="{width}" height="{height:.0f}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for f in _provinces():
        code = f["id"]
        d = []
        for poly in f["geometry"]["coordinates"]:
            for ring in poly:
                pts = [proj(x, y) for x, y in ring]
                d.append("M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in pts) + "Z")
        v = values.get(code, 0)
        name = names.get(code) or f["properties"]["name"]
        shape = (f'<path d="{"".join(d)}" fill="{colour(v)}" stroke="#fff" stroke-width="0.6" fill-rule="evenodd" '
                 f'data-code="{code}"><title>{escape(name)}: {_fmt(v)}</title></path>')
        out.append(f'<a href="{escape(link(code))}">{shape}</a>' if link else shape)
    for (lon, lat), vi, en in ISLANDS:
        x, y = proj(lon, lat)
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#555"/>'
                   f'<text x="{x:.1f}" y="{y + 14:.1f}" text-anchor="middle" font-size="9" fill="#333">'
                   f'{escape(en if lang == "en" else vi)}</text>')
    # Legend: the class bounds.
    lx, ly = width - 110, 16
    out.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{EMPTY}" stroke="#ccc"/>'
               f'<text x="{lx + 18}" y="{ly + 10}" font-size="11" fill="#333">0</text>')
    lo = 1
    for i, hi in enumerate(uppers):
        y = ly + 16 * (i + 1)
        text = _fmt(hi) if lo == hi else f"{_fmt(lo)}–{_fmt(hi)}"
        out.append(f'<rect x="{lx}" y="{y}" width="12" height="12" fill="{colour(hi)}"/>'
                   f'<text x="{lx + 18}" y="{y + 10}" font-size="11" fill="#333">{text}</text>')
        lo = hi + 1
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every text in it went through escape()
