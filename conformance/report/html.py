"""``report.html``: one self-contained page rendered from a results document.

The page must open from a CI artefact store, an e-mail attachment or a laptop with no network,
so it carries its CSS inline, loads nothing, and needs no JavaScript (folding is done with
``<details>``). Everything a server sent is untrusted: every value passes through ``esc``,
which also makes control characters visible instead of letting them corrupt the page.

Plain string building rather than a template engine: the page is small, and one escaping
function used everywhere is easier to audit than a template's autoescape rules.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from conformance.report import load as load_section
from conformance.report.results import NOT_COVERED, SKIPPED

MAX_TEXT = 65_536
"""Characters of one raw message or body shown; a hostile server may send megabytes."""
MAX_DIFF_LINES = 2_000
MAX_LADDER_ROWS = 400

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def esc(value: Any, limit: int | None = None) -> str:
    """``value`` as HTML text: markup escaped, control characters shown as ``\\xNN``."""
    text = "" if value is None else str(value)
    cut = ""
    if limit is not None and len(text) > limit:
        cut = f"\n… ({len(text) - limit} more characters not shown)"
        text = text[:limit]
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return html.escape(text + cut, quote=True)


def _md(value: Any) -> str:
    """Escaped text with the catalogue's `code` spans as <code> (after escaping: safe)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(value))


def _slug(verdict: str) -> str:
    return re.sub(r"[^a-z]+", "-", str(verdict).lower()).strip("-") or "none"


def badge(verdict: str) -> str:
    return f'<span class="v v-{_slug(verdict)}">{esc(verdict)}</span>'


CSS = """
:root { --fail:#c62828; --known:#8e44ad; --warn:#e69500; --info:#1f6fb2; --pass:#2e7d32;
        --none:#888; --line:#d6d6d6; --bg:#fafafa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #222; background: #fff; }
header { background: #263238; color: #fff; padding: 16px 24px; }
header h1 { margin: 0 0 8px; font-size: 22px; }
header table td { padding: 1px 12px 1px 0; vertical-align: top; }
header table td:first-child { color: #b0bec5; }
main { padding: 8px 24px 40px; max-width: 1400px; }
h2 { border-bottom: 2px solid #263238; padding-bottom: 4px; margin-top: 28px; }
h3 { margin: 0 0 6px; font-size: 16px; word-break: break-all; }
table.grid { border-collapse: collapse; width: 100%; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 3px 6px; text-align: left;
       vertical-align: top; }
table.grid th { background: #eceff1; position: sticky; top: 0; }
table.grid tr.r-fail td:first-child { border-left: 4px solid var(--fail); }
table.grid tr.r-known-deviation td:first-child { border-left: 4px solid var(--known); }
table.grid tr.r-warn td:first-child { border-left: 4px solid var(--warn); }
.v { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-weight: 600;
     font-size: 12px; white-space: nowrap; background: var(--none); }
.v-fail { background: var(--fail); } .v-known-deviation { background: var(--known); }
.v-warn { background: var(--warn); } .v-info { background: var(--info); }
.v-pass { background: var(--pass); } .v-not-covered, .v-skipped { background: var(--none); }
.counts { margin: 10px 0 0; } .counts .v { font-size: 13px; margin-right: 4px; }
.misses { margin: 8px 0 0; } .misses a { color: #ffcdd2; } .misses .k a { color: #e1bee7; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
            font-size: 12px; }
pre { background: var(--bg); border: 1px solid var(--line); padding: 6px; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; margin: 4px 0; }
article.case { border: 1px solid var(--line); border-radius: 4px; padding: 12px; margin: 16px 0; }
article.case > p { margin: 4px 0; }
.ladder-wrap { overflow-x: auto; margin: 8px 0; }
svg.ladder { background: #fff; border: 1px solid var(--line); }
svg.ladder text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace;
                  font-size: 11px; }
table.diff { border-collapse: collapse; width: 100%; table-layout: fixed; margin: 4px 0; }
table.diff td, table.diff th { font-family: ui-monospace, "DejaVu Sans Mono", monospace;
       font-size: 12px; padding: 0 6px; white-space: pre-wrap; word-break: break-all;
       vertical-align: top; border-left: 1px solid var(--line); }
table.diff th { background: #eceff1; text-align: left; }
td.d-del { background: #ffebee; } td.d-ins { background: #e8f5e9; }
td.d-chg { background: #fff8e1; } td.d-gap { background: #f5f5f5; }
details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; }
.msg-head { color: #555; font-size: 12px; margin-top: 8px; }
.muted { color: #777; }
"""


# -- ladder ----------------------------------------------------------------------------------


def _party_order(parties: Iterable[str]) -> list[str]:
    """Publishers left of the server, watchers (and anything else) right of it, numbered
    parties in numeric order (watcher-2 before watcher-10)."""

    def key(name: str) -> tuple[int, str, int]:
        m = re.match(r"(.*?)(\d+)$", name)
        stem, num = (m.group(1), int(m.group(2))) if m else (name, 0)
        return (0 if name.startswith("publisher") else 1, stem, num)

    return sorted(set(parties), key=key)


def _first_line(message: Mapping[str, Any]) -> str:
    line = message.get("first_line")
    if not line:
        raw = str(message.get("raw") or "")
        line = raw.split("\n", 1)[0].strip()
    return str(line or "?")


def _label(first_line: str) -> str:
    """``PUBLISH sip:x@h`` for requests (the trailing ``SIP/2.0`` says nothing), ``200 OK``
    for responses."""
    if first_line.startswith("SIP/2.0 "):
        return first_line[8:]
    return re.sub(r"\s+SIP/2\.0\s*$", "", first_line)


def _arrow_class(first_line: str) -> str:
    if first_line.startswith("SIP/2.0 "):
        code = first_line[8:11]
        return "rsp-err" if code[:1] in ("4", "5", "6") else "rsp"
    method = first_line.split(" ", 1)[0].upper()
    return {"PUBLISH": "publish", "SUBSCRIBE": "subscribe", "NOTIFY": "notify"}.get(
        method, "request"
    )


_ARROW_COLOURS = {
    "publish": "#1565c0",
    "subscribe": "#00796b",
    "notify": "#6a1b9a",
    "request": "#37474f",
    "rsp": "#546e7a",
    "rsp-err": "#c62828",
}


def _notify_note(message: Mapping[str, Any], notifies: Sequence[Mapping[str, Any]]) -> str:
    """``v3 full`` for a captured NOTIFY the plugin parsed, matched by party and time."""
    ts = message.get("timestamp")
    if not isinstance(ts, int | float) or not _first_line(message).startswith("NOTIFY"):
        return ""
    near = [
        (abs(n["timestamp"] - ts), n)
        for n in notifies
        if n.get("party") == message.get("party") and isinstance(n.get("timestamp"), int | float)
    ]
    near = [dn for dn in near if dn[0] < 0.002]
    if not near:
        return ""
    n = min(near, key=lambda dn: dn[0])[1]
    bits = [f"v{n['version']}" if n.get("version") is not None else "", n.get("state")]
    if n.get("offending"):  # the NOTIFY a failure blames (the explorer's reproducers)
        bits.insert(0, "✗ offending")
    return " ".join(str(b) for b in bits if b)


def ladder_svg(
    messages: Sequence[Mapping[str, Any]],
    *,
    server: str = "server",
    notifies: Sequence[Mapping[str, Any]] = (),
    anchor: str = "",
) -> str:
    """The SIP flow of one case as an SVG ladder: a column per party, the server in between,
    one arrow per captured message with its first line and its time since the first message.

    Each party captured its own side (SIPp traces), so a message ``sent`` by a party runs
    party -> server and one ``received`` runs server -> party. ``anchor`` prefixes the ids of
    the raw messages the arrows link to."""
    ordered = sorted(
        enumerate(messages),
        key=lambda im: (
            im[1].get("timestamp") if isinstance(im[1].get("timestamp"), int | float) else 0.0,
            im[0],
        ),
    )
    parties = [str(m.get("party") or "?") for _, m in ordered]
    left = [p for p in _party_order(parties) if p.startswith("publisher")]
    right = [p for p in _party_order(parties) if not p.startswith("publisher") and p != server]
    columns = [*left, server, *right] if (left or right) else [server]
    col_w, margin, top, row_h = 270, 96, 52, 34
    xs = {name: margin + 60 + i * col_w for i, name in enumerate(columns)}
    shown = ordered[:MAX_LADDER_ROWS]
    width = margin + 120 + col_w * (len(columns) - 1) + 60
    height = top + max(1, len(shown)) * row_h + 24 + (18 if len(ordered) > len(shown) else 0)
    t0 = next(
        (m["timestamp"] for _, m in ordered if isinstance(m.get("timestamp"), int | float)),
        None,
    )
    out = [
        f'<svg class="ladder" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="SIP message flow">'
    ]
    for name, x in xs.items():
        out.append(
            f'<rect x="{x - 62}" y="6" width="124" height="26" rx="4" '
            f'fill="{"#263238" if name == server else "#eceff1"}" stroke="#90a4ae"/>'
            f'<text x="{x}" y="23" text-anchor="middle" font-weight="bold" '
            f'fill="{"#fff" if name == server else "#222"}">{esc(name[:18])}</text>'
            f'<line x1="{x}" y1="32" x2="{x}" y2="{height - 8}" stroke="#b0bec5" '
            f'stroke-dasharray="4 3"/>'
        )
    if not shown:
        out.append(
            f'<text x="{margin}" y="{top + 16}" fill="#777">no SIP messages were captured</text>'
        )
    for row, (index, m) in enumerate(shown):
        party = str(m.get("party") or "?")
        first = _first_line(m)
        sent = m.get("direction") == "sent"
        x_party, x_server = xs.get(party, xs[server]), xs[server]
        x1, x2 = (x_party, x_server) if sent else (x_server, x_party)
        y = top + row * row_h + 20
        kind = _arrow_class(first)
        colour = _ARROW_COLOURS[kind]
        dash = ' stroke-dasharray="6 3"' if kind.startswith("rsp") else ""
        ts = m.get("timestamp")
        rel = f"+{ts - t0:.3f} s" if isinstance(ts, int | float) and t0 is not None else ""
        note = _notify_note(m, notifies)
        label = _label(first)
        if note:  # before the URI, so truncation cuts the URI, not the version
            method, _, rest = label.partition(" ")
            label = f"{method} ({note}) {rest}"
        room = max(8, (abs(x2 - x1) - 16) // 7)
        text = label if len(label) <= room else label[: room - 1] + "…"
        head = 8 if x2 > x1 else -8
        tooltip = f"{rel} {party} {m.get('direction', '')}: {first}"
        link = f'<a href="#{anchor}-m{index}">' if anchor else "<a>"
        out.append(
            f'<g class="msg m-{kind}">{link}<title>{esc(tooltip)}</title>'
            f'<text x="8" y="{y + 4}" fill="#555">{esc(rel)}</text>'
            f'<line x1="{x1}" y1="{y}" x2="{x2 - head}" y2="{y}" stroke="{colour}" '
            f'stroke-width="1.6"{dash}/>'
            f'<polygon points="{x2},{y} {x2 - head},{y - 4} {x2 - head},{y + 4}" '
            f'fill="{colour}"/>'
            f'<text x="{(x1 + x2) / 2:.0f}" y="{y - 5}" text-anchor="middle" '
            f'fill="{colour}">{esc(text)}</text></a></g>'
        )
    if len(ordered) > len(shown):
        out.append(
            f'<text x="{margin}" y="{height - 12}" fill="#777">… {len(ordered) - len(shown)} '
            f"more messages, see the raw messages below</text>"
        )
    out.append("</svg>")
    return "".join(out)


# -- expected vs observed --------------------------------------------------------------------


def pretty_xml(text: str) -> list[str]:
    """An XML fragment as indented lines, one tag per line, by splitting between tags.

    No XML parser runs on the untrusted text: a malformed or hostile body is shown as it is,
    only broken into lines, which is all a line diff needs."""
    tokens = [t for t in re.split(r"(?<=>)\s*(?=<)", text.strip()) if t.strip()]
    lines: list[str] = []
    depth = 0
    for token in tokens:
        t = token.strip()
        closing = t.startswith("</")
        opening = (
            t.startswith("<")
            and not closing
            and not t.startswith(("<?", "<!"))
            and not t.endswith("/>")
            and "</" not in t
        )
        if closing:
            depth = max(0, depth - 1)
        lines.extend("  " * depth + part for part in t.splitlines() or [""])
        if opening:
            depth += 1
    return lines


def _as_lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return pretty_xml(value)
    if isinstance(value, Sequence):
        out: list[str] = []
        for item in value:
            out.extend(_as_lines(item))
        return out
    return [str(value)]


def diff_table(expected: Any, observed: Any) -> str:
    """Expected and observed side by side; deleted, inserted and changed lines coloured."""
    left, right = _as_lines(expected)[:MAX_DIFF_LINES], _as_lines(observed)[:MAX_DIFF_LINES]
    rows = ['<table class="diff"><tr><th>expected</th><th>observed</th></tr>']
    if not left and not right:
        rows.append('<tr><td class="d-gap">(nothing)</td><td class="d-gap">(nothing)</td></tr>')
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        cls_l, cls_r = {
            "equal": ("", ""),
            "delete": ("d-del", "d-gap"),
            "insert": ("d-gap", "d-ins"),
            "replace": ("d-chg", "d-chg"),
        }[op]
        a, b = left[i1:i2], right[j1:j2]
        for k in range(max(len(a), len(b))):
            la = esc(a[k]) if k < len(a) else ""
            lb = esc(b[k]) if k < len(b) else ""
            # a replace block's unpaired lines are plain deletions or insertions
            ca = (cls_l if k < len(b) or op == "equal" else "d-del") if k < len(a) else "d-gap"
            cb = (cls_r if k < len(a) or op == "equal" else "d-ins") if k < len(b) else "d-gap"
            rows.append(f'<tr><td class="{ca}">{la}</td><td class="{cb}">{lb}</td></tr>')
    rows.append("</table>")
    return "".join(rows)


# -- page ------------------------------------------------------------------------------------


def _case_anchor(index: int) -> str:
    return f"case-{index}"


def _plain_pass(case: Mapping[str, Any]) -> bool:
    return case.get("verdict") == "pass"


def _detailed(case: Mapping[str, Any]) -> bool:
    """A case gets a ladder and a diff when it is neither a plain pass nor skipped."""
    return case.get("verdict") not in ("pass", SKIPPED)


def _header(results: Mapping[str, Any]) -> str:
    target = results.get("target") or {}
    summary = results.get("summary") or {}
    req_counts = summary.get("requirements") or {}
    case_counts = summary.get("cases") or {}
    rows = [
        ("target", f"{target.get('name', '?')} ({target.get('kind', '?')})"),
        ("address", target.get("address")),
        ("transport", str(target.get("transport") or "udp").upper()),
        ("profile", target.get("profile")),
        ("mode", results.get("mode")),
        ("server User-Agent", target.get("user_agent") or "not seen"),
        ("kit version", results.get("kit_version")),
        ("run", f"{results.get('started') or '?'} → {results.get('finished') or '?'}"),
    ]
    options = results.get("options") or {}
    if options:
        rows.append(("options", ", ".join(f"{k}={v}" for k, v in sorted(options.items()))))
    table = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    req_badges = " ".join(
        f"{badge(v)} {int(req_counts.get(v, 0))}"
        for v in ("fail", "known deviation", "warn", "info", "pass", NOT_COVERED)
    )
    case_badges = " ".join(
        f"{badge(v)} {int(case_counts.get(v, 0))}"
        for v in ("fail", "known deviation", "warn", "info", "pass", SKIPPED)
    )
    reqs = results.get("requirements") or []
    missed = [r for r in reqs if r.get("verdict") == "fail"]
    known = [r for r in reqs if r.get("verdict") == "known deviation"]
    misses = ""
    if missed or known:
        links = ", ".join(f'<a href="#req-{esc(r["id"])}">{esc(r["id"])}</a>' for r in missed)
        klinks = ", ".join(f'<a href="#req-{esc(r["id"])}">{esc(r["id"])}</a>' for r in known)
        misses = (
            '<p class="misses">'
            + (f"<strong>Requirements failed:</strong> {links}" if missed else "")
            + (" &nbsp; " if missed and known else "")
            + (f'<span class="k"><strong>Known deviations:</strong> {klinks}</span>' * bool(known))
            + "</p>"
        )
    return (
        f"<header><h1>dialog-info conformance: {esc(results.get('label'))}</h1>"
        f'<table class="run">{table}</table>'
        f'<p class="counts">requirements ({int(req_counts.get("total", len(reqs)))}): '
        f"{req_badges}</p>"
        f'<p class="counts">cases ({int(case_counts.get("total", 0))}): {case_badges}</p>'
        f"{misses}</header>"
    )


def _coverage(results: Mapping[str, Any]) -> str:
    rows = []
    for group, c in (results.get("coverage") or {}).items():
        must = (
            f"{int(c.get('must_covered', 0))}/{int(c.get('must_total', 0))}"
            if c.get("must_total")
            else "–"
        )
        rows.append(
            f"<tr><td>{esc(group)}</td><td>{esc(c.get('title'))}</td>"
            f"<td>{int(c.get('covered', 0))}/{int(c.get('total', 0))}</td><td>{must}</td></tr>"
        )
    return (
        '<section id="coverage"><h2>Coverage</h2><table class="grid">'
        "<tr><th>group</th><th>rules</th><th>requirements covered</th>"
        "<th>MUST/MUST* covered</th></tr>" + "".join(rows) + "</table></section>"
    )


NONE = '<span class="muted">none</span>'


def _matrix(results: Mapping[str, Any], anchors: Mapping[str, str]) -> str:
    rows = []
    for r in results.get("requirements") or []:
        cases = []
        for nodeid in r.get("cases") or r.get("declared_by") or []:
            short = str(nodeid).rsplit("::", 1)[-1]
            if nodeid in anchors:
                cases.append(f'<a href="#{anchors[nodeid]}">{esc(short)}</a>')
            else:
                cases.append(esc(short))
        verdict = str(r.get("verdict"))
        rows.append(
            f'<tr id="req-{esc(r.get("id"))}" class="r-{_slug(verdict)}">'
            f"<td><strong>{esc(r.get('id'))}</strong></td><td>{badge(verdict)}</td>"
            f"<td>{esc(r.get('level_text') or r.get('level'))}</td>"
            f"<td>RFC {esc(r.get('ref'))}</td><td>{_md(r.get('title'))}</td>"
            f"<td>{', '.join(cases) or NONE}</td></tr>"
        )
    return (
        '<section id="matrix"><h2>Requirements</h2>'
        '<p class="muted">Every requirement of the catalogue; the verdict is the worst over all '
        "findings (fail, known deviation, warn, info, pass); “not covered” means no case "
        "emitted a finding for it in this run.</p>"
        '<table class="grid" id="requirements"><thead><tr><th>id</th><th>verdict</th>'
        "<th>level</th><th>RFC section</th><th>requirement</th><th>cases</th></tr></thead>"
        "<tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def _findings_table(case: Mapping[str, Any]) -> str:
    findings = case.get("findings") or []
    if not findings:
        return '<p class="muted">No findings were recorded.</p>'
    rows = []
    for f in sorted(findings, key=lambda f: f.get("passed", False)):
        reason = f" <em>(profile: {esc(f['reason'])})</em>" if f.get("reason") else ""
        rows.append(
            f'<tr><td><a href="#req-{esc(f.get("requirement"))}">'
            f"{esc(f.get('requirement'))}</a></td><td>{badge(str(f.get('verdict')))}</td>"
            f"<td>{esc(f.get('message'))}{reason}</td></tr>"
        )
    return (
        '<table class="grid findings"><tr><th>req.</th><th>verdict</th><th>finding</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _evidence(case: Mapping[str, Any]) -> str:
    parts = []
    for f in case.get("findings") or []:
        ev = f.get("evidence") or {}
        if not isinstance(ev, Mapping) or not ev:
            continue
        head = f"<h4>{esc(f.get('requirement'))}: {esc(f.get('message'))}</h4>"
        body = ""
        if "expected" in ev or "observed" in ev:
            body += diff_table(ev.get("expected"), ev.get("observed"))
        others = {k: v for k, v in ev.items() if k not in ("expected", "observed")}
        for key, value in others.items():
            body += f"<div class='msg-head'>{esc(key)}</div><pre>{esc(value, MAX_TEXT)}</pre>"
        parts.append(head + body)
    if not parts:
        return ""
    return "<h4>Expected vs observed</h4>" + "".join(parts)


def _raw(case: Mapping[str, Any], anchor: str) -> str:
    messages = case.get("messages") or []
    notifies = case.get("notifies") or []
    t0 = min(
        (m["timestamp"] for m in messages if isinstance(m.get("timestamp"), int | float)),
        default=None,
    )

    def rel(ts: Any) -> str:
        return f"+{ts - t0:.3f} s" if isinstance(ts, int | float) and t0 is not None else ""

    out = []
    if messages:
        items = "".join(
            f'<div id="{anchor}-m{i}"><div class="msg-head">{esc(rel(m.get("timestamp")))} '
            f"{esc(m.get('party'))} {esc(m.get('direction'))}: "
            f"<strong>{esc(_first_line(m))}</strong></div>"
            f"<pre>{esc(m.get('raw'), MAX_TEXT)}</pre></div>"
            for i, m in enumerate(messages)
        )
        out.append(f"<details><summary>SIP messages ({len(messages)})</summary>{items}</details>")
    if notifies:
        items = "".join(
            f'<div class="msg-head">{esc(rel(n.get("timestamp")))} {esc(n.get("party"))} '
            f"version {esc(n.get('version'))} state {esc(n.get('state'))}</div>"
            f"<pre>{esc(n.get('body'), MAX_TEXT)}</pre>"
            for n in notifies
        )
        out.append(f"<details><summary>NOTIFY bodies ({len(notifies)})</summary>{items}</details>")
    if case.get("longrepr"):
        out.append(
            "<details><summary>pytest output</summary>"
            f"<pre>{esc(case['longrepr'], MAX_TEXT)}</pre></details>"
        )
    return "".join(out)


def _case_article(case: Mapping[str, Any], anchor: str, server: str) -> str:
    reqs = ", ".join(
        f'<a href="#req-{esc(r)}">{esc(r)}</a>' for r in case.get("requirements") or []
    )
    duration = case.get("duration")
    took = f" · {duration:.2f} s" if isinstance(duration, int | float) else ""
    return (
        f'<article class="case" id="{anchor}"><h3>{badge(str(case.get("verdict")))} '
        f"{esc(case.get('nodeid'))}</h3>"
        f"<p>requirements: {reqs or 'none'} · outcome {esc(case.get('outcome'))}{took}</p>"
        + _findings_table(case)
        + "<h4>Message flow</h4>"
        + '<div class="ladder-wrap">'
        + ladder_svg(
            case.get("messages") or [],
            server=server,
            notifies=case.get("notifies") or [],
            anchor=anchor,
        )
        + "</div>"
        + _evidence(case)
        + _raw(case, anchor)
        + "</article>"
    )


def render(results: Mapping[str, Any]) -> str:
    """The whole page for one results document."""
    cases = list(results.get("cases") or [])
    target = results.get("target") or {}
    server = f"server ({target.get('name') or target.get('kind') or '?'})"
    anchors = {str(c.get("nodeid")): _case_anchor(i) for i, c in enumerate(cases)}
    detailed = [(i, c) for i, c in enumerate(cases) if _detailed(c)]
    skipped = [c for c in cases if c.get("verdict") == SKIPPED]
    passed = [c for c in cases if _plain_pass(c)]
    order = {"fail": 0, "known deviation": 1, "warn": 2, "info": 3}
    detailed.sort(key=lambda ic: (order.get(str(ic[1].get("verdict")), 9), ic[0]))

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network, ever: a hostile value that slipped through could still load nothing.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>dialog-info conformance: {esc(results.get('label'))}</title>",
        f"<style>{CSS}</style></head><body>",
        _header(results),
        "<main>",
        load_section.section(results["load"]) if results.get("load") else "",
        _coverage(results),
        _matrix(results, anchors),
        f'<section id="cases"><h2>Cases that did not plainly pass ({len(detailed)})</h2>',
    ]
    if not detailed:
        parts.append('<p class="muted">Every case that ran passed without warnings.</p>')
    parts += [_case_article(c, _case_anchor(i), server) for i, c in detailed]
    parts.append("</section>")
    if skipped:
        items = "".join(
            f'<li id="{anchors[str(c.get("nodeid"))]}">{esc(c.get("nodeid"))}'
            f"{': ' + esc(c.get('longrepr')) if c.get('longrepr') else ''}</li>"
            for c in skipped
        )
        parts.append(
            f'<section id="skipped"><h2>Skipped cases ({len(skipped)})</h2><ul>{items}</ul>'
            "</section>"
        )
    if passed:
        items = "".join(
            f'<li id="{anchors[str(c.get("nodeid"))]}">{esc(c.get("nodeid"))}</li>' for c in passed
        )
        parts.append(
            f'<section id="passed"><h2>Passed cases ({len(passed)})</h2>'
            f"<details><summary>show</summary><ul>{items}</ul></details></section>"
        )
    parts.append("</main></body></html>\n")
    return "\n".join(parts)
