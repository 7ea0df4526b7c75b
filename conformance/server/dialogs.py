"""The reference server's dialog tracker: what pua_dialoginfo does on the same instance.

The call proxy (``proxy.py``) tells the tracker each call event it relays: the INVITE, each
response to it, a CANCEL, a BYE. The tracker keeps one dialog per call and publishes, for the
caller's AOR and the callee's AOR each, an RFC 4235 document with that party's view of the
dialog (its own tag is ``local-tag``; ``direction`` is ``initiator`` for the caller). The
documents go out as PUBLISH requests the core processes like any other (``publish`` callback),
so they meet the same store, aggregation and NOTIFY code a real publisher's bodies do.

States follow RFC 4235 §3.7.1 with errata 1495: INVITE -> trying (the caller's only, like the
module without ``callee_trying``), tagless 1xx -> proceeding, tagged 1xx -> early, 2xx ->
confirmed, 487 after CANCEL -> terminated/cancelled, other finals -> terminated/rejected with the
code, BYE -> terminated/local-bye for the party that sent it and remote-bye for the other. A
terminated dialog stays published ``terminated_lifetime`` seconds, then is removed.

Sans-IO: no sockets, no clock; ``now`` comes in. Every decision a fault may bend goes through a
``CallHooks`` callable whose default is the strict answer (the faults live in
``faults/calls.py``); this module imports nothing from the faults layer.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from conformance.sip.message import Request, Response, tag_of, uri_of

MEDIA_TYPE = "application/dialog-info+xml"
CALLER = "caller"
CALLEE = "callee"
PARTIES = (CALLER, CALLEE)


def _same(value: Any, *_context: Any) -> Any:
    """The default of every hook: the strict answer, unchanged."""
    return value


@dataclass(slots=True)
class CallHooks:
    """Decisions of the dialog tracker, strict by default (each bent by one E fault)."""

    state: Callable[[str, str], str] = _same
    """The state published for a party, given the §3.7.1 one and the party (E01-E04, E12)."""
    event: Callable[[str | None, str], str | None] = _same
    """The ``event`` of a terminated dialog, given the party (E03-E05)."""
    code: Callable[[int | None, str], int | None] = _same
    """The ``code`` of a terminated dialog (E03)."""
    direction: Callable[[str, str], str] = _same
    """``direction`` of a party's dialog (E06)."""
    call_id: Callable[[str, str], str] = _same
    """``call-id`` of a party's dialog (E07)."""
    tags: Callable[[tuple[str | None, str | None], str], tuple[str | None, str | None]] = _same
    """(local-tag, remote-tag) of a party's dialog (E07)."""
    identities: Callable[[tuple[str, str], str], tuple[str, str]] = _same
    """(local identity, remote identity) URIs of a party's dialog (E08)."""
    delay: Callable[[float, str], float] = _same
    """Seconds before a state change is published, given the state, or for a terminated
    dialog its event (E09)."""
    revives: Callable[[bool], bool] = _same
    """After publishing terminated, publish the dialog ``confirmed`` again (E11)."""
    publishes: Callable[[bool, str, str], bool] = _same
    """A state change is published at all, given the state and the party (E01)."""
    callee_trying: Callable[[bool], bool] = _same
    """The callee's ``trying`` is published (off, like pua_dialoginfo without
    ``callee_trying``; the reference profile declares ``publish_on_trying = false``) (E12)."""


@dataclass(slots=True)
class _Party:
    aor: str
    display: str | None
    local_tag: str | None = None
    remote_tag: str | None = None
    local_target: str | None = None
    remote_target: str | None = None
    etag: str | None = None
    version: int = 0


@dataclass(slots=True)
class _Call:
    call_id: str
    dialog_id: str
    caller: _Party
    callee: _Party
    caller_identity: tuple[str, str | None]
    callee_identity: tuple[str, str | None]
    state: str = "trying"
    event: str | None = None
    code: int | None = None
    cancelled: bool = False
    ended_at: float | None = None
    parties: dict[str, _Party] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending:
    at: float
    call_id: str
    party: str
    state: str
    event: str | None
    code: int | None
    expires: int


def _display(value: str | None) -> str | None:
    if not value or "<" not in value:
        return None
    text = value.split("<", 1)[0].strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        text = text[1:-1]
    return text or None


class DialogTracker:
    """Calls by Call-ID, and the publications of their caller and callee."""

    def __init__(
        self,
        publish: Callable[[Request, float], Response],
        *,
        hooks: CallHooks | None = None,
        terminated_lifetime: float = 2.0,
        publish_expires: int = 3600,
    ) -> None:
        self._publish = publish
        self.hooks = hooks or CallHooks()
        self.terminated_lifetime = terminated_lifetime
        self.publish_expires = publish_expires
        self._calls: dict[str, _Call] = {}
        self._pending: list[_Pending] = []
        self._removals: list[tuple[float, str, str]] = []
        self._seq = itertools.count(1)

    # -- events from the proxy -----------------------------------------------------------------
    def on_invite(self, req: Request, now: float) -> None:
        call_id = req.call_id or ""
        if call_id in self._calls or req.to_tag:
            return  # a retransmission or a re-INVITE: the dialog exists already
        from_value, to_value = req.header("From") or "", req.header("To") or ""
        caller = _Party(uri_of(from_value) or "", _display(from_value))
        callee = _Party(uri_of(to_value) or "", _display(to_value))
        caller.local_tag = req.from_tag
        callee.remote_tag = req.from_tag
        caller.local_target = uri_of(req.header("Contact"))
        callee.remote_target = caller.local_target
        call = _Call(
            call_id,
            f"d{next(self._seq)}-{abs(hash(call_id)) % 10**8}",
            caller,
            callee,
            (caller.aor, caller.display),
            (callee.aor, callee.display),
        )
        call.parties = {CALLER: caller, CALLEE: callee}
        self._calls[call_id] = call
        self._change(call, CALLER, "trying", now)
        if self.hooks.callee_trying(False):
            self._change(call, CALLEE, "trying", now)

    def on_response(self, resp: Response, now: float) -> None:
        cseq = resp.cseq
        call = self._calls.get(resp.call_id or "")
        if call is None or cseq is None or cseq[1] != "INVITE" or call.state == "terminated":
            return
        tag = resp.to_tag
        if tag:
            call.caller.remote_tag = call.caller.remote_tag or tag
            call.callee.local_tag = call.callee.local_tag or tag
            contact = uri_of(resp.header("Contact"))
            if contact:
                call.caller.remote_target = call.caller.remote_target or contact
                call.callee.local_target = call.callee.local_target or contact
        status = resp.status
        if status < 200:
            if status == 100 and not tag:
                return  # the proxy's and the callee's 100: nothing the dialog learns
            state = "early" if tag else "proceeding"
            if _RANK[state] <= _RANK[call.state]:
                return
            call.state = state
            for party in PARTIES:
                self._change(call, party, state, now)
            return
        if status < 300:
            if call.state == "confirmed":
                return  # a 2xx retransmission
            call.state = "confirmed"
            for party in PARTIES:
                self._change(call, party, "confirmed", now)
            return
        if status == 487 and call.cancelled:
            self._end(call, now, {CALLER: "cancelled", CALLEE: "cancelled"}, 487)
        else:
            self._end(call, now, {CALLER: "rejected", CALLEE: "rejected"}, status)

    def on_timeout(self, call_id: str, now: float) -> None:
        """Timer C fired: the caller gets 408 (rejected), the callee's branch is CANCELled."""
        call = self._calls.get(call_id)
        if call is None or call.state in ("confirmed", "terminated"):
            return
        call.state = "terminated"
        self._emit(call, CALLER, "terminated", now, "rejected", 408)
        self._emit(call, CALLEE, "terminated", now, "cancelled", 487)
        self._retire(call, now)

    def on_cancel(self, req: Request, now: float) -> None:
        call = self._calls.get(req.call_id or "")
        if call is not None:
            call.cancelled = True

    def on_bye(self, req: Request, now: float) -> None:
        call = self._calls.get(req.call_id or "")
        if call is None or call.state != "confirmed":
            return
        sender = CALLER if req.from_tag == call.caller.local_tag else CALLEE
        events = {sender: "local-bye", (CALLEE if sender == CALLER else CALLER): "remote-bye"}
        self._end(call, now, events, None)

    # -- timers ---------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        times = [p.at for p in self._pending] + [r[0] for r in self._removals]
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        due, self._pending = (
            [p for p in self._pending if p.at <= now],
            [p for p in self._pending if p.at > now],
        )
        for p in due:
            self._send(p, now)
        removals, self._removals = (
            [r for r in self._removals if r[0] <= now],
            [r for r in self._removals if r[0] > now],
        )
        for _, call_id, party in removals:
            call = self._calls.get(call_id)
            if call is None:
                continue
            self._send(_Pending(now, call_id, party, "terminated", call.event, call.code, 0), now)
            if all(p.etag is None for p in call.parties.values()):
                self._calls.pop(call_id, None)

    # -- publishing -----------------------------------------------------------------------------
    def _end(self, call: _Call, now: float, events: dict[str, str], code: int | None) -> None:
        call.state = "terminated"
        for party in PARTIES:
            self._emit(call, party, "terminated", now, events[party], code)
        self._retire(call, now)

    def _retire(self, call: _Call, now: float) -> None:
        call.ended_at = now
        for party in PARTIES:
            if self.hooks.revives(False):
                self._emit(call, party, "confirmed", now + 0.2)
            self._removals.append((now + self.terminated_lifetime + 0.3, call.call_id, party))

    def _change(self, call: _Call, party: str, state: str, now: float) -> None:
        self._emit(call, party, state, now)

    def _emit(
        self,
        call: _Call,
        party: str,
        state: str,
        now: float,
        event: str | None = None,
        code: int | None = None,
    ) -> None:
        if not self.hooks.publishes(True, state, party):
            return
        shown = self.hooks.state(state, party)
        if state == "terminated":
            event = self.hooks.event(event, party)
            code = self.hooks.code(code, party)
            call.event, call.code = event, code
        expires = self.publish_expires
        if shown == "terminated":
            expires = max(1, round(self.terminated_lifetime))
        at = now + max(0.0, self.hooks.delay(0.0, event or state))
        pending = _Pending(at, call.call_id, party, shown, event, code, expires)
        if at <= now:
            self._send(pending, now)
        else:
            self._pending.append(pending)

    def _send(self, p: _Pending, now: float) -> None:
        call = self._calls.get(p.call_id)
        if call is None:
            return
        me = call.parties[p.party]
        if p.expires == 0 and me.etag is None:
            return
        headers: list[tuple[str, str]] = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:0;branch=z9hG4bK-tracker-{next(self._seq)}"),
            ("From", f"<{me.aor}>;tag=tracker"),
            ("To", f"<{me.aor}>"),
            ("Call-ID", f"tracker-{p.party}-{call.call_id}"),
            ("CSeq", f"{next(self._seq)} PUBLISH"),
            ("Max-Forwards", "70"),
            ("Event", "dialog"),
            ("Expires", str(p.expires)),
        ]
        if me.etag is not None:
            headers.append(("SIP-If-Match", me.etag))
        body = b""
        if p.expires:
            headers.append(("Content-Type", MEDIA_TYPE))
            body = self._document(call, p)
        resp = self._publish(
            Request(headers=tuple(headers), body=body, method="PUBLISH", uri=me.aor), now
        )
        if p.expires == 0:
            me.etag = None
        elif resp.status == 200:
            me.etag = resp.header("SIP-ETag")
        elif me.etag is not None and resp.status == 412:
            me.etag = None  # expired meanwhile: publish afresh
            self._send(p, now)

    def _document(self, call: _Call, p: _Pending) -> bytes:
        me = call.parties[p.party]
        me.version += 1
        caller = p.party == CALLER
        direction = self.hooks.direction("initiator" if caller else "recipient", p.party)
        call_id = self.hooks.call_id(call.call_id, p.party)
        local_tag, remote_tag = self.hooks.tags((me.local_tag, me.remote_tag), p.party)
        own, other = (
            (call.caller_identity, call.callee_identity)
            if caller
            else (call.callee_identity, call.caller_identity)
        )
        local_uri, remote_uri = self.hooks.identities((own[0], other[0]), p.party)
        attrs = f"id={quoteattr(call.dialog_id)} call-id={quoteattr(call_id)}"
        if local_tag:
            attrs += f" local-tag={quoteattr(local_tag)}"
        if remote_tag:
            attrs += f" remote-tag={quoteattr(remote_tag)}"
        attrs += f" direction={quoteattr(direction)}"
        state_attrs = ""
        if p.state == "terminated" and p.event:
            state_attrs += f" event={quoteattr(p.event)}"
            if p.code is not None:
                state_attrs += f" code={quoteattr(str(p.code))}"
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{me.version}" '
            f'state="full" entity={quoteattr(me.aor)}>',
            f"<dialog {attrs}>",
            f"<state{state_attrs}>{escape(p.state)}</state>",
            _participant("local", local_uri, own[1], me.local_target),
            _participant("remote", remote_uri, other[1], me.remote_target),
            "</dialog>",
            "</dialog-info>",
        ]
        return "\n".join(parts).encode()

    # -- introspection --------------------------------------------------------------------------
    def calls(self) -> list[str]:
        """Call-IDs of the calls tracked now (ended ones until their removal)."""
        return list(self._calls)


def _participant(kind: str, uri: str, display: str | None, target: str | None) -> str:
    name = f" display={quoteattr(display)}" if display else ""
    out = f"<{kind}><identity{name}>{escape(uri)}</identity>"
    if target:
        out += f"<target uri={quoteattr(target)}/>"
    return out + f"</{kind}>"


_RANK = {"trying": 0, "proceeding": 1, "early": 2, "confirmed": 3, "terminated": 4}

__all__ = ["CALLEE", "CALLER", "CallHooks", "DialogTracker", "tag_of"]
