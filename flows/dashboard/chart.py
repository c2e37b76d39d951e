"""The overview's throughput chart: footage hours per day as inline SVG (no JS library, no CDN)."""
from __future__ import annotations

from typing import Any


def throughput_svg(rows: list[dict[str, Any]], width: int = 640, height: int = 160) -> str:
    """Bars of the last 30 days' footage hours; day labels thinned to about six."""
    rows = sorted(rows, key=lambda r: str(r.get("day")))[-30:]
    if not rows:
        return (f'<svg class="chart" width="{width}" height="40" role="img">'
                '<text x="4" y="24">no finished assets yet</text></svg>')
    vals = [float(r.get("footage_seconds") or 0) / 3600.0 for r in rows]
    top = max(vals) or 1.0
    pad, bw = 30, min((width - 40) / len(rows), 48.0)  # one day must not fill the chart
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img" '
             f'aria-label="footage hours per day">',
             f'<text x="2" y="12" class="axis">{top:.3g} h</text>']
    for i, (r, v) in enumerate(zip(rows, vals)):
        h = (height - pad - 16) * v / top
        x = 36 + i * bw
        y = height - pad - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}">'
                     f'<title>{r.get("day")}: {v:.3f} h, {r.get("assets")} assets</title></rect>')
        if len(rows) <= 10 or i % max(len(rows) // 6, 1) == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - 12}" class="axis">{r.get("day")}</text>')
    parts.append("</svg>")
    return "".join(parts)
