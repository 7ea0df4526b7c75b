"""The probe session state machine, driven by a fake phone and a fake clock (no sockets)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from conformance.errors import SipParseError, UsageError
from conformance.oracle import dialoginfo as di
from conformance.phone.probes import DEFAULT_PLAN
from conformance.phone.session import ProbeSession, SessionConfig
from conformance.phone.stream import StreamFramer
from conformance.sip.message import Request, Response, parse

PHONE = ("127.0.0.1", 5070)
Policy = Callable[[Request], int | None]
"""The fake phone: the status it answers a request with, or None for silence."""


def subscribe(
    *,
    addr: tuple[str, int] = PHONE,
    from_tag: str = "ph1",
    call_id: str = "call-1",
    expires: int = 600,
    event: str = "dialog",
    to_tag: str | None = None,
    cseq: int = 1,
) -> bytes:
    to = "<sip:bob@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    return bytes(
        Request(
            method="SUBSCRIBE",
            uri="sip:bob@127.0.0.1:5062",
            headers=(
                ("Via", f"SIP/2.0/UDP {addr[0]}:{addr[1]};branch=z9hG4bK{call_id}{cseq}{from_tag}"),
                ("From", f"<sip:phone@{addr[0]}>;tag={from_tag}"),
                ("To", to),
                ("Call-ID", call_id),
                ("CSeq", f"{cseq} SUBSCRIBE"),
                ("Contact", f"<sip:phone@{addr[0]}:{addr[1]}>"),
                ("Event", event),
                ("Expires", str(expires)),
                ("User-Agent", "fake phone 1.0"),
            ),
        )
    )


def answer(req: Request, status: int) -> bytes:
    names = ("Via", "From", "To", "Call-ID", "CSeq")
    headers = tuple((n, v) for n, v in req.headers if n in names)
    return bytes(Response(status=status, reason="X", headers=headers))


def dialogs_in(req: Request) -> int:
    return len(di.parse(req.body).dialogs) if req.body else 0


def tolerant(req: Request) -> int | None:
    return 200


def strict(req: Request) -> int | None:
    return 400 if req.method == "NOTIFY" and dialogs_in(req) > 1 else 200


class Crash:
    """Silent for good after a body with several dialogs (the SPA962)."""

    def __init__(self) -> None:
        self.dead = False

    def __call__(self, req: Request) -> int | None:
        if self.dead or (req.method == "NOTIFY" and dialogs_in(req) > 1):
            self.dead = True
            return None
        return 200


def make(**kw: object) -> ProbeSession:
    cfg = {"phone_host": "127.0.0.1", "probe_timeout": 8.0, "plan_timeout": 300.0} | kw
    return ProbeSession(DEFAULT_PLAN, SessionConfig(**cfg), now=0.0)  # type: ignore[arg-type]


def drive(
    session: ProbeSession,
    policy: Policy,
    *,
    now: float = 0.0,
    sent: list[tuple[Request | Response, tuple[str, int]]] | None = None,
    on_idle: Callable[[float], bool] | None = None,
) -> float:
    """Run until the session is done; the phone answers at once. Returns the final clock."""
    for _ in range(5000):
        out = session.to_send()
        for data, addr in out:
            msg = parse(data)
            if sent is not None:
                sent.append((msg, addr))
            if isinstance(msg, Request):
                status = policy(msg)
                if status is not None:
                    session.receive(answer(msg, status), addr, now)
        if out:
            continue
        if session.done:
            return now
        if on_idle is not None and on_idle(now):
            continue
        timer = session.get_timer()
        assert timer is not None and timer >= now
        now = timer
        session.handle_timer(now)
    raise AssertionError("too many steps")


def outcomes(session: ProbeSession) -> dict[str, tuple[str, int | None]]:
    return {r.probe.name: (r.outcome, r.status) for r in session.outcome_list()}


def test_tolerant_phone_walks_the_whole_plan() -> None:
    session = make()
    session.receive(subscribe(), PHONE, 0.0)
    sent: list[tuple[Request | Response, tuple[str, int]]] = []
    end = drive(session, tolerant, sent=sent)
    assert session.done and end == 0.0
    assert {o for o, _ in outcomes(session).values()} == {"accepted"}
    assert all(r.alive for r in session.outcome_list())
    first = sent[0][0]
    assert isinstance(first, Response) and first.status == 200
    assert first.header("Expires") == "600" and first.to_tag
    notifies = [m for m, _ in sent if isinstance(m, Request) and m.method == "NOTIFY"]
    assert "terminated" in (notifies[-1].header("Subscription-State") or "")
    assert session.state.options_supported is True
    assert session.state.user_agent == "fake phone 1.0"


def test_versions_increment_except_in_the_version_probes() -> None:
    session = make(liveness="notify")
    session.receive(subscribe(), PHONE, 0.0)
    sent: list[tuple[Request | Response, tuple[str, int]]] = []
    drive(session, tolerant, sent=sent)
    versions = [
        int(di.parse(m.body).version or -1)
        for m, _ in sent
        if isinstance(m, Request) and m.method == "NOTIFY" and m.body
    ]
    assert versions[0] == 0
    steps = [b - a for a, b in itertools.pairwise(versions)]
    assert steps.count(1000) == 1  # the jump
    assert steps.count(0) == 1  # the repeat
    assert set(steps) == {0, 1, 1000}
    by = {r.probe.name: r.version for r in session.outcome_list()}
    # In notify-liveness mode a check NOTIFY sits between them: the repeat repeats its version.
    assert by["version-repeat"] == by["version-jump"] + 1
    assert by["no-body"] is None


def test_strict_phone_rejections_are_recorded_with_their_code() -> None:
    session = make()
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, strict)
    got = outcomes(session)
    assert got["dialogs-2"] == ("rejected", 400)
    assert got["state-confirmed"] == ("accepted", 200)
    result = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert result.alive is True
    assert any("NOTIFY" in e.summary for e in result.exchange)


def test_crash_is_fatal_with_timer_e_retransmissions_and_bounded_wait() -> None:
    session = make(resubscribe_timeout=30.0)
    session.receive(subscribe(), PHONE, 0.0)
    end = drive(session, Crash())
    got = outcomes(session)
    assert got["dialogs-2"][0] == "fatal"
    assert got["dialogs-5"][0] == "skipped" and got["dialogs-20"][0] == "skipped"
    fatal = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    # Timer E from T1=0.5 doubling to T2=4 within 8 s: 0.5, 1.5, 3.5, 7.5.
    assert fatal.retransmissions == 4
    assert end == pytest.approx(8.0 + 30.0)


def test_fatal_then_resubscribe_continues_with_the_next_probe() -> None:
    crash = Crash()
    session = make(resubscribe_timeout=30.0)
    session.receive(subscribe(), PHONE, 0.0)
    revived = []

    def come_back(now: float) -> bool:
        if crash.dead and not revived and session.phase == "wait-subscribe":
            revived.append(now)
            crash.dead = False
            session.receive(subscribe(from_tag="ph2", call_id="call-2"), PHONE, now + 5)
            return True
        return False

    # After the reboot, the phone tolerates several dialogs once (dialogs-5 and -20 pass).
    def policy(req: Request) -> int | None:
        return crash(req) if not revived else 200

    drive(session, policy, on_idle=come_back)
    got = outcomes(session)
    assert got["dialogs-2"][0] == "fatal"
    assert got["dialogs-5"] == ("accepted", 200)
    assert got["dialogs-20"] == ("accepted", 200)
    assert session.state.subscribes == 2


def test_answer_then_silence_is_fatal() -> None:
    state = {"dead": False}

    def policy(req: Request) -> int | None:
        if state["dead"]:
            return None
        if req.method == "NOTIFY" and dialogs_in(req) > 1:
            state["dead"] = True  # answers this one, then dies
        return 200

    session = make(resubscribe_timeout=1.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, policy)
    result = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert result.outcome == "fatal" and result.status == 200 and result.alive is False
    assert "liveness OPTIONS" in result.note


def test_481_ends_the_subscription_and_waits_for_a_new_one() -> None:
    def policy(req: Request) -> int | None:
        if req.method == "NOTIFY" and b'state="partial"' in req.body:
            return 481
        return 200

    session = make(resubscribe_timeout=2.0)
    session.receive(subscribe(), PHONE, 0.0)
    end = drive(session, policy)
    got = outcomes(session)
    assert got["partial"] == ("rejected", 481)
    assert got["size-4k"][0] == "skipped"
    assert end == pytest.approx(2.0)


def test_phone_without_options_is_checked_with_notify() -> None:
    def policy(req: Request) -> int | None:
        return None if req.method == "OPTIONS" else 200

    session = make(probe_timeout=2.0)
    session.receive(subscribe(), PHONE, 0.0)
    end = drive(session, policy)
    assert session.state.options_supported is False
    assert {o for o, _ in outcomes(session).values()} == {"accepted"}
    assert end == pytest.approx(2.0)  # only the detection waited


def test_other_hosts_get_403_and_nothing_else_goes_to_them() -> None:
    session = make()
    stranger = ("127.0.0.2", 5070)
    session.receive(subscribe(addr=stranger), stranger, 0.0)
    out = session.to_send()
    assert len(out) == 1 and out[0][1] == stranger
    response = parse(out[0][0])
    assert isinstance(response, Response) and response.status == 403
    assert session.state.refused == 1 and session.state.subscribes == 0
    session.receive(subscribe(), PHONE, 0.0)
    sent: list[tuple[Request | Response, tuple[str, int]]] = []
    drive(session, tolerant, sent=sent)
    assert {addr for _, addr in sent} == {PHONE}


def test_requests_go_to_the_contact_port_on_the_phone_host() -> None:
    session = make()
    data = subscribe().replace(b"<sip:phone@127.0.0.1:5070>", b"<sip:phone@127.0.0.1:5099>")
    session.receive(data, PHONE, 0.0)
    addrs = {addr for data, addr in session.to_send() if isinstance(parse(data), Request)}
    assert addrs == {("127.0.0.1", 5099)}
    # A Contact naming another host is ignored: back to the SUBSCRIBE's source.
    other = make()
    data = subscribe().replace(b"<sip:phone@127.0.0.1:5070>", b"<sip:phone@192.0.2.7:5099>")
    other.receive(data, PHONE, 0.0)
    addrs = {addr for data, addr in other.to_send() if isinstance(parse(data), Request)}
    assert addrs == {PHONE}


def test_wrong_event_gets_489_and_no_subscription() -> None:
    session = make()
    session.receive(subscribe(event="presence"), PHONE, 0.0)
    ((data, _),) = session.to_send()
    assert parse(data).status == 489  # type: ignore[union-attr]
    assert session.phase == "wait-subscribe"


def test_no_subscribe_ends_at_the_plan_time_limit() -> None:
    session = make(plan_timeout=20.0)
    end = drive(session, tolerant)
    assert end == pytest.approx(20.0)
    assert {o for o, _ in outcomes(session).values()} == {"skipped"}


def test_tcp_does_not_retransmit() -> None:
    session = make(transport="tcp", resubscribe_timeout=1.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, Crash())
    fatal = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert fatal.outcome == "fatal" and fatal.retransmissions == 0


def test_garbage_never_raises() -> None:
    session = make()
    for data in (b"", b"\x00\xff", b"NOTIFY x SIP/2.0\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n"):
        session.receive(data, PHONE, 0.0)
    assert session.phase == "wait-subscribe"


def test_bad_config_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="probe timeout"):
        SessionConfig(phone_host="127.0.0.1", probe_timeout=0)
    with pytest.raises(UsageError, match="transport"):
        SessionConfig(phone_host="127.0.0.1", transport="sctp")  # type: ignore[arg-type]


def test_stream_framer_splits_on_content_length() -> None:
    framer = StreamFramer()
    one = subscribe()
    two = bytes(Response(status=200, reason="OK", headers=(("CSeq", "1 X"),), body=b"abc"))
    data = b"\r\n" + one + two
    got = framer.feed(data[:10]) + framer.feed(data[10:-1])
    assert got == [one]
    assert framer.feed(data[-1:]) == [two]
    with pytest.raises(SipParseError, match="without Content-Length"):
        StreamFramer().feed(b"OPTIONS x SIP/2.0\r\nVia: x\r\n\r\n")
