"""A long-lived SIPp peer that sends any request, with any body, on command: no process per request.

The one-shot ``Publisher`` (peers.py) starts a SIPp process per PUBLISH: ~11 ms of process start
for ~1 ms of SIP. An explorer that runs thousands of steps needs the SIP part only, so this peer
keeps one SIPp (``sipp_scenarios/live.xml``) alive under 3PCC control, as the Watcher does, and
passes each whole request (Request-URI, headers, blank line, body) as the *body* of a 3PCC
command. SIPp 3.6.1 carries it byte for byte: ``<ereg search_in="body" regexp="^.*$">`` captures
a multi-line body ("." matches newlines in POSIX regexes), and ``[$req]`` inserts it unchanged.
Measured here (benchmarks/live_publisher.py): bodies of 0 B to 30 kB, CRLF and bare LF lines,
UTF-8, Latin-1 and control bytes, text that looks like SIPp keywords (``[call_id]``) all arrive
intact. The only bytes a command cannot carry are NUL (SIPp's messages are C strings) and ESC
(the command terminator).

Because the controller writes the whole request, every header is the caller's: any Expires,
SIP-If-Match (none, one, two), a wrong Event, a wrong or missing Content-Type. Via branch, CSeq
and Content-Length are filled in here; the Call-ID is the peer's one call (SIPp maps a response
to its call by Call-ID only), From tags differ per request.

Each request is one command, acked by the scenario once the final response arrived. The response
itself is read from the message trace and matched by CSeq: SIPp matches on the status code alone,
so a late duplicate of an earlier response could end the wait; that is counted in ``stray``
and the right response is awaited. Traps of SIPp 3.6.1 (BEHAVIOUR.md) this obeys: one command at
a time, each acked before the next; the process dies with its parent; the 3PCC port is reset,
not closed, so it does not linger in TIME_WAIT.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import HarnessError, NotReceivedError, UsageError
from conformance.harness.credentials import Credentials, Keyring
from conformance.harness.local_address import local_for, sip_host
from conformance.harness.peers import (
    Notify,
    PublishResult,
    PublishVerbs,
    _describe,
    _header_lines,
    _rundir,
    _Twin,
    account_for,
    digest_send,
    notifies_in,
    publish_result,
    start_controlled,
)
from conformance.harness.ports import PortBlock
from conformance.harness.relay import TlsRelay
from conformance.harness.sipp import SippProcess, advertised_port
from conformance.oracle.dialoginfo import CONTENT_TYPE
from conformance.sip.digest import DigestClient
from conformance.sip.message import Request, Response
from conformance.sip.trace import Traced

METHODS = ("PUBLISH", "OPTIONS", "SUBSCRIBE")
"""Methods live.xml can send (its generator, sipp_scenarios/generate.py, lists them too)."""
SCENARIO_WAIT = 8.0
"""Seconds live.xml waits for a final response before it acks "timeout" (LIVE_TIMEOUT_MS)."""
ACK_MARGIN = 2.0
"""Extra seconds the controller waits for an ack beyond SCENARIO_WAIT. Giving up earlier would
leave the scenario mid-request, and the next command would then kill the call silently."""
POLL = 0.0005
"""Seconds between trace reads while a response or NOTIFY is awaited after the ack."""


@dataclass(frozen=True)
class Exchange:
    """One request this peer sent and the final response matched to it by CSeq."""

    request: Request
    response: Response
    entries: tuple[Traced, ...]
    """Every traced message of this transaction, retransmissions included (flagged)."""
    seconds: float
    """Command sent to response in the trace, as the controller saw it."""


class LivePeer(PublishVerbs):
    """One SIPp under 3PCC control sending PUBLISH, OPTIONS and fetch SUBSCRIBEs on command.

    ``publish`` and the ``PublishVerbs`` (refresh, modify, remove) return the same
    ``PublishResult`` as the one-shot ``Publisher``, so either can serve a caller. Not
    thread-safe: one request at a time is the rule of the 3PCC channel anyway.
    """

    def __init__(
        self,
        *,
        server: tuple[str, int],
        block: PortBlock,
        workdir: Path,
        domain: str,
        timeout: float = 5.0,
        lifetime: float = 3600.0,
        name: str = "live",
        auth: Credentials | Keyring | None = None,
        local: str | None = None,
        transport: str = "udp",
    ) -> None:
        self.server = server
        self.local = local_for(local, server)
        """The address SIPp binds and the requests advertise in Via and Contact."""
        self.transport = transport
        """udp, tcp or tls (tls: SIPp's TCP through the harness's relay, as every peer)."""
        self.block = block
        self.workdir = Path(workdir)
        self.domain = domain
        self.timeout = timeout
        """Bound on the wait for a NOTIFY after a fetch and for the process to start."""
        self.lifetime = lifetime
        self.name = name
        self.call_id = f"live-{uuid.uuid4().hex}@{sip_host(self.local)}"
        self.sent = 0
        """Requests sent so far."""
        self.stray = 0
        """Acks that a late or duplicate response triggered (see the module docstring)."""
        self._proc: SippProcess | None = None
        self._twin: _Twin | None = None
        self._port = 0
        self._cseq = itertools.count(1)
        self._messages: list[Traced] = []
        self._broken: str | None = None
        self.auth = auth
        """Digest credentials: each request's user authenticates as its account
        (``peers.digest_send``, the one code path of every peer)."""
        self._clients: dict[str, DigestClient] = {}

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> LivePeer:
        if self._proc is not None:
            raise UsageError(f"{self.name} peer is already started")
        rundir = _rundir(self.workdir, self.name, "peer")
        self._proc, self._twin, ports = start_controlled(
            "live.xml" if self.transport == "udp" else "live-stream.xml",  # see generate.py
            server=self.server,
            block=self.block,
            workdir=rundir,
            keys={"domain": self.domain},
            lifetime=self.lifetime,
            deadline=time.monotonic() + self.timeout,
            extra=("-aa",),
            local=self.local,
            transport=self.transport,
        )
        self._port = advertised_port(self._proc, ports)
        return self

    def close(self) -> None:
        """Reset the control connection, SIGKILL SIPp (all is in the trace). Idempotent."""
        if self._twin is not None:
            self._twin.close()
            self._twin = None
        if self._proc is not None:
            self._proc.stop(grace=0)

    def __enter__(self) -> LivePeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive() and self._broken is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def relay(self) -> TlsRelay | None:
        """The TLS relay of this peer's SIPp (``transport="tls"``), for its counts."""
        return self._proc.relay if self._proc is not None else None

    @property
    def messages(self) -> list[Traced]:
        """Everything this peer's SIPp traced so far (retransmissions flagged)."""
        self._refresh()
        return list(self._messages)

    # -- PUBLISH ----------------------------------------------------------------------------
    def _send_publish(self, user: str, body: bytes | None, lines: list[str]) -> PublishResult:
        exchange = self.request("PUBLISH", user, lines, bytes(body or b""))
        return publish_result(exchange.request, exchange.response, exchange.entries)

    # -- other requests ---------------------------------------------------------------------
    def options(self, user: str) -> Response:
        """An OPTIONS to ``user@domain``: the liveness probe, through the same process."""
        return self.request("OPTIONS", user, [f"Accept: {CONTENT_TYPE}"]).response

    def fetch(
        self,
        user: str,
        *,
        accept: str | None = CONTENT_TYPE,
        event: str | None = "dialog",
        timeout: float | None = None,
    ) -> tuple[Response, list[Notify]]:
        """A one-time fetch (SUBSCRIBE, Expires: 0): its final response and its NOTIFY.

        SIPp's ``-aa`` answers the NOTIFY 200 whenever it comes. Raises NotReceivedError when a
        2xx is not followed by a NOTIFY of this fetch (To tag = its From tag) within the bound.
        """
        lines = [f"Event: {event}"] if event is not None else []
        if accept is not None:
            lines.append(f"Accept: {accept}")
        lines.append("Expires: 0")
        exchange = self.request("SUBSCRIBE", user, lines, contact=True)
        response = exchange.response
        if not 200 <= response.status < 300:
            return response, []
        tag = exchange.request.from_tag
        bound = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        while True:
            self._refresh()
            found = [
                n
                for n in notifies_in(self._messages, self.call_id)
                if n.request.to_tag == tag and n.answered is not None
            ]
            if found:
                return response, found
            if time.monotonic() >= deadline:
                raise NotReceivedError(
                    f"{self.name} peer: fetch of {user}@{self.domain}: {response.status} but no "
                    f"NOTIFY within {bound} s (traced: {_describe(self._messages)})"
                )
            time.sleep(POLL)

    def request(
        self,
        method: str,
        user: str,
        header_lines: Sequence[str],
        body: bytes = b"",
        *,
        contact: bool = False,
    ) -> Exchange:
        """Send ``method`` to ``user@domain`` with these header lines and body; await its answer.

        Via, Max-Forwards, From (a fresh tag), To, Call-ID, CSeq and Content-Length are written
        here; ``header_lines`` come between CSeq and Content-Length, as given. With ``auth``, a
        challenge is answered by a second request (the next CSeq).
        """
        account = account_for(self.auth, user)
        client = None
        if account is not None:
            client = self._clients.setdefault(account.user, account.client())
        return digest_send(
            lambda auth: self._request_once(method, user, [*header_lines, *auth], body, contact),
            lambda exchange: exchange.response,
            client,
            method,
            lambda: f"sip:{user}@{self.domain}",
        )[-1]

    def _request_once(
        self,
        method: str,
        user: str,
        header_lines: Sequence[str],
        body: bytes,
        contact: bool,
    ) -> Exchange:
        if method not in METHODS:
            raise UsageError(f"the live peer sends one of {', '.join(METHODS)}, not {method!r}")
        if self._proc is None or self._twin is None:
            raise UsageError(f"{self.name} peer is not started")
        if self._broken is not None:
            raise HarnessError(f"{self.name} peer is unusable: {self._broken}")
        cseq = next(self._cseq)
        aor = f"sip:{user}@{self.domain}"
        here = f"{sip_host(self.local)}:{self._port}"
        head = [
            f"{aor} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {here};branch=z9hG4bK-{uuid.uuid4().hex[:20]}",
            "Max-Forwards: 70",
            f"From: <{aor}>;tag={self.name}-{cseq}-{uuid.uuid4().hex[:8]}",
            f"To: <{aor}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
        ]
        if contact:
            params = "" if self.transport == "udp" else f";transport={self.transport}"
            head.append(f"Contact: <sip:{self.name}@{here}{params}>")
        data = (
            "\r\n".join(head).encode("utf-8")
            + b"\r\n"
            + _header_lines(header_lines)
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        started = time.monotonic()
        ack = self._command(method.lower(), data, f"final response to {method} CSeq {cseq}")
        self.sent += 1
        what = f"{self.name} peer: final response to {method} (CSeq {cseq}) for {aor}"
        if ack == "timeout":
            raise NotReceivedError(f"{what} did not arrive within {SCENARIO_WAIT} s")
        if ack != "done":
            self._broken = f"unexpected ack {ack!r}"
            raise HarnessError(f"{what}: the scenario answered {ack!r}")
        found = self._matched(cseq, method)
        if found is None:
            # The ack came from a late response to an earlier request; ours is still due and
            # the idle loop will absorb it into the trace.
            self.stray += 1
            deadline = time.monotonic() + SCENARIO_WAIT
            while found is None and time.monotonic() < deadline:
                time.sleep(POLL)
                found = self._matched(cseq, method)
            if found is None:
                raise NotReceivedError(f"{what} did not arrive within {SCENARIO_WAIT} s")
        request, response, entries = found
        return Exchange(
            request=request,
            response=response,
            entries=tuple(entries),
            seconds=time.monotonic() - started,
        )

    # -- internals --------------------------------------------------------------------------
    def _refresh(self) -> None:
        if self._proc is not None:
            self._messages = self._proc.messages()

    def _matched(self, cseq: int, method: str) -> tuple[Request, Response, list[Traced]] | None:
        """The request with this CSeq, its final response, and every traced entry of both."""
        self._refresh()
        response: Response | None = None
        entries: list[Traced] = []
        for m in reversed(self._messages):
            msg = m.message
            if msg.cseq != (cseq, method):
                if entries and m.timestamp < entries[-1].timestamp - SCENARIO_WAIT:
                    break  # far older than this transaction: stop scanning
                continue
            entries.append(m)
            if m.direction == "in" and isinstance(msg, Response) and msg.status >= 200:
                response = response or msg
            if m.direction == "out" and isinstance(msg, Request) and not m.retransmission:
                if response is None:
                    return None
                return msg, response, entries[::-1]
        return None

    def _command(self, op: str, body: bytes, awaited: str) -> str:
        assert self._proc is not None and self._twin is not None
        bound = SCENARIO_WAIT + ACK_MARGIN
        try:
            ack = self._twin.command(
                [("Call-ID", self.call_id), ("X-Op", op)], time.monotonic() + bound, body
            )
        except TimeoutError:
            self._broken = f"no ack within {bound} s"
            raise NotReceivedError(
                f"{self.name} peer: {awaited} not acked within {bound} s "
                f"(traced: {_describe(self._messages)})"
            ) from None
        except OSError as exc:
            self._broken = f"lost the 3PCC connection: {exc}"
            self._proc.wait(0.2)
            raise self._proc.failure(
                f"{self.name} peer: lost the 3PCC control connection: {exc}"
            ) from exc
        return ack.get("x-ack", "")


__all__ = ["METHODS", "SCENARIO_WAIT", "Exchange", "LivePeer"]
