"""Calls light the BLF: call-driven dialog state (REQUIREMENTS.md group E).

Each case places a real call (SIPp caller and callee, driven step by step) through the proxy the
target routes calls with, while one watcher per party is subscribed to that party's AOR. The
call oracle (``oracle.calls``) derives what each watcher should see from that party's own trace
and judges the raw NOTIFY bodies, terminated dialogs kept. Targets that route no calls skip the
group (``dialoginfo_calls``).
"""

from __future__ import annotations

import pytest

from conformance.errors import BodyError
from conformance.oracle import calls as call_oracle
from conformance.oracle.dialoginfo import Dialog
from conformance.oracle.dialoginfo import parse as parse_dialoginfo

pytestmark = pytest.mark.dialoginfo

HOLD = 1.2
"""Seconds a case holds a state so each party's watcher gets its NOTIFY before the next step:
longer than the one NOTIFY per second RFC 4235 §3.10 recommends, so a throttling server
(the strict reference server) shows each state instead of coalescing it away."""
SETTLE = 1.5
"""Seconds watched after the last step before judging: a throttled NOTIFY may come up to one
second after the one before it."""
END_SETTLE = 3.5
"""Seconds watched after a call ends: past the E09 bound (2 s) and the reference server's
terminated lifetime, so a late or revived state is seen."""


def _parties(calls, *, callers: int = 1):
    callee = calls.callee()
    made = [calls.caller(hint=f"alice{n}" if n else "alice") for n in range(callers)]
    watchers = {p: calls.watch(p) for p in (*made, callee)}
    # Past a throttling server's one NOTIFY per second since the watchers' initial NOTIFYs, so
    # the call's first state is sent at once, not coalesced into the next one.
    calls.case.clock.sleep(HOLD)
    return made, callee, watchers


def _judge(calls, call_id, watchers, *, settle: float) -> None:
    calls.case.clock.sleep(settle)
    for party, sub in watchers.items():
        calls.judge(call_id, party, sub, settle=0)


@pytest.mark.dialoginfo_requirement("E01", "E12")
def test_call_ring_and_hold(dialoginfo_calls):
    """Ring and hold: both watchers see the dialog early (the caller after trying)."""
    calls = dialoginfo_calls
    (caller,), callee, watchers = _parties(calls)
    cid = calls.place(caller, callee)
    callee.ring(cid)
    caller.wait_response(cid, 180)
    _judge(calls, cid, watchers, settle=SETTLE)
    caller.cancel(cid)  # clean up; the CANCEL case judges this end


@pytest.mark.dialoginfo_requirement("E02", "E06", "E07", "E08")
def test_call_ring_then_answer(dialoginfo_calls):
    calls = dialoginfo_calls
    (caller,), callee, watchers = _parties(calls)
    cid = calls.place(caller, callee)
    callee.ring(cid)
    caller.wait_response(cid, 180)
    calls.case.clock.sleep(HOLD)
    callee.answer(cid)
    _judge(calls, cid, watchers, settle=SETTLE)
    caller.bye(cid)  # clean up; the ends are the BYE cases' to judge


@pytest.mark.dialoginfo_requirement("E05", "E09", "E11")
@pytest.mark.parametrize("side", ["caller", "callee"])
def test_call_bye(dialoginfo_calls, side):
    calls = dialoginfo_calls
    (caller,), callee, watchers = _parties(calls)
    cid = calls.place(caller, callee)
    callee.ring(cid)
    caller.wait_response(cid, 180)
    callee.answer(cid)
    calls.case.clock.sleep(HOLD)
    (caller if side == "caller" else callee).bye(cid)
    _judge(calls, cid, watchers, settle=END_SETTLE)


@pytest.mark.dialoginfo_requirement("E03")
@pytest.mark.parametrize("code", [486, 603])
def test_call_rejected(dialoginfo_calls, code):
    calls = dialoginfo_calls
    (caller,), callee, watchers = _parties(calls)
    cid = calls.place(caller, callee)
    callee.ring(cid)
    caller.wait_response(cid, 180)
    calls.case.clock.sleep(HOLD)
    callee.reject(cid, code)
    caller.final_response(cid)
    _judge(calls, cid, watchers, settle=SETTLE)


@pytest.mark.dialoginfo_requirement("E04")
def test_call_cancelled(dialoginfo_calls):
    calls = dialoginfo_calls
    (caller,), callee, watchers = _parties(calls)
    cid = calls.place(caller, callee)
    callee.ring(cid)
    caller.wait_response(cid, 180)
    calls.case.clock.sleep(HOLD)
    caller.cancel(cid)
    caller.final_response(cid)
    callee.wait_request(cid, "ACK")
    _judge(calls, cid, watchers, settle=SETTLE)


@pytest.mark.dialoginfo_requirement("E03", "E04")
def test_call_not_answered(dialoginfo_calls):
    """The proxy gives up (Timer C, 5 s at most): 408 to the caller (rejected), CANCEL to the
    callee (cancelled)."""
    calls = dialoginfo_calls
    (caller,), callee, watchers = _parties(calls)
    cid = calls.place(caller, callee)
    callee.ring(cid)
    caller.final_response(cid, timeout=8.0)
    callee.wait_request(cid, "ACK")
    _judge(calls, cid, watchers, settle=SETTLE)


@pytest.mark.dialoginfo_requirement("E10", "E01", "E02")
def test_two_calls_to_one_callee(dialoginfo_calls):
    """Call 1 answered, call 2 ringing: the callee's watcher shows both (aggregation) or the
    ringing one (single-dialog mode, D08)."""
    calls = dialoginfo_calls
    (first, second), callee, watchers = _parties(calls, callers=2)
    c1 = calls.place(first, callee)
    callee.ring(c1)
    first.wait_response(c1, 180)
    callee.answer(c1)
    calls.case.clock.sleep(HOLD)
    c2 = calls.place(second, callee)
    callee.ring(c2)
    second.wait_response(c2, 180)
    calls.case.clock.sleep(1.0)
    exps = [
        call_oracle.expect(call_oracle.Party.CALLEE, callee.messages(c), c, calls.profile)
        for c in (c1, c2)
    ]
    notifies = watchers[callee].notifies
    at = notifies[-1].timestamp if notifies else calls.case.clock.now()
    want = call_oracle.expected_view(exps, at, single=calls.case.profile.single_dialog)
    got = _view(notifies[-1].body) if notifies else {}
    calls.case.finding(
        "E10",
        got == want,
        f"callee's watcher shows {_show(got)}, expected {_show(want)}",
        observed=_show({_short(c, (c1, c2)): s for c, s in got.items()}),
    )
    for party, sub in watchers.items():
        for c in (c1, c2):
            if party is callee or party.messages(c):
                calls.judge(c, party, sub, settle=0)
    callee.reject(c2, 486)
    first.bye(c1)


def _view(body: bytes) -> dict[str, set[str]]:
    """What one NOTIFY body shows, by Call-ID (the shape of ``expected_view``)."""
    try:
        doc = parse_dialoginfo(body)
    except BodyError:  # an unreadable body shows nothing; the A checks judge it
        return {}
    return {d.call_id or "": {(d.state or "").lower()} for d in doc.items if isinstance(d, Dialog)}


def _show(view: dict[str, set[str]]) -> str:
    return ", ".join(f"{c}: {'/'.join(sorted(s))}" for c, s in sorted(view.items())) or "nothing"


def _short(call_id: str, order: tuple[str, ...]) -> str:
    return f"call {order.index(call_id) + 1}" if call_id in order else "other call"
