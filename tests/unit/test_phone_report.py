"""The phone report a vendor reads: words not Python values, a glossary, every skipped probe
named with its reason, the User-Agent, one file pair per phone and run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from conformance.phone.probes import DEFAULT_PLAN
from conformance.phone.session import ProbeSession, SessionConfig
from conformance.report import phone as report
from conformance.sip.message import Request
from tests.unit.test_phone_session import PHONE, drive, subscribe

STARTED = datetime(2026, 1, 30, 10, 15, 0, tzinfo=UTC)


def crashing_session() -> ProbeSession:
    session = ProbeSession(
        DEFAULT_PLAN,
        SessionConfig(phone_host="127.0.0.1", probe_timeout=1.0, resubscribe_wait=2.0),
        now=0.0,
    )
    session.receive(subscribe(), PHONE, 0.0)
    dead = []

    def policy(req: Request) -> int | None:
        if dead or (req.method == "NOTIFY" and req.body.count(b"<dialog ") > 3):
            dead.append(True)
            return None
        return 200

    drive(session, policy)
    return session


def test_document_and_page_speak_words() -> None:
    doc = report.build(crashing_session(), plan_name="default", started=STARTED)
    assert doc["phone"]["user_agent"] == "fake phone 1.0"
    assert doc["restrictions_found"] is True
    page = report.render(doc)
    assert "fake phone 1.0" in page
    assert ">True<" not in page and ">False<" not in page and ">None<" not in page
    assert "crashed" in page and "not run" in page
    for word in ("force_single_dialog", "force_dummy_dialog", "pua_dialoginfo", "D10"):
        assert word in page.split('id="glossary"')[1]


def test_skipped_probes_are_named_with_their_reason() -> None:
    doc = report.build(crashing_session(), plan_name="default", started=STARTED)
    text = report.summary(doc)
    skipped = [p for p in doc["probes"] if p["outcome"] == "skipped"]
    assert skipped
    for p in skipped:
        assert f"not run: {p['name']} " in text
        assert p["note"] == "the phone did not SUBSCRIBE again within 2 s"
    assert "accepts up to 2 dialogs, fails at 5 (crashed" in text
    assert "(between 3 and 4 not tested)" in text
    assert "no restrictions" not in text


def test_files_are_named_per_phone_and_run(tmp_path: Path) -> None:
    doc = report.build(crashing_session(), plan_name="default", started=STARTED)
    json_path, html_path = report.write(doc, tmp_path)
    assert json_path.name == "phone-127.0.0.1-20260130-101500.json"
    assert html_path.name == "phone-127.0.0.1-20260130-101500.html"
    assert json.loads(json_path.read_text())["kind"] == "phone"
    assert report.file_stem({"phone": {"host": "::1"}, "started": "x"}) == "phone-__1-undated"


def test_no_subscribe_does_not_hide_a_refused_one() -> None:
    session = ProbeSession(
        DEFAULT_PLAN, SessionConfig(phone_host="127.0.0.9", subscribe_wait=1.0), now=0.0
    )
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, lambda req: 200)
    doc = report.build(session, plan_name="default", started=STARTED)
    text = report.summary(doc)
    assert "SUBSCRIBEs from 127.0.0.1 were refused" in text
    assert "is --phone the address the phone sends from?" in text
    assert "refused" in report.render(doc)


def test_interrupted_report_is_marked() -> None:
    session = ProbeSession(DEFAULT_PLAN, SessionConfig(phone_host="127.0.0.1"), now=0.0)
    session.receive(subscribe(), PHONE, 0.0)
    session.interrupt(0.5, "SIGINT")
    doc = report.build(session, plan_name="default", started=STARTED)
    assert doc["interrupted"] == "SIGINT"
    assert "INTERRUPTED (SIGINT)" in report.summary(doc)
    assert "Interrupted (SIGINT)" in report.render(doc)
