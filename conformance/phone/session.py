"""The probe session: the kit as a presence server for one phone, as a sans-IO state machine.

Bytes and a clock in, bytes and timers out (the shape of ``conformance.server.core``):
``receive(data, addr, now)``, ``to_send()``, ``get_timer()``, ``handle_timer(now)``, ``done``.
The runner feeds it from a socket; the unit tests feed it from a fake clock.

One step at a time, one client transaction outstanding at a time::

    wait-subscribe --SUBSCRIBE--> initial (baseline NOTIFY) --answer--> [detect (OPTIONS)]
      --> probe (NOTIFY with the probe body) --answer--> check (OPTIONS or baseline NOTIFY)
      --answer--> next probe ... --> closing (terminated NOTIFY) --> done

A probe is *accepted* (2xx), *rejected* (another final status) or *fatal*: no final answer
within the probe time limit, or an answer followed by silence to the liveness check, or a new
SUBSCRIBE while the NOTIFY was outstanding (the phone restarted). After a fatal probe, or a
rejection that ends the subscription (RFC 6665 §4.2.2: 481 and friends), the session waits
for the phone to SUBSCRIBE again, then goes on with the next probe; if it does not come back
in time the remaining probes are *skipped*. Everything is bounded: each transaction by the
probe time limit (UDP retransmissions follow RFC 3261 Timer E inside it), the wait for a new
SUBSCRIBE, and the whole session by the plan time limit.

Safety: requests (NOTIFY, OPTIONS) only ever go to the phone host the user named; a request
from any other host gets a 403 back to where it came from and changes nothing.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from conformance.errors import SipParseError, UsageError
from conformance.oracle import dialoginfo as di
from conformance.phone import probes
from conformance.phone.probes import Probe
from conformance.server.core import REMOVING_NOTIFY_STATUS
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response, response_to, uri_of

Address = tuple[str, int]
Outcome = Literal["accepted", "rejected", "fatal", "skipped"]
Transport = Literal["udp", "tcp"]
Liveness = Literal["auto", "options", "notify"]

USER_AGENT = "dialoginfo-conformance phone kit"
MAX_LOG_TEXT = 20000
"""Characters of one message kept as evidence (the 16 kB probe fits)."""

_CONTACT = re.compile(r"^sips?:(?:[^@;>]*@)?(\[[^\]]+\]|[^:;>?]+)(?::(\d{1,5}))?", re.IGNORECASE)
_EXPIRES = re.compile(r"^\s*(\d{1,10})\s*$")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What the user asked for; every wait the session makes is bounded by one of these."""

    phone_host: str
    """The only host requests are sent to, and the only one whose SUBSCRIBE is accepted."""
    local_host: str = "127.0.0.1"
    local_port: int = 5062
    transport: Transport = "udp"
    probe_timeout: float = 8.0
    """Seconds for one transaction (probe NOTIFY, liveness check) to get a final answer."""
    plan_timeout: float = 600.0
    """Seconds for the whole session, including the wait for the first SUBSCRIBE."""
    resubscribe_timeout: float = 90.0
    """Seconds to wait for the phone to SUBSCRIBE again after a fatal probe."""
    liveness: Liveness = "auto"
    """How to check the phone survived a probe: in-dialog OPTIONS, a baseline NOTIFY, or
    OPTIONS when the phone answers one right after subscribing (auto)."""
    max_expires: int = 3600
    t1: float = 0.5
    t2: float = 4.0

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp"):
            raise UsageError(f"transport {self.transport!r}: use udp or tcp")
        if self.liveness not in ("auto", "options", "notify"):
            raise UsageError(f"liveness {self.liveness!r}: use auto, options or notify")
        for name in ("probe_timeout", "plan_timeout", "resubscribe_timeout"):
            value = getattr(self, name)
            if not 0 < value < 86400:
                raise UsageError(f"{name.replace('_', ' ')} {value!r}: use seconds above 0")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One message sent or received, as evidence in the report."""

    t: float
    """Seconds since the session started."""
    direction: Literal["in", "out"]
    summary: str
    """Start line (and CSeq), or ``(retransmission)``."""
    text: str = ""
    """The whole message (cut at ``MAX_LOG_TEXT``); empty for retransmissions."""
    peer: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    probe: Probe
    outcome: Outcome
    status: int | None = None
    reason: str = ""
    alive: bool | None = None
    """Did the phone answer the liveness check after the probe (None: not checked)?"""
    note: str = ""
    version: int | None = None
    body_bytes: int | None = None
    message_bytes: int = 0
    retransmissions: int = 0
    elapsed: float | None = None
    """Seconds from sending the probe to its final answer."""
    exchange: tuple[Exchange, ...] = ()


@dataclass(slots=True)
class _Subscription:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str
    remote_party: str
    target: str
    addr: Address
    event: str
    expires: int
    cseq: int = 0
    next_version: int = 0
    last_version: int | None = None


@dataclass(slots=True)
class _Txn:
    purpose: Literal["initial", "detect", "probe", "check", "closing"]
    method: str
    branch: str
    cseq: int
    data: bytes
    addr: Address
    sent_at: float
    retransmit_at: float
    interval: float
    deadline: float
    retransmissions: int = 0
    version: int | None = None
    body_bytes: int | None = None


@dataclass(slots=True)
class _Pending:
    """The probe under way: what its NOTIFY got, before the liveness check decides."""

    index: int
    log_start: int
    status: int | None = None
    reason: str = ""
    version: int | None = None
    body_bytes: int | None = None
    message_bytes: int = 0
    retransmissions: int = 0
    elapsed: float | None = None


@dataclass
class SessionState:
    """Everything the report needs besides the per-probe results."""

    notes: list[tuple[float, str]] = field(default_factory=list)
    user_agent: str | None = None
    subscribes: int = 0
    options_supported: bool | None = None
    refused: int = 0
    """Requests refused with 403 because they came from another host."""


class ProbeSession:
    """Walks ``plan`` against the phone of ``config``; see the module docstring."""

    def __init__(self, plan: tuple[Probe, ...], config: SessionConfig, now: float) -> None:
        if not plan:
            raise UsageError("the probe plan is empty")
        self.plan = plan
        self.config = config
        self.started = now
        self.plan_deadline = now + config.plan_timeout
        self.state = SessionState()
        self.log: list[Exchange] = []
        self.results: list[ProbeResult | None] = [None] * len(plan)
        self._out: list[tuple[bytes, Address]] = []
        self._sub: _Subscription | None = None
        self._txn: _Txn | None = None
        self._pending: _Pending | None = None
        self._index = 0
        """The next probe to send."""
        self._phase = "wait-subscribe"
        self._wait_until = self.plan_deadline
        self._use_options = config.liveness == "options"
        self._answered: dict[tuple[str | None, str | None, str | None], bytes] = {}

    # ---- sans-IO API ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def phase(self) -> str:
        return self._phase

    def receive(self, data: bytes, addr: Address, now: float) -> None:
        """One datagram (UDP) or one framed message (TCP) from ``addr``; never raises."""
        if self.done:
            return
        try:
            msg = sipmsg.parse(data)
        except SipParseError as exc:
            self._note(now, f"unparsable message from {addr[0]}:{addr[1]} dropped: {exc.message}")
            return
        self._record(now, "in", msg, data, addr)
        if isinstance(msg, Response):
            self._on_response(msg, now)
        else:
            self._on_request(msg, addr, now)

    def to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        if self.done:
            return None
        times = [self.plan_deadline]
        if self._txn is not None:
            times.append(self._txn.deadline)
            if self.config.transport == "udp":
                times.append(self._txn.retransmit_at)
        if self._phase == "wait-subscribe":
            times.append(self._wait_until)
        return min(times)

    def handle_timer(self, now: float) -> None:
        if self.done:
            return
        if now >= self.plan_deadline:
            self._finish(now, "plan time limit reached")
            return
        txn = self._txn
        if txn is not None:
            if now >= txn.deadline:
                self._txn = None
                self._timed_out(txn, now)
            elif self.config.transport == "udp" and now >= txn.retransmit_at:
                self._out.append((txn.data, txn.addr))
                txn.retransmissions += 1
                txn.interval = min(txn.interval * 2, self.config.t2)
                txn.retransmit_at = now + txn.interval
                self.log.append(
                    Exchange(self._t(now), "out", "(retransmission)", peer=_peer(txn.addr))
                )
        if self._phase == "wait-subscribe" and now >= self._wait_until:
            self._finish(now, "the phone did not SUBSCRIBE (again) in time")

    def outcome_list(self) -> list[ProbeResult]:
        """Results in plan order; probes never reached read as skipped."""
        return [
            r if r is not None else ProbeResult(p, "skipped", note="not reached")
            for p, r in zip(self.plan, self.results, strict=True)
        ]

    # ---- requests from the phone --------------------------------------------------------------

    def _on_request(self, req: Request, addr: Address, now: float) -> None:
        if req.method == "ACK":
            return
        if not all(req.header(h) for h in ("Via", "From", "To", "Call-ID", "CSeq")):
            self._note(now, f"{req.method} without Via/From/To/Call-ID/CSeq dropped")
            return
        if addr[0] != self.config.phone_host:
            self.state.refused += 1
            self._reply(req, addr, now, 403, "Forbidden (not the phone under test)")
            return
        key = (req.branch, req.call_id, req.header("CSeq"))
        cached = self._answered.get(key)
        if cached is not None:
            self._out.append((cached, addr))  # a retransmitted request: same answer
            return
        if req.method == "SUBSCRIBE":
            self._on_subscribe(req, addr, now)
        elif req.method == "OPTIONS":
            self._reply(req, addr, now, 200, "OK", extra=(("Accept", di.CONTENT_TYPE),))
        else:
            self._reply(
                req, addr, now, 405, "Method Not Allowed", extra=(("Allow", "SUBSCRIBE, OPTIONS"),)
            )

    def _on_subscribe(self, req: Request, addr: Address, now: float) -> None:
        event = (req.header("Event") or "").split(";", 1)[0].strip().lower()
        if event != "dialog":
            self._reply(req, addr, now, 489, "Bad Event", extra=(("Allow-Events", "dialog"),))
            return
        text = req.header("Expires")
        m = _EXPIRES.match(text) if text is not None else None
        if text is not None and m is None:
            self._reply(req, addr, now, 400, "Bad Expires")
            return
        expires = min(int(m.group(1)) if m else 3600, self.config.max_expires)
        sub = self._sub
        if req.to_tag:
            if sub is None or (req.call_id, req.to_tag, req.from_tag) != (
                sub.call_id,
                sub.local_tag,
                sub.remote_tag,
            ):
                self._reply(req, addr, now, 481, "Subscription Does Not Exist")
                return
            self._reply(req, addr, now, 200, "OK", extra=self._sub_extra(expires))
            if expires == 0:
                self._note(now, "the phone unsubscribed (Expires: 0)")
                self._lost(now, "the phone ended the subscription (Expires: 0)", fatal=False)
            else:
                sub.expires = expires
                self._note(now, f"subscription refreshed, expires={expires}")
            return
        if expires == 0:
            self._reply(req, addr, now, 200, "OK", extra=self._sub_extra(0))
            self._note(now, "a fetch SUBSCRIBE (Expires: 0) answered; not probed")
            return
        # A new subscription: the first one, or the phone coming back (after a restart).
        local_tag = secrets.token_hex(6)
        self._reply(req, addr, now, 200, "OK", to_tag=local_tag, extra=self._sub_extra(expires))
        self.state.subscribes += 1
        self.state.user_agent = self.state.user_agent or req.header("User-Agent")
        if self._phase in ("initial", "detect", "probe", "check", "closing"):
            self._abandon(
                now,
                "a new SUBSCRIBE came while a request was outstanding: it restarted",
                fatal=True,
            )
        self._sub = _Subscription(
            call_id=req.call_id or "",
            local_tag=local_tag,
            remote_tag=req.from_tag or "",
            local_party=f"{req.header('To')};tag={local_tag}",
            remote_party=req.header("From") or "",
            target=uri_of(req.header("Contact")) or uri_of(req.header("From")) or req.uri,
            addr=self._target_addr(req, addr),
            event=req.header("Event") or "dialog",
            expires=expires,
        )
        self._note(
            now,
            f"SUBSCRIBE #{self.state.subscribes} from {addr[0]}:{addr[1]} for {req.uri} accepted, "
            f"expires={expires}; NOTIFYs go to {_peer(self._sub.addr)}",
        )
        if self._index >= len(self.plan):
            self._close(now)
            return
        entity = self._entity(self._sub.local_party)
        self._send_notify(now, "initial", probes.baseline(entity, 0), version=0)

    def _target_addr(self, req: Request, source: Address) -> Address:
        """Where NOTIFYs go: the Contact's port when it names the phone host (UDP), else back
        to the SUBSCRIBE's source (always over TCP: the phone's own connection)."""
        if self.config.transport == "tcp":
            return source
        m = _CONTACT.match(uri_of(req.header("Contact")) or "")
        if m and m.group(1).strip("[]") == self.config.phone_host:
            return (self.config.phone_host, int(m.group(2)) if m.group(2) else 5060)
        return source

    # ---- responses to our requests ------------------------------------------------------------

    def _on_response(self, resp: Response, now: float) -> None:
        txn = self._txn
        if txn is None or resp.branch != txn.branch or resp.cseq != (txn.cseq, txn.method):
            return  # a stray, or a retransmitted final response
        if resp.status < 200:
            txn.interval = self.config.t2
            txn.retransmit_at = now + txn.interval
            return
        self._txn = None
        self._completed(txn, resp, now)

    def _completed(self, txn: _Txn, resp: Response, now: float) -> None:
        purpose = txn.purpose
        removing = resp.status in REMOVING_NOTIFY_STATUS and txn.method == "NOTIFY"
        if purpose == "initial":
            self._note(now, f"initial NOTIFY answered {resp.status} {resp.reason}")
            if removing:
                self._lost(now, "")
            elif self.config.liveness == "auto" and self.state.options_supported is None:
                self._send_options(now, "detect")
            else:
                self._next_probe(now)
        elif purpose == "detect":
            self.state.options_supported = True
            self._use_options = True
            self._note(now, f"OPTIONS answered {resp.status}: liveness checked with OPTIONS")
            self._next_probe(now)
        elif purpose == "probe":
            pending = self._pending
            assert pending is not None
            pending.status, pending.reason = resp.status, resp.reason
            pending.retransmissions = txn.retransmissions
            pending.elapsed = now - txn.sent_at
            if removing:
                self._settle(
                    now,
                    "rejected",
                    alive=None,
                    note=f"{resp.status} ends the subscription (RFC 6665 §4.2.2)",
                )
                self._lost(now, "")
            else:
                self._check(now)
        elif purpose == "check":
            pending = self._pending
            assert pending is not None
            outcome: Outcome = "accepted" if 200 <= (pending.status or 0) < 300 else "rejected"
            self._settle(now, outcome, alive=True)
            if removing:
                self._lost(now, "")
            else:
                self._next_probe(now)
        elif purpose == "closing":
            self._phase = "done"
            self._note(now, f"final NOTIFY answered {resp.status}")

    def _timed_out(self, txn: _Txn, now: float) -> None:
        limit = f"{self.config.probe_timeout:g} s"
        if txn.purpose == "initial":
            self._note(now, f"initial NOTIFY unanswered after {limit}")
            self._lost(now, "")
        elif txn.purpose == "detect":
            self.state.options_supported = False
            self._use_options = False
            self._note(now, "OPTIONS unanswered: liveness checked with a baseline NOTIFY")
            self._next_probe(now)
        elif txn.purpose == "probe":
            pending = self._pending
            assert pending is not None
            pending.retransmissions = txn.retransmissions
            self._settle(now, "fatal", alive=None, note=f"no final answer within {limit}")
            self._lost(now, "")
        elif txn.purpose == "check":
            pending = self._pending
            assert pending is not None
            what = "OPTIONS" if txn.method == "OPTIONS" else "NOTIFY"
            self._settle(
                now,
                "fatal",
                alive=False,
                note=f"answered {pending.status}, then no answer to the liveness {what} "
                f"within {limit}",
            )
            self._lost(now, "")
        elif txn.purpose == "closing":
            self._phase = "done"
            self._note(now, f"final NOTIFY unanswered after {limit}")

    # ---- the walk ------------------------------------------------------------------------------

    def _next_probe(self, now: float) -> None:
        if self._index >= len(self.plan):
            self._close(now)
            return
        index = self._index
        self._index += 1
        probe = self.plan[index]
        sub = self._sub
        assert sub is not None
        entity = self._entity(sub.local_party)
        if probe.version == "jump":
            version = (sub.last_version or 0) + probes.VERSION_JUMP
        elif probe.version == "repeat":
            version = sub.last_version if sub.last_version is not None else 0
        else:
            version = sub.next_version
        body = probes.body_for(probe, entity, version)
        self._pending = _Pending(index=index, log_start=len(self.log))
        self._phase = "probe"
        self._send_notify(now, "probe", body, version=version if body is not None else None)

    def _check(self, now: float) -> None:
        self._phase = "check"
        if self._use_options:
            self._send_options(now, "check")
        else:
            sub = self._sub
            assert sub is not None
            body = probes.baseline(self._entity(sub.local_party), sub.next_version)
            self._send_notify(now, "check", body, version=sub.next_version)

    def _settle(self, now: float, outcome: Outcome, *, alive: bool | None, note: str = "") -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        self.results[pending.index] = ProbeResult(
            probe=self.plan[pending.index],
            outcome=outcome,
            status=pending.status,
            reason=pending.reason,
            alive=alive,
            note=note,
            version=pending.version,
            body_bytes=pending.body_bytes,
            message_bytes=pending.message_bytes,
            retransmissions=pending.retransmissions,
            elapsed=pending.elapsed,
            exchange=tuple(self.log[pending.log_start :]),
        )

    def _abandon(self, now: float, why: str, *, fatal: bool) -> None:
        """Settle the probe under way (if any) and forget the transaction and subscription.

        ``fatal``: the phone died (no answer, restart). Otherwise the subscription ended on the
        phone's word (481, unsubscribe) and an answer already given still counts."""
        pending = self._pending
        if pending is not None:
            if not fatal and pending.status is not None:
                ok = 200 <= pending.status < 300
                self._settle(now, "accepted" if ok else "rejected", alive=None, note=why)
            else:
                self._settle(now, "fatal", alive=None, note=why)
        self._txn = None
        self._sub = None

    def _lost(self, now: float, why: str, *, fatal: bool = True) -> None:
        """The subscription is gone (or the phone is): wait for a new SUBSCRIBE, bounded."""
        self._abandon(now, why, fatal=fatal)
        if self._index >= len(self.plan):
            self._finish(now, "")
            return
        self._phase = "wait-subscribe"
        self._wait_until = min(self.plan_deadline, now + self.config.resubscribe_timeout)
        self._note(now, f"waiting up to {self._wait_until - now:g} s for a new SUBSCRIBE")

    def _close(self, now: float) -> None:
        sub = self._sub
        if sub is None:
            self._finish(now, "")
            return
        body = probes.baseline(self._entity(sub.local_party), sub.next_version)
        self._phase = "closing"
        self._send_notify(
            now, "closing", body, version=sub.next_version, state="terminated;reason=noresource"
        )

    def _finish(self, now: float, why: str) -> None:
        if self._pending is not None:
            self._settle(now, "skipped", alive=None, note=why)
        for i, result in enumerate(self.results):
            if result is None:
                self.results[i] = ProbeResult(self.plan[i], "skipped", note=why or "not reached")
        self._txn = None
        self._phase = "done"
        if why:
            self._note(now, why)

    # ---- building and sending -------------------------------------------------------------------

    def _send_notify(
        self,
        now: float,
        purpose: Literal["initial", "probe", "check", "closing"],
        body: bytes | None,
        *,
        version: int | None,
        state: str | None = None,
    ) -> None:
        sub = self._sub
        assert sub is not None
        if purpose == "initial":
            self._phase = "initial"
        if version is not None:
            sub.last_version = version
            sub.next_version = max(sub.next_version, version + 1)
        headers = [
            *self._request_headers(sub, "NOTIFY"),
            ("Event", sub.event),
            ("Subscription-State", state or f"active;expires={sub.expires}"),
        ]
        if body is not None:
            headers.append(("Content-Type", di.CONTENT_TYPE))
        request = Request(method="NOTIFY", uri=sub.target, headers=tuple(headers), body=body or b"")
        self._start(now, purpose, request, sub, version=version, body=body)

    def _send_options(self, now: float, purpose: Literal["detect", "check"]) -> None:
        sub = self._sub
        assert sub is not None
        if purpose == "detect":
            self._phase = "detect"
        headers = (*self._request_headers(sub, "OPTIONS"), ("Accept", "application/sdp"))
        self._start(now, purpose, Request(method="OPTIONS", uri=sub.target, headers=headers), sub)

    def _request_headers(self, sub: _Subscription, method: str) -> list[tuple[str, str]]:
        sub.cseq += 1
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        return [
            (
                "Via",
                f"SIP/2.0/{self.config.transport.upper()} {self._hostport()};branch={branch};rport",
            ),
            ("Max-Forwards", "70"),
            ("From", sub.local_party),
            ("To", sub.remote_party),
            ("Call-ID", sub.call_id),
            ("CSeq", f"{sub.cseq} {method}"),
            ("Contact", self._contact()),
            ("User-Agent", USER_AGENT),
        ]

    def _start(
        self,
        now: float,
        purpose: Literal["initial", "detect", "probe", "check", "closing"],
        request: Request,
        sub: _Subscription,
        *,
        version: int | None = None,
        body: bytes | None = None,
    ) -> None:
        data = bytes(request)
        self._out.append((data, sub.addr))
        self._record(now, "out", request, data, sub.addr)
        self._txn = _Txn(
            purpose=purpose,
            method=request.method,
            branch=request.branch or "",
            cseq=sub.cseq,
            data=data,
            addr=sub.addr,
            sent_at=now,
            retransmit_at=now + self.config.t1,
            interval=self.config.t1,
            deadline=now + self.config.probe_timeout,
        )
        if purpose == "probe" and self._pending is not None:
            self._pending.version = version
            self._pending.body_bytes = len(body) if body is not None else None
            self._pending.message_bytes = len(data)

    def _reply(
        self,
        req: Request,
        addr: Address,
        now: float,
        status: int,
        reason: str,
        *,
        to_tag: str | None = None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        response = response_to(req, status, reason, to_tag=to_tag, server=USER_AGENT, extra=extra)
        data = bytes(response)
        self._answered[(req.branch, req.call_id, req.header("CSeq"))] = data
        self._out.append((data, addr))
        self._record(now, "out", response, data, addr)

    def _sub_extra(self, expires: int) -> tuple[tuple[str, str], ...]:
        return (("Expires", str(expires)), ("Contact", self._contact()))

    def _hostport(self) -> str:
        host = self.config.local_host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.config.local_port}"

    def _contact(self) -> str:
        suffix = ";transport=tcp" if self.config.transport == "tcp" else ""
        return f"<sip:dialoginfo-kit@{self._hostport()}{suffix}>"

    @staticmethod
    def _entity(uri_or_party: str) -> str:
        uri = uri_of(uri_or_party) or uri_or_party
        return uri.split(";", 1)[0]

    # ---- evidence ------------------------------------------------------------------------------

    def _t(self, now: float) -> float:
        return round(now - self.started, 6)

    def _note(self, now: float, text: str) -> None:
        self.state.notes.append((self._t(now), text))

    def _record(
        self,
        now: float,
        direction: Literal["in", "out"],
        msg: sipmsg.Message,
        data: bytes,
        addr: Address,
    ) -> None:
        head = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        cseq = msg.header("CSeq")
        summary = f"{head} ({cseq})" if isinstance(msg, Response) and cseq else head
        text = data.decode("utf-8", "replace")[:MAX_LOG_TEXT]
        self.log.append(Exchange(self._t(now), direction, summary, text, _peer(addr)))


def _peer(addr: Address) -> str:
    return f"{addr[0]}:{addr[1]}"
