"""The asyncio UDP adapter around ``PresenceCore``: sockets and timers, no protocol logic.

Shaped like aioquic's ``QuicConnectionProtocol``: every datagram goes to the core with
``now=loop.time()``, whatever the core queued is sent at once, and one ``loop.call_at`` timer
follows ``core.get_timer()``. Everything SIP lives in ``core.py``, so this file stays small and
the unit tests never need a socket. ``CoreDriver`` is that loop, shared with the TCP/TLS
adapter (``streams.py``), which differs only in how bytes reach a peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable
from typing import Protocol

from conformance.server.core import Address, LogRecord, PresenceCore, ServerConfig
from conformance.server.hooks import Hooks

log = logging.getLogger("conformance.server")

RECEIVE_BUFFER = 4 * 1024 * 1024


class CoreDriver:
    """Feeds messages and timer ticks to a ``PresenceCore`` and hands what it queues to
    ``send``; the transport-specific part is only ``send``."""

    def __init__(
        self,
        core: PresenceCore,
        send: Callable[[bytes, Address], None],
        on_log: Callable[[LogRecord], None] | None = None,
    ) -> None:
        self.core = core
        self._send = send
        self._on_log = on_log
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    def receive(self, data: bytes, addr: Address) -> None:
        """One message from ``addr`` (a datagram, or one framed off a stream)."""
        try:
            self.core.receive_datagram(data, addr, self._loop.time())
        except Exception:  # the core promises not to raise; if it does, keep serving
            log.exception("core failed on a message from %s:%s", addr[0], addr[1])
        self.flush()

    def flush(self) -> None:
        core = self.core
        for data, addr in core.datagrams_to_send(self._loop.time()):
            try:
                self._send(data, addr)
            except OSError as exc:
                log.debug("send to %s failed: %s", addr, exc)
        records = core.pop_log()
        if self._on_log is not None:
            for record in records:
                self._on_log(record)
        self._schedule(core.get_timer())

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.core.handle_timer(self._loop.time())
        except Exception:
            log.exception("core failed in handle_timer")
        self.flush()

    def _schedule(self, when: float | None) -> None:
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)


def bound_core(
    config: ServerConfig, hooks: Hooks | None, sockname: tuple[str, int]
) -> PresenceCore:
    """A core that writes the address really bound into Via and Contact (port 0 in tests
    becomes the kernel's choice)."""
    host, port = sockname[:2]
    return PresenceCore(dataclasses.replace(config, host=host, port=port), hooks=hooks)


class PresenceProtocol(asyncio.DatagramProtocol):
    """The UDP socket of a ``CoreDriver``."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        on_log: Callable[[LogRecord], None] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._config = dataclasses.replace(config, transport="udp")
        self._hooks = hooks
        self._on_log = on_log
        self.driver: CoreDriver | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    @property
    def core(self) -> PresenceCore | None:
        return self.driver.core if self.driver is not None else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Bursts (the suite's load cases, the robustness test) outrun the default buffer;
            # the kernel caps this at net.core.rmem_max, which is fine.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        core = bound_core(self._config, self._hooks, transport.get_extra_info("sockname"))
        self.driver = CoreDriver(core, self._sendto, self._on_log)

    def _sendto(self, data: bytes, addr: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.driver is not None:
            self.driver.receive(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for a NOTIFY to a watcher that went away: Timer F will clean up.
        log.debug("socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.driver is not None:
            self.driver.close()
        if not self.closed.done():
            self.closed.set_result(None)


class Server(Protocol):
    """A running server of any transport: its bound address, its core, and ``close()``."""

    @property
    def address(self) -> Address: ...

    @property
    def core(self) -> PresenceCore: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


@dataclasses.dataclass
class UdpServer:
    """A running UDP server."""

    transport: asyncio.DatagramTransport
    protocol: PresenceProtocol

    @property
    def address(self) -> Address:
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    @property
    def core(self) -> PresenceCore:
        assert self.protocol.core is not None
        return self.protocol.core

    def close(self) -> None:
        self.transport.close()

    async def wait_closed(self) -> None:
        await self.protocol.closed


async def serve(
    host: str,
    port: int,
    *,
    config: ServerConfig | None = None,
    on_log: Callable[[LogRecord], None] | None = None,
    hooks: Hooks | None = None,
    tls: tuple[str, str] | None = None,
) -> Server:
    """Bind ``host:port`` (``port=0`` picks a free one) over ``config.transport`` and start
    serving; ``tls`` is the (certificate, key) PEM pair TLS needs. ``hooks`` (from the faults
    layer) bend the server, the default is the RFC-strict one."""
    cfg = config or ServerConfig()
    if cfg.transport != "udp":
        from conformance.server.streams import serve_stream

        return await serve_stream(host, port, config=cfg, on_log=on_log, hooks=hooks, tls=tls)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: PresenceProtocol(cfg, on_log=on_log, hooks=hooks), local_addr=(host, port)
    )
    assert isinstance(protocol, PresenceProtocol)
    return UdpServer(transport=transport, protocol=protocol)  # type: ignore[arg-type]
