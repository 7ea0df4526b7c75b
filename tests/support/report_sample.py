"""Realistic sample input for the report: case dicts shaped like the plugin's, built in code.

The report's tests and its screenshot need runs that look like real ones (a PUBLISH, a
SUBSCRIBE, NOTIFYs with dialog-info bodies, a failing version check, a known deviation, a
hostile server) without starting SIPp. ``sample_run()`` returns ``(run_info, cases)`` ready for
``build_results``; the pieces are public so a test can build the one case it needs.
"""

from __future__ import annotations

from typing import Any

T0 = 1_732_700_000.0
SERVER = "127.0.0.1:20005"
HOSTILE = "<script>alert('owned')</script>"


def sip_message(
    party: str,
    direction: str,
    first_line: str,
    at: float,
    *,
    headers: dict[str, str] | None = None,
    body: str = "",
) -> dict[str, Any]:
    """One captured message as the plugin records it (``raw`` is the full text)."""
    head = dict(headers or {})
    if body:
        head.setdefault("Content-Type", "application/dialog-info+xml")
    head["Content-Length"] = str(len(body.encode()))
    raw = first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n" + body
    return {
        "timestamp": T0 + at,
        "party": party,
        "direction": direction,
        "first_line": first_line,
        "raw": raw,
    }


def dialog_xml(dialog_id: str, state: str, direction: str = "initiator") -> str:
    return f'<dialog id="{dialog_id}" direction="{direction}"><state>{state}</state></dialog>'


def document(entity: str, version: int, dialogs: list[str], state: str = "full") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
        f'version="{version}" state="{state}" entity="{entity}">\n'
        + "".join(f"  {d}\n" for d in dialogs)
        + "</dialog-info>\n"
    )


def flow(
    user: str,
    versions: tuple[int, ...] = (0, 1),
    *,
    watchers: int = 1,
    dialogs: list[str] | None = None,
    hostile: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """SUBSCRIBE/200/NOTIFY/200 per watcher, then PUBLISH/200 and a NOTIFY/200 per watcher:
    the ladder of the OpenSIPS presence_dialoginfo figure. Returns (messages, notifies)."""
    entity = f"sip:{user}@127.0.0.1"
    dialogs = dialogs or [dialog_xml("d1", "early")]
    messages: list[dict[str, Any]] = []
    notifies: list[dict[str, Any]] = []
    at = 0.0
    for w in range(1, watchers + 1):
        party = f"watcher-{w}"
        sub = {"Event": "dialog", "Expires": "600", "Call-ID": f"sub-{w}-{user}"}
        messages.append(sip_message(party, "sent", f"SUBSCRIBE {entity} SIP/2.0", at, headers=sub))
        messages.append(sip_message(party, "received", "SIP/2.0 200 OK", at + 0.002))
        body = document(entity, versions[0], [])
        notify_at = at + 0.004
        messages.append(
            sip_message(
                party,
                "received",
                f"NOTIFY sip:{party}@127.0.0.1:5070 SIP/2.0",
                notify_at,
                headers={"Event": "dialog", "Subscription-State": "active;expires=600"},
                body=body,
            )
        )
        notifies.append(
            {
                "party": party,
                "timestamp": T0 + notify_at,
                "version": str(versions[0]),
                "state": "full",
                "body": body,
            }
        )
        messages.append(sip_message(party, "sent", "SIP/2.0 200 OK", at + 0.005))
        at += 0.02
    pub_headers = {"Event": "dialog", "Expires": "3600"}
    if hostile:
        pub_headers["User-Agent"] = hostile
    messages.append(
        sip_message(
            "publisher",
            "sent",
            f"PUBLISH {entity} SIP/2.0",
            at,
            headers=pub_headers,
            body=document(entity, 0, dialogs),
        )
    )
    reply = f"SIP/2.0 200 OK {hostile}" if hostile else "SIP/2.0 200 OK"
    etag = {"SIP-ETag": "a1"}
    messages.append(sip_message("publisher", "received", reply, at + 0.003, headers=etag))
    for version in versions[1:]:
        at += 0.01
        for w in range(1, watchers + 1):
            party = f"watcher-{w}"
            body = document(entity, version, dialogs)
            if hostile:
                body = body.replace("</dialog-info>", f"<!-- {hostile} -->\n</dialog-info>")
            messages.append(
                sip_message(
                    party,
                    "received",
                    f"NOTIFY sip:{party}@127.0.0.1:5070 SIP/2.0",
                    at + 0.001 * w,
                    headers={"Event": "dialog", "Subscription-State": "active;expires=590"},
                    body=body,
                )
            )
            notifies.append(
                {
                    "party": party,
                    "timestamp": T0 + at + 0.001 * w,
                    "version": str(version),
                    "state": "full",
                    "body": body,
                }
            )
            messages.append(sip_message(party, "sent", "SIP/2.0 200 OK", at + 0.001 * w + 0.001))
    return messages, notifies


def case(
    name: str,
    requirements: list[str],
    outcome: str,
    findings: list[dict[str, Any]],
    *,
    param: str = "",
    messages: list[dict[str, Any]] | None = None,
    notifies: list[dict[str, Any]] | None = None,
    longrepr: str | None = None,
    module: str = "test_publish",
) -> dict[str, Any]:
    nodeid = f"conformance/suite/{module}.py::{name}" + (f"[{param}]" if param else "")
    return {
        "nodeid": nodeid,
        "case": name,
        "requirements": requirements,
        "outcome": outcome,
        "judged": None,  # as an older run wrote it: the verdict comes from the findings
        "duration": 0.42 + len(findings) * 0.1,
        "longrepr": longrepr,
        "findings": findings,
        "warnings": [
            f"{f['requirement']} VIOLATED: {f['message']}"
            for f in findings
            if f["verdict"] == "warn"
        ],
        "messages": messages or [],
        "notifies": notifies or [],
    }


def finding(
    requirement: str,
    verdict: str,
    message: str,
    *,
    reason: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "requirement": requirement,
        "passed": verdict == "pass",
        "message": message,
        "verdict": verdict,
        "reason": reason,
        "evidence": evidence or {},
        "observed": message,
        "skipped": verdict == "skipped",
        "excused_by": {"reason": reason, "observed": message} if reason else None,
    }


def run_info(kind: str = "kamailio", *, single: bool = True) -> dict[str, Any]:
    return {
        "target": {
            "kind": kind,
            "address": SERVER,
            "profile": kind,
            "single_dialog": single,
            "user_agent": "kamailio (5.6.3 (x86_64/linux))" if kind == "kamailio" else None,
        },
        "kit_version": "0.1.0",
        "started": "2026-11-27T09:53:01.446573+00:00",
        "finished": "2026-11-27T09:55:12.000000+00:00",
        "options": {"strict": False, "sip_timeout": 5.0},
        "mode": "single" if single else "aggregate",
    }


def sample_run(*, hostile: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Kamailio single-dialog run in miniature: passes, a failure with a dialog diff, a
    known deviation, a warning, a skip, and (``hostile``) a server that sends markup."""
    cases: list[dict[str, Any]] = []
    msgs, notes = flow("alice-pass")
    cases.append(
        case(
            "test_publish_notifies_watcher",
            ["C01", "B10"],
            "passed",
            [
                finding("C01", "pass", "PUBLISH answered 200 with SIP-ETag"),
                finding("B10", "pass", "NOTIFY followed the PUBLISH"),
            ],
            messages=msgs,
            notifies=notes,
        )
    )
    early, confirmed = dialog_xml("d1", "early"), dialog_xml("d2", "confirmed")
    msgs, notes = flow("bob-fail", (1, 2), dialogs=[early])
    cases.append(
        case(
            "test_two_publications_aggregate",
            ["D01", "A08"],
            "failed",
            [
                finding(
                    "D01",
                    "fail",
                    "the NOTIFY holds 1 dialog, the aggregate of 2 publications has 2",
                    evidence={"expected": [early, confirmed], "observed": [early]},
                ),
                finding("A07", "fail", "first version is 1, not 0"),
                finding("A08", "pass", "versions 1, 2 increase by one"),
            ],
            param="two-dialogs",
            messages=msgs,
            notifies=notes,
            longrepr="ConformanceFailure: 2 conformance failure(s):\n  D01 VIOLATED ...",
            module="test_aggregation",
        )
    )
    msgs, notes = flow("carol-known", (1, 2), watchers=2)
    cases.append(
        case(
            "test_first_version_zero",
            ["A07"],
            "xfailed",
            [
                finding(
                    "A07",
                    "known deviation",
                    "first NOTIFY has version 1",
                    reason="presence module starts versions at 1",
                )
            ],
            messages=msgs,
            notifies=notes,
            module="test_body",
        )
    )
    msgs, notes = flow("dave-warn", (0, 2))
    cases.append(
        case(
            "test_version_increments",
            ["A08"],
            "passed",
            [finding("A08", "warn", "version went 0 -> 2 (gap of 1)")],
            messages=msgs,
            notifies=notes,
            module="test_body",
        )
    )
    cases.append(
        case(
            "test_multiple_dialogs",
            ["D02"],
            "skipped",
            [],
            longrepr="applies to aggregate mode; the target runs in single mode",
            module="test_aggregation",
        )
    )
    if hostile:
        msgs, notes = flow("eve-hostile", (0, 1), hostile=HOSTILE)
        cases.append(
            case(
                "test_hostile_server",
                ["C02"],
                "failed",
                [
                    finding(
                        "C02",
                        "fail",
                        f"200 reason phrase {HOSTILE}",
                        evidence={"expected": [early], "observed": [HOSTILE]},
                    )
                ],
                messages=msgs,
                notifies=notes,
                longrepr=f"ConformanceFailure: {HOSTILE}",
            )
        )
    return run_info(), cases
