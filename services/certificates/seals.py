"""Seal artwork (seal.svg) for an issuing authority: a red ring, a five-pointed star, the
authority's name along the upper arc and the seal's purpose across the bottom, as a round
official seal (公章) looks. `onestop certificates draw-seal` writes one for a new type folder.

WeasyPrint lays `textPath` text out straight, so every character of the name is its own
`<text>` rotated about the centre.
"""

from __future__ import annotations

import html
import math

SEAL_RED = "#d40f1c"
FONT = "WenQuanYi Zen Hei"


def _star(cx: float, cy: float, outer: float, inner: float) -> str:
    points = []
    for index in range(10):
        radius = outer if index % 2 == 0 else inner
        angle = math.radians(-90 + index * 36)
        points.append(f"{cx + radius * math.cos(angle):.1f},{cy + radius * math.sin(angle):.1f}")
    return " ".join(points)


def seal_svg(name: str, *, purpose: str = "电子证照专用章") -> str:
    """A 200 x 200 SVG seal with `name` on the arc and `purpose` across the bottom."""
    characters = [char for char in name if not char.isspace()]
    count = len(characters)
    if count == 0:
        raise ValueError("a seal needs a name")
    # Long names use the usual ~230 degrees of arc; short ones spread less and print larger.
    span = 228.0 if count >= 10 else max(120.0, 24.0 * (count - 1))
    step = span / (count - 1) if count > 1 else 0.0
    arc_length = 2 * math.pi * 62 * step / 360 if count > 1 else 30.0
    font_size = max(15.0, min(23.0, arc_length * 0.92))
    glyphs = "\n".join(
        f'    <text x="100" y="{18 + font_size:.0f}" transform="rotate({-span / 2 + index * step:.1f} 100 100)">'
        f"{html.escape(char)}</text>"
        for index, char in enumerate(characters)
    )
    purpose_size = 15 if len(purpose) <= 8 else 12
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- Seal artwork of {html.escape(name)} (demo): drawn by services/certificates/seals.py.
     200 x 200 user units; drawn at the size of the type's layout.seal_box as the visible
     signature's appearance. -->
<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200" viewBox="0 0 200 200">
  <circle cx="100" cy="100" r="95" fill="none" stroke="{SEAL_RED}" stroke-width="5"/>
  <polygon fill="{SEAL_RED}" points="{_star(100, 100, 32, 12.2)}"/>
  <g font-family="{FONT}" font-size="{font_size:.0f}" fill="{SEAL_RED}" text-anchor="middle">
{glyphs}
  </g>
  <text x="100" y="160" font-family="{FONT}" font-size="{purpose_size}" fill="{SEAL_RED}" text-anchor="middle">{html.escape(purpose)}</text>
</svg>
"""
