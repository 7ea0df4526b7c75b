"""The asyncio TCP and TLS adapter around ``PresenceCore``: connections, no protocol logic.

The core speaks in (message, peer address) pairs whatever the transport; this adapter keeps one
connection per peer address and frames the stream into messages (``sip.stream``: Content-Length
is mandatory on a stream, RFC 3261 §18.3). What the core sends to an address goes:

* on the live connection from that address, if there is one. A response always does (RFC 3261
  §18.2.2), and so does a NOTIFY to a watcher whose connection is still open, which is how
  Kamailio behaves and what a peer behind NAT or behind the kit's TLS relay needs: the kit's
  peers bind the port their Contact names, so the connection's address is the Contact's;
* otherwise on a new connection to that address (RFC 3261 §18.1.1), opened by the server
  from its own address (over TLS with the same stdlib ``ssl``; a Contact's certificate is
  not verified, as servers commonly do not). Messages queued while it opens go out in
  order; if it cannot be opened they are dropped and the core's Timer F ends the
  subscription.

Over TLS the server has no plain listener at all: ``asyncio.start_server(ssl=...)`` only.
Connections are bounded (``MAX_CONNECTIONS``); a peer that breaks framing is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable

from conformance.errors import SipParseError
from conformance.server.core import Address, LogRecord, PresenceCore, ServerConfig
from conformance.server.hooks import Hooks
from conformance.server.protocol import CoreDriver, bound_core
from conformance.sip.stream import StreamFramer

log = logging.getLogger("conformance.server")

MAX_CONNECTIONS = 1024
CONNECT_TIMEOUT = 5.0
"""Seconds a connection the server opens may take (TCP connect plus TLS handshake)."""


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """The listening side's TLS context from a PEM certificate (chain) and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _client_context() -> ssl.SSLContext:
    """For connections the server opens to a Contact: encrypted, not verified."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class StreamServer:
    """A listening TCP or TLS socket whose connections all feed one ``CoreDriver``."""

    def __init__(self, server: asyncio.base_events.Server, tls: bool) -> None:
        self._server = server
        self._client_tls = _client_context() if tls else None
        self._writers: dict[Address, asyncio.StreamWriter] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.driver: CoreDriver | None = None
        self.accepted = 0
        """Connections peers opened to the server."""
        self.opened = 0
        """Connections the server opened to a peer's address."""

    @property
    def address(self) -> Address:
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def core(self) -> PresenceCore:
        assert self.driver is not None
        return self.driver.core

    def close(self) -> None:
        self._server.close()
        if self.driver is not None:
            self.driver.close()
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()

    async def wait_closed(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2.0)

    # ---- connections ---------------------------------------------------------------------------

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if peer is None or len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        self.accepted += 1
        await self._read(reader, writer, (peer[0], peer[1]))

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, addr: Address
    ) -> None:
        self._writers[addr] = writer  # the newest connection from an address is the one used
        framer = StreamFramer()
        try:
            while data := await reader.read(65536):
                for message in framer.feed(data):
                    if self.driver is not None:
                        self.driver.receive(message, addr)
        except (SipParseError, OSError, ssl.SSLError) as exc:
            log.debug("closing the connection from %s:%s: %s", addr[0], addr[1], exc)
        finally:
            if self._writers.get(addr) is writer:
                del self._writers[addr]
            writer.close()

    def send(self, data: bytes, addr: Address) -> None:
        """The driver's ``send``: on the connection from ``addr``, or a new one to it."""
        writer = self._writers.get(addr)
        if writer is not None and not writer.is_closing():
            writer.write(data)
            return
        queued = self._pending.get(addr)
        if queued is not None:  # a connection to it is being opened
            queued.append(data)
            return
        if len(self._writers) + len(self._pending) >= MAX_CONNECTIONS:
            log.debug("no connection to %s:%s: too many open", addr[0], addr[1])
            return
        self._pending[addr] = [data]
        task = asyncio.get_running_loop().create_task(self._open(addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, addr: Address) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    addr[0], addr[1], ssl=self._client_tls, local_addr=(self.address[0], 0)
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            dropped = self._pending.pop(addr, [])
            log.debug("cannot connect to %s:%s (%d dropped): %s", *addr, len(dropped), exc)
            return
        self.opened += 1
        for data in self._pending.pop(addr, []):
            writer.write(data)
        await self._read(reader, writer, addr)


async def serve_stream(
    host: str,
    port: int,
    *,
    config: ServerConfig,
    on_log: Callable[[LogRecord], None] | None = None,
    hooks: Hooks | None = None,
    tls: tuple[str, str] | None = None,
) -> StreamServer:
    """Listen on ``host:port`` over ``config.transport`` (tcp, or tls with ``tls`` =
    (certificate, key) PEM files) and serve."""
    if config.transport == "tls" and tls is None:
        raise ValueError("a TLS server needs a certificate and key (tls=)")
    context = server_context(*tls) if config.transport == "tls" and tls else None
    holder: list[StreamServer] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await holder[0].on_connect(reader, writer)

    listener = await asyncio.start_server(on_connect, host, port, ssl=context)
    server = StreamServer(listener, tls=context is not None)
    holder.append(server)
    sockname = listener.sockets[0].getsockname()
    server.driver = CoreDriver(bound_core(config, hooks, sockname), server.send, on_log)
    return server
