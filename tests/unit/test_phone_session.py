"""The probe session state machine, driven by a fake phone and a fake clock (no sockets)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from conformance.errors import SipParseError, UsageError
from conformance.oracle import dialoginfo as di
from conformance.phone import probes
from conformance.phone.probes import DEFAULT_PLAN
from conformance.phone.session import ProbeSession, SessionConfig
from conformance.sip.message import Request, Response, parse
from conformance.sip.stream import StreamFramer

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
    assert all(r.alive == "yes" for r in session.outcome_list())
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
    assert result.alive == "yes"
    assert any("NOTIFY" in e.summary for e in result.exchange)


class Limited:
    """A phone that takes up to ``limit`` dialogs and ``max_body`` bytes; over them it
    rejects (400), ignores the NOTIFY (drop) or dies until ``revive`` (crash)."""

    def __init__(self, limit: int, mode: str, max_body: int = 10**6) -> None:
        self.limit, self.mode, self.max_body = limit, mode, max_body
        self.dead = False
        self.forgot = False

    def __call__(self, req: Request) -> int | None:
        if self.dead:
            return None
        if self.forgot and req.header("Call-ID") == "call-1":
            return None
        over = req.method == "NOTIFY" and (
            dialogs_in(req) > self.limit or len(req.body) > self.max_body
        )
        if not over:
            return 200
        if self.mode == "crash":
            self.dead = True
            return None
        if self.mode == "forget":
            self.forgot = True
            return None
        return None if self.mode == "drop" else 400


def rebooting(session: ProbeSession, phone: Limited) -> Callable[[float], bool]:
    """on_idle: a dead phone SUBSCRIBEs again (new dialog) once the kit waits for it."""
    calls = itertools.count(2)

    def come_back(now: float) -> bool:
        if session.phase == "wait-subscribe" and (phone.dead or phone.forgot):
            phone.dead = phone.forgot = False
            n = next(calls)
            session.receive(subscribe(from_tag=f"ph{n}", call_id=f"call-{n}"), PHONE, now + 5)
            return True
        return False

    return come_back


@pytest.mark.parametrize("mode", ["reject", "drop", "crash"])
@pytest.mark.parametrize("limit", [1, 3, 4, 13, 19])
def test_count_search_finds_the_exact_limit(mode: str, limit: int) -> None:
    phone = Limited(limit, mode)
    session = make(probe_timeout=2.0, resubscribe_wait=30.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, phone, on_idle=rebooting(session, phone))
    counts = [r for r in session.outcome_list() if r.probe.group == "count"]
    accepted = [r.probe.dialogs for r in counts if r.outcome == "accepted"]
    failed = [r.probe.dialogs for r in counts if r.outcome != "accepted"]
    assert max(accepted, default=1) == limit and min(failed) == limit + 1
    expected = {"reject": "rejected", "drop": "dropped", "crash": "crashed"}[mode]
    assert {r.outcome for r in counts if r.outcome != "accepted"} == {expected}
    # A count at or above one that failed is never sent again (only below the crash point).
    for i, r in enumerate(counts):
        assert all(r.probe.dialogs < f.probe.dialogs for f in counts[:i] if f.outcome != "accepted")
    assert not [r for r in session.outcome_list() if r.outcome == "skipped"]
    assert [r.probe.name for r in session.outcome_list() if r.probe.group == "size"] == [
        "size-4096",
        "size-16384",
    ]


def test_no_limit_up_to_max_dialogs() -> None:
    session = make(max_dialogs=7)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, tolerant)
    counts = [r.probe.dialogs for r in session.outcome_list() if r.probe.group == "count"]
    assert counts == [2, 5, 7]


def test_size_search_finds_the_limit_within_its_precision() -> None:
    phone = Limited(100, "reject", max_body=9000)
    session = make(max_body=16384)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, phone)
    sized = [r for r in session.outcome_list() if r.probe.group == "size"]
    ok = max(r.body_bytes or 0 for r in sized if r.outcome == "accepted")
    bad = min(r.body_bytes or 0 for r in sized if r.outcome != "accepted")
    assert ok <= 9000 < bad
    assert bad - ok <= probes.SIZE_PRECISION + 2


def test_crash_with_timer_e_retransmissions_options_in_and_out_and_bounded_wait() -> None:
    session = make(resubscribe_wait=30.0)
    session.receive(subscribe(), PHONE, 0.0)
    sent: list[tuple[Request | Response, tuple[str, int]]] = []
    end = drive(session, Crash(), sent=sent)
    got = outcomes(session)
    assert got["dialogs-2"][0] == "crashed"
    crashed = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    # Timer E from T1=0.5 doubling to T2=4 within 8 s: 0.5, 1.5, 3.5, 7.5.
    assert crashed.retransmissions == 4
    assert crashed.alive == "no" and crashed.ended_subscription
    # After the unanswered NOTIFY: an OPTIONS in the dialog, then one outside it.
    options = [m for m, _ in sent if isinstance(m, Request) and m.method == "OPTIONS"]
    (outside,) = [m for m in options if m.call_id != "call-1"][:1]
    assert options.index(outside) > 1  # the detection OPTIONS and the one in the dialog first
    assert outside.to_tag is None and outside.call_id and outside.call_id.startswith("kit-alive")
    # 8 s for the NOTIFY, 8 for each OPTIONS, then the wait for a new SUBSCRIBE.
    assert end == pytest.approx(3 * 8.0 + 30.0)
    skipped = [r for r in session.outcome_list() if r.outcome == "skipped"]
    assert skipped and all(
        r.note == "the phone did not SUBSCRIBE again within 30 s" for r in skipped
    )
    lines = session.events()
    ended = next(line for line in lines if line.startswith("SUBSCRIPTION ENDED"))
    assert "power-cycle" in ended and "--resubscribe-wait" in ended and "Ctrl-C" in ended


def test_retry_crashes_sends_the_crashing_probe_once_more() -> None:
    phone = Limited(3, "crash")
    session = make(probe_timeout=1.0, retry_crashes=True)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, phone, on_idle=rebooting(session, phone))
    names = [r.probe.name for r in session.outcome_list() if r.outcome == "crashed"]
    assert names.count("dialogs-5") == 2 and names.count("dialogs-4") == 2
    plain = make(probe_timeout=1.0)
    phone = Limited(3, "crash")
    plain.receive(subscribe(), PHONE, 0.0)
    drive(plain, phone, on_idle=rebooting(plain, phone))
    names = [r.probe.name for r in plain.outcome_list() if r.outcome == "crashed"]
    assert names == ["dialogs-5", "dialogs-4"]


def test_silent_drop_keeps_the_subscription() -> None:
    session = make(probe_timeout=1.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, Limited(1, "drop"))
    result = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert result.outcome == "dropped" and result.alive == "yes"
    assert not result.ended_subscription
    assert session.state.subscribes == 1 and session.state.subscription_losses == 0
    assert all(r.outcome != "skipped" for r in session.outcome_list())


def test_a_phone_that_forgets_the_subscription_is_not_called_crashed() -> None:
    phone = Limited(1, "forget")
    session = make(probe_timeout=1.0, resubscribe_wait=5.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, phone, on_idle=rebooting(session, phone))
    result = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert result.outcome == "dropped" and result.alive == "outside the dialog only"
    assert result.ended_subscription and session.state.subscription_losses >= 1
    assert "re-save" in next(e for e in session.events() if e.startswith("SUBSCRIPTION ENDED"))


def test_answer_then_silence_is_a_crash() -> None:
    state = {"dead": False}

    def policy(req: Request) -> int | None:
        if state["dead"]:
            return None
        if req.method == "NOTIFY" and dialogs_in(req) > 1:
            state["dead"] = True  # answers this one, then dies
        return 200

    session = make(resubscribe_wait=1.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, policy)
    result = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert result.outcome == "crashed" and result.status == 200 and result.alive == "no"
    assert result.note.startswith("answered 200")


def test_481_ends_the_subscription_and_waits_for_a_new_one() -> None:
    def policy(req: Request) -> int | None:
        if req.method == "NOTIFY" and b'state="partial"' in req.body:
            return 481
        return 200

    session = make(resubscribe_wait=2.0)
    session.receive(subscribe(), PHONE, 0.0)
    end = drive(session, policy)
    got = outcomes(session)
    assert got["partial"] == ("rejected", 481)
    # The searches ran before partial state; what came after it is named as not run.
    assert got["dialogs-20"] == ("accepted", 200) and got["size-16384"] == ("accepted", 200)
    assert got["no-body"][0] == "skipped"
    assert end == pytest.approx(2.0)
    assert any("481" in e and "SUBSCRIBE again" in e for e in session.events())


def test_interrupt_keeps_what_ran_and_names_the_rest() -> None:
    session = make(probe_timeout=5.0)
    session.receive(subscribe(), PHONE, 0.0)
    for _ in range(6):  # a few probes, then a signal while one is outstanding
        for data, addr in session.to_send():
            msg = parse(data)
            if isinstance(msg, Request):
                session.receive(answer(msg, 200), addr, 0.0)
    session.interrupt(1.0, "SIGTERM")
    assert session.done and session.state.interrupted == "SIGTERM"
    results = session.outcome_list()
    assert results[0].outcome == "accepted"
    skipped = [r for r in results if r.outcome == "skipped"]
    assert skipped and all(r.note == "interrupted (SIGTERM)" for r in skipped)
    assert session.get_timer() is None


def test_waits_are_announced_with_their_option_and_ctrl_c() -> None:
    session = make(subscribe_wait=42.0)
    (line,) = session.events()
    assert "42 s" in line and "--subscribe-wait" in line and "Ctrl-C" in line
    end = drive(session, tolerant)
    assert end == pytest.approx(42.0)
    assert session.state.end_reason == "no SUBSCRIBE from 127.0.0.1 within 42 s"


def test_a_slow_answer_is_announced_once() -> None:
    session = make(probe_timeout=8.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, Limited(1, "drop"))
    waits = [e for e in session.events() if "no answer yet" in e]
    assert waits and all("--probe-timeout" in e for e in waits)


def test_advertised_address_in_via_and_contact() -> None:
    session = make(local_host="0.0.0.0", advertise_host="192.0.2.5")
    session.receive(subscribe(), PHONE, 0.0)
    texts = [data.decode() for data, _ in session.to_send()]
    assert all("0.0.0.0" not in t for t in texts)
    assert any("Via: SIP/2.0/UDP 192.0.2.5:5062" in t for t in texts)
    assert any("Contact: <sip:dialoginfo-kit@192.0.2.5:5062>" in t for t in texts)
    with pytest.raises(UsageError, match="advertise"):
        SessionConfig(phone_host="127.0.0.1", local_host="0.0.0.0")


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
    session.receive(subscribe(addr=stranger), stranger, 0.0)  # a retransmission: said once
    refused = [e for e in session.events() if "refused" in e]
    assert refused == [
        "SUBSCRIBE from 127.0.0.2 refused: not the phone under test (--phone 127.0.0.1)"
    ]
    assert session.state.refused_subscribes == ["127.0.0.2"]
    session.to_send()
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
    session = make(plan_timeout=20.0, subscribe_wait=100.0)
    end = drive(session, tolerant)
    assert end == pytest.approx(20.0)
    assert {o for o, _ in outcomes(session).values()} == {"skipped"}


def test_tcp_does_not_retransmit() -> None:
    session = make(transport="tcp", resubscribe_wait=1.0)
    session.receive(subscribe(), PHONE, 0.0)
    drive(session, Crash())
    crashed = {r.probe.name: r for r in session.outcome_list()}["dialogs-2"]
    assert crashed.outcome == "crashed" and crashed.retransmissions == 0


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
