"""The phone report: ``phone-report.json`` (the data) and ``phone-report.html`` (its rendering).

Same approach as the conformance report: one JSON document built from the session, and a
self-contained HTML page rendered from that document alone (styles and escaping from
``conformance.report.html``), so an old JSON can be re-rendered. Everything the phone sent is
untrusted text and goes through ``esc``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.phone import verdicts
from conformance.phone.session import ProbeResult, ProbeSession
from conformance.report.html import CSS, esc

FORMAT_VERSION = 1
JSON_NAME = "phone-report.json"
HTML_NAME = "phone-report.html"

_OUTCOME_CLASS = {"accepted": "pass", "rejected": "warn", "fatal": "fail", "skipped": "skipped"}
_LEVEL_CLASS = {"ok": "pass", "info": "info", "warn": "warn", "fail": "fail"}


def probe_dict(r: ProbeResult) -> dict[str, Any]:
    p = r.probe
    return {
        "name": p.name,
        "group": p.group,
        "title": p.title,
        "dialogs": p.dialogs,
        "outcome": r.outcome,
        "status": r.status,
        "reason": r.reason,
        "alive": r.alive,
        "note": r.note,
        "version": r.version,
        "body_bytes": r.body_bytes,
        "message_bytes": r.message_bytes,
        "retransmissions": r.retransmissions,
        "elapsed": None if r.elapsed is None else round(r.elapsed, 6),
        "exchange": [
            {
                "t": e.t,
                "direction": e.direction,
                "peer": e.peer,
                "summary": e.summary,
                "text": e.text,
            }
            for e in r.exchange
        ],
    }


def build(session: ProbeSession, *, plan_name: str, started: datetime) -> dict[str, Any]:
    """The JSON-able report document of a finished session."""
    cfg = session.config
    results = session.outcome_list()
    conclusions = verdicts.conclude(results, transport=cfg.transport)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return {
        "format": FORMAT_VERSION,
        "kind": "phone",
        "kit_version": __version__,
        "started": started.isoformat(timespec="seconds"),
        "phone": {
            "host": cfg.phone_host,
            "user_agent": session.state.user_agent,
            "subscribes": session.state.subscribes,
            "options_supported": session.state.options_supported,
        },
        "kit": {
            "listen": f"{cfg.local_host}:{cfg.local_port}",
            "transport": cfg.transport,
            "plan": plan_name,
            "probe_timeout": cfg.probe_timeout,
            "plan_timeout": cfg.plan_timeout,
            "resubscribe_timeout": cfg.resubscribe_timeout,
            "liveness": cfg.liveness,
        },
        "counts": counts,
        "settings": verdicts.settings(conclusions),
        "conclusions": [
            {"key": c.key, "level": c.level, "text": c.text, "probes": list(c.probes)}
            for c in conclusions
        ],
        "probes": [probe_dict(r) for r in results],
        "notes": [{"t": t, "text": text} for t, text in session.state.notes],
        "refused_requests": session.state.refused,
    }


def write(doc: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write the JSON and HTML files into ``directory`` (created); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / JSON_NAME
    html_path = directory / HTML_NAME
    json_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    html_path.write_text(render(doc), encoding="utf-8")
    return json_path, html_path


def summary(doc: Mapping[str, Any]) -> str:
    """The conclusions as plain text lines for the terminal."""
    phone = doc.get("phone") or {}
    lines = [f"phone {phone.get('host')} ({phone.get('user_agent') or 'no User-Agent'}):"]
    if not phone.get("subscribes"):
        lines.append("  no SUBSCRIBE (Event: dialog) came from the phone: nothing was probed")
    for c in doc.get("conclusions") or []:
        lines.append(f"  [{c.get('level')}] {c.get('text')}")
    if doc.get("settings"):
        lines.append("  server settings needed: " + ", ".join(doc["settings"]))
    return "\n".join(lines)


def _tag(word: str, cls: str) -> str:
    return f'<span class="v v-{cls}">{esc(word)}</span>'


def render(doc: Mapping[str, Any]) -> str:
    """One self-contained page (no network, no JavaScript) for a phone report document."""
    phone = doc.get("phone") or {}
    kit = doc.get("kit") or {}
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
        for k, v in (
            ("phone", phone.get("host")),
            ("User-Agent", phone.get("user_agent")),
            ("SUBSCRIBEs", phone.get("subscribes")),
            ("answers OPTIONS", phone.get("options_supported")),
            ("kit", f"{kit.get('listen')} {str(kit.get('transport', '')).upper()}"),
            ("plan", kit.get("plan")),
            ("limits", f"probe {kit.get('probe_timeout')} s, plan {kit.get('plan_timeout')} s"),
            ("started", doc.get("started")),
            ("kit version", doc.get("kit_version")),
        )
    )
    counts = " ".join(
        _tag(f"{n} {k}", _OUTCOME_CLASS.get(k, "none"))
        for k, n in (doc.get("counts") or {}).items()
    )
    conclusions = "".join(
        f'<tr class="r-{_LEVEL_CLASS.get(str(c.get("level")), "none")}">'
        f"<td>{_tag(str(c.get('level')), _LEVEL_CLASS.get(str(c.get('level')), 'none'))}</td>"
        f"<td>{esc(c.get('text'))}</td><td>{esc(', '.join(c.get('probes') or []))}</td></tr>"
        for c in doc.get("conclusions") or []
    )
    settings = doc.get("settings") or []
    settings_html = (
        f"<p><b>Server settings needed:</b> {esc(', '.join(settings))}</p>" if settings else ""
    )
    probe_rows = []
    details = []
    for i, p in enumerate(doc.get("probes") or []):
        outcome = str(p.get("outcome"))
        status = "" if p.get("status") is None else f"{p.get('status')} {p.get('reason') or ''}"
        probe_rows.append(
            f'<tr class="r-{_OUTCOME_CLASS.get(outcome, "none")}"><td><a href="#p{i}">'
            f"{esc(p.get('name'))}</a></td><td>{esc(p.get('title'))}</td>"
            f"<td>{_tag(outcome, _OUTCOME_CLASS.get(outcome, 'none'))}</td><td>{esc(status)}</td>"
            f"<td>{esc(p.get('alive'))}</td><td>{esc(p.get('body_bytes'))}</td>"
            f"<td>{esc(p.get('version'))}</td><td>{esc(p.get('note'))}</td></tr>"
        )
        messages = "".join(
            f'<div class="msg-head">+{float(e.get("t") or 0):.3f} s {esc(e.get("direction"))} '
            f"{esc(e.get('peer'))}: {esc(e.get('summary'))}</div>"
            + (f"<pre>{esc(e.get('text'), 65536)}</pre>" if e.get("text") else "")
            for e in p.get("exchange") or []
        )
        details.append(
            f'<details id="p{i}"><summary>{esc(p.get("name"))}: {esc(outcome)} '
            f"({len(p.get('exchange') or [])} messages)</summary>{messages or '<p>none</p>'}"
            "</details>"
        )
    notes = "".join(
        f"<li>+{float(n.get('t') or 0):.3f} s {esc(n.get('text'))}</li>"
        for n in doc.get("notes") or []
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">",
            f"<title>phone report: {esc(phone.get('user_agent') or phone.get('host'))}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<header><h1>Phone compatibility: {esc(phone.get('user_agent') or phone.get('host'))}"
            f'</h1><table>{rows}</table><p class="counts">{counts}</p></header>',
            "<main>",
            f'<section id="conclusions"><h2>Conclusions</h2>{settings_html}'
            '<table class="grid"><tr><th>level</th><th>conclusion</th><th>from probes</th></tr>'
            f"{conclusions}</table></section>",
            '<section id="probes"><h2>Probes</h2><table class="grid"><tr><th>probe</th>'
            "<th>body</th><th>verdict</th><th>answer</th><th>alive after</th><th>bytes</th>"
            f"<th>version</th><th>note</th></tr>{''.join(probe_rows)}</table></section>",
            f'<section id="exchanges"><h2>Exchanges</h2>{"".join(details)}</section>',
            f'<section id="timeline"><h2>Timeline</h2><ul>{notes}</ul></section>',
            "</main></body></html>\n",
        ]
    )
