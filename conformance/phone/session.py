"""The probe session: the kit as a presence server for one phone, as a sans-IO state machine.

Bytes and a clock in, bytes, timers and progress lines out (the shape of
``conformance.server.core``): ``receive(data, addr, now)``, ``to_send()``, ``get_timer()``,
``handle_timer(now)``, ``events()``, ``done``. The runner feeds it from a socket; the unit
tests feed it from a fake clock.

One step at a time, one client transaction outstanding at a time::

    wait-subscribe --SUBSCRIBE--> initial (baseline NOTIFY) --answer--> [detect (OPTIONS)]
      --> probe (NOTIFY with the probe body) --answer--> check (OPTIONS or baseline NOTIFY)
      --answer--> next probe ... --> closing (terminated NOTIFY) --> done

Which probe comes next is the ``Planner``'s business (count and size searches, then the fixed
probes). A probe ends as one of:

* *accepted* (2xx) or *rejected* (another final status), the phone answering the liveness
  check afterwards;
* *dropped*: no answer to the NOTIFY, but the phone answers an OPTIONS in the dialog: it
  ignores such NOTIFYs and stays alive (its BLF keys show stale state);
* *crashed*: no answer, and no answer to an OPTIONS inside the dialog nor to one outside it
  (a new Call-ID): the phone is down (or hung); it may reboot and SUBSCRIBE again.

An OPTIONS answered only outside the dialog means the phone is up but forgot the subscription.
When the subscription ends (a crash, a forgotten dialog, or a response that ends it per RFC 6665
§4.2.2 such as 481) the session says so at once, with what to do to make the phone SUBSCRIBE
again, and waits ``resubscribe_wait`` seconds for it; then it goes on with the probes left, or
reports them not run. Everything is bounded: each transaction by ``probe_timeout`` (UDP
retransmissions follow RFC 3261 Timer E inside it), the first SUBSCRIBE by ``subscribe_wait``,
each re-SUBSCRIBE by ``resubscribe_wait``, the whole session by ``plan_timeout``.

Safety: requests (NOTIFY, OPTIONS) only ever go to the phone host the user named; a request
from any other host gets a 403 back to where it came from and changes nothing (a SUBSCRIBE so
refused is reported at once: the usual cause is a wrong ``--phone``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal

from conformance.errors import SipParseError, UsageError
from conformance.oracle import dialoginfo as di
from conformance.phone import probes
from conformance.phone.planner import Planner
from conformance.phone.probes import Probe
from conformance.server.core import REMOVING_NOTIFY_STATUS
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response, response_to, uri_of

Address = tuple[str, int]
Outcome = Literal["accepted", "rejected", "dropped", "crashed", "skipped"]
Alive = Literal["yes", "outside the dialog only", "no"]
Transport = Literal["udp", "tcp"]
Liveness = Literal["auto", "options", "notify"]
Purpose = Literal["initial", "detect", "probe", "check", "alive-out", "closing"]

USER_AGENT = "dialoginfo-conformance phone kit"
MAX_LOG_TEXT = 20000
"""Characters of one message kept as evidence (the 16 kB probe fits)."""
CTRL_C = "Ctrl-C stops and keeps the report"
NOTICE_AFTER = 2.0
"""Seconds without an answer after which the kit says it is still waiting (once)."""

_CONTACT = re.compile(r"^sips?:(?:[^@;>]*@)?(\[[^\]]+\]|[^:;>?]+)(?::(\d{1,5}))?", re.IGNORECASE)
_EXPIRES = re.compile(r"^\s*(\d{1,10})\s*$")


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What the user asked for; every wait the session makes is bounded by one of these."""

    phone_host: str
    """The only host requests are sent to, and the only one whose SUBSCRIBE is accepted."""
    local_host: str = "127.0.0.1"
    local_port: int = 5062
    advertise_host: str = ""
    """The address put in Via and Contact (empty: ``local_host``); never 0.0.0.0 or ::."""
    transport: Transport = "udp"
    probe_timeout: float = 8.0
    """Seconds for one transaction (probe NOTIFY, liveness check) to get a final answer."""
    plan_timeout: float = 1800.0
    """Seconds for the whole session, including every wait for a SUBSCRIBE."""
    subscribe_wait: float = 300.0
    """Seconds to wait for the phone's first SUBSCRIBE."""
    resubscribe_wait: float = 90.0
    """Seconds to wait for the phone to SUBSCRIBE again after the subscription ended."""
    liveness: Liveness = "auto"
    """How to check the phone survived a probe: in-dialog OPTIONS, a baseline NOTIFY, or
    OPTIONS when the phone answers one right after subscribing (auto)."""
    max_dialogs: int = 20
    """The dialog count search goes up to this many dialogs (1: no count search)."""
    max_body: int = 16 * 1024
    """The body size search goes up to this many bytes (0: no size search)."""
    retry_crashes: bool = False
    """Send a probe that crashed the phone once more, when it is back, to confirm."""
    max_expires: int = 3600
    t1: float = 0.5
    t2: float = 4.0

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp"):
            raise UsageError(f"transport {self.transport!r}: use udp or tcp")
        if self.liveness not in ("auto", "options", "notify"):
            raise UsageError(f"liveness {self.liveness!r}: use auto, options or notify")
        for name in ("probe_timeout", "plan_timeout", "subscribe_wait", "resubscribe_wait"):
            value = getattr(self, name)
            if not 0 < value < 86400:
                raise UsageError(f"{name.replace('_', ' ')} {value!r}: use seconds above 0")
        if not 1 <= self.max_dialogs <= 1000:
            raise UsageError(f"max dialogs {self.max_dialogs!r}: use 1 to 1000")
        if not 0 <= self.max_body <= 60000:
            raise UsageError(f"max body {self.max_body!r}: use 0 to 60000 bytes")
        if self.advertised in ("0.0.0.0", "::", ""):
            raise UsageError(
                f"cannot advertise {self.advertised or 'an empty address'}: give --advertise ADDR"
            )

    @property
    def advertised(self) -> str:
        return self.advertise_host or self.local_host


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
    alive: Alive | None = None
    """Did the phone answer the liveness check after the probe (None: not checked)?"""
    note: str = ""
    version: int | None = None
    body_bytes: int | None = None
    message_bytes: int = 0
    retransmissions: int = 0
    elapsed: float | None = None
    """Seconds from sending the probe to its final answer."""
    ended_subscription: bool = False
    """The subscription did not survive this probe (481, crash, forgotten dialog)."""
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
    purpose: Purpose
    method: str
    branch: str
    cseq: int
    call_id: str
    data: bytes
    addr: Address
    sent_at: float
    retransmit_at: float
    interval: float
    deadline: float
    notice_at: float | None = None
    """When to say that the kit is still waiting (once), None when said or not needed."""
    retransmissions: int = 0
    version: int | None = None
    body_bytes: int | None = None


@dataclass(slots=True)
class _Pending:
    """The probe under way: what its NOTIFY got, before the liveness check decides."""

    probe: Probe
    number: int
    log_start: int
    answered: bool = False
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
    refused_subscribes: list[str] = field(default_factory=list)
    """Hosts whose SUBSCRIBE was refused (not the phone under test), each once."""
    subscription_losses: int = 0
    interrupted: str | None = None
    """The signal that stopped the run (``SIGINT``, ``SIGTERM``), None when it ran to its end."""
    end_reason: str = ""


class ProbeSession:
    """Walks the plan against the phone of ``config``; see the module docstring."""

    def __init__(self, plan: tuple[Probe, ...], config: SessionConfig, now: float) -> None:
        if not plan:
            raise UsageError("the probe plan is empty")
        self.plan = plan
        self.config = config
        self.planner = Planner(
            plan,
            max_dialogs=config.max_dialogs,
            max_body=config.max_body,
            retry_crashes=config.retry_crashes,
        )
        self.started = now
        self.plan_deadline = now + config.plan_timeout
        self.state = SessionState()
        self.log: list[Exchange] = []
        self.results: list[ProbeResult] = []
        self._events: list[str] = []
        self._out: list[tuple[bytes, Address]] = []
        self._sub: _Subscription | None = None
        self._txn: _Txn | None = None
        self._pending: _Pending | None = None
        self._phase = "wait-subscribe"
        self._wait_until = min(self.plan_deadline, now + config.subscribe_wait)
        self._use_options = config.liveness == "options"
        self._answered: dict[tuple[str | None, str | None, str | None], bytes] = {}
        self._refused_seen: set[tuple[str, str | None]] = set()
        self._say(
            now,
            f"waiting up to {self._wait_until - now:g} s for a SUBSCRIBE (Event: dialog) from "
            f"{config.phone_host} (--subscribe-wait; {CTRL_C})",
        )

    # ---- sans-IO API ------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._phase == "done"

    @property
    def phase(self) -> str:
        return self._phase

    def events(self) -> list[str]:
        """Progress lines for the person at the terminal since the last call (said at once:
        a probe's outcome, a wait and what it is for, a subscription that ended)."""
        out, self._events = self._events, []
        return out

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
        txn = self._txn
        if txn is not None:
            times.append(txn.deadline)
            if self.config.transport == "udp":
                times.append(txn.retransmit_at)
            if txn.notice_at is not None:
                times.append(txn.notice_at)
        if self._phase == "wait-subscribe":
            times.append(self._wait_until)
        return min(times)

    def handle_timer(self, now: float) -> None:
        if self.done:
            return
        if now >= self.plan_deadline:
            self._finish(now, f"the run reached its time limit ({self.config.plan_timeout:g} s)")
            return
        txn = self._txn
        if txn is not None:
            if now >= txn.deadline:
                self._txn = None
                self._timed_out(txn, now)
            else:
                if txn.notice_at is not None and now >= txn.notice_at:
                    txn.notice_at = None
                    self._say(
                        now,
                        f"  ... no answer yet to the {txn.method}"
                        f"{self._pending_label()}: waiting up to {txn.deadline - now:.0f} s "
                        f"more (--probe-timeout; {CTRL_C})",
                    )
                if self.config.transport == "udp" and now >= txn.retransmit_at:
                    self._out.append((txn.data, txn.addr))
                    txn.retransmissions += 1
                    txn.interval = min(txn.interval * 2, self.config.t2)
                    txn.retransmit_at = now + txn.interval
                    self.log.append(
                        Exchange(self._t(now), "out", "(retransmission)", peer=_peer(txn.addr))
                    )
        if self._phase == "wait-subscribe" and now >= self._wait_until:
            if self.state.subscribes:
                why = f"the phone did not SUBSCRIBE again within {self.config.resubscribe_wait:g} s"
            else:
                why = f"no SUBSCRIBE from {self.config.phone_host} within {self._waited(now)} s"
            self._finish(now, why)

    def interrupt(self, now: float, signal_name: str) -> None:
        """Stop at once (Ctrl-C, SIGTERM): what ran stays, the rest reads as not run."""
        if self.done:
            return
        self.state.interrupted = signal_name
        self._finish(now, f"interrupted ({signal_name})")

    def outcome_list(self) -> list[ProbeResult]:
        """Results in the order the probes ran, then those not run (with the reason)."""
        return list(self.results)

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
            seen = (addr[0], req.call_id)
            if req.method == "SUBSCRIBE" and seen not in self._refused_seen:
                self._refused_seen.add(seen)
                if addr[0] not in self.state.refused_subscribes:
                    self.state.refused_subscribes.append(addr[0])
                self._say(
                    now,
                    f"SUBSCRIBE from {addr[0]} refused: not the phone under test "
                    f"(--phone {self.config.phone_host})",
                )
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
                self._lost(now, "the phone ended the subscription (SUBSCRIBE with Expires: 0)")
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
        if self._txn is not None or self._pending is not None:
            self._abandon(now, "crashed", "a new SUBSCRIBE came while a request was outstanding")
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
        ua = req.header("User-Agent")
        self._say(
            now,
            f"SUBSCRIBE #{self.state.subscribes} from {addr[0]}:{addr[1]} accepted "
            f"(User-Agent: {ua or 'none given'}); NOTIFYs go to {_peer(self._sub.addr)}",
        )
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
        if (
            txn is None
            or resp.branch != txn.branch
            or resp.cseq != (txn.cseq, txn.method)
            or resp.call_id != txn.call_id
        ):
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
        answer = f"{resp.status} {resp.reason}".strip()
        if purpose == "initial":
            self._note(now, f"initial NOTIFY answered {answer}")
            if removing:
                self._lost(now, f"the phone answered {answer} to the initial NOTIFY")
            elif self.config.liveness == "auto" and self.state.options_supported is None:
                self._send_options(now, "detect")
            else:
                self._next_probe(now)
        elif purpose == "detect":
            self.state.options_supported = True
            self._use_options = True
            self._note(now, f"OPTIONS answered {answer}: liveness checked with OPTIONS")
            self._next_probe(now)
        elif purpose == "probe":
            pending = self._pending
            assert pending is not None
            pending.answered = True
            pending.status, pending.reason = resp.status, resp.reason
            pending.retransmissions = txn.retransmissions
            pending.elapsed = now - txn.sent_at
            if removing:
                self._settle(
                    now,
                    "rejected",
                    alive=None,
                    note=f"{resp.status} ends the subscription (RFC 6665 §4.2.2)",
                    ended=True,
                )
                self._lost(now, f"the phone answered {answer}, which ends the subscription")
            else:
                self._check(now)
        elif purpose == "check":
            pending = self._pending
            assert pending is not None
            if pending.answered:
                ok = 200 <= (pending.status or 0) < 300
                self._settle(now, "accepted" if ok else "rejected", alive="yes")
            else:
                self._settle(
                    now,
                    "dropped",
                    alive="yes",
                    note=f"no answer within {self.config.probe_timeout:g} s, yet the phone "
                    f"answered the {txn.method} in the dialog afterwards: it ignores such "
                    "NOTIFYs and stays alive",
                )
            if removing:
                self._lost(now, f"the phone answered {answer} to the liveness NOTIFY")
            else:
                self._next_probe(now)
        elif purpose == "alive-out":
            self.state.options_supported = True
            pending = self._pending
            if pending is not None:
                self._settle_unanswered(now, pending, alive_outside=True)
        elif purpose == "closing":
            self._phase = "done"
            self._note(now, f"final NOTIFY answered {answer}")

    def _timed_out(self, txn: _Txn, now: float) -> None:
        limit = f"{self.config.probe_timeout:g} s"
        if txn.purpose == "initial":
            self._note(now, f"initial NOTIFY unanswered after {limit}")
            self._lost(now, f"the phone did not answer the initial NOTIFY within {limit}")
        elif txn.purpose == "detect":
            self.state.options_supported = False
            self._use_options = False
            self._note(now, "OPTIONS unanswered: liveness checked with a baseline NOTIFY")
            self._next_probe(now)
        elif txn.purpose == "probe":
            pending = self._pending
            assert pending is not None
            pending.retransmissions = txn.retransmissions
            self._say(
                now,
                f"  ... {pending.probe.name}: no answer within {limit}; checking whether the "
                f"phone is alive ({'OPTIONS' if self._use_options else 'NOTIFY'} in the dialog, "
                f"up to {limit}; {CTRL_C})",
            )
            self._check(now)
        elif txn.purpose == "check":
            pending = self._pending
            assert pending is not None
            if self._use_options or self.state.options_supported:
                self._say(
                    now,
                    f"  ... no answer in the dialog either; sending an OPTIONS outside it "
                    f"(up to {limit}; {CTRL_C})",
                )
                self._send_options(now, "alive-out")
            else:
                self._settle_unanswered(now, pending, alive_outside=False)
        elif txn.purpose == "alive-out":
            pending = self._pending
            if pending is not None:
                self._settle_unanswered(now, pending, alive_outside=False)
        elif txn.purpose == "closing":
            self._phase = "done"
            self._note(now, f"final NOTIFY unanswered after {limit}")

    def _settle_unanswered(self, now: float, pending: _Pending, *, alive_outside: bool) -> None:
        """The liveness check in the dialog went unanswered: the subscription is gone either
        way; ``alive_outside`` tells a forgotten dialog from a crash."""
        limit = f"{self.config.probe_timeout:g} s"
        first = (
            f"answered {pending.status} {pending.reason}".strip()
            if pending.answered
            else f"no answer within {limit}"
        )
        if alive_outside:
            outcome: Outcome = (
                ("accepted" if 200 <= (pending.status or 0) < 300 else "rejected")
                if pending.answered
                else "dropped"
            )
            self._settle(
                now,
                outcome,
                alive="outside the dialog only",
                note=f"{first}; then silent in the dialog but it answers an OPTIONS outside "
                "it: the phone is up and forgot the subscription",
                ended=True,
            )
            self._lost(now, "the phone is up but no longer answers in the subscription's dialog")
        else:
            self._settle(
                now,
                "crashed",
                alive="no",
                note=f"{first}; then no answer to any request: crashed or hung",
                ended=True,
            )
            self._lost(now, "the phone stopped answering (crashed or hung)", crashed=True)

    # ---- the walk ------------------------------------------------------------------------------

    def _next_probe(self, now: float) -> None:
        probe = self.planner.next()
        if probe is None:
            self._close(now)
            return
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
        self._pending = _Pending(probe=probe, number=len(self.results) + 1, log_start=len(self.log))
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

    def _settle(
        self,
        now: float,
        outcome: Outcome,
        *,
        alive: Alive | None,
        note: str = "",
        ended: bool = False,
    ) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        result = ProbeResult(
            probe=pending.probe,
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
            ended_subscription=ended,
            exchange=tuple(self.log[pending.log_start :]),
        )
        self.results.append(result)
        if outcome != "skipped":
            self.planner.record(pending.probe, outcome, pending.body_bytes)
        self._say(now, probe_line(pending.number, result))

    def _abandon(self, now: float, outcome: Outcome, why: str) -> None:
        """Settle the probe under way (if any) and forget the transaction and subscription.

        An answer already given still counts; otherwise the probe reads as ``outcome``."""
        pending = self._pending
        if pending is not None:
            if pending.answered and outcome != "skipped":
                ok = 200 <= (pending.status or 0) < 300
                self._settle(now, "accepted" if ok else "rejected", alive=None, note=why)
            else:
                self._settle(now, outcome, alive=None, note=why, ended=outcome != "skipped")
        self._txn = None
        self._sub = None

    def _lost(self, now: float, why: str, *, crashed: bool = False) -> None:
        """The subscription is gone: say so, say how to get it back, wait for it (bounded)."""
        self._abandon(now, "skipped", why)
        self.state.subscription_losses += 1
        if not self.planner.remaining():
            self._say(now, f"subscription ended: {why}; no probes were left")
            self._finish(now, "")
            return
        self._phase = "wait-subscribe"
        self._wait_until = min(self.plan_deadline, now + self.config.resubscribe_wait)
        how = (
            "if it does not restart by itself, power-cycle it"
            if crashed
            else "re-save its BLF / line key settings, or reboot it"
        )
        self._say(
            now,
            f"SUBSCRIPTION ENDED: {why}. To go on, make the phone SUBSCRIBE again ({how}). "
            f"Waiting up to {self._wait_until - now:g} s for a new SUBSCRIBE from "
            f"{self.config.phone_host} (--resubscribe-wait; {CTRL_C})",
        )

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
            self._abandon(now, "skipped", why or "not finished")
        for probe in self.planner.drain():
            self.results.append(ProbeResult(probe, "skipped", note=why or "not reached"))
        self._txn = None
        self._phase = "done"
        self.state.end_reason = why
        if why:
            self._say(now, f"stopped: {why}")

    def _pending_label(self) -> str:
        pending = self._pending
        return f" of probe {pending.probe.name}" if pending is not None else ""

    def _waited(self, now: float) -> str:
        return f"{now - self.started:.0f}"

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

    def _send_options(self, now: float, purpose: Literal["detect", "check", "alive-out"]) -> None:
        """OPTIONS in the subscription's dialog, or (``alive-out``) outside any dialog: a new
        Call-ID and no tags, which a phone that forgot the subscription still answers."""
        sub = self._sub
        assert sub is not None
        if purpose == "detect":
            self._phase = "detect"
        if purpose == "alive-out":
            probe_dialog = _Subscription(
                call_id=f"kit-alive-{secrets.token_hex(6)}",
                local_tag="",
                remote_tag="",
                local_party=f"<sip:dialoginfo-kit@{self._hostport()}>;tag={secrets.token_hex(6)}",
                remote_party=f"<{sub.target}>",
                target=sub.target,
                addr=sub.addr,
                event=sub.event,
                expires=0,
            )
            headers = (*self._request_headers(probe_dialog, "OPTIONS"), ("Accept", "*/*"))
            request = Request(method="OPTIONS", uri=sub.target, headers=headers)
            self._start(now, purpose, request, probe_dialog)
            return
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
        purpose: Purpose,
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
            call_id=sub.call_id,
            data=data,
            addr=sub.addr,
            sent_at=now,
            retransmit_at=now + self.config.t1,
            interval=self.config.t1,
            deadline=now + self.config.probe_timeout,
            notice_at=now + NOTICE_AFTER if self.config.probe_timeout > 2 * NOTICE_AFTER else None,
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
        host = self.config.advertised
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

    def _say(self, now: float, text: str) -> None:
        """A note for the report's timeline that is also printed at once."""
        self._note(now, text.strip())
        self._events.append(text)

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


def probe_line(number: int, r: ProbeResult) -> str:
    """One terminal line per probe: what was sent, what came of it, in words."""
    size = f", {r.body_bytes} bytes" if r.body_bytes is not None else ""
    head = f"probe {number:>2} {r.probe.name:<16} {r.probe.title}{size}: "
    if r.outcome == "skipped":
        return head + f"not run ({r.note or 'not reached'})"
    words = {
        "accepted": "accepted",
        "rejected": "rejected",
        "dropped": "ignored (no answer), the phone stays alive",
        "crashed": "CRASHED (no answer to anything since)",
    }[r.outcome]
    answer = f" ({r.status} {r.reason})".rstrip() if r.status is not None else ""
    if answer.endswith("()"):
        answer = ""
    tail = ""
    if r.alive == "outside the dialog only":
        tail = "; the phone forgot the subscription"
    elif r.ended_subscription and r.outcome == "rejected":
        tail = "; this ends the subscription"
    return head + words + answer + tail
