"""The reference server's call proxy: INVITE-transaction-stateful, record-routing, UDP, sans-IO.

Enough of RFC 3261 §16 for one caller and one callee on loopback, the shape the group E cases
drive: an initial INVITE is routed by its Request-URI (the case puts the callee's own Contact
there), with a Via and a Record-Route of ours; provisional and final responses are relayed back;
a non-2xx final is ACKed hop by hop and its upstream ACK absorbed; a CANCEL is answered 200 and
sent on down the branch; Timer C (``timer_c``, 5 s) gives the caller 408 and CANCELs the branch.
In-dialog requests (the 2xx ACK, BYE) come back through us by the Record-Route and are forwarded
statelessly to their Request-URI; their responses go back by the Via.

Every call event also goes to the ``DialogTracker`` (``dialogs.py``), which publishes caller and
callee state into the server's own presence store. Sans-IO: bytes, addresses and ``now`` in,
``(bytes, address)`` out, ``get_timer``/``handle_timer`` for Timer A and Timer C.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from conformance.server.dialogs import DialogTracker
from conformance.sip.message import Message, Request, Response, param_of, response_to, split_uri

Address = tuple[str, int]

BRANCH_PREFIX = "z9hG4bK-proxy-"
CALL_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE"})
TIMER_C = 5.0
"""Seconds an INVITE branch may stay without a final response (RFC 3261 says > 3 min; the
suite's no-answer case needs it short, and Kamailio's ``fr_inv_timer`` is set alike)."""

_SENT_BY = re.compile(r"SIP/2\.0/\w+\s+([^;\s]+)", re.IGNORECASE)


@dataclass(slots=True)
class _InviteTransaction:
    request: Request
    upstream: Address
    forwarded: bytes
    downstream: Address
    branch: str
    retransmit_at: float | None
    interval: float
    timer_c: float | None
    last_upstream: bytes | None = None
    answered: bool = False
    """A final response went upstream (relayed, or our own 408)."""
    responded: bool = False
    """The branch sent any response (Timer A stops; a CANCEL may go down)."""
    cancel_sent: bool = False
    to_tag: str | None = None


def _address(uri: str) -> Address | None:
    parts = split_uri(uri)
    if parts is None or not parts.host:
        return None
    return parts.host.strip("[]"), parts.port or 5060


def _via_address(via: str) -> Address | None:
    """Where a response goes by this Via (RFC 3261 §18.2.2 with RFC 3581 rport)."""
    m = _SENT_BY.match(via.strip())
    if m is None:
        return None
    sent_by = m.group(1)
    host, _, port = sent_by.rpartition(":") if sent_by.count(":") == 1 else (sent_by, "", "")
    received = param_of(via, "received") or host
    rport = param_of(via, "rport")
    number = rport or port or "5060"
    return (received, int(number)) if number.isdigit() else None


def _replace(msg: Message, name: str, value: str | None) -> tuple[tuple[str, str], ...]:
    """Headers with the first ``name`` removed (``value`` None) or replaced."""
    out, done = [], False
    for n, v in msg.headers:
        if not done and n.lower() == name.lower():
            done = True
            if value is not None:
                out.append((n, value))
            continue
        out.append((n, v))
    return tuple(out)


def _pop_via(msg: Message) -> tuple[tuple[str, str], ...]:
    """Headers without the topmost Via value (a Via line may carry several, comma-separated)."""
    out, done = [], False
    for n, v in msg.headers:
        if not done and n == "Via":
            done = True
            _, comma, rest = v.partition(",")
            if comma and rest.strip():
                out.append((n, rest.strip()))
            continue
        out.append((n, v))
    return tuple(out)


class CallProxy:
    """The call proxy's state machine, driven by ``receive``/``handle_timer``."""

    def __init__(
        self,
        host: str,
        port: int,
        tracker: DialogTracker,
        *,
        t1: float = 0.5,
        timer_c: float = TIMER_C,
    ) -> None:
        self.host = host
        self.port = port
        self.tracker = tracker
        self.t1 = t1
        self.timer_c = min(timer_c, TIMER_C)
        self._server: dict[tuple[str, str], _InviteTransaction] = {}
        self._client: dict[str, _InviteTransaction] = {}
        self._out: list[tuple[bytes, Address]] = []

    @property
    def _hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # -- sans-IO API -----------------------------------------------------------------------------
    def claims(self, msg: Message) -> bool:
        """The message is the proxy's: a call request, or a response to a branch of ours."""
        if isinstance(msg, Request):
            return msg.method in CALL_METHODS
        return (msg.branch or "").startswith(BRANCH_PREFIX)

    def receive(self, msg: Message, addr: Address, now: float) -> None:
        if isinstance(msg, Response):
            self._on_response(msg, now)
        elif msg.method == "INVITE" and not msg.to_tag:
            self._on_invite(msg, addr, now)
        elif msg.method == "CANCEL":
            self._on_cancel(msg, addr, now)
        elif msg.method == "ACK" and (self._absorbs(msg) or not self._known(msg)):
            return  # ours to end, or for no call we routed: an ACK is never answered
        else:
            if msg.method == "BYE":
                self.tracker.on_bye(msg, now)
            self._forward_in_dialog(msg, addr)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        times: list[float] = []
        for t in self._client.values():
            if t.retransmit_at is not None:
                times.append(t.retransmit_at)
            if t.timer_c is not None:
                times.append(t.timer_c)
        tracker = self.tracker.get_timer()
        if tracker is not None:
            times.append(tracker)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        for t in list(self._client.values()):
            if t.retransmit_at is not None and t.retransmit_at <= now:
                self._out.append((t.forwarded, t.downstream))
                t.interval *= 2
                t.retransmit_at = now + t.interval
            if t.timer_c is not None and t.timer_c <= now:
                t.timer_c = None
                t.retransmit_at = None
                if not t.answered:
                    self._timeout(t, now)
        self.tracker.handle_timer(now)

    # -- INVITE ------------------------------------------------------------------------------------
    def _on_invite(self, req: Request, addr: Address, now: float) -> None:
        key = (req.branch or "", req.call_id or "")
        known = self._server.get(key)
        if known is not None:
            if known.last_upstream is not None:
                self._out.append((known.last_upstream, known.upstream))
            return
        trying = response_to(req, 100, "Trying", to_tag=None)
        trying = Response(
            headers=_replace(trying, "To", req.header("To")), status=100, reason="Trying"
        )
        target = _address(req.uri)
        if target is None:
            self._out.append((bytes(response_to(req, 416, "Unsupported URI Scheme")), addr))
            return
        forwards = req.header("Max-Forwards")
        hops = int(forwards) if forwards and forwards.strip().isdigit() else 70
        if hops <= 0:
            self._out.append((bytes(response_to(req, 483, "Too Many Hops")), addr))
            return
        branch = BRANCH_PREFIX + hashlib.sha1(f"{key}".encode()).hexdigest()[:16]
        headers = (
            ("Via", f"SIP/2.0/UDP {self._hostport};branch={branch};rport"),
            ("Record-Route", f"<sip:{self._hostport};lr>"),
            *_replace(req, "Max-Forwards", str(hops - 1)),
        )
        forwarded = bytes(Request(headers=headers, body=req.body, method="INVITE", uri=req.uri))
        txn = _InviteTransaction(
            request=req,
            upstream=addr,
            forwarded=forwarded,
            downstream=target,
            branch=branch,
            retransmit_at=now + self.t1,
            interval=self.t1,
            timer_c=now + self.timer_c,
            last_upstream=bytes(trying),
        )
        self._server[key] = txn
        self._client[branch] = txn
        self._out.append((bytes(trying), addr))
        self._out.append((forwarded, target))
        self.tracker.on_invite(req, now)

    def _on_response(self, resp: Response, now: float) -> None:
        branch = resp.branch or ""
        vias = resp.header_all("Via")
        if not vias:
            return
        relayed = Response(
            headers=_pop_via(resp),
            body=resp.body,
            status=resp.status,
            reason=resp.reason,
        )
        txn = self._client.get(branch)
        cseq = resp.cseq
        if txn is None or cseq is None or cseq[1] not in ("INVITE", "CANCEL"):
            # A response to a request forwarded statelessly: back by the next Via.
            nxt = relayed.header("Via")
            where = _via_address(nxt) if nxt else None
            if where is not None:
                self._out.append((bytes(relayed), where))
            return
        if cseq[1] == "CANCEL":
            return  # the 200 to our own CANCEL: hop by hop, nothing to relay
        txn.responded = True
        txn.retransmit_at = None
        self.tracker.on_response(resp, now)
        if resp.status < 200:
            if resp.status == 100:
                return
            txn.timer_c = now + self.timer_c  # RFC 3261 §16.7 step 2: reset on a provisional
            if not txn.answered:
                txn.last_upstream = bytes(relayed)
                self._out.append((bytes(relayed), txn.upstream))
            return
        txn.timer_c = None
        if resp.status >= 300:
            self._ack(txn, resp)
            if txn.answered:
                return  # our 408 went up already (Timer C)
        txn.answered = True
        txn.last_upstream = bytes(relayed)
        self._out.append((bytes(relayed), txn.upstream))

    def _hop(self, txn: _InviteTransaction, method: str, to: str) -> None:
        """An ACK or CANCEL of our own down the branch, on the INVITE's branch (RFC 3261
        §17.1.1.3, §9.1): it names the INVITE's Request-URI, From, Call-ID and CSeq number."""
        req = txn.request
        headers = (
            ("Via", f"SIP/2.0/UDP {self._hostport};branch={txn.branch};rport"),
            ("Max-Forwards", "70"),
            ("From", req.header("From") or ""),
            ("To", to),
            ("Call-ID", req.call_id or ""),
            ("CSeq", f"{(req.cseq or (1, ''))[0]} {method}"),
        )
        request = Request(headers=headers, method=method, uri=req.uri)
        self._out.append((bytes(request), txn.downstream))

    def _ack(self, txn: _InviteTransaction, resp: Response) -> None:
        """ACK a non-2xx final hop by hop; its To carries the response's tag."""
        self._hop(txn, "ACK", resp.header("To") or "")

    def _cancel_branch(self, txn: _InviteTransaction) -> None:
        if txn.cancel_sent:
            return
        txn.cancel_sent = True
        self._hop(txn, "CANCEL", txn.request.header("To") or "")

    def _timeout(self, txn: _InviteTransaction, now: float) -> None:
        """Timer C: 408 to the caller, CANCEL down the branch (RFC 3261 §16.8)."""
        txn.answered = True
        timeout = response_to(txn.request, 408, "Request Timeout")
        txn.last_upstream = bytes(timeout)
        self._out.append((bytes(timeout), txn.upstream))
        if txn.responded:
            self._cancel_branch(txn)
        self.tracker.on_timeout(txn.request.call_id or "", now)

    def _on_cancel(self, req: Request, addr: Address, now: float) -> None:
        txn = self._server.get((req.branch or "", req.call_id or ""))
        if txn is None:
            self._out.append(
                (bytes(response_to(req, 481, "Call/Transaction Does Not Exist")), addr)
            )
            return
        self._out.append((bytes(response_to(req, 200, "OK", to_tag=None)), addr))
        if txn.answered:
            return
        self.tracker.on_cancel(req, now)
        self._cancel_branch(txn)

    def _absorbs(self, ack: Request) -> bool:
        """The ACK of a non-2xx final we relayed (same branch as the INVITE) ends here."""
        txn = self._server.get((ack.branch or "", ack.call_id or ""))
        return txn is not None

    def _known(self, req: Request) -> bool:
        """The request belongs to a call this proxy routed."""
        return any(k[1] == req.call_id for k in self._server)

    # -- in-dialog requests ------------------------------------------------------------------------
    def _forward_in_dialog(self, req: Request, addr: Address) -> None:
        headers = _replace(req, "Route", None) if self._routes_to_us(req) else req.headers
        target = _address(req.uri)
        if target is None:
            if req.method != "ACK":
                self._out.append((bytes(response_to(req, 416, "Unsupported URI Scheme")), addr))
            return
        via = req.header("Via") or ""
        if "received=" not in via and _via_address(via) != addr:
            headers = _replace(
                Request(headers=headers), "Via", f"{via};received={addr[0]};rport={addr[1]}"
            )
            via = f"{via};received={addr[0]};rport={addr[1]}"
        digest = hashlib.sha1(f"{req.branch}|{req.method}".encode()).hexdigest()[:16]
        headers = (
            ("Via", f"SIP/2.0/UDP {self._hostport};branch={BRANCH_PREFIX}{digest};rport"),
            *headers,
        )
        self._out.append(
            (bytes(Request(headers=headers, body=req.body, method=req.method, uri=req.uri)), target)
        )

    def _routes_to_us(self, req: Request) -> bool:
        route = req.header("Route")
        if not route:
            return False
        first = route.split(",", 1)[0]
        return _address(first.strip().strip("<>").split(">", 1)[0]) == (self.host, self.port)


__all__ = ["BRANCH_PREFIX", "TIMER_C", "CallProxy"]
