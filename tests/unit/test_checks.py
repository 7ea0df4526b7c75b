"""checks.py on hand-built NOTIFYs: each rule passes on a good message and fails on the bad one."""

from __future__ import annotations

import time

import pytest

from conformance.oracle import checks
from conformance.oracle.aggregator import Publication, aggregate
from conformance.oracle.dialoginfo import CONTENT_TYPE, dialog, document
from conformance.oracle.view import WatcherView
from conformance.sip.message import Request, Response

PRESENTITY = "sip:alice@example.com"


def notify(
    *,
    version=0,
    cseq=1,
    state="active;expires=590",
    body=None,
    drop=(),
    extra=(),
    dialogs=None,
):
    if body is None:
        body = document(PRESENTITY, dialogs or [dialog("d1", "confirmed")], version=version)
    headers = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{cseq}"),
        ("From", f"<{PRESENTITY}>;tag=srv"),
        ("To", "<sip:w@example.com>;tag=wat"),
        ("Call-ID", "call-1"),
        ("CSeq", f"{cseq} NOTIFY"),
        ("Event", "dialog"),
        ("Subscription-State", state),
        ("Contact", "<sip:alice@127.0.0.1:5060>"),
        ("Content-Type", CONTENT_TYPE),
    ]
    headers = [h for h in headers if h[0] not in drop] + list(extra)
    return checks.Captured(
        Request(headers=tuple(headers), body=body, method="NOTIFY", uri="sip:w@127.0.0.1"),
        timestamp=time.time(),
    )


SUB = checks.Subscription(
    presentity=PRESENTITY,
    call_id="call-1",
    subscriber_tag="wat",
    notifier_tag="srv",
    granted=600,
    granted_at=time.time(),
)


def verdicts(findings, rid):
    return [f.passed for f in findings if f.requirement == rid]


def test_a_good_notify_passes_everything():
    found = checks.check_notify(notify(), SUB)
    assert [str(f) for f in found if not f.passed] == []
    for rid in ("B06", "B07", "B08", "B09", "B11", "B13", "A01", "A02", "A05", "A12", "A19"):
        assert verdicts(found, rid), f"no finding for {rid}"


@pytest.mark.parametrize(
    ("kwargs", "rid"),
    [
        ({"drop": ("Subscription-State",)}, "B08"),
        ({"state": "active"}, "B09"),
        ({"state": "active;expires=9999"}, "B09"),
        ({"state": "terminated"}, "B10"),
        ({"drop": ("Contact",)}, "B11"),
        ({"extra": (("Contact", "<sip:x@h>"),)}, "B11"),
        ({"drop": ("Content-Type",)}, "B13"),
        ({"drop": ("Event",)}, "B07"),
        ({"body": b"<dialog-info"}, "A02"),
        ({"dialogs": (dialog("x", "confirmed"), dialog("x", "early"))}, "A19"),
        ({"dialogs": (dialog("x", "ringing"),)}, "A22"),
    ],
)
def test_each_header_rule_can_fail(kwargs, rid):
    assert False in verdicts(checks.check_notify(notify(**kwargs), SUB), rid)


def test_dialog_mismatch_is_b06():
    other = checks.Subscription(presentity=PRESENTITY, call_id="call-2", subscriber_tag="x")
    assert verdicts(checks.check_notify(notify(), other), "B06") == [False]


def test_wrong_entity_is_a12():
    bad = notify(body=document("sip:bob@example.com", [dialog("d", "early")]))
    assert verdicts(checks.check_notify(bad, SUB), "A12") == [False]


def test_rfc3265_makes_missing_expires_a_should():
    sub = checks.Subscription(
        presentity=PRESENTITY, call_id="call-1", subscriber_tag="wat", rfc=3265
    )
    (finding,) = [
        f for f in checks.check_notify(notify(state="active"), sub) if f.requirement == "B09"
    ]
    assert finding.verdict().value == "warn"


def test_sequence_contiguous_versions_pass():
    seq = [notify(version=v, cseq=v + 1) for v in range(3)]
    found = checks.check_sequence(seq)
    assert all(f.passed for f in found)
    assert set(verdicts(found, "B12")) == {True}
    assert verdicts(found, "A07") == [True]


def test_sequence_repeated_version_and_cseq_gap_fail():
    seq = [notify(version=0, cseq=1), notify(version=0, cseq=3)]
    found = checks.check_sequence(seq)
    assert False in verdicts(found, "A09")
    assert False in verdicts(found, "B12")


def test_sequence_first_version_one_is_a07_warning():
    found = checks.check_sequence([notify(version=1)])
    (a07,) = [f for f in found if f.requirement == "A07"]
    assert not a07.passed and a07.verdict().value == "warn"


def test_subscribe_response_rules():
    ok = Response(headers=(("Expires", "60"),), status=200, reason="OK")
    assert all(f.passed for f in checks.check_subscribe_response(ok, requested=60))
    longer = Response(headers=(("Expires", "120"),), status=200, reason="OK")
    assert verdicts(checks.check_subscribe_response(longer, requested=60), "B03") == [False]
    accepted = Response(headers=(("Expires", "60"),), status=202, reason="Accepted")
    assert verdicts(checks.check_subscribe_response(accepted, requested=60), "B02") == [False]
    none = Response(headers=(), status=200, reason="OK")
    assert verdicts(checks.check_subscribe_response(none, requested=60), "B03") == [False]


def test_view_and_body_against_the_oracle():
    pubs = [
        Publication(document(PRESENTITY, [dialog("a", "early")]), "e1", 1.0, 100.0, 0),
        Publication(document(PRESENTITY, [dialog("b", "confirmed")]), "e2", 2.0, 100.0, 1),
    ]
    expected = aggregate(pubs, presentity=PRESENTITY, now=10.0)
    view = WatcherView()
    view.apply(expected.body(0))
    assert all(f.passed for f in checks.check_view(view, expected, ["D03"]))
    partial = WatcherView()
    partial.apply(document(PRESENTITY, [dialog("a", "early")]))
    (bad,) = checks.check_view(partial, expected, ["D03"])
    assert not bad.passed and "missing b:confirmed" in bad.message
    single = aggregate(pubs, presentity=PRESENTITY, now=10.0, single_dialog=True)
    (d08,) = checks.check_body(expected.body(1), single, ["D08"])
    assert not d08.passed
    (d08,) = checks.check_body(single.body(1), single, ["D08"])
    assert d08.passed
