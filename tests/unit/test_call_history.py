"""The history check for call watchers: publications derived from a call's expected states."""

from __future__ import annotations

from conformance.oracle import call_history, history
from conformance.oracle.calls import Expectation, Party, expect
from conformance.oracle.dialoginfo import dialog, document
from conformance.sip.message import Stamped, parse

CID = "call-h@127.0.0.1"
BOB = "sip:bob@example.test"
FROM = '"Alice" <sip:alice@example.test>;tag=a-tag'


def _msg(first: str, method: str, *, to_tag: str | None = "b-tag", cseq: int = 1) -> bytes:
    to = f"<{BOB}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{first}\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-h\r\nFrom: {FROM}\r\nTo: {to}\r\n"
        f"Call-ID: {CID}\r\nCSeq: {cseq} {method}\r\nContact: <sip:x@127.0.0.1:5062>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answered_then_bye() -> Expectation:
    """The callee's view: INVITE at 0, 180 at 0.5, 200 at 1.0, the caller's BYE at 2.0."""
    traced = [
        (0.0, "in", _msg("INVITE sip:bob@127.0.0.1:5062 SIP/2.0", "INVITE", to_tag=None)),
        (0.5, "out", _msg("SIP/2.0 180 Ringing", "INVITE")),
        (1.0, "out", _msg("SIP/2.0 200 OK", "INVITE")),
        (2.0, "in", _msg("BYE sip:bob@127.0.0.1:5062 SIP/2.0", "BYE", cseq=2)),
    ]
    return expect(Party.CALLEE, [Stamped(parse(d), at, way) for at, way, d in traced], CID)


def judged(*notifies: tuple[float, str | None], extra: str | None = None) -> list[str]:
    """Failed requirement ids of the history of NOTIFYs (time, state of the call or None for
    a body-less one); ``extra`` adds a dialog of no call, in that state, to every body."""
    exp = answered_then_bye()
    seen = []
    for n, (at, state) in enumerate(notifies, 1):
        dialogs = [dialog("kamailio-hash", state.capitalize(), call_id=CID)] if state else []
        if extra and state:
            dialogs.append(dialog("stranger", extra))
        body = document(BOB, dialogs, version=n) if state else b""
        seen.append(
            history.Observation(f"NOTIFY {n}", at, call_history.project(body, [exp]), key=(n,))
        )
    recorded = history.History(
        presentity=BOB,
        stimuli=tuple(call_history.stimuli([exp], BOB)),
        notifies=tuple(seen),
        end=6.0,
        subscribed=-1.0,
    )
    result = history.check(recorded, history.Rules(), mode_id=call_history.FALLBACK)
    return sorted(f.requirement for f in result.findings if not f.passed)


def test_stimuli_follow_the_published_states_with_their_rules() -> None:
    made = call_history.stimuli([answered_then_bye()], BOB)
    assert [(s.kind, s.requirement, s.sent, s.answered) for s in made] == [
        ("publish", "E01", 0.4, 2.5),
        ("modify", "E02", 0.9, 3.0),
        ("modify", "E05", 1.9, 4.0),
    ]
    assert [s.replaces for s in made] == [None, made[0].etag, made[1].etag]


def test_project_names_dialogs_by_call_and_lowers_the_state() -> None:
    body = document(BOB, [dialog("h1", "Early", call_id=CID), dialog("h2", "early")], version=4)
    out = call_history.project(body, [answered_then_bye()])
    assert b'id="call-h@127.0.0.1"' in out and b'id="other:h2"' in out
    assert b"Early" not in out and b'version="4"' in out
    assert call_history.project(b"", []) == b""
    assert call_history.project(b"<not xml", []) == b"<not xml"


def test_a_faithful_watcher_passes() -> None:
    assert judged((0.0, None), (0.52, "early"), (1.03, "confirmed"), (2.05, "terminated")) == []


def test_a_coalesced_state_passes() -> None:
    """A throttling server may skip early and show confirmed: still a possible state."""
    assert judged((0.0, None), (1.2, "confirmed"), (3.1, "terminated")) == []


def test_a_revived_call_fails_under_the_end_rule() -> None:
    got = judged((0.0, None), (0.52, "early"), (1.03, "confirmed"), (2.05, "terminated"),
                 (4.5, "confirmed"))  # fmt: skip
    assert got == ["E05"]


def test_a_state_shown_before_its_cause_fails_under_its_rule() -> None:
    assert judged((0.0, None), (0.2, "confirmed"), (1.03, "confirmed")) != []


def test_a_dialog_of_no_call_fails_under_e10() -> None:
    got = judged((0.0, None), (0.52, "early"), (1.03, "confirmed"), extra="early")
    assert got and set(got) <= {"E10", "E01"}
