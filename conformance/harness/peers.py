"""The SIP peers a conformance case talks through: a Publisher (EPA), Watchers, a one-time fetch.

Each peer is a real SIPp process (the harness never fakes a peer) and everything it reports is
read back from SIPp's message trace, so what a case judges is what went over the wire.

* ``Publisher``: one per test; every call is one short SIPp process (publish.xml or raw.xml).
* ``Watcher``: one per subscription; a long-lived SIPp (watch.xml) driven live over the 3PCC
  twin socket: Python sends one command, waits for its ack, then reads the trace. This is the
  only way found to make a SIPp 3.6.1 watcher refresh or unsubscribe *when the test says so*
  without counting NOTIFYs in advance (BEHAVIOUR.md).
* ``fetch``: SUBSCRIBE with Expires: 0 and the one NOTIFY it yields (fetch.xml).

Every wait is bounded by the peer's ``timeout``; a message that does not come raises
``NotReceivedError`` naming the peer, what was awaited and what did arrive; a SIPp that fails
raises ``HarnessError`` with its command and log tails. All processes are reaped on every path.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conformance.errors import HarnessError, NotReceivedError, UsageError
from conformance.harness.credentials import Credentials, Keyring
from conformance.harness.local_address import local_for, sip_host
from conformance.harness.ports import PortBlock
from conformance.harness.sipp import (
    Ports,
    SippExit,
    SippProcess,
    SippResult,
    command,
    request_files,
    run,
    start_with_edge,
    tls_edge,
)
from conformance.oracle.dialoginfo import CONTENT_TYPE
from conformance.resources import scenario_path
from conformance.sip.digest import DigestClient
from conformance.sip.message import Request, Response, Stamped, param_of, uri_of, value_of
from conformance.sip.trace import Traced

ANSWER_CODES = (200, 481, 489, 500)
"""How a Watcher can answer NOTIFYs (watch.xml has one idle loop per code)."""
RAW_METHODS = ("PUBLISH", "SUBSCRIBE", "OPTIONS", "REGISTER")
"""Methods raw.xml can send (SIPp needs the method literal in the scenario)."""
BIND_RETRIES = 3
"""A port can be taken between PortBlock.take's check and SIPp's bind: try fresh ports."""
BIND_SETTLE = 0.02
"""Seconds a new 3PCC SIPp is watched after its twin socket opened, to catch a late bind
failure of its other ports while a fresh set can still be tried."""
POLL = 0.002
"""Seconds between trace reads while waiting for a NOTIFY."""

_serial = itertools.count(1)


def _name(kind: str, user: str) -> str:
    """A name no other peer of any process uses: the prefix of a run's files, or its folder."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", user)[:40]
    return f"{kind}-{safe}-{os.getpid()}-{next(_serial):04d}"


def _rundir(workdir: Path, kind: str, user: str) -> Path:
    path = workdir / _name(kind, user)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _header_lines(lines: Iterable[str]) -> bytes:
    out = []
    for line in lines:
        if "\r" in line or "\n" in line or ":" not in line:
            raise UsageError(f"a header line is 'Name: value' on one line, not {line!r}")
        out.append(line + "\r\n")
    return "".join(out).encode("utf-8")


def publish_header_lines(
    body: bytes | None,
    *,
    expires: int | None,
    etag: str | None,
    content_type: str | None,
    event: str | None,
    extra_headers: Sequence[str],
) -> list[str]:
    """The optional header lines of a PUBLISH (RFC 3903); None drops a header.

    Shared by every publisher so a one-shot and a live PUBLISH carry the same headers.
    Content-Type goes with a body only; ``extra_headers`` come last, as written (a second
    SIP-If-Match, a wrong Event...).
    """
    if body is not None and not isinstance(body, bytes | bytearray):
        raise UsageError(f"a PUBLISH body is bytes, not {type(body).__name__}")
    lines = []
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if etag is not None:
        lines.append(f"SIP-If-Match: {etag}")
    if body is not None and content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(extra_headers)
    return lines


def _final_response(messages: Iterable[Stamped], cseq: tuple[int, str]) -> Response | None:
    for m in messages:
        msg = m.message
        if (
            m.direction == "in"
            and isinstance(msg, Response)
            and msg.status >= 200
            and msg.cseq == cseq
        ):
            return msg
    return None


def _describe(messages: Sequence[Stamped]) -> str:
    if not messages:
        return "nothing"
    parts = []
    for m in messages[-4:]:
        msg = m.message
        head = msg.method if isinstance(msg, Request) else f"{msg.status} {msg.reason}".strip()
        parts.append(f"{m.direction} {head}")
    more = f"{len(messages) - 4} more, then " if len(messages) > 4 else ""
    return more + ", ".join(parts)


# -- digest authentication -------------------------------------------------------------------
T = TypeVar("T")
CHALLENGES = (401, 407)
DIGEST_ROUNDS = 3
"""Requests one authenticated send may take: the first, the answer to a challenge, and one
more answer when that challenge's nonce turned stale (RFC 2617 §3.2.1)."""


def account_for(auth: Credentials | Keyring | None, user: str) -> Credentials | None:
    """The account a peer acting as ``user`` authenticates with (a Keyring's pool entry for
    ``user``, else its default)."""
    if isinstance(auth, Keyring):
        return auth.for_user(user)
    return auth


def digest_send(
    send: Callable[[list[str]], T],
    response_of: Callable[[T], Response],
    client: DigestClient | None,
    method: str,
    uri: Callable[[], str],
) -> list[T]:
    """Send one request with digest authentication; every attempt, the last one final.

    The one code path of every peer: ``send(lines)`` puts the request on the wire with these
    extra header lines (the Authorization the client owes, if any) and returns what came back.
    A 401/407 is answered once; answered again only when it says ``stale=true``; a second
    challenge of the same nonce ends it (wrong credentials), as a user agent would. ``uri``
    gives the Request-URI of the next request (the digest ``uri`` must equal it, RFC 3261
    §22.4: in a dialog that is the remote target, which SIPp's -auth_uri cannot follow).
    """

    def lines() -> list[str]:
        line = client.header_line(method, uri()) if client else None
        return [line] if line else []

    attempts = [send(lines())]
    answered_fresh = False
    while client is not None and len(attempts) < DIGEST_ROUNDS:
        response = response_of(attempts[-1])
        if response.status not in CHALLENGES:
            break
        name = "Proxy-Authenticate" if response.status == 407 else "WWW-Authenticate"
        challenge = client.take(response.status, response.header_all(name))
        if challenge is None or (answered_fresh and not challenge.stale):
            break
        answered_fresh = answered_fresh or not challenge.stale
        attempts.append(send(lines()))
    return attempts


# -- results ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PublishResult:
    """One PUBLISH transaction as seen on the wire."""

    request: Request
    response: Response
    etag: str | None
    """The response's SIP-ETag (what a later refresh, modify or remove must quote)."""
    expires: int | None
    """The response's Expires (the server may lower what was asked)."""
    exchange: tuple[Stamped, ...]
    """Every traced message of the process, retransmissions included (flagged)."""

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def sent_at(self) -> float | None:
        """Trace time of the request (its first copy): where its effect interval opens."""
        return next(
            (
                m.timestamp
                for m in self.exchange
                if m.direction == "out" and isinstance(m.message, Request)
            ),
            None,
        )

    @property
    def answered_at(self) -> float | None:
        """Trace time of ``response`` (the first copy): where its effect interval closes."""
        return next(
            (
                m.timestamp
                for m in self.exchange
                if m.direction == "in" and m.message is self.response
            ),
            None,
        )


@dataclass(frozen=True)
class Notify:
    """One NOTIFY a watcher received (retransmissions removed) and how it was answered."""

    request: Request
    timestamp: float
    body: bytes
    answered: int | None
    """Status of the answer the watcher sent, None when not (yet) answered."""
    subscription_state: str | None
    """The Subscription-State value before any parameter, lower-cased (active, terminated...)."""
    expires: int | None
    """The ``expires`` parameter of Subscription-State."""
    reason: str | None
    """The ``reason`` parameter of Subscription-State (timeout, deactivated...)."""
    content_type: str | None
    cseq: int | None
    retransmissions: int = 0
    """How many times the server resent this NOTIFY (same branch and CSeq)."""

    @property
    def event(self) -> str | None:
        return self.request.header("Event")

    def summary(self) -> str:
        state = self.subscription_state or "no Subscription-State"
        return f"NOTIFY CSeq {self.cseq} ({state}, {len(self.body)} body bytes)"


def notifies_in(messages: Iterable[Stamped], call_id: str | None = None) -> list[Notify]:
    """The NOTIFYs among ``messages`` (of one dialog when ``call_id``), each with its answer.

    Pure: pairs each received NOTIFY with the first response sent for the same CSeq and Via
    branch; retransmitted NOTIFYs are counted on the original, not listed.
    """
    found: dict[tuple[object, ...], int] = {}
    notifies: list[dict[str, object]] = []
    answers: dict[tuple[object, ...], int] = {}
    for m in messages:
        msg = m.message
        if call_id is not None and msg.call_id != call_id:
            continue
        key = (msg.call_id, msg.cseq, msg.branch)
        if m.direction == "in" and isinstance(msg, Request) and msg.method == "NOTIFY":
            if key in found:
                n = notifies[found[key]]
                n["retransmissions"] = int(n["retransmissions"]) + 1  # type: ignore[call-overload]
                continue
            found[key] = len(notifies)
            notifies.append({"stamped": m, "retransmissions": 0})
        elif (
            m.direction == "out"
            and isinstance(msg, Response)
            and msg.cseq is not None
            and msg.cseq[1] == "NOTIFY"
            and key not in answers
        ):
            answers[key] = msg.status
    out = []
    for n in notifies:
        stamped = n["stamped"]
        assert isinstance(stamped, Stamped)
        req = stamped.message
        assert isinstance(req, Request)
        state_value = req.header("Subscription-State")
        state = value_of(state_value)
        expires = param_of(state_value, "expires")
        out.append(
            Notify(
                request=req,
                timestamp=stamped.timestamp,
                body=req.body,
                answered=answers.get((req.call_id, req.cseq, req.branch)),
                subscription_state=state or None,
                expires=int(expires) if expires and expires.isdigit() else None,
                reason=param_of(state_value, "reason"),
                content_type=req.header("Content-Type"),
                cseq=req.cseq[0] if req.cseq else None,
                retransmissions=int(n["retransmissions"]),  # type: ignore[call-overload]
            )
        )
    return out


# -- Publisher -------------------------------------------------------------------------------
class PublishVerbs:
    """PUBLISH and its refresh, modify and remove (RFC 3903), written once for every publisher.

    A publisher class supplies ``_send_publish``: put these header lines and this body on the
    wire for ``user@domain`` and return what came back.
    """

    def _send_publish(self, user: str, body: bytes | None, lines: list[str]) -> PublishResult:
        raise NotImplementedError

    def publish(
        self,
        user: str,
        body: bytes | None,
        *,
        expires: int | None = 3600,
        etag: str | None = None,
        content_type: str | None = CONTENT_TYPE,
        event: str | None = "dialog",
        extra_headers: Sequence[str] = (),
    ) -> PublishResult:
        """Send one PUBLISH for ``user@domain``; None drops the header (or the body)."""
        lines = publish_header_lines(
            body,
            expires=expires,
            etag=etag,
            content_type=content_type,
            event=event,
            extra_headers=extra_headers,
        )
        return self._send_publish(user, body, lines)

    def refresh(self, user: str, etag: str, *, expires: int = 3600) -> PublishResult:
        """A refresh (RFC 3903 §4.3): SIP-If-Match, no body."""
        return self.publish(user, None, expires=expires, etag=etag)

    def modify(self, user: str, etag: str, body: bytes, *, expires: int = 3600) -> PublishResult:
        """A modify (RFC 3903 §4.4): SIP-If-Match with a new body that replaces the old one."""
        return self.publish(user, body, expires=expires, etag=etag)

    def remove(self, user: str, etag: str) -> PublishResult:
        """A removal (RFC 3903 §4.5): SIP-If-Match with Expires: 0 and no body."""
        return self.publish(user, None, expires=0, etag=etag)


def publish_result(
    request: Request, response: Response, exchange: tuple[Stamped, ...]
) -> PublishResult:
    """A PublishResult read off the response (its SIP-ETag and Expires)."""
    expires_text = response.header("Expires")
    return PublishResult(
        request=request,
        response=response,
        etag=response.header("SIP-ETag"),
        expires=int(expires_text) if expires_text and expires_text.isdigit() else None,
        exchange=exchange,
    )


class Publisher(PublishVerbs):
    """An event publication agent: each call is one short SIPp process (publish.xml, raw.xml)."""

    def __init__(
        self,
        *,
        server: tuple[str, int],
        block: PortBlock,
        workdir: Path,
        domain: str,
        timeout: float = 5.0,
        local: str | None = None,
        transport: str = "udp",
        auth: Credentials | Keyring | None = None,
    ) -> None:
        self.server = server
        self.block = block
        self.workdir = Path(workdir)
        self.domain = domain
        self.timeout = timeout
        self.auth = auth
        """Digest credentials (one account, or a Keyring: each presentity's own account from
        its pool, else the default): a challenge is answered (``digest_send``)."""
        self._clients: dict[str, DigestClient] = {}
        """Per account: the last challenge, so later PUBLISHes carry credentials unasked."""
        self.attempts: list[PublishResult] = []
        """Every PUBLISH the last call sent (challenged ones first, the final one last)."""
        self.transport = transport
        """udp or tcp: what SIPp speaks to ``server`` (TLS is tcp to the harness's relay)."""
        self.local = local_for(local, server)
        """The address every PUBLISH is sent from and advertised in Via (``--local-address``)."""
        self.workdir.mkdir(parents=True, exist_ok=True)

    def with_auth(self, auth: Credentials | Keyring | None) -> Publisher:
        """This publisher with other credentials (None: none), e.g. for a challenge case."""
        return Publisher(
            server=self.server,
            block=self.block,
            workdir=self.workdir,
            domain=self.domain,
            timeout=self.timeout,
            local=self.local,
            transport=self.transport,
            auth=auth,
        )

    def _send_publish(self, user: str, body: bytes | None, lines: list[str]) -> PublishResult:
        account = account_for(self.auth, user)
        client = None
        if account is not None:
            client = self._clients.setdefault(account.user, account.client())
        attempts = digest_send(
            lambda auth: self._publish_once(user, body, lines + auth),
            lambda result: result.response,
            client,
            "PUBLISH",
            lambda: f"sip:{user}@{self.domain}",
        )
        self.attempts = attempts
        return attempts[-1]

    def _publish_once(self, user: str, body: bytes | None, lines: list[str]) -> PublishResult:
        prefix = _name("publish", user) + "."
        data = bytes(body or b"")
        if b"\0" in data:
            raise UsageError("SIPp cannot send a NUL byte (its messages are C strings)")
        keys = {
            "user": user,
            "domain": self.domain,
            "headers": _header_lines(lines).decode("utf-8"),
            # Any other byte travels in argv unchanged (surrogateescape round-trips it).
            "body": os.fsdecode(data),
        }
        result = self._run("publish.xml", prefix, keys=keys)
        what = f"PUBLISH for {user}@{self.domain}"
        request = next(
            (
                m.message
                for m in result.messages
                if m.direction == "out" and isinstance(m.message, Request)
            ),
            None,
        )
        response = _final_response(result.messages, (1, "PUBLISH"))
        if request is None or response is None:
            raise NotReceivedError(
                f"{what}: no final response within {self.timeout} s "
                f"(SIPp {result.exit.name}; traced: {_describe(result.messages)}; "
                f"trace {result.logs['messages']})"
            )
        return publish_result(request, response, result.messages)

    def request(self, raw: str | bytes) -> Response:
        """Send ``raw`` (a whole request) as written, return its final response.

        Fields in brackets are filled in first: [local_ip] [local_port] [remote_ip]
        [remote_port] [transport] [domain] [call_id] [branch] [len] (the body's byte count). A
        ``str`` may use bare LF line ends (they become CRLF); ``bytes`` are sent exactly. The
        method must be one of RAW_METHODS.
        """
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        if isinstance(raw, str):
            data = re.sub(rb"(?<!\r)\n", b"\r\n", data)
        if b"\0" in data:
            raise UsageError("SIPp cannot send a NUL byte (its messages are C strings)")
        method, space, rest = data.partition(b" ")
        if not space or method.decode("latin-1") not in RAW_METHODS:
            raise UsageError(
                f"a raw request starts with one of {', '.join(RAW_METHODS)}, not {data[:40]!r}"
            )
        ports = Ports.take(self.block, host=self.local)
        call_id = f"raw-{uuid.uuid4().hex}@127.0.0.1"
        head, sep, body = rest.partition(b"\r\n\r\n")
        fields = {
            b"[local_ip]": sip_host(self.local).encode(),
            b"[local_port]": str(ports.sip).encode(),
            b"[remote_ip]": self.server[0].encode(),
            b"[remote_port]": str(self.server[1]).encode(),
            b"[transport]": self.transport.upper().encode(),
            b"[domain]": self.domain.encode(),
            b"[call_id]": call_id.encode(),
            b"[branch]": f"z9hG4bK-{uuid.uuid4().hex[:16]}".encode(),
            b"[len]": str(len(body)).encode(),
        }
        for name, value in fields.items():
            head = head.replace(name, value)
        rest = head + sep + body
        found = re.search(rb"^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)", head, re.MULTILINE | re.I)
        cid = found.group(1).decode("latin-1") if found else call_id
        prefix = _name("raw", method.decode("latin-1").lower()) + "."
        files = request_files(self.workdir, [(prefix + "request", rest)])
        result = self._run(
            "raw.xml",
            prefix,
            keys={"request_file": str(files[prefix + "request"])},
            sets={"method": method.decode("latin-1")},
            extra=("-cid_str", cid.replace("%", "%%")),
            ports=ports,
        )
        cseq_match = re.search(rb"^CSeq[ \t]*:[ \t]*(\d+)", head, re.MULTILINE | re.I)
        response = None
        if cseq_match:
            response = _final_response(
                result.messages, (int(cseq_match.group(1)), method.decode("latin-1"))
            )
        if response is None:  # no usable CSeq in a negative case: take any final response
            response = next(
                (
                    m.message
                    for m in result.messages
                    if m.direction == "in"
                    and isinstance(m.message, Response)
                    and m.message.status >= 200
                ),
                None,
            )
        if response is None:
            raise NotReceivedError(
                f"raw {method.decode('latin-1')}: no final response within {self.timeout} s "
                f"(SIPp {result.exit.name}; traced: {_describe(result.messages)}; "
                f"trace {result.logs['messages']})"
            )
        return response

    def options(self, user: str) -> Response:
        """An OPTIONS to ``user@domain``: a probe that goes through SIPp like everything else."""
        return self.request(
            f"OPTIONS sip:{user}@[domain] SIP/2.0\n"
            "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
            "Max-Forwards: 70\n"
            f"From: <sip:{user}@[domain]>;tag=opt-{uuid.uuid4().hex[:12]}\n"
            f"To: <sip:{user}@[domain]>\n"
            "Call-ID: [call_id]\n"
            "CSeq: 1 OPTIONS\n"
            f"Accept: {CONTENT_TYPE}\n"
            "Content-Length: 0\n\n"
        )

    def _run(self, scenario: str, prefix: str, **kwargs: Any) -> SippResult:
        return _oneshot(
            scenario,
            self.workdir,
            prefix,
            server=self.server,
            block=self.block,
            timeout=self.timeout,
            local=self.local,
            transport=self.transport,
            **kwargs,
        )


def _oneshot(
    scenario: str,
    workdir: Path,
    prefix: str,
    *,
    server: tuple[str, int],
    block: PortBlock,
    timeout: float,
    keys: dict[str, str],
    sets: dict[str, str] | None = None,
    extra: Sequence[str] = (),
    ports: Ports | None = None,
    local: str,
    transport: str = "udp",
) -> SippResult:
    """Run a one-shot scenario; retry on a lost port race; HarnessError when SIPp itself broke."""
    for _attempt in range(BIND_RETRIES):
        result = run(
            scenario_path(scenario),
            server=server,
            block=block,
            workdir=workdir,
            timeout=timeout,
            keys=keys,
            sets=sets,
            extra=extra,
            ports=ports,
            prefix=prefix,
            local=local,
            transport=transport,
        )
        if result.exit is not SippExit.BIND_FAILED:
            break
        ports = None  # take fresh ones (a raw request's file names its old port; harmless)
    broken = result.exit in (SippExit.FATAL, SippExit.BIND_FAILED, SippExit.UNKNOWN)
    if broken or (result.exit is SippExit.CALL_FAILED and not result.messages):
        result.ok()  # raises HarnessError with the command and the log tails
    return result


# -- Watcher ---------------------------------------------------------------------------------
class _Twin:
    """The TCP side of SIPp's 3PCC twin socket: one command at a time, each acked."""

    def __init__(self, port: int, deadline: float, proc: SippProcess) -> None:
        self.sock: socket.socket | None = None
        last: OSError | None = None
        while time.monotonic() < deadline:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=0.5)
                break
            except OSError as exc:  # SIPp not listening yet
                last = exc
                if not proc.alive():
                    raise proc.failure(
                        "watcher SIPp exited before its 3PCC socket opened"
                    ) from None
                time.sleep(0.0005)  # SIPp opens it ~7 ms after exec; refused connects are cheap
        if self.sock is None:
            raise proc.failure(f"cannot connect to the watcher's 3PCC port {port}: {last}")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def command(
        self, headers: Sequence[tuple[str, str]], deadline: float, body: bytes = b""
    ) -> dict[str, str]:
        """Send one command and return the ack's headers; raises TimeoutError past deadline.

        ``body`` follows the blank line, byte for byte; a scenario reads it with
        ``<ereg search_in="body" regexp="^.*$">`` (any byte but NUL and ESC, the terminator).
        """
        assert self.sock is not None
        if b"\x1b" in body or b"\0" in body:
            raise UsageError("a 3PCC command cannot carry ESC (its terminator) or NUL")
        text = "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
        self.sock.sendall(text.encode("utf-8") + body + b"\x1b")
        while b"\x1b" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except TimeoutError:
                raise
            if not chunk:
                raise ConnectionError("SIPp closed the 3PCC connection")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\x1b")
        ack: dict[str, str] = {}
        for line in raw.decode("utf-8", "replace").splitlines():
            name, colon, value = line.partition(":")
            if colon:
                ack[name.strip().lower()] = value.strip()
        return ack

    def close(self) -> None:
        """Reset the connection (SO_LINGER 0): no side keeps the twin port in TIME_WAIT.

        A graceful close by either side leaves a TIME_WAIT on one of the two ports for a
        minute; on SIPp's side that is the twin port, which PortBlock.take then sees as taken,
        and with every watcher burning one port in a fixed position of its 4-port window a
        block soon has no free window at all.
        """
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.sock = None


def start_controlled(
    scenario: str,
    *,
    server: tuple[str, int],
    block: PortBlock,
    workdir: Path,
    keys: dict[str, str],
    lifetime: float,
    deadline: float,
    local: str | None = None,
    transport: str = "udp",
    extra: Sequence[str] = (),
) -> tuple[SippProcess, _Twin, Ports]:
    """Start a long-lived SIPp driven over its 3PCC twin socket (watch.xml, caller.xml,
    callee.xml, live.xml) and connect to that socket; fresh ports when another process won a
    bind race.

    No ``-m``: the scenario ends itself or the owner stops it. Raises HarnessError (with the
    command and log tails) when SIPp cannot be started or its socket does not open by
    ``deadline``; nothing is left running then. ``local`` is the address SIPp binds its SIP
    socket to and advertises (by default the kernel's choice towards ``server``); the 3PCC twin
    socket stays on loopback.
    """
    local = local_for(local, server)
    for attempt in range(BIND_RETRIES):
        ports = Ports.take(block, host=local)
        edge = tls_edge(server, local, ports, block) if transport == "tls" else None
        argv, logs = command(
            scenario_path(scenario),
            server=edge.plain if edge else server,
            ports=ports,
            workdir=workdir,
            keys=keys,
            calls=None,
            timeout=lifetime,
            extra=("-3pcc", f"127.0.0.1:{ports.twin}", *extra),
            local=local,
            **(edge.sipp_args if edge else {"transport": transport}),
        )
        proc = start_with_edge(SippProcess(argv, logs, cwd=workdir), edge)
        try:
            twin = _Twin(ports.twin, deadline, proc)
            # SIPp opens the twin socket before it binds -cp and -mp: a port taken meanwhile
            # (the kernel hands out ephemeral ports inside the blocks) ends it just after we
            # connected (seen: "Unable to bind remote control socket", exit 254).
            if proc.wait(BIND_SETTLE):
                twin.close()
                raise proc.failure(f"{scenario}: SIPp exited right after start")
            return proc, twin, ports
        except HarnessError:
            proc.wait(0.2)
            if proc.exit is not SippExit.BIND_FAILED or attempt == BIND_RETRIES - 1:
                proc.stop(grace=0)
                raise
            proc.stop()
    raise HarnessError(f"{scenario}: no free ports after {BIND_RETRIES} tries")


class Watcher:
    """A subscriber to ``user@domain`` (Event: dialog by default): one SIPp under 3PCC control."""

    def __init__(
        self,
        *,
        server: tuple[str, int],
        block: PortBlock,
        workdir: Path,
        domain: str,
        user: str,
        expires: int | None = 600,
        accept: str | None = CONTENT_TYPE,
        event: str | None = "dialog",
        answer: int = 200,
        timeout: float = 5.0,
        lifetime: float = 900.0,
        local: str | None = None,
        transport: str = "udp",
        watcher: str = "watcher",
        auth: Credentials | Keyring | None = None,
    ) -> None:
        if answer not in ANSWER_CODES:
            raise UsageError(f"a watcher answers NOTIFYs with one of {ANSWER_CODES}, not {answer}")
        self.server = server
        self.block = block
        self.workdir = Path(workdir)
        self.domain = domain
        self.user = user
        self.expires = expires
        self.accept = accept
        self.event = event
        self.answer = answer
        self.timeout = timeout
        self.lifetime = lifetime
        self.local = local_for(local, server)
        """The address SIPp binds and puts in Via and Contact: the server's NOTIFYs come here."""
        self.transport = transport
        """udp or tcp; on tcp the server may reuse the SUBSCRIBE's connection or open one to
        the Contact (SIPp listens on its port)."""
        self.watcher = watcher
        """The user part of From and Contact (in a user pool: an account of the pool)."""
        account = account_for(auth, watcher)
        self._client = account.client() if account is not None else None
        """Digest state of the watcher's account: challenges to the SUBSCRIBE, its refreshes
        and unsubscribe are answered with the Request-URI each one carries."""
        self.name = f"watcher of {user}"
        self.call_id = f"watch-{uuid.uuid4().hex}@127.0.0.1"
        self.responses: list[Response] = []
        """Final responses to this watcher's SUBSCRIBEs, in order."""
        self._proc: SippProcess | None = None
        self._twin: _Twin | None = None
        self._cseq = 0
        self._target = f"sip:{user}@{domain}"
        self._active = False
        self._established = False
        self._rundir: Path | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> Response:
        """Start SIPp and send the SUBSCRIBE; return its final response (any status)."""
        if self._proc is not None:
            raise UsageError(f"{self.name} is already started")
        self._rundir = _rundir(self.workdir, "watch", self.user)
        self._proc, self._twin, _ = start_controlled(
            "watch.xml",
            server=self.server,
            block=self.block,
            workdir=self._rundir,
            keys={"user": self.user, "domain": self.domain, "watcher": self.watcher},
            lifetime=self.lifetime,
            deadline=time.monotonic() + self.timeout,
            local=self.local,
            transport=self.transport,
            extra=("-aa",),
        )
        try:
            if self.answer != 200:
                self._command([("X-Op", f"answer-{self.answer}")], "answer mode")
            response = self._subscribe(self.expires)
        except BaseException:
            self.close()
            raise
        return response

    def close(self) -> None:
        """Unsubscribe if still active (best effort, bounded), stop SIPp, reap it. Idempotent."""
        proc, twin = self._proc, self._twin
        if proc is None:
            return
        self.resume()  # a paused watcher could not unsubscribe
        try:
            if twin is not None and proc.alive():
                bound = min(self.timeout, 2.0)
                try:
                    if self._active:
                        before = len(self.notifies)
                        self._subscribe(0, timeout=bound)
                        # Let the final NOTIFY arrive and be answered, so the server does not
                        # retransmit it to a closed port.
                        self._wait(before + 1, timeout=min(bound, 1.0), strict=False)
                except (HarnessError, OSError):
                    pass
        finally:
            # Reset the control connection first, then SIGKILL (everything is already in the
            # trace). SIPp's own "stop" command works too, but its graceful exit closes the twin
            # socket first and so leaves the twin port in TIME_WAIT (see _Twin.close); SIGTERM
            # is sometimes ignored by SIPp 3.6.1.
            if twin is not None:
                twin.close()
            self._twin = None
            proc.stop(grace=0)
            self._active = False

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- subscription -----------------------------------------------------------------------
    def refresh(self, expires: int = 600) -> Response:
        """Send an in-dialog SUBSCRIBE with ``expires``; return its final response."""
        return self._subscribe(expires)

    def unsubscribe(self) -> Response:
        """SUBSCRIBE with Expires: 0; the server then owes a terminated NOTIFY."""
        return self._subscribe(0)

    def pause(self) -> None:
        """Stop answering anything: the watcher's SIPp is suspended (SIGSTOP), as a phone that
        hangs would be. Used to let a server's Timer F run out (B26)."""
        if self._proc is None or self._proc.pid is None:
            raise UsageError(f"{self.name} is not started")
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause``; datagrams that queued meanwhile are then handled late."""
        if self._proc is not None and self._proc.pid is not None and self._proc.alive():
            os.kill(self._proc.pid, signal.SIGCONT)

    def set_answer(self, code: int) -> None:
        """Answer later NOTIFYs with ``code`` (one of ANSWER_CODES)."""
        if code not in ANSWER_CODES:
            raise UsageError(f"a watcher answers NOTIFYs with one of {ANSWER_CODES}, not {code}")
        self._command([("X-Op", f"answer-{code}")], "answer mode")
        self.answer = code

    @property
    def from_tag(self) -> str | None:
        """The From tag of this watcher's SUBSCRIBEs (its side of the dialog), once sent."""
        for m in self.messages:
            msg = m.message
            if m.direction == "out" and isinstance(msg, Request) and msg.method == "SUBSCRIBE":
                return msg.from_tag
        return None

    def sent_at(self, cseq: tuple[int, str] | None) -> float | None:
        """Trace time of this watcher's request with ``cseq`` (its first copy), if traced."""
        for m in self.messages:
            if m.direction == "out" and isinstance(m.message, Request) and m.message.cseq == cseq:
                return m.timestamp
        return None

    @property
    def relay(self) -> Any:
        """The TLS relay of this watcher's SIPp (``transport="tls"``), for its counts."""
        return self._proc.relay if self._proc is not None else None

    @property
    def active(self) -> bool:
        """True while this watcher believes its subscription exists."""
        return self._active

    # -- observation ------------------------------------------------------------------------
    @property
    def messages(self) -> list[Traced]:
        """Everything this watcher's SIPp traced so far (retransmissions flagged)."""
        return self._proc.messages() if self._proc else []

    @property
    def notifies(self) -> list[Notify]:
        """Every NOTIFY of this subscription received so far, retransmissions removed."""
        found = notifies_in(self.messages, self.call_id)
        for n in found:
            if n.subscription_state == "terminated" or (n.answered or 200) >= 300:
                self._active = False
        return found

    def wait_notifies(self, count: int, *, timeout: float | None = None) -> list[Notify]:
        """Wait until at least ``count`` NOTIFYs in total arrived (and were answered)."""
        return self._wait(count, timeout=self.timeout if timeout is None else timeout)

    def expect_silence(self, seconds: float) -> list[Notify]:
        """Wait ``seconds`` and return the NOTIFYs that arrived meanwhile (ideally none)."""
        before = len(self.notifies)
        time.sleep(max(0.0, seconds))
        return self.notifies[before:]

    # -- internals --------------------------------------------------------------------------
    def _wait(self, count: int, *, timeout: float, strict: bool = True) -> list[Notify]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.notifies
            if len(found) >= count and all(n.answered is not None for n in found[:count]):
                return found
            if time.monotonic() >= deadline:
                if len(found) >= count or not strict:
                    return found
                last = f"last: {found[-1].summary()}" if found else "none arrived"
                raise NotReceivedError(
                    f"{self.name}: expected {count} NOTIFYs within {timeout} s, "
                    f"got {len(found)} ({last})"
                )
            if self._proc is not None and not self._proc.alive():
                raise self._proc.failure(
                    f"{self.name}: SIPp exited while waiting for {count} NOTIFYs (got {len(found)})"
                )
            time.sleep(POLL)

    def _subscribe(self, expires: int | None, *, timeout: float | None = None) -> Response:
        if self._proc is None:
            raise UsageError(f"{self.name} is not started")
        lines = []
        if self.event is not None:
            lines.append(f"Event: {self.event}")
        if self.accept is not None:
            lines.append(f"Accept: {self.accept}")
        if expires is not None:  # None: no Expires header, the package default applies (B04)
            lines.append(f"Expires: {expires}")
        attempts = digest_send(
            lambda auth: self._subscribe_once(lines + auth, expires, timeout),
            lambda response: response,
            self._client,
            "SUBSCRIBE",
            lambda: self._target,
        )
        return attempts[-1]

    def _subscribe_once(
        self, lines: list[str], expires: int | None, timeout: float | None
    ) -> Response:
        assert self._proc is not None
        self._cseq += 1
        cseq = self._cseq
        assert self._rundir is not None
        files = request_files(self._rundir, [(f"subscribe-{cseq}.txt", _header_lines(lines))])
        ack = self._command(
            [
                ("X-Op", "subscribe"),
                ("X-CSeq", str(cseq)),
                ("X-Target", self._target),
                ("X-Headers", str(files[f"subscribe-{cseq}.txt"])),
            ],
            f"response to SUBSCRIBE (CSeq {cseq}, Expires {expires})",
            timeout=timeout,
        )
        what = f"{self.name}: final response to SUBSCRIBE (CSeq {cseq}, Expires {expires})"
        if ack.get("x-ack") == "timeout":
            raise NotReceivedError(f"{what} did not arrive (SIPp gave up after 32 s)")
        response = _final_response(self.messages, (cseq, "SUBSCRIBE"))
        if response is None:
            raise NotReceivedError(f"{what} acked but not in the trace {self._proc.logs}")
        self.responses.append(response)
        if 200 <= response.status < 300:
            self._active = expires is None or expires > 0
            if not self._established:  # the first 2xx (CSeq 2 after a challenge)
                self._established = True
                contact = uri_of(response.header("Contact"))
                if contact:
                    self._target = contact
        return response

    def _command(
        self, headers: list[tuple[str, str]], awaited: str, *, timeout: float | None = None
    ) -> dict[str, str]:
        if self._proc is None or self._twin is None:
            raise UsageError(f"{self.name} is not started")
        if self.answer != 200:
            # A command that lands while the scenario itself answers a NOTIFY kills the call
            # (BEHAVIOUR.md): let pending answers go out first.
            self._settle(0.5)
        bound = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        try:
            return self._twin.command([("Call-ID", self.call_id), *headers], deadline)
        except TimeoutError:
            raise NotReceivedError(
                f"{self.name}: {awaited} not received within {bound} s "
                f"(traced: {_describe(self.messages)})"
            ) from None
        except OSError as exc:
            self._proc.wait(0.2)
            raise self._proc.failure(
                f"{self.name}: lost the 3PCC control connection: {exc}"
            ) from exc

    def _settle(self, bound: float) -> None:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if all(n.answered is not None for n in self.notifies):
                return
            time.sleep(POLL)


# -- fetch -----------------------------------------------------------------------------------
def fetch(
    *,
    server: tuple[str, int],
    block: PortBlock,
    workdir: Path,
    domain: str,
    user: str,
    accept: str | None = CONTENT_TYPE,
    event: str | None = "dialog",
    timeout: float = 5.0,
    local: str | None = None,
    transport: str = "udp",
    watcher: str = "fetcher",
    auth: Credentials | Keyring | None = None,
) -> tuple[Response, list[Notify]]:
    """A one-time fetch (SUBSCRIBE, Expires: 0): its final response and the NOTIFY it yields.

    Raises NotReceivedError when no final response arrives, or a 2xx is not followed by a
    NOTIFY within ``timeout``. ``local``: the address to bind and advertise (by default the
    kernel's source address towards ``server``). ``watcher``: the From user; ``auth``: its
    digest account (a challenge is answered by a second process, ``digest_send``).
    """
    lines = []
    if event is not None:
        lines.append(f"Event: {event}")
    if accept is not None:
        lines.append(f"Accept: {accept}")
    lines.append("Expires: 0")
    target = f"sip:{user}@{domain}"
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    def once(auth: list[str]) -> SippResult:
        keys = {
            "user": user,
            "domain": domain,
            "watcher": watcher,
            "headers": _header_lines(lines + auth).decode("utf-8"),
        }
        return _oneshot(
            "fetch.xml",
            workdir,
            _name("fetch", user) + ".",
            server=server,
            block=block,
            timeout=timeout,
            keys=keys,
            local=local_for(local, server),
            transport=transport,
        )

    def final(result: SippResult) -> Response:
        found = _final_response(result.messages, (1, "SUBSCRIBE"))
        if found is None:
            raise NotReceivedError(
                f"fetch of {user}@{domain}: no final response to SUBSCRIBE within {timeout} s "
                f"(traced: {_describe(result.messages)}; trace {result.logs['messages']})"
            )
        return found

    account = account_for(auth, watcher)
    result = digest_send(
        once, final, account.client() if account else None, "SUBSCRIBE", lambda: target
    )[-1]
    what = f"fetch of {user}@{domain}"
    response = final(result)
    notifies = notifies_in(result.messages, response.call_id)
    if 200 <= response.status < 300 and not notifies:
        raise NotReceivedError(
            f"{what}: {response.status} but no NOTIFY within {timeout} s "
            f"(traced: {_describe(result.messages)}; trace {result.logs['messages']})"
        )
    return response, notifies


__all__ = [
    "ANSWER_CODES",
    "RAW_METHODS",
    "Notify",
    "PublishResult",
    "PublishVerbs",
    "Publisher",
    "Watcher",
    "account_for",
    "digest_send",
    "fetch",
    "notifies_in",
    "publish_header_lines",
    "publish_result",
    "start_controlled",
]
