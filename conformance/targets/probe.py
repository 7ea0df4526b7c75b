"""Is a SIP server answering? One OPTIONS over UDP, retried within a deadline.

The request is built sans-IO with ``conformance.sip.message`` (``options_request``); only
``probe`` touches a socket. Targets use it to decide when a server they started is ready and
to tell a user clearly that nothing answers at the address they named. Every wait is bounded
by ``timeout``; retransmissions follow a short doubling interval (like SIP Timer E, but
starting at 50 ms because start-up on loopback takes ~0.1 s).
"""

from __future__ import annotations

import secrets
import socket
import ssl
import time
from dataclasses import dataclass

from conformance.errors import SipParseError
from conformance.sip import message
from conformance.sip.message import Request, Response
from conformance.sip.stream import StreamFramer


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def options_request(
    host: str,
    port: int,
    *,
    local_host: str,
    local_port: int,
    call_id: str,
    branch: str,
    tag: str,
    transport: str = "udp",
) -> Request:
    """An out-of-dialog OPTIONS to ``sip:host:port`` from ``local_host:local_port``."""
    params = "" if transport == "udp" else f";transport={transport}"
    target = f"sip:{_hostport(host, port)}{params}"
    local = _hostport(local_host, local_port)
    return Request(
        method="OPTIONS",
        uri=target,
        headers=(
            ("Via", f"SIP/2.0/{transport.upper()} {local};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:probe@{local}>;tag={tag}"),
            ("To", f"<{target}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 OPTIONS"),
            ("Contact", f"<sip:probe@{local}>"),
            ("Accept", "application/sdp"),
            ("User-Agent", "dialoginfo-conformance probe"),
            ("Content-Length", "0"),
        ),
    )


def is_answer(request: Request, response: Response) -> bool:
    """Whether ``response`` answers ``request`` (same Call-ID, branch and CSeq)."""
    return (
        response.call_id == request.call_id
        and response.branch == request.branch
        and response.cseq == request.cseq
    )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the probe saw: the final response (None when nothing answered) and the time used."""

    response: Response | None
    elapsed: float
    attempts: int
    error: str | None = None
    """Why no answer came when the transport said so (a TLS certificate refused)."""

    @property
    def ok(self) -> bool:
        return self.response is not None and 200 <= self.response.status < 300


def probe(
    host: str,
    port: int,
    *,
    timeout: float = 2.0,
    local_host: str | None = None,
    transport: str = "udp",
    tls: ssl.SSLContext | None = None,
) -> ProbeResult:
    """Send OPTIONS until a final response arrives or ``timeout`` seconds have passed.

    Any final response counts as an answer (a server may refuse OPTIONS yet be alive); callers
    that need a 200 check ``ok``. Garbage and responses to other requests are ignored. Over
    ``tcp`` one connection carries one OPTIONS (no retransmission: TCP is reliable); ``tls``
    is the same inside TLS with the ``tls`` context (a certificate it refuses is no answer).
    """
    if transport in ("tcp", "tls"):
        if transport == "tls" and tls is None:
            raise ValueError("a TLS probe needs an SSL context (tls=)")
        return _probe_tcp(host, port, timeout=timeout, tls=tls if transport == "tls" else None)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if local_host is None:
        local_host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        if not _is_loopback(host):
            local_host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    start = time.monotonic()
    deadline = start + timeout
    attempts = 0
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((local_host, 0))
        try:
            sock.connect((host, port))  # also picks the source address for a wildcard bind
        except OSError:
            return ProbeResult(None, time.monotonic() - start, 0)
        request = _fresh_request(sock, host, port, "udp")
        data = bytes(request)
        interval = 0.05
        while True:
            now = time.monotonic()
            if now >= deadline:
                return ProbeResult(None, now - start, attempts)
            try:
                sock.send(data)
                attempts += 1
            except OSError:
                pass  # e.g. ECONNREFUSED from an earlier ICMP; keep trying until the deadline
            resend_at = min(now + interval, deadline)
            interval = min(interval * 2, 0.5)
            response = _receive_until(sock, request, resend_at)
            if response is not None:
                return ProbeResult(response, time.monotonic() - start, attempts)


def _fresh_request(sock: socket.socket, host: str, port: int, transport: str) -> Request:
    """An OPTIONS with fresh identifiers, from the address ``sock`` is bound to."""
    bound_host, bound_port = sock.getsockname()[:2]
    return options_request(
        host,
        port,
        local_host=bound_host,
        local_port=bound_port,
        call_id=f"probe-{secrets.token_hex(8)}",
        branch=f"z9hG4bK-{secrets.token_hex(8)}",
        tag=secrets.token_hex(4),
        transport=transport,
    )


def _probe_tcp(
    host: str, port: int, *, timeout: float, tls: ssl.SSLContext | None = None
) -> ProbeResult:
    start = time.monotonic()
    deadline = start + timeout
    attempts = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return ProbeResult(None, time.monotonic() - start, attempts)
        try:
            sock = socket.create_connection((host, port), timeout=left)
        except OSError:  # nothing listens yet
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            continue
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname=host)
            except ssl.SSLCertVerificationError as exc:
                sock.close()
                why = f"TLS certificate refused: {exc.verify_message}"
                return ProbeResult(None, time.monotonic() - start, attempts, why)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                return ProbeResult(None, time.monotonic() - start, attempts, f"TLS: {exc}")
        with sock:
            request = _fresh_request(sock, host, port, "tls" if tls else "tcp")
            attempts += 1
            response = _read_stream(sock, request, deadline)
        if response is not None:
            return ProbeResult(response, time.monotonic() - start, attempts)


def _read_stream(sock: socket.socket, request: Request, until: float) -> Response | None:
    """Send ``request`` on a stream and read messages until its final response or ``until``."""
    try:
        sock.sendall(bytes(request))
    except OSError:
        return None
    framer = StreamFramer()  # Content-Length delimits messages on a stream
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65535)
        except (TimeoutError, OSError):
            return None
        if not chunk:
            return None
        try:
            raws = framer.feed(chunk)
        except SipParseError:
            return None
        for raw in raws:
            try:
                msg = message.parse(raw)
            except SipParseError:
                continue
            if isinstance(msg, Response) and msg.status >= 200 and is_answer(request, msg):
                return msg


def _receive_until(sock: socket.socket, request: Request, until: float) -> Response | None:
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            raw = sock.recv(65535)
        except TimeoutError:
            return None
        except OSError:
            # ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: nothing
            # listens yet. Wait out the interval instead of spinning.
            time.sleep(max(0.0, min(left, 0.02)))
            continue
        try:
            msg = message.parse(raw)
        except SipParseError:
            continue
        if isinstance(msg, Response) and msg.status >= 200 and is_answer(request, msg):
            return msg


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
