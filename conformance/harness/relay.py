"""TLS at the harness edge: Debian's SIPp has no TLS, so its TCP streams are carried over TLS here.

One ``TlsRelay`` serves one SIPp process (a peer over ``sips:``)::

    SIPp -t t1 ──TCP──> relay (LOCAL:plain) ──TLS, bound to LOCAL:advertised──> server
    SIPp :sipp  <──TCP── relay (LOCAL:advertised, TLS listener) <──TLS── server

SIPp writes LOCAL:advertised and ``TLS`` into Via and Contact (``sipp.command(advertise=,
via=)``). The relay's connection to the server leaves from that very address, so a server that
looks connections up by the Contact's address reuses it for NOTIFYs; a server that opens its own
connection to the Contact reaches the relay's TLS listener there, and the relay passes it on to
SIPp's own listener. ``connections`` counts both kinds, and ``to_sipp`` the SIP messages the
server sent through them by method, so a test can prove what travelled over TLS.

The server's certificate is verified against ``--tls-ca`` (name or IP checked against its SAN),
or not at all with ``--tls-insecure``; by default against the system's CAs. The relay's own
listener presents a self-signed certificate made once per process with the ``openssl`` command
(servers do not usually verify a client's Contact). All relays share one asyncio loop in one
thread, started with the first relay and stopped (and joined) with the last.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Awaitable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from conformance.errors import HarnessError, SipParseError, ToolMissingError, UsageError
from conformance.sip.stream import StreamFramer

CA_OPTION = "--tls-ca"
INSECURE_OPTION = "--tls-insecure"
CONNECT_TIMEOUT = 5.0
"""Seconds a TLS connection to the server may take (TCP connect plus handshake)."""

T = TypeVar("T")


@dataclass(frozen=True)
class TlsSettings:
    """How the server's certificate is checked: ``ca`` file, or not at all when ``insecure``."""

    ca: str | None = None
    insecure: bool = False

    def client_context(self) -> ssl.SSLContext:
        """The context for connections to the server under test."""
        if self.insecure:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        try:
            return ssl.create_default_context(cafile=self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(
                f"{CA_OPTION} {self.ca}: cannot load it as CA certificates: {exc}"
            ) from None


_settings = TlsSettings()


def configure(ca: str | None = None, *, insecure: bool = False) -> TlsSettings:
    """Set how every later relay and TLS probe of this process checks the server."""
    global _settings
    if ca and insecure:
        raise UsageError(f"{CA_OPTION} and {INSECURE_OPTION} contradict each other: choose one")
    if ca and not Path(ca).is_file():
        raise UsageError(f"{CA_OPTION} {ca}: no such file")
    _settings = TlsSettings(ca=ca, insecure=insecure)
    _settings.client_context()  # a bad CA file is a usage error now, not in every case
    return _settings


def settings() -> TlsSettings:
    return _settings


# -- the shared loop ---------------------------------------------------------------------------
class _Loop:
    """One event loop thread for all relays of the process; reference counted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def acquire(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="dialoginfo-tls-relay", daemon=True
                )
                self._thread.start()
            self._users += 1
            return self._loop

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._loop is None:
                return
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        with contextlib.suppress(Exception):
            _run(loop, _cancel_others(), 2.0)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()


_shared = _Loop()


async def _cancel_others() -> None:
    """Cancel the pumps still running (their sockets are closed) so none is left pending."""
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _run(loop: asyncio.AbstractEventLoop, coro: Awaitable[T], timeout: float) -> T:
    future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)  # type: ignore[arg-type]
    return future.result(timeout)


# -- the listener's certificate ----------------------------------------------------------------
_cert_dir: tempfile.TemporaryDirectory[str] | None = None


def _listener_context() -> ssl.SSLContext:
    """A server context with a self-signed certificate, made once per process."""
    global _cert_dir
    if _cert_dir is None:
        if shutil.which("openssl") is None:
            raise ToolMissingError(
                "the TLS relay needs the openssl command: apt-get install openssl"
            )
        _cert_dir = tempfile.TemporaryDirectory(prefix="dialoginfo-relay-")
        atexit.register(_cert_dir.cleanup)
        make_certificate(Path(_cert_dir.name), "relay", ["IP:127.0.0.1"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base = Path(_cert_dir.name)
    ctx.load_cert_chain(base / "relay.pem", base / "relay.key")
    return ctx


def make_certificate(
    where: Path, name: str, san: list[str], *, ca: tuple[Path, Path] | None = None
) -> tuple[Path, Path]:
    """``name``.pem and ``name``.key under ``where`` (EC P-256, 2 days): self-signed, or signed
    by ``ca`` (certificate, key); ``san`` entries like ``IP:127.0.0.2`` or ``DNS:host``."""
    key, cert = where / f"{name}.key", where / f"{name}.pem"
    ext = where / f"{name}.ext"
    ext.write_text(f"subjectAltName={','.join(san)}\nbasicConstraints=CA:FALSE\n")
    common = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subject = ["-subj", f"/CN={name}"]
    if ca is None:
        cmd = ["openssl", "req", "-x509", *common, "-keyout", key, "-out", cert, "-days", "2"]
        cmd += [*subject, "-addext", ext.read_text().splitlines()[0]]
        _openssl(cmd)
    else:
        csr = where / f"{name}.csr"
        _openssl(["openssl", "req", *common, "-keyout", key, "-out", csr, *subject])
        _openssl(
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
             "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext]
        )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def make_ca(where: Path) -> tuple[Path, Path]:
    """A throw-away CA (certificate, key) for a test server's certificate."""
    key, cert = where / "ca.key", where / "ca.pem"
    _openssl(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=dialoginfo test CA"]
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


def make_server_tls(where: Path, host: str) -> tuple[Path, Path, Path]:
    """A fresh CA and a certificate it signed for a test server on ``host`` (SAN ``IP:`` for
    an address, ``DNS:`` for a name): (CA certificate, certificate, key). The CA is what a
    client passes as ``--tls-ca``."""
    where.mkdir(parents=True, exist_ok=True)
    ca = make_ca(where)
    kind = "IP" if re.fullmatch(r"[0-9.]+|[0-9A-Fa-f:]+", host) else "DNS"
    cert, key = make_certificate(where, "server", [f"{kind}:{host}"], ca=ca)
    return ca[0], cert, key


def _openssl(cmd: list[Any]) -> None:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise HarnessError(f"openssl failed: {proc.stderr.decode(errors='replace')[-500:]}")


# -- the relay ---------------------------------------------------------------------------------
async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tally: Counter[str] | None = None,
) -> None:
    """Copy one direction until EOF; ``tally`` counts the SIP messages carried by kind (the
    request's method, or ``response``), so a test can prove what travelled over TLS."""
    framer = StreamFramer() if tally is not None else None
    try:
        while data := await reader.read(65536):
            # Counted before it is passed on: whoever sees a message arrive sees it counted.
            if framer is not None and tally is not None:
                try:
                    for message in framer.feed(data):
                        first = message.split(b" ", 1)[0].decode("ascii", "replace")
                        tally["response" if first.startswith("SIP/") else first] += 1
                except SipParseError:
                    framer = None  # not SIP as we know it: keep relaying, stop counting
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            writer.close()


async def _both_ways(*pumps: Awaitable[None]) -> None:
    """Run the two pumps of a connection; a relay closing at shutdown cancels them quietly."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*pumps)


class TlsRelay:
    """SIPp's TCP to the server's TLS, both ways, for one SIPp process (see the module doc)."""

    def __init__(
        self,
        *,
        server: tuple[str, int],
        local: str,
        plain_port: int,
        advertised_port: int,
        sipp_port: int,
        server_name: str | None = None,
    ) -> None:
        self.server = server
        self.local = local
        self.plain_port = plain_port
        """Where SIPp connects (plain TCP)."""
        self.advertised_port = advertised_port
        """What Via and Contact name: the TLS side's own port."""
        self.sipp_port = sipp_port
        self.server_name = server_name or server[0]
        self.connections = 0
        """TLS connections carried so far: opened to the server, or accepted from it."""
        self.to_sipp: Counter[str] = Counter()
        """SIP messages the server sent through this relay's TLS connections, by method (or
        ``response``): every NOTIFY SIPp captured must be counted here."""
        self.errors: list[str] = []
        self._context = _settings.client_context()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> TlsRelay:
        self._loop = _shared.acquire()
        try:
            _run(self._loop, self._start(), CONNECT_TIMEOUT)
        except BaseException as exc:
            self.close()
            raise HarnessError(f"TLS relay on {self.local}: cannot listen: {exc}") from None
        return self

    async def _start(self) -> None:
        listener = _listener_context()
        self._servers.append(
            await asyncio.start_server(
                self._from_sipp, self.local, self.plain_port, reuse_address=True
            )
        )
        self._servers.append(
            await asyncio.start_server(
                self._from_server,
                self.local,
                self.advertised_port,
                ssl=listener,
                reuse_address=True,
                reuse_port=True,
            )
        )

    def _track(self, *writers: asyncio.StreamWriter) -> None:
        self._writers.update(writers)

    async def _from_sipp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        family = socket.AF_INET6 if ":" in self.local else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # The TLS listener holds the same address: SO_REUSEPORT on both lets a connected
            # socket share it (SO_REUSEADDR does not, next to a listening one).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.local, self.advertised_port))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, self.server), CONNECT_TIMEOUT)
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    sock=sock, ssl=self._context, server_hostname=self.server_name
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            sock.close()
            self.errors.append(f"TLS to {self.server[0]}:{self.server[1]}: {exc}")
            writer.close()
            return
        self.connections += 1
        self._track(writer, up_writer)
        await _both_ways(_pump(reader, up_writer), _pump(up_reader, writer, self.to_sipp))

    async def _from_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        try:
            down_reader, down_writer = await asyncio.open_connection(self.local, self.sipp_port)
        except OSError as exc:
            self.errors.append(f"to SIPp's listener {self.sipp_port}: {exc}")
            writer.close()
            return
        self._track(writer, down_writer)
        await _both_ways(_pump(reader, down_writer, self.to_sipp), _pump(down_reader, writer))

    def close(self) -> None:
        """Stop listening, drop every connection, release the loop. Idempotent."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            _run(loop, self._close(), 2.0)
        _shared.release()

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.close()
        self._servers.clear()
        self._writers.clear()


__all__ = [
    "CA_OPTION",
    "INSECURE_OPTION",
    "TlsRelay",
    "TlsSettings",
    "configure",
    "make_ca",
    "make_certificate",
    "make_server_tls",
    "settings",
]
