"""The two ends of a call: a ``Caller`` (UAC) and a ``Callee`` (UAS), each one SIPp under 3PCC.

A call-driven case (group E) decides *when* each step of a call happens: ring, then hold for a
NOTIFY; answer; hang up from either side; or do nothing and let the proxy give up. SIPp 3.6.1
cannot be told that over its control socket, so both ends run like the Watcher (peers.py): one
long-lived SIPp per party (caller.xml, callee.xml), driven over the 3PCC twin socket, one command
at a time, each acked. One SIPp serves any number of calls: a command names its call by Call-ID.

The kit chooses each call's Call-ID (``new_call_id``). The callee is told first (``expect``), so
its SIPp has a call waiting with that Call-ID when the proxy forwards the INVITE (a proxy keeps
the Call-ID); then the caller sends the INVITE. Everything either party saw is read back from its
SIPp message trace (``messages``), which is what the oracle (``conformance.oracle.calls``) judges.

What the scenarios do by themselves, without a command (so a case never has to be quick): the
callee answers the INVITE with 100 at once, answers a CANCEL with 200 then 487, and a BYE with
200; the caller ACKs every final response and answers a BYE with 200.

Trap (BEHAVIOUR.md, SIPp pitfalls): a command that reaches a call while its scenario is busy with
SIP (answering a CANCEL, say) aborts that call silently. The methods here wait for the ack and say
so when none comes; a case that races the network on purpose must expect that.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from conformance.errors import HarnessError, NotReceivedError, UsageError
from conformance.harness.local_address import local_for, sip_host
from conformance.harness.peers import (
    POLL,
    Publisher,
    _describe,
    _header_lines,
    _rundir,
    _Twin,
    account_for,
    digest_send,
    start_controlled,
)
from conformance.harness.ports import PortBlock
from conformance.harness.sipp import Ports, SippProcess, request_files
from conformance.sip.message import Request, Response
from conformance.sip.trace import Traced

REJECT_CODES = (403, 404, 480, 486, 488, 600, 603)
"""Codes ``Callee.reject`` can send (SIPp needs each status literal in callee.xml)."""


def new_call_id() -> str:
    """A Call-ID no other call of any run uses (SIPp maps 3PCC commands to calls by it)."""
    return f"call-{uuid.uuid4().hex}@127.0.0.1"


class _Party:
    """One SIPp running a call scenario under 3PCC control: start, command, observe, close."""

    scenario = ""
    kind = ""

    def __init__(
        self,
        *,
        server: tuple[str, int],
        block: PortBlock,
        workdir: Path,
        user: str,
        domain: str,
        display: str | None = None,
        timeout: float = 5.0,
        lifetime: float = 900.0,
        local: str | None = None,
        transport: str = "udp",
    ) -> None:
        if display is not None and ('"' in display or "\\" in display or "\n" in display):
            raise UsageError(f"a display name without quotes or line breaks, not {display!r}")
        self.server = server
        self.block = block
        self.workdir = Path(workdir)
        self.user = user
        self.domain = domain
        self.display = display
        self.timeout = timeout
        self.lifetime = lifetime
        self.local = local_for(local, server)
        self.transport = transport
        """The address SIPp binds and advertises in Via, Contact and SDP (``--local-address``)."""
        self.name = f"{self.kind} {user}"
        self.ports: Ports | None = None
        self._proc: SippProcess | None = None
        self._twin: _Twin | None = None
        self._rundir: Path | None = None
        self._files = 0

    # -- identity -----------------------------------------------------------------------------
    @property
    def aor(self) -> str:
        """The party's address of record, the presentity its watcher subscribes to."""
        return f"sip:{self.user}@{self.domain}"

    @property
    def name_addr(self) -> str:
        """The AOR as From/To write it, with the display name when there is one."""
        if self.display is None:
            return f"<{self.aor}>"
        return f'"{self.display}" <{self.aor}>'

    @property
    def contact(self) -> str:
        """The party's own URI (Contact; a proxy routes a call here)."""
        if self.ports is None:
            raise UsageError(f"{self.name} is not started")
        params = "" if self.transport == "udp" else f";transport={self.transport}"
        relay = self._proc.relay if self._proc is not None else None
        port = relay.advertised_port if relay is not None else self.ports.sip  # TLS: the relay
        return f"sip:{self.user}@{sip_host(self.local)}:{port}{params}"

    # -- life cycle ---------------------------------------------------------------------------
    def _keys(self) -> dict[str, str]:
        return {"user": self.user, "domain": self.domain}

    def start(self) -> Self:
        """Start SIPp and connect to its twin socket (``peers.start_controlled``)."""
        if self._proc is not None:
            raise UsageError(f"{self.name} is already started")
        self._rundir = _rundir(self.workdir, self.kind, self.user)
        self._proc, self._twin, self.ports = start_controlled(
            self.scenario,
            server=self.server,
            block=self.block,
            workdir=self._rundir,
            keys=self._keys(),
            lifetime=self.lifetime,
            deadline=time.monotonic() + self.timeout,
            local=self.local,
            transport=self.transport,
        )
        return self

    def close(self) -> None:
        """Reset the control connection and SIGKILL SIPp (the trace is complete). Idempotent.

        Calls still up are not hung up: the proxy's dialog then ends by its own timers. A case
        that wants a clean end sends BYE or CANCEL itself, because that is a stimulus it judges.
        """
        proc, twin = self._proc, self._twin
        if proc is None:
            return
        try:
            if twin is not None:
                twin.close()
        finally:
            self._twin = None
            proc.stop(grace=0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observation --------------------------------------------------------------------------
    def messages(self, call_id: str | None = None) -> list[Traced]:
        """Everything this party's SIPp traced so far (of one call when ``call_id``)."""
        found = self._proc.messages() if self._proc else []
        if call_id is None:
            return found
        return [m for m in found if m.message.call_id == call_id]

    def wait_for(
        self,
        call_id: str,
        match: Callable[[Traced], bool],
        what: str,
        *,
        timeout: float | None = None,
    ) -> Traced:
        """The first traced message of ``call_id`` that ``match``es, waiting up to ``timeout``."""
        bound = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        while True:
            seen = self.messages(call_id)
            for m in seen:
                if match(m):
                    return m
            if time.monotonic() >= deadline:
                raise NotReceivedError(
                    f"{self.name}: {what} not seen within {bound:g} s in call {call_id} "
                    f"(traced: {_describe(seen)})"
                )
            if self._proc is not None and not self._proc.alive():
                raise self._proc.failure(f"{self.name}: SIPp exited while waiting for {what}")
            time.sleep(POLL)

    def wait_request(
        self, call_id: str, method: str, *, direction: str = "in", timeout: float | None = None
    ) -> Request:
        """The first ``method`` request of the call, received (``in``) or sent (``out``)."""
        found = self.wait_for(
            call_id,
            lambda m: (
                m.direction == direction
                and isinstance(m.message, Request)
                and m.message.method == method
            ),
            f"{method} {'received' if direction == 'in' else 'sent'}",
            timeout=timeout,
        )
        assert isinstance(found.message, Request)
        return found.message

    def wait_response(
        self,
        call_id: str,
        status: int | None,
        *,
        method: str = "INVITE",
        direction: str = "in",
        timeout: float | None = None,
    ) -> Response:
        """The first ``status`` response (any final one when None) to ``method`` in the call,
        received (``in``) or sent (``out``)."""

        def match(m: Traced) -> bool:
            msg = m.message
            return (
                m.direction == direction
                and isinstance(msg, Response)
                and (msg.status == status if status is not None else msg.status >= 200)
                and msg.cseq is not None
                and msg.cseq[1] == method
            )

        what = str(status) if status is not None else "final response"
        verb = "received" if direction == "in" else "sent"
        found = self.wait_for(call_id, match, f"{what} to {method} {verb}", timeout=timeout)
        assert isinstance(found.message, Response)
        return found.message

    def final_response(self, call_id: str, *, timeout: float | None = None) -> Response:
        """The final response to the call's INVITE (received by a caller, sent by a callee)."""
        direction = "in" if isinstance(self, Caller) else "out"
        return self.wait_response(call_id, None, direction=direction, timeout=timeout)

    # -- commands -----------------------------------------------------------------------------
    def _command(
        self,
        call_id: str,
        op: str,
        fields: Sequence[tuple[str, str]] = (),
        *,
        expect: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Send one command for ``call_id``, wait for its ack, check it says ``expect``."""
        if self._proc is None or self._twin is None:
            raise UsageError(f"{self.name} is not started")
        bound = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        try:
            ack = self._twin.command([("Call-ID", call_id), ("X-Op", op), *fields], deadline)
        except TimeoutError:
            raise NotReceivedError(
                f"{self.name}: no ack to {op!r} for call {call_id} within {bound:g} s "
                f"(a command that lands while the scenario answers SIP aborts the call; "
                f"traced: {_describe(self.messages(call_id))})"
            ) from None
        except OSError as exc:
            self._proc.wait(0.2)
            raise self._proc.failure(
                f"{self.name}: lost the 3PCC control connection: {exc}"
            ) from exc
        got = ack.get("x-ack", "")
        want = op if expect is None else expect
        if got != want or ack.get("call-id") != call_id:
            raise HarnessError(
                f"{self.name}: {op!r} for call {call_id} got the ack {ack!r}, not {want!r} "
                f"(the call is in another state, or another process holds the twin port "
                f"{self.ports.twin if self.ports else '?'}; SIPp "
                f"{'alive' if self._proc.alive() else 'exited'}; "
                f"traced: {_describe(self.messages(call_id))})"
            )
        return got

    def _file(self, lines: Sequence[str]) -> Path:
        assert self._rundir is not None
        self._files += 1
        name = f"headers-{self._files}.txt"
        return request_files(self._rundir, [(name, _header_lines(lines))])[name]


class Caller(_Party):
    """The calling party: INVITE, CANCEL and BYE when the case says (caller.xml)."""

    scenario = "caller.xml"
    kind = "caller"

    def _keys(self) -> dict[str, str]:
        return {**super()._keys(), "from_hdr": self.name_addr}

    def invite(
        self,
        callee: _Party | str,
        *,
        target: str | None = None,
        call_id: str | None = None,
        headers: Sequence[str] = (),
    ) -> str:
        """Send an INVITE to ``callee`` (a Callee, or a To name-addr); return its Call-ID.

        ``target`` is the Request-URI: by default the callee's own Contact, so a proxy that
        routes by Request-URI reaches it while To names the callee's AOR (the presentity its
        watcher watches). When ``callee`` is a Callee, call its ``expect`` first (``place_call``
        does both).
        """
        if isinstance(callee, _Party):
            to = callee.name_addr
            target = target or callee.contact
        else:
            to = callee
            if target is None:
                raise UsageError("invite needs target= (the Request-URI) when callee is a string")
        call_id = call_id or new_call_id()
        headers_file = self._file([f"To: {to}", *headers])
        self._command(
            call_id,
            "invite",
            [("X-Target", target), ("X-Headers", str(headers_file))],
        )
        return call_id

    def cancel(self, call_id: str) -> None:
        """CANCEL the call's INVITE (before its final response); the 487 follows in the trace."""
        self._command(call_id, "cancel")

    def bye(self, call_id: str) -> Response:
        """Hang up a confirmed call; return the final response to the BYE."""
        self._command(call_id, "bye")
        return self.wait_response(call_id, 200, method="BYE")


class Callee(_Party):
    """The called party: rings, answers, rejects and hangs up when the case says (callee.xml)."""

    scenario = "callee.xml"
    kind = "callee"

    def expect(self, call_id: str) -> None:
        """Prepare for the INVITE of ``call_id`` (before the caller sends it)."""
        self._command(call_id, "expect")

    def wait_invite(self, call_id: str, *, timeout: float | None = None) -> Request:
        """The INVITE of ``call_id`` as it reached this callee (after the proxy)."""
        return self.wait_request(call_id, "INVITE", timeout=timeout)

    def ring(self, call_id: str, *, tag: bool = True) -> None:
        """Send 180 Ringing, with a To tag (an early dialog) unless ``tag`` is False."""
        self._command(call_id, "ring" if tag else "ring-notag")

    def answer(self, call_id: str) -> Request:
        """Send 200 OK; return the ACK (NotReceivedError when none comes in time)."""
        self._command(call_id, "answer")
        return self.wait_request(call_id, "ACK")

    def reject(self, call_id: str, code: int = 486) -> Request:
        """Send the final ``code`` (e.g. 486 Busy Here, 603 Decline); return the ACK."""
        if code not in REJECT_CODES:
            raise UsageError(f"a callee rejects with one of {REJECT_CODES}, not {code}")
        self._command(call_id, f"reject-{code}")
        return self.wait_request(call_id, "ACK")

    def bye(self, call_id: str) -> Response:
        """Hang up a confirmed call; return the final response to the BYE."""
        self._command(call_id, "bye")
        return self.wait_response(call_id, 200, method="BYE")


def place_call(
    caller: Caller,
    callee: Callee,
    *,
    headers: Sequence[str] = (),
    target: str | None = None,
) -> str:
    """Start a call from ``caller`` to ``callee``; return its Call-ID once the INVITE arrived.

    ``target``: the Request-URI (default the callee's Contact); ``callee.aor`` makes a proxy
    route by the callee's registration (``register``)."""
    call_id = new_call_id()
    callee.expect(call_id)
    caller.invite(callee, call_id=call_id, headers=headers, target=target)
    callee.wait_invite(call_id)
    return call_id


def register(registrar: Publisher, party: _Party, *, expires: int = 300) -> Response:
    """REGISTER ``party``'s Contact for its AOR at ``registrar``'s server; its final response.

    Sent by ``registrar`` (a one-shot SIPp, ``Publisher.request``) rather than by the party's
    own SIPp, which runs a call scenario: a registrar binds the Contact whoever sends it. With
    ``registrar.auth`` a 401/407 is answered as the party's account (its pool entry, else the
    default), through the one digest path of every peer (``peers.digest_send``)."""
    if not 0 <= expires <= 3600:
        raise UsageError(f"REGISTER Expires is 0..3600 s, not {expires}")
    from_tag = f"reg-{uuid.uuid4().hex[:12]}"
    # One Call-ID, CSeq counting up: the answer to a challenge is the same registration
    # (RFC 3261 §10.2: a UA SHOULD keep both across its REGISTERs to one registrar).
    call_id = f"reg-{uuid.uuid4().hex}@127.0.0.1"
    cseq = itertools.count(1)

    def once(lines: list[str]) -> Response:
        extra = "".join(f"{line}\n" for line in lines)
        return registrar.request(
            f"REGISTER sip:{party.domain} SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
            "Max-Forwards: 70\n"
            f"From: <{party.aor}>;tag={from_tag}\n"
            f"To: <{party.aor}>\n"
            f"Call-ID: {call_id}\n"
            f"CSeq: {next(cseq)} REGISTER\n"
            f"Contact: <{party.contact}>\n"
            f"Expires: {expires}\n"
            f"{extra}"
            "Content-Length: 0\n\n"
        )

    account = account_for(registrar.auth, party.user)
    client = account.client() if account is not None else None
    return digest_send(once, lambda r: r, client, "REGISTER", lambda: f"sip:{party.domain}")[-1]


__all__ = ["REJECT_CODES", "Callee", "Caller", "new_call_id", "place_call", "register"]
