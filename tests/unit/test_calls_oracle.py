"""The call oracle: expected dialog states from each party's wire view, and judging a watcher."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conformance.oracle.calls import (
    CallProfile,
    Expectation,
    Observation,
    OracleError,
    Party,
    display_of,
    expect,
    expected_view,
    find_dialog,
    judge,
    observe,
    states_seen,
)
from conformance.oracle.dialoginfo import Dialog, Participant
from conformance.oracle.findings import Finding
from conformance.sip.message import Stamped, parse

CID = "call-1@127.0.0.1"
FROM = '"Alice" <sip:alice@example.test>;tag=a-tag'
TO = '"Bob" <sip:bob@example.test>'


def _request(method: str, cseq: int = 1, *, from_: str = FROM, to: str = TO) -> bytes:
    return (
        f"{method} sip:bob@127.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-1\r\n"
        f"From: {from_}\r\nTo: {to}\r\nCall-ID: {CID}\r\nCSeq: {cseq} {method}\r\n"
        f"Contact: <sip:alice@127.0.0.1:5061>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _response(status: int, *, tag: str | None = "b-tag", method: str = "INVITE") -> bytes:
    to = TO + (f";tag={tag}" if tag else "")
    return (
        f"SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-1\r\n"
        f"From: {FROM}\r\nTo: {to}\r\nCall-ID: {CID}\r\nCSeq: 1 {method}\r\n"
        f"Contact: <sip:bob@127.0.0.1:5062>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def wire(*steps: tuple[float, str, bytes]) -> list[Stamped]:
    """Messages as a party traced them: (time, 'out'|'in', bytes)."""
    return [Stamped(parse(data), at, direction) for at, direction, data in steps]


def caller_view(*middle: tuple[float, str, bytes]) -> list[Stamped]:
    return wire((0.0, "out", _request("INVITE")), *middle)


def callee_view(*middle: tuple[float, str, bytes]) -> list[Stamped]:
    return wire((0.0, "in", _request("INVITE")), *middle)


def obs(at: float, state: str | None, **attrs: object) -> Observation:
    if state is None:
        return Observation(at, None)
    return Observation(at, Dialog(id="d1", state=state, call_id=CID, **attrs))  # type: ignore[arg-type]


def failed(findings: Sequence[Finding]) -> list[str]:
    return [f.requirement for f in findings if not f.passed]


def passed(findings: Sequence[Finding]) -> list[str]:
    return [f.requirement for f in findings if f.passed]


# -- expectations ---------------------------------------------------------------------------------
def test_answered_call_then_bye_from_the_caller() -> None:
    caller = expect(
        "caller",
        caller_view(
            (0.01, "in", _response(100, tag=None)),
            (0.5, "in", _response(180)),
            (1.0, "in", _response(200)),
            (2.0, "out", _request("BYE", 2, to=TO + ";tag=b-tag")),
        ),
        CID,
    )
    assert [(s.state, s.event) for s in caller.steps] == [
        ("trying", None),
        ("proceeding", None),
        ("early", None),
        ("confirmed", None),
        ("terminated", "local-bye"),
    ]
    assert [s.rule for s in caller.steps] == ["E12", "E12", "E01", "E02", "E05"]
    assert (caller.local_tag, caller.remote_tag) == ("a-tag", "b-tag")
    assert (caller.local_display, caller.remote_display) == ("Alice", "Bob")
    assert caller.remote_target == "sip:bob@127.0.0.1:5062"
    assert caller.direction == "initiator"

    callee = expect(
        Party.CALLEE,
        callee_view(
            (0.5, "out", _response(180)),
            (1.0, "out", _response(200)),
            (2.0, "in", _request("BYE", 2, to=TO + ";tag=b-tag")),
        ),
        CID,
    )
    assert [(s.state, s.event) for s in callee.steps][-1] == ("terminated", "remote-bye")
    assert (callee.local_tag, callee.remote_tag) == ("b-tag", "a-tag")
    assert callee.direction == "recipient"
    assert callee.local_uri == "sip:bob@example.test"


@pytest.mark.parametrize("code", [486, 603, 408])
def test_a_failure_is_rejected_with_its_code(code: int) -> None:
    exp = expect(
        "caller", caller_view((0.5, "in", _response(180)), (1, "in", _response(code))), CID
    )
    assert exp.final is not None
    assert (exp.final.state, exp.final.event, exp.final.code, exp.final.rule) == (
        "terminated",
        "rejected",
        code,
        "E03",
    )


def test_a_487_after_cancel_is_cancelled_for_both_parties() -> None:
    caller = expect(
        "caller",
        caller_view(
            (0.5, "in", _response(180)),
            (1.0, "out", _request("CANCEL")),
            (1.0, "in", _response(200, tag=None, method="CANCEL")),
            (1.01, "in", _response(487)),
        ),
        CID,
    )
    callee = expect(
        "callee",
        callee_view(
            (0.5, "out", _response(180)),
            (1.0, "in", _request("CANCEL")),
            (1.0, "out", _response(200, tag=None, method="CANCEL")),
            (1.01, "out", _response(487)),
        ),
        CID,
    )
    for exp in (caller, callee):
        assert exp.final is not None
        assert (exp.final.event, exp.final.rule) == ("cancelled", "E04")


def test_no_answer_differs_per_party() -> None:
    """The proxy gives up: the caller gets 408 (rejected), the callee a CANCEL (cancelled)."""
    caller = expect(
        "caller", caller_view((0.5, "in", _response(180)), (5, "in", _response(408))), CID
    )
    callee = expect(
        "callee",
        callee_view(
            (0.5, "out", _response(180)),
            (5, "in", _request("CANCEL")),
            (5, "out", _response(487)),
        ),
        CID,
    )
    assert caller.final is not None and callee.final is not None
    assert (caller.final.event, callee.final.event) == ("rejected", "cancelled")


def test_a_tagless_provisional_is_proceeding_and_retransmissions_change_nothing() -> None:
    msgs = callee_view(
        (0.5, "out", _response(180, tag=None)), (0.6, "out", _response(180, tag=None))
    )
    exp = expect("callee", msgs, CID)
    assert [s.state for s in exp.steps] == ["trying", "proceeding"]
    assert exp.local_tag is None


def test_a_200_to_the_cancel_is_not_the_answer() -> None:
    exp = expect(
        "caller",
        caller_view(
            (1.0, "out", _request("CANCEL")),
            (1.0, "in", _response(200, tag=None, method="CANCEL")),
            (1.1, "in", _response(487)),
        ),
        CID,
    )
    assert [s.state for s in exp.steps] == ["trying", "terminated"]


def test_answer_wins_a_cancel_race() -> None:
    exp = expect(
        "caller",
        caller_view((1.0, "out", _request("CANCEL")), (1.01, "in", _response(200))),
        CID,
    )
    assert exp.final is not None and exp.final.state == "confirmed"


def test_a_call_without_an_invite_is_refused_plainly() -> None:
    with pytest.raises(OracleError, match="no INVITE sent"):
        expect("caller", wire((0, "in", _request("INVITE"))), CID)
    with pytest.raises(ValueError):
        expect("bystander", [], CID)


def test_profile_caller_confirmed_and_publish_on_trying() -> None:
    msgs = caller_view((0.5, "in", _response(180)))
    plain = expect("caller", msgs, CID)
    assert [plain.shown(s) for s in plain.published()] == ["trying", "early"]
    confirmed = expect("caller", msgs, CID, CallProfile(caller_confirmed=True))
    assert [confirmed.shown(s) for s in confirmed.published()] == ["trying", "confirmed"]
    callee_msgs = callee_view((0.5, "out", _response(180)))
    assert [s.state for s in expect("callee", callee_msgs, CID).published()] == ["early"]
    trying = expect("callee", callee_msgs, CID, CallProfile(publish_on_trying=True))
    assert [s.state for s in trying.published()] == ["trying", "early"]


@pytest.mark.parametrize(
    ("value", "display"),
    [
        ('"Alice" <sip:a@x>;tag=1', "Alice"),
        ('"A \\"q\\"" <sip:a@x>', 'A "q"'),
        ("Bob <sip:b@x>", "Bob"),
        ("<sip:b@x>", None),
        ("sip:b@x;tag=2", None),
        (None, None),
    ],
)
def test_display_of(value: str | None, display: str | None) -> None:
    assert display_of(value) == display


# -- judging --------------------------------------------------------------------------------------
def _answered_bye(bye_from_caller: bool = True) -> tuple[Expectation, Expectation]:
    bye_dir = "out" if bye_from_caller else "in"
    caller = expect(
        "caller",
        caller_view(
            (0.5, "in", _response(180)),
            (1.0, "in", _response(200)),
            (2.0, bye_dir, _request("BYE", 2)),
        ),
        CID,
    )
    callee = expect(
        "callee",
        callee_view(
            (0.5, "out", _response(180)),
            (1.0, "out", _response(200)),
            (2.0, "in" if bye_from_caller else "out", _request("BYE", 2)),
        ),
        CID,
    )
    return caller, callee


def test_a_faithful_watcher_passes_every_check() -> None:
    caller, callee = _answered_bye()
    seen = [
        obs(0.01, "trying", direction="initiator", local_tag="a-tag"),
        obs(0.51, "early", direction="initiator", local_tag="a-tag", remote_tag="b-tag"),
        obs(1.01, "confirmed", direction="initiator", local_tag="a-tag", remote_tag="b-tag"),
        obs(2.01, "terminated", direction="initiator", event="local-bye"),
        obs(15.0, None),
    ]
    found = judge(caller, seen)
    assert failed(found) == []
    assert {"E05", "E09", "E11"} <= set(passed(found))
    seen_callee = [
        obs(0.51, "early", direction="recipient", local_tag="b-tag", remote_tag="a-tag"),
        obs(2.01, "terminated", event="remote-bye"),
    ]
    assert failed(judge(callee, seen_callee)) == []


def test_kamailio_shape_passes_states_but_not_a_tagless_early() -> None:
    """Kamailio 5.6.3: 'Trying' capitalised, no event on terminated: the E states still pass
    (case is A22's, a missing event is allowed); 'early' for a tagless 180 is an E12 finding."""
    caller, _ = _answered_bye()
    seen = [
        obs(0.01, "Trying"),
        obs(0.51, "early"),
        obs(1.01, "confirmed"),
        obs(2.01, "terminated"),
    ]
    assert failed(judge(caller, seen)) == []
    tagless = expect("caller", caller_view((0.5, "in", _response(180, tag=None))), CID)
    found = judge(tagless, [obs(0.01, "Trying"), obs(0.51, "early")])
    assert "E12" in failed(found)


def test_swapped_bye_events_fail_e05() -> None:
    caller, callee = _answered_bye(bye_from_caller=True)
    assert failed(judge(caller, [obs(2.01, "terminated", event="remote-bye")])) == ["E05"]
    assert failed(judge(callee, [obs(2.01, "terminated", event="local-bye")])) == ["E05"]


def test_wrong_rejection_event_and_code_fail_e03() -> None:
    exp = expect(
        "callee", callee_view((0.5, "out", _response(180)), (1, "out", _response(486))), CID
    )
    found = judge(exp, [obs(1.01, "terminated", event="cancelled", code="486")])
    assert failed(found) == ["E03"]
    found = judge(exp, [obs(1.01, "terminated", event="rejected", code="603")])
    assert failed(found) == ["E03"]


def test_a_state_before_its_cause_or_going_back_fails() -> None:
    caller, _ = _answered_bye()
    early_too_soon = judge(caller, [obs(0.2, "early"), obs(2.01, "terminated")])
    assert "E01" in failed(early_too_soon)
    back = judge(caller, [obs(1.01, "confirmed"), obs(1.5, "early"), obs(2.01, "terminated")])
    assert "E01" in failed(back)


def test_alive_after_the_end_fails_e11_and_a_slow_end_fails_e09() -> None:
    caller, _ = _answered_bye()
    found = judge(caller, [obs(2.01, "terminated"), obs(14.0, "confirmed")])
    assert failed(found) == ["E11"]
    slow = judge(caller, [obs(1.01, "confirmed"), obs(4.5, "terminated")])
    assert failed(slow) == ["E09"]


def test_no_end_at_all_fails_the_final_rule() -> None:
    caller, _ = _answered_bye()
    assert failed(judge(caller, [obs(1.01, "confirmed")])) == ["E05"]
    assert failed(judge(caller, [obs(1.01, "confirmed"), obs(2.1, "confirmed")])) == ["E05"]


def test_an_idle_view_ends_the_call() -> None:
    caller, _ = _answered_bye()
    found = judge(caller, [obs(1.01, "confirmed"), obs(2.05, None)])
    assert failed(found) == []


def test_identifiers_direction_and_identity() -> None:
    caller, callee = _answered_bye()
    found = judge(
        callee,
        [
            obs(
                0.51,
                "early",
                direction="initiator",
                local_tag="a-tag",
                remote_tag="b-tag",
                local=Participant(identity="sip:alice@example.test"),
                remote=Participant(identity="sip:alice@example.test", display="Al"),
            ),
            obs(2.01, "terminated"),
        ],
    )
    assert sorted(failed(found)) == ["E06", "E07", "E07", "E08", "E08"]
    wrong_call = judge(caller, [Observation(2.01, Dialog("d", "terminated", call_id="other"))])
    assert failed(wrong_call) == ["E07"]


def test_caller_confirmed_matches_the_latest_lookalike_step() -> None:
    """Under caller_confirmed, 'confirmed' seen after the 180 stands for early: the remote tag
    is known then, so showing it is no E07 finding."""
    profile = CallProfile(caller_confirmed=True)
    msgs = caller_view(
        (0.01, "in", _response(100, tag=None)),
        (0.5, "in", _response(180)),
        (1.0, "in", _response(200)),
    )
    exp = expect("caller", msgs, CID, profile)
    seen = [obs(0.02, "Trying"), obs(0.51, "confirmed", remote_tag="b-tag"), obs(1.01, "confirmed")]
    assert failed(judge(exp, seen)) == []
    assert failed(judge(exp, [obs(0.02, "confirmed")])) == ["E02"]  # the answer never shown


def test_find_dialog_and_states_seen() -> None:
    caller, _ = _answered_bye()
    mine = Dialog("x", "early", call_id=CID)
    other = Dialog("y", "early", call_id="else")
    assert find_dialog([other, mine], caller) is mine
    assert find_dialog([other], caller) is None
    assert states_seen(
        caller, [obs(0, "Trying"), obs(1, "trying"), obs(2, None), obs(3, "early")]
    ) == [
        "trying",
        "early",
    ]


def test_observe_reads_bodies_and_treats_empty_ones_as_idle() -> None:
    caller, _ = _answered_bye()
    body = (
        '<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
        f'version="3" state="full" entity="sip:alice@example.test"><dialog id="x" call-id="{CID}">'
        "<state>early</state></dialog></dialog-info>"
    ).encode()
    seen = observe(
        [(0.0, b""), (0.5, body), (0.6, b"<not xml"), (0.7, body.replace(b"call-1", b"c2"))], caller
    )
    assert [(o.at, o.dialog.state if o.dialog else None, o.version) for o in seen] == [
        (0.0, None, None),
        (0.5, "early", 3),
        (0.7, None, 3),
    ]


def _callee_call(cid: str, start: float, *steps: tuple[float, str, bytes]) -> Expectation:
    msgs = [
        Stamped(parse(data.replace(CID.encode(), cid.encode())), start + at, direction)
        for at, direction, data in ((0.0, "in", _request("INVITE")), *steps)
    ]
    return expect("callee", msgs, cid)


def test_expected_view_of_two_calls_aggregated_and_single() -> None:
    answered = _callee_call("c1", 0.0, (0.5, "out", _response(180)), (1.0, "out", _response(200)))
    ringing = _callee_call("c2", 2.0, (0.5, "out", _response(180)))
    both = (answered, ringing)
    assert expected_view(both, 0.2) == {}  # the callee's trying is not published
    assert expected_view(both, 1.5) == {"c1": {"confirmed"}}
    assert expected_view(both, 3.0) == {"c1": {"confirmed"}, "c2": {"early"}}
    assert expected_view(both, 3.0, single=True) == {"c2": {"early"}}
    tie = _callee_call("c3", 2.0, (0.6, "out", _response(180)))
    assert set(expected_view((ringing, tie), 3.0, single=True)) == {"c2", "c3"}


def test_a_coalesced_intermediate_state_passes_its_rule_and_a_wrong_one_still_fails() -> None:
    """A throttling notifier may skip 'trying' (RFC 6665 §4.2.2): its rule (E12) is judged by
    the order of what was shown, and passes; a wrong state before the answer still fails."""
    caller, _ = _answered_bye()
    coalesced = judge(caller, [obs(0.51, "early"), obs(1.01, "confirmed"), obs(2.01, "terminated")])
    assert failed(coalesced) == []
    assert "E12" in passed(coalesced)
    wrong = judge(caller, [obs(0.3, "confirmed"), obs(1.01, "confirmed"), obs(2.01, "terminated")])
    assert failed(wrong)
