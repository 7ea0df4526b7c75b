"""The phone report: one JSON document (the data) and one HTML page (its rendering), per run.

Same approach as the conformance report: one JSON document built from the probe session, and a
self-contained HTML page rendered from that document alone (styles and escaping from
``conformance.report.html``), so an old JSON can be re-rendered. Everything the phone sent is
untrusted text and goes through ``esc``.

Written for the phone's vendor as much as for the person who ran it: words, not Python values
("yes", "not checked"); a glossary of the server-side names the conclusions use; every probe
that did not run named with the reason; "ok" only for what was tested. Files are named after
the phone and the time of the run (``phone-192.0.2.7-20260130-101500.html``), so runs against
several phones, or the same phone twice, never overwrite each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.phone import verdicts
from conformance.phone.session import ProbeResult, ProbeSession
from conformance.report.html import CSS, esc

FORMAT_VERSION = 2

_OUTCOME_CLASS = {
    "accepted": "pass",
    "rejected": "warn",
    "dropped": "warn",
    "crashed": "fail",
    "skipped": "skipped",
}
_OUTCOME_WORDS = {
    "accepted": "accepted",
    "rejected": "rejected",
    "dropped": "ignored, stays alive",
    "crashed": "crashed",
    "skipped": "not run",
}
_LEVEL_CLASS = {"ok": "pass", "info": "info", "warn": "warn", "fail": "fail"}

GLOSSARY: tuple[tuple[str, str], ...] = (
    (
        "force_single_dialog",
        "A parameter of the presence_dialoginfo module (Kamailio and OpenSIPS). When set to 1 "
        "and several dialogs of a line are published, the NOTIFY carries only the most "
        "important one (early before confirmed before proceeding before trying before "
        "terminated), so a phone never receives a body with several dialogs. It only acts when "
        "two or more publications exist (requirement D10).",
    ),
    (
        "force_dummy_dialog",
        "A Kamailio presence_dialoginfo parameter. When set to 1 and nothing is published for "
        "a line, the NOTIFY carries one placeholder dialog in state terminated instead of no "
        "body at all (requirement D11).",
    ),
    (
        "pua_dialoginfo",
        "The Kamailio/OpenSIPS module that publishes the state of each call to the presence "
        "server, one publication per call: with it, force_single_dialog applies.",
    ),
    (
        "partial state",
        'A dialog-info document with state="partial" carries only what changed. OpenSIPS sends '
        "such NOTIFYs after a PUBLISH; Kamailio always sends the full state.",
    ),
    (
        "requirement ids (B27, D10, D11, ...)",
        "Rules of the dialoginfo-conformance kit (docs/REQUIREMENTS.md): B for RFC rules of "
        "the subscription, D for how the dialog-info module builds bodies. B27: an idle line "
        "may be shown by no body, an empty document or a neutral dialog. D10: "
        "force_single_dialog does nothing with one publication. D11: the idle form each server "
        "sends.",
    ),
    (
        "ignored, stays alive",
        "The phone never answered the NOTIFY, but answered an OPTIONS request afterwards: it "
        "drops such NOTIFYs silently and keeps working, with stale BLF keys.",
    ),
    (
        "crashed",
        "The phone answered nothing after the NOTIFY: neither an OPTIONS in the subscription's "
        "dialog nor one outside it.",
    ),
)


def _yes_no(value: Any, unknown: str = "not checked") -> str:
    if value is None:
        return unknown
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


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
        "ended_subscription": r.ended_subscription,
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
    """The JSON-able report document of a session (finished or interrupted)."""
    cfg = session.config
    results = session.outcome_list()
    conclusions = verdicts.conclude(results, transport=cfg.transport)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    state = session.state
    return {
        "format": FORMAT_VERSION,
        "kind": "phone",
        "kit_version": __version__,
        "started": started.isoformat(timespec="seconds"),
        "interrupted": state.interrupted,
        "end_reason": state.end_reason,
        "restrictions_found": verdicts.restrictions_found(results),
        "phone": {
            "host": cfg.phone_host,
            "user_agent": state.user_agent,
            "subscribes": state.subscribes,
            "subscription_losses": state.subscription_losses,
            "options_supported": state.options_supported,
        },
        "refused_subscribes_from": list(state.refused_subscribes),
        "kit": {
            "listen": f"{cfg.local_host}:{cfg.local_port}",
            "advertised": cfg.advertised,
            "transport": cfg.transport,
            "plan": plan_name,
            "max_dialogs": cfg.max_dialogs,
            "max_body": cfg.max_body,
            "retry_crashes": cfg.retry_crashes,
            "probe_timeout": cfg.probe_timeout,
            "plan_timeout": cfg.plan_timeout,
            "subscribe_wait": cfg.subscribe_wait,
            "resubscribe_wait": cfg.resubscribe_wait,
            "liveness": cfg.liveness,
        },
        "counts": counts,
        "settings": verdicts.settings(conclusions),
        "conclusions": [
            {"key": c.key, "level": c.level, "text": c.text, "probes": list(c.probes)}
            for c in conclusions
        ],
        "probes": [probe_dict(r) for r in results],
        "notes": [{"t": t, "text": text} for t, text in state.notes],
        "refused_requests": state.refused,
    }


def file_stem(doc: Mapping[str, Any]) -> str:
    """``phone-<address>-<YYYYmmdd-HHMMSS>``: one name per phone and run."""
    host = str((doc.get("phone") or {}).get("host") or "unknown")
    # IPv6 colons are not allowed in Windows file names: 2001:db8::7 -> 2001_db8__7.
    host = re.sub(r"[^0-9A-Za-z.]", "_", host.replace(":", "_")) or "unknown"
    try:
        when = datetime.fromisoformat(str(doc.get("started"))).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        when = "undated"
    return f"phone-{host}-{when}"


def write(doc: Mapping[str, Any], directory: Path) -> tuple[Path, Path]:
    """Write the JSON and HTML files into ``directory`` (created); return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = file_stem(doc)
    json_path = directory / f"{stem}.json"
    html_path = directory / f"{stem}.html"
    json_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    html_path.write_text(render(doc), encoding="utf-8")
    return json_path, html_path


def no_subscribe_line(doc: Mapping[str, Any]) -> str:
    """Why nothing was probed, without claiming no SUBSCRIBE came when one was refused."""
    phone = doc.get("phone") or {}
    refused = doc.get("refused_subscribes_from") or []
    line = f"no SUBSCRIBE (Event: dialog) came from the phone {phone.get('host')}"
    if refused:
        line += (
            f"; SUBSCRIBEs from {', '.join(refused)} were refused (not --phone): is --phone "
            "the address the phone sends from?"
        )
    return line + ": nothing was probed"


def summary(doc: Mapping[str, Any]) -> str:
    """The conclusions as plain text lines for the terminal."""
    phone = doc.get("phone") or {}
    lines = [f"phone {phone.get('host')} (User-Agent: {phone.get('user_agent') or 'none seen'}):"]
    if doc.get("interrupted"):
        lines.append(
            f"  INTERRUPTED ({doc['interrupted']}): the report holds what was found so far"
        )
    if not phone.get("subscribes"):
        lines.append("  " + no_subscribe_line(doc))
        return "\n".join(lines)
    for c in doc.get("conclusions") or []:
        lines.append(f"  [{c.get('level')}] {c.get('text')}")
    skipped = [p for p in doc.get("probes") or [] if p.get("outcome") == "skipped"]
    for p in skipped:
        lines.append(f"  not run: {p.get('name')} ({p.get('title')}): {p.get('note')}")
    if doc.get("settings"):
        lines.append("  server settings needed: " + ", ".join(doc["settings"]))
    return "\n".join(lines)


def _tag(word: str, cls: str) -> str:
    return f'<span class="v v-{cls}">{esc(word)}</span>'


def _answer(p: Mapping[str, Any]) -> str:
    if p.get("status") is not None:
        return f"{p.get('status')} {p.get('reason') or ''}".strip()
    if p.get("outcome") in ("dropped", "crashed"):
        return "no answer"
    return ""


def render(doc: Mapping[str, Any]) -> str:
    """One self-contained page (no network, no JavaScript) for a phone report document."""
    phone = doc.get("phone") or {}
    kit = doc.get("kit") or {}
    refused = doc.get("refused_subscribes_from") or []
    rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>"
        for k, v in (
            ("phone", phone.get("host")),
            ("User-Agent", phone.get("user_agent") or "none seen"),
            ("SUBSCRIBEs received", phone.get("subscribes")),
            ("subscriptions lost", phone.get("subscription_losses") or 0),
            ("answers OPTIONS", _yes_no(phone.get("options_supported"))),
            ("SUBSCRIBEs refused from", ", ".join(refused) or "none"),
            ("kit", f"{kit.get('listen')} {str(kit.get('transport', '')).upper()}"),
            ("kit address given to the phone", kit.get("advertised")),
            ("plan", kit.get("plan")),
            ("searched up to", f"{kit.get('max_dialogs')} dialogs, {kit.get('max_body')} bytes"),
            ("resend a crashing probe", _yes_no(kit.get("retry_crashes"))),
            (
                "time limits",
                f"{kit.get('probe_timeout')} s per request, {kit.get('resubscribe_wait')} s for "
                f"a new SUBSCRIBE, {kit.get('plan_timeout')} s in all",
            ),
            ("started", doc.get("started")),
            ("kit version", doc.get("kit_version")),
        )
    )
    counts = " ".join(
        _tag(f"{n} {_OUTCOME_WORDS.get(k, k)}", _OUTCOME_CLASS.get(k, "none"))
        for k, n in (doc.get("counts") or {}).items()
    )
    banner = ""
    if doc.get("interrupted"):
        banner = (
            f'<p class="v v-warn">Interrupted ({esc(doc.get("interrupted"))}): this report holds '
            "what was found until then; probes not run are listed as such.</p>"
        )
    if not phone.get("subscribes"):
        banner += f"<p><b>{esc(no_subscribe_line(doc))}</b></p>"
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
        cls = _OUTCOME_CLASS.get(outcome, "none")
        size = p.get("body_bytes")
        probe_rows.append(
            f'<tr class="r-{cls}"><td><a href="#p{i}">{esc(p.get("name"))}</a></td>'
            f"<td>{esc(p.get('title'))}</td>"
            f"<td>{_tag(_OUTCOME_WORDS.get(outcome, outcome), cls)}</td>"
            f"<td>{esc(_answer(p))}</td>"
            f"<td>{esc(_yes_no(p.get('alive')) if outcome != 'skipped' else '')}</td>"
            f"<td>{esc('no body' if size is None and outcome != 'skipped' else size)}</td>"
            f"<td>{esc(p.get('note'))}</td></tr>"
        )
        messages = "".join(
            f'<div class="msg-head">+{float(e.get("t") or 0):.3f} s {esc(e.get("direction"))} '
            f"{esc(e.get('peer'))}: {esc(e.get('summary'))}</div>"
            + (f"<pre>{esc(e.get('text'), 65536)}</pre>" if e.get("text") else "")
            for e in p.get("exchange") or []
        )
        details.append(
            f'<details id="p{i}"><summary>{esc(p.get("name"))}: '
            f"{esc(_OUTCOME_WORDS.get(outcome, outcome))} "
            f"({len(p.get('exchange') or [])} messages)</summary>{messages or '<p>none</p>'}"
            "</details>"
        )
    notes = "".join(
        f"<li>+{float(n.get('t') or 0):.3f} s {esc(n.get('text'))}</li>"
        for n in doc.get("notes") or []
    )
    glossary = "".join(f"<dt><b>{esc(k)}</b></dt><dd>{esc(v)}</dd>" for k, v in GLOSSARY)
    title = phone.get("user_agent") or phone.get("host")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">",
            f"<title>phone report: {esc(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            f"<header><h1>Phone compatibility: {esc(title)}</h1>{banner}"
            f'<table>{rows}</table><p class="counts">{counts}</p></header>',
            "<main>",
            f'<section id="conclusions"><h2>Conclusions</h2>{settings_html}'
            '<table class="grid"><tr><th>level</th><th>conclusion</th><th>from probes</th></tr>'
            f"{conclusions}</table></section>",
            '<section id="probes"><h2>Probes</h2><p>In the order they were sent; those not run '
            'come last, with the reason.</p><table class="grid"><tr><th>probe</th>'
            "<th>body</th><th>outcome</th><th>answer</th><th>alive afterwards</th>"
            f"<th>body bytes</th><th>note</th></tr>{''.join(probe_rows)}</table></section>",
            f'<section id="glossary"><h2>Glossary</h2><dl>{glossary}</dl></section>',
            f'<section id="exchanges"><h2>Exchanges</h2>{"".join(details)}</section>',
            f'<section id="timeline"><h2>Timeline</h2><ul>{notes}</ul></section>',
            "</main></body></html>\n",
        ]
    )
