"""The load section of ``report.html``: latency against publish rate as an inline SVG, the step
table and the counts that decide whether the run is to be believed.

Rendered from the ``load`` section of results.json alone (``reports/README.md``), so a merged
run (``report --merge``) renders like a single one. Like the rest of the page it loads nothing:
the plot is drawn here. ``html.py`` calls ``section``, so this module cannot import ``html.py``
back (the layer test forbids cycles): its values are the kit's own numbers and words, escaped
with the standard library's ``html.escape``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

WIDTH, HEIGHT = 640, 300
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 64, 110, 16, 44
_SERIES = (("p50", "#2e7d32"), ("p95", "#e69500"), ("p99", "#c62828"), ("max", "#888"))
KNEE_MS = 1000.0

CSS = """
svg.load { background:#fff; border:1px solid var(--line, #d6d6d6); }
svg.load text { font: 11px system-ui, sans-serif; fill:#333; }
table.load td, table.load th { padding: 2px 8px; text-align: right; }
"""


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def badge(verdict: str) -> str:
    """The page's verdict badge (classes styled by html.py's CSS)."""
    return f'<span class="v v-{esc(verdict)}">{esc(verdict)}</span>'


def _nice_top(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if value <= m * power:
            return float(m * power)
    return float(10 * power)


def latency_svg(steps: Sequence[Mapping[str, Any]]) -> str:
    """p50/p95/p99/max latency (ms, log scale) against the step's achieved rate (PUBLISH/s)."""
    points = [
        (float(s.get("achieved_rate") or s.get("rate") or 0.0), s.get("latency_ms") or {})
        for s in steps
    ]
    points = [(r, lat) for r, lat in points if lat.get("count")]
    if not points:
        return '<p class="muted">No latency measured: no NOTIFY was traced to a PUBLISH.</p>'
    x_top = _nice_top(max(r for r, _ in points) * 1.05)
    values = [float(lat[k]) for _, lat in points for k, _c in _SERIES if lat.get(k) is not None]
    y_low = 0.1
    y_top = _nice_top(max([KNEE_MS * 1.5, *values]))
    plot_w, plot_h = WIDTH - _PAD_L - _PAD_R, HEIGHT - _PAD_T - _PAD_B

    def x(rate: float) -> float:
        return _PAD_L + plot_w * rate / x_top

    def y(ms: float) -> float:
        ms = max(ms, y_low)
        span = math.log10(y_top) - math.log10(y_low)
        return _PAD_T + plot_h * (1 - (math.log10(ms) - math.log10(y_low)) / span)

    out = [
        f'<svg class="load" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        'aria-label="NOTIFY latency against PUBLISH rate">',
        f'<rect x="{_PAD_L}" y="{_PAD_T}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#bbb"/>',
    ]
    decade = y_low
    while decade <= y_top * 1.0001:
        yy = y(decade)
        out.append(
            f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" '
            'stroke="#eee"/>'
            f'<text x="{_PAD_L - 6}" y="{yy + 4:.1f}" text-anchor="end">{decade:g}</text>'
        )
        decade *= 10
    for i in range(6):
        rate = x_top * i / 5
        out.append(
            f'<text x="{x(rate):.1f}" y="{HEIGHT - _PAD_B + 16}" text-anchor="middle">'
            f"{rate:g}</text>"
        )
    knee_y = y(KNEE_MS)
    out.append(
        f'<line x1="{_PAD_L}" x2="{_PAD_L + plot_w}" y1="{knee_y:.1f}" y2="{knee_y:.1f}" '
        'stroke="#c62828" stroke-dasharray="4 3"/>'
        f'<text x="{_PAD_L + plot_w + 4}" y="{knee_y + 4:.1f}">knee 1 s</text>'
    )
    for n, (key, colour) in enumerate(_SERIES):
        pts = [(x(r), y(float(lat[key]))) for r, lat in points if lat.get(key) is not None]
        if len(pts) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in pts]
        ly = _PAD_T + 14 + 16 * n
        out.append(
            f'<line x1="{WIDTH - _PAD_R + 40}" x2="{WIDTH - _PAD_R + 60}" y1="{ly - 4}" '
            f'y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{WIDTH - _PAD_R + 64}" y="{ly}">{key}</text>'
        )
    out.append(
        f'<text x="{_PAD_L + plot_w / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
        "PUBLISH per second (achieved)</text>"
        f'<text x="14" y="{_PAD_T + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {_PAD_T + plot_h / 2:.0f})">NOTIFY latency, ms (log)</text>'
        "</svg>"
    )
    return "".join(out)


def _row(cells: Sequence[Any]) -> str:
    return "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>"


def section(load: Mapping[str, Any]) -> str:
    """The ``<section id="load">`` for a results document's ``load`` part."""
    steps = list(load.get("steps") or [])
    lat = load.get("latency_ms") or {}
    totals = load.get("totals") or {}
    options = load.get("options") or {}
    valid = bool(load.get("valid"))
    parts = [
        f"<style>{CSS}</style>",
        '<section id="load"><h2>Load: NOTIFY fan-out</h2>',
        f"<p>{badge('pass' if valid else 'fail')} "
        + (
            "valid run: the kit's sockets dropped nothing"
            if valid
            else "INVALID run: " + esc("; ".join(load.get("invalid_reasons") or []))
        )
        + "</p>",
        "<p>"
        + esc(
            f"{options.get('presentities')} presentities × "
            f"{options.get('watchers_per_presentity')} watchers = "
            f"{load.get('subscriptions')} subscriptions (part {', '.join(load.get('parts') or [])})"
        )
        + "</p>",
        latency_svg(steps),
        '<table class="load"><tr><th>latency ms</th><th>p50</th><th>p95</th><th>p99</th>'
        "<th>max</th><th>NOTIFYs timed</th></tr>",
        _row(
            [
                "all",
                lat.get("p50"),
                lat.get("p95"),
                lat.get("p99"),
                lat.get("max"),
                lat.get("count"),
            ]
        ),
        "</table>",
        '<table class="load"><tr><th>step</th><th>rate</th><th>achieved</th><th>p50</th>'
        "<th>p99</th><th>NOTIFYs</th><th>lost</th><th>loss</th><th>knee</th></tr>",
    ]
    for s in steps:
        sl = s.get("latency_ms") or {}
        parts.append(
            _row(
                [
                    s.get("step"),
                    s.get("rate"),
                    s.get("achieved_rate"),
                    sl.get("p50"),
                    sl.get("p99"),
                    s.get("delivered"),
                    s.get("lost"),
                    f"{float(s.get('loss_ratio') or 0):.3%}",
                    s.get("knee") or "",
                ]
            )
        )
    parts.append("</table>")
    knee = load.get("knee")
    parts.append(
        "<p>"
        + (
            esc(
                f"Knee at {knee.get('rate')}/s ({knee.get('reason')}); last rate below it: "
                f"{knee.get('last_good_rate')}/s"
            )
            if knee
            else "No knee reached (p99 stayed under 1 s and loss under 0.1 %)."
        )
        + "</p>"
    )
    rows = "".join(_row([k, v]) for k, v in sorted(totals.items()))
    parts.append(
        f"<details><summary>counts (loss ratio {float(load.get('loss_ratio') or 0):.3%})"
        f'</summary><table class="load">{rows}</table></details>'
    )
    udp = load.get("udp") or {}
    cpu = load.get("cpu_seconds") or {}
    parts.append(
        "<p>"
        + esc(
            f"UDP drops: kit sockets {udp.get('kit_socket_drops')}, server socket "
            f"{udp.get('server_socket_drops')}; kernel Udp before {udp.get('before')}, "
            f"after {udp.get('after')}. CPU seconds: kit {cpu.get('kit')}, "
            f"server {cpu.get('server')}."
        )
        + "</p>"
    )
    oracle = load.get("oracle")
    if oracle:
        items = "".join(f"<li>{esc(f)}</li>" for f in oracle.get("failures") or [])
        parts.append(
            f"<p>Oracle on a traced sample: {badge(str(oracle.get('verdict')))} "
            f"{esc(oracle.get('bodies_checked'))} bodies of {esc(oracle.get('notifies'))} "
            f"NOTIFYs checked</p>" + (f"<ul>{items}</ul>" if items else "")
        )
    wrong = load.get("wrong_views") or []
    if wrong:
        items = "".join(f"<li>{esc(w)}</li>" for w in wrong)
        parts.append(f"<details><summary>wrong final views</summary><ul>{items}</ul></details>")
    parts.append("</section>")
    return "\n".join(parts)
