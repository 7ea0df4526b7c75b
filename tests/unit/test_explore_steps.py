"""The explorer's pure step rules (``execute.status_rules``, ``runner.failure_step``): no SIPp."""

from __future__ import annotations

import random

from conformance.explore import bodies
from conformance.explore.execute import ROUTE, Taint, make_body, route_rules, status_rules
from conformance.explore.ops import BodySpec
from conformance.explore.runner import relayed
from conformance.oracle.checks import check_refresh_response
from conformance.oracle.findings import Finding
from conformance.oracle.requirements import Level
from conformance.sip.message import Response

ENTITY = "sip:alice@example.com"


def test_a_foreign_content_type_accepted_fails_c07_on_publish_and_modify():
    """content-type-ignored stores a body of a foreign Content-Type: the 200 breaks C07 (the
    explorer reported nothing, or C03 for what followed, before issue 13's fix)."""
    wrong = bodies.invalid(random.Random(1), entity=ENTITY, kind="wrong-content-type")
    assert wrong.expect == "C07"
    assert [rid for rid, _ in status_rules(wrong, 200, initial=True)] == ["C07"]
    assert [rid for rid, _ in status_rules(wrong, 200, initial=False)] == ["C07"]
    message = status_rules(wrong, 200, initial=True)[0][1]
    # The observation (after "<what>: ") is the suite's, so a profile names it once.
    assert (
        message.split(": ", 1)[-1] == f"PUBLISH with Content-Type {wrong.content_type} answered 200"
    )
    assert status_rules(wrong, 415, initial=True) == []


def test_a_valid_initial_publish_must_be_accepted_and_other_invalid_bodies_may_be():
    valid = bodies.valid(random.Random(2), entity=ENTITY)
    assert [rid for rid, _ in status_rules(valid, 400, initial=True)] == ["C03"]
    assert status_rules(valid, 200, initial=True) == []
    assert status_rules(valid, 423, initial=True) == []
    assert status_rules(valid, 400, initial=False) == []  # a modify's rules are elsewhere
    garbage = bodies.invalid(random.Random(3), entity=ENTITY, kind="not-xml")
    assert status_rules(garbage, 200, initial=True) == []
    assert status_rules(garbage, 400, initial=True) == []


def test_a_record_route_in_a_publish_response_fails_c19_with_the_suites_observation():
    """record-route-echoed copies the request's Record-Route into the response: C19 (no
    explorer step sent a Record-Route before issue 13's nemesis)."""
    [(rid, message)] = route_rules(200, [ROUTE])
    assert rid == "C19"
    assert message.split(": ", 1)[-1] == (
        "PUBLISH with Record-Route answered 200, Record-Route ['<sip:127.0.0.9;lr>']"
    )
    assert route_rules(200, []) == []


def test_a_failure_naming_no_step_is_placed_by_its_notifys_time():
    """A history finding with "no single stimulus" names no step; the step during which its
    NOTIFY arrived is where shrinking starts (it started from the whole lane before)."""
    from conformance.explore.execute import StepRecord
    from conformance.explore.ops import Fetch
    from conformance.explore.runner import failure_step
    from conformance.oracle.findings import Finding

    records = [StepRecord(i, Fetch(0), started_at=100.0 + i) for i in range(1, 6)]
    lost = Finding(
        "D08",
        False,
        "history of sip:x@h: NOTIFY CSeq 1 (at 103.500) matches no store state",
        evidence={"stimulus": "no single stimulus"},
    )
    assert failure_step(lost, records) == 3
    assert failure_step(lost) is None
    named = Finding("C15", False, "x (at 103.5)", evidence={"stimulus": "modify at step 2"})
    assert failure_step(named, records) == 2


def test_status_rules_read_the_response_c03_c08() -> None:
    """initial-publish-no-etag and 415-without-accept: the status alone passes, the headers
    do not."""
    valid = make_body(BodySpec(3, (("a", "early"),)), "sip:x@example.com")
    bare = Response(headers=(), status=200, reason="OK")
    tagged = Response(headers=(("SIP-ETag", "e1"), ("Expires", "60")), status=200, reason="OK")
    assert [r for r, _ in status_rules(valid, 200, initial=True, response=bare)] == ["C03"]
    assert status_rules(valid, 200, initial=True, response=tagged) == []
    assert status_rules(valid, 200, initial=False, response=bare) == []  # a modify keeps its tag
    wrong = make_body(BodySpec(3, invalid="wrong-content-type"), "sip:x@example.com")
    refused = Response(headers=(), status=415, reason="Unsupported Media Type")
    assert [r for r, _ in status_rules(wrong, 415, initial=True, response=refused)] == ["C08"]
    listed = Response(
        headers=(("Accept", "application/dialog-info+xml"),), status=415, reason="Unsupported"
    )
    assert status_rules(wrong, 415, initial=True, response=listed) == []


def test_refresh_response_rules_b18_b19() -> None:
    """refresh-lengthened and subscribe-423-no-min-expires, on the explorer's refreshes."""

    def answer(status: int, *headers: tuple[str, str]) -> Response:
        return Response(headers=headers, status=status, reason="x")

    assert check_refresh_response(answer(200, ("Expires", "60")), requested=60) == []
    [longer] = check_refresh_response(answer(200, ("Expires", "120")), requested=60)
    assert longer.requirement == "B19"
    assert check_refresh_response(answer(423, ("Min-Expires", "2")), requested=1) == []
    [bare] = check_refresh_response(answer(423), requested=1)
    assert bare.requirement == "B18"
    assert check_refresh_response(answer(481), requested=1) == []


def test_a_body_failure_informs_only_while_garbage_was_live():
    taints = [Taint(7, 10.0, "p1", until=20.0)]
    broken = Finding("A19", False, "id 'd1' repeats", evidence={"at": 15.0})
    assert relayed(broken, taints).level is Level.INFO
    assert "accepted at step 7" in relayed(broken, taints).message
    # Before the garbage was sent, after its publication was replaced, or with no time to
    # place it: the failure keeps its level.
    for at in (9.0, 21.0):
        later = Finding("A19", False, "id 'd1' repeats", evidence={"at": at})
        assert relayed(later, taints) is later
    untimed = Finding("A19", False, "id 'd1' repeats")
    assert relayed(untimed, taints) is untimed
    state = Finding("B12", False, "NOTIFY CSeq 3 then 3", evidence={"at": 15.0})
    assert relayed(state, taints) is state
