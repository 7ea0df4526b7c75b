"""The asyncio UDP adapter around ``PresenceCore``: sockets and timers, no protocol logic.

Shaped like aioquic's ``QuicConnectionProtocol``: every datagram goes to the core with
``now=loop.time()``, whatever the core queued is sent at once, and one ``loop.call_at`` timer
follows ``core.get_timer()``. Everything SIP lives in ``core.py``, so this file stays small and
the unit tests never need a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
from collections.abc import Callable

from conformance.server.core import Address, LogRecord, PresenceCore, ServerConfig
from conformance.server.hooks import Hooks

log = logging.getLogger("conformance.server")

RECEIVE_BUFFER = 4 * 1024 * 1024


class PresenceProtocol(asyncio.DatagramProtocol):
    """Feeds datagrams and timer ticks to a ``PresenceCore`` and sends what it queues."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        on_log: Callable[[LogRecord], None] | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self._config = config
        self._hooks = hooks
        self._on_log = on_log
        self.core: PresenceCore | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.closed = self._loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("sockname")[:2]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Bursts (the suite's load cases, the robustness test) outrun the default buffer;
            # the kernel caps this at net.core.rmem_max, which is fine.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        # The core writes its own address into Via and Contact: use the one really bound
        # (port 0 in tests becomes the kernel's choice).
        self.core = PresenceCore(
            dataclasses.replace(self._config, host=host, port=port), hooks=self._hooks
        )

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.core is None:
            return
        try:
            self.core.receive_datagram(data, (addr[0], addr[1]), self._loop.time())
        except Exception:  # the core promises not to raise; if it does, keep serving
            log.exception("core failed on a datagram from %s:%s", addr[0], addr[1])
        self._flush()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for a NOTIFY to a watcher that went away: Timer F will clean up.
        log.debug("socket error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed.done():
            self.closed.set_result(None)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.core is None:
            return
        try:
            self.core.handle_timer(self._loop.time())
        except Exception:
            log.exception("core failed in handle_timer")
        self._flush()

    def _flush(self) -> None:
        core = self.core
        if core is None or self._transport is None:
            return
        for data, addr in core.datagrams_to_send(self._loop.time()):
            try:
                self._transport.sendto(data, addr)
            except OSError as exc:
                log.debug("send to %s failed: %s", addr, exc)
        if self._on_log is not None:
            for record in core.pop_log():
                self._on_log(record)
        else:
            core.pop_log()
        self._schedule(core.get_timer())

    def _schedule(self, when: float | None) -> None:
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self._loop.call_at(when, self._on_timer)


@dataclasses.dataclass
class Server:
    """A running server: its bound address, and ``close()`` to stop it."""

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
) -> Server:
    """Bind ``host:port`` over UDP (``port=0`` picks a free one) and start serving; ``hooks``
    (from the faults layer) bend the server, the default is the RFC-strict one."""
    loop = asyncio.get_running_loop()
    cfg = config or ServerConfig()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: PresenceProtocol(cfg, on_log=on_log, hooks=hooks), local_addr=(host, port)
    )
    assert isinstance(protocol, PresenceProtocol)
    return Server(transport=transport, protocol=protocol)  # type: ignore[arg-type]
