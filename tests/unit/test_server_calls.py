"""The reference server's call proxy and dialog tracker, sans-IO: a call driven through the core
with a fake clock, and each E fault bending its own rule (``test_fault_*``, counted by
``test_server_core.test_every_fault_has_a_unit_test``)."""

from __future__ import annotations

from conformance.oracle import dialoginfo as di
from conformance.server.core import PresenceCore, ServerConfig
from conformance.server.faults import hooks_for
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response, response_to

CALLER = ("127.0.0.1", 7001)
CALLEE = ("127.0.0.1", 7002)
ALICE, BOB = "sip:alice@example.org", "sip:bob@example.org"


class Call:
    """One call through a core: the caller's INVITE, the callee's answers, a BYE."""

    def __init__(self, *faults: str) -> None:
        self.core = PresenceCore(ServerConfig(port=5060), hooks=hooks_for(faults))
        self.now = 100.0
        self.forwarded: Request | None = None

    def send(self, msg: Request | Response, addr: tuple[str, int]) -> list[tuple[object, tuple]]:
        self.core.receive_datagram(bytes(msg), addr, self.now)
        return [(sipmsg.parse(d), a) for d, a in self.core.datagrams_to_send(self.now)]

    def invite(self) -> list[tuple[object, tuple]]:
        req = Request(
            method="INVITE",
            uri="sip:bob@127.0.0.1:7002",
            headers=(
                ("Via", "SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bK-a1"),
                ("Max-Forwards", "70"),
                ("From", f'"Alice" <{ALICE}>;tag=a1'),
                ("To", f'"Bob" <{BOB}>'),
                ("Call-ID", "c1"),
                ("CSeq", "1 INVITE"),
                ("Contact", "<sip:alice@127.0.0.1:7001>"),
            ),
        )
        out = self.send(req, CALLER)
        self.forwarded = next(m for m, a in out if a == CALLEE)  # type: ignore[assignment]
        return out

    def respond(self, status: int, tag: str | None = "b1") -> list[tuple[object, tuple]]:
        assert self.forwarded is not None
        resp = response_to(self.forwarded, status, "X", to_tag=tag)
        if tag is None:
            resp = Response(
                status=status,
                reason="X",
                headers=tuple(
                    (n, self.forwarded.header("To") or "") if n == "To" else (n, v)
                    for n, v in resp.headers
                ),
            )
        resp = Response(
            status=status,
            reason="X",
            headers=(*resp.headers, ("Contact", "<sip:bob@127.0.0.1:7002>")),
        )
        return self.send(resp, CALLEE)

    def bye(self, *, by_caller: bool = True) -> list[tuple[object, tuple]]:
        frm, to = (f"<{ALICE}>;tag=a1", f"<{BOB}>;tag=b1")
        uri, addr = "sip:bob@127.0.0.1:7002", CALLER
        if not by_caller:
            frm, to, uri, addr = to, frm, "sip:alice@127.0.0.1:7001", CALLEE
        req = Request(
            method="BYE",
            uri=uri,
            headers=(
                ("Via", f"SIP/2.0/UDP {addr[0]}:{addr[1]};branch=z9hG4bK-bye"),
                ("Route", "<sip:127.0.0.1:5060;lr>"),
                ("From", frm),
                ("To", to),
                ("Call-ID", "c1"),
                ("CSeq", "2 BYE"),
            ),
        )
        return self.send(req, addr)

    def dialog(self, aor: str) -> di.Dialog | None:
        pubs = self.core.publications(aor)
        if not pubs:
            return None
        items = [i for i in di.parse(pubs[-1].body).items if isinstance(i, di.Dialog)]
        return items[0] if items else None

    def answered(self) -> None:
        self.invite()
        self.respond(180)
        self.respond(200)


def test_invite_is_record_routed_to_the_request_uri_and_states_follow() -> None:
    call = Call()
    out = call.invite()
    assert [(m.status if isinstance(m, Response) else m.method, a) for m, a in out] == [
        (100, CALLER),
        ("INVITE", CALLEE),
    ]
    fwd = call.forwarded
    assert fwd is not None and fwd.header("Record-Route") == "<sip:127.0.0.1:5060;lr>"
    assert fwd.header("Max-Forwards") == "69"
    assert call.dialog(ALICE).state == "trying"  # type: ignore[union-attr]
    assert call.dialog(BOB) is None  # callee trying is not published (publish_on_trying off)
    out = call.respond(180)
    ((ringing, where),) = out
    assert isinstance(ringing, Response) and where == CALLER
    assert ringing.header_all("Via") == ["SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bK-a1"]
    caller, callee = call.dialog(ALICE), call.dialog(BOB)
    assert caller is not None and callee is not None
    assert (caller.state, callee.state) == ("early", "early")
    assert (caller.direction, callee.direction) == ("initiator", "recipient")
    assert (caller.local_tag, caller.remote_tag) == ("a1", "b1")
    assert (callee.local_tag, callee.remote_tag) == ("b1", "a1")
    call.respond(200)
    assert call.dialog(ALICE).state == "confirmed"  # type: ignore[union-attr]
    out = call.bye()
    assert [(m.method, a) for m, a in out] == [("BYE", CALLEE)]  # type: ignore[union-attr]
    caller, callee = call.dialog(ALICE), call.dialog(BOB)
    assert (caller.state, caller.event) == ("terminated", "local-bye")  # type: ignore[union-attr]
    assert (callee.state, callee.event) == ("terminated", "remote-bye")  # type: ignore[union-attr]


def test_timer_c_gives_the_caller_408_and_cancels_the_branch() -> None:
    call = Call()
    call.invite()
    call.respond(100, tag=None)
    call.now += 5.0
    call.core.handle_timer(call.now)
    out = [(sipmsg.parse(d), a) for d, a in call.core.datagrams_to_send(call.now)]
    kinds = [(m.status if isinstance(m, Response) else m.method, a) for m, a in out]
    assert (408, CALLER) in kinds and ("CANCEL", CALLEE) in kinds
    caller, callee = call.dialog(ALICE), call.dialog(BOB)
    assert (caller.event, caller.code) == ("rejected", "408")  # type: ignore[union-attr]
    assert callee.event == "cancelled"  # type: ignore[union-attr]


def test_fault_call_callee_never_early() -> None:
    call = Call("call-callee-never-early")
    call.invite()
    call.respond(180)
    assert call.dialog(BOB) is None and call.dialog(ALICE).state == "early"  # type: ignore[union-attr]


def test_fault_call_never_confirmed() -> None:
    call = Call("call-never-confirmed")
    call.answered()
    assert call.dialog(ALICE).state == "early"  # type: ignore[union-attr]


def test_fault_call_rejected_as_cancelled() -> None:
    call = Call("call-rejected-as-cancelled")
    call.invite()
    call.respond(486)
    assert call.dialog(BOB).event == "cancelled"  # type: ignore[union-attr]


def test_fault_call_cancelled_as_rejected() -> None:
    call = Call("call-cancelled-as-rejected")
    call.invite()
    call.respond(180)
    cancel = Request(
        method="CANCEL",
        uri="sip:bob@127.0.0.1:7002",
        headers=(
            ("Via", "SIP/2.0/UDP 127.0.0.1:7001;branch=z9hG4bK-a1"),
            ("From", f"<{ALICE}>;tag=a1"),
            ("To", f"<{BOB}>"),
            ("Call-ID", "c1"),
            ("CSeq", "1 CANCEL"),
        ),
    )
    call.send(cancel, CALLER)
    call.respond(487)
    assert call.dialog(BOB).event == "rejected"  # type: ignore[union-attr]


def test_fault_call_bye_swapped() -> None:
    call = Call("call-bye-swapped")
    call.answered()
    call.bye()
    assert call.dialog(ALICE).event == "remote-bye"  # type: ignore[union-attr]


def test_fault_call_direction_swapped() -> None:
    call = Call("call-direction-swapped")
    call.invite()
    assert call.dialog(ALICE).direction == "recipient"  # type: ignore[union-attr]


def test_fault_call_tags_swapped() -> None:
    call = Call("call-tags-swapped")
    call.invite()
    call.respond(180)
    assert call.dialog(ALICE).local_tag == "b1"  # type: ignore[union-attr]


def test_fault_call_identities_swapped() -> None:
    call = Call("call-identities-swapped")
    call.invite()
    assert call.dialog(ALICE).local.identity == BOB  # type: ignore[union-attr]


def test_fault_call_slow_end() -> None:
    call = Call("call-slow-end")
    call.answered()
    call.bye()
    assert call.dialog(ALICE).state == "confirmed"  # type: ignore[union-attr]
    call.now += 2.0  # past the E09 bound, still not published
    call.core.handle_timer(call.now)
    assert call.dialog(ALICE).state == "confirmed"  # type: ignore[union-attr]


def test_fault_call_revives() -> None:
    call = Call("call-revives")
    call.answered()
    call.bye()
    call.now += 0.25
    call.core.handle_timer(call.now)
    assert call.dialog(ALICE).state == "confirmed"  # type: ignore[union-attr]


def test_fault_call_callee_trying() -> None:
    call = Call("call-callee-trying")
    call.invite()
    assert call.dialog(BOB).state == "trying"  # type: ignore[union-attr]
