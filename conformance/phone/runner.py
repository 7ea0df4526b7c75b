"""The asyncio edge of the phone kit: a UDP socket or a TCP listener around ``ProbeSession``.

No protocol logic here (that is ``session.py``): every datagram or framed TCP message goes to
the session with ``now=loop.time()``, whatever it queued is sent at once, and one
``loop.call_at`` timer follows ``session.get_timer()``. The whole run is also bounded from
outside the session (``plan_timeout`` plus a margin), so a bug there cannot hang the command.

Over TCP, requests to the phone reuse its own connection (the one its SUBSCRIBE came on); a new
connection is opened only to the phone host, which the session guarantees.

The session's progress lines go to ``progress`` as they come. With ``handle_signals``, SIGINT
and SIGTERM stop the session (``ProbeSession.interrupt``) instead of killing the process, so
the caller still gets the session and writes the report of what ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator

from conformance.errors import HarnessError, SipParseError, UsageError
from conformance.phone.probes import Probe
from conformance.phone.session import Address, ProbeSession, SessionConfig
from conformance.sip.stream import StreamFramer

log = logging.getLogger("conformance.phone")

OUTER_MARGIN = 5.0
"""Seconds past the plan time limit after which the runner gives up on the session itself."""
MAX_CONNECTIONS = 16


Progress = Callable[[str], None]


def source_address_towards(host: str) -> str:
    """The local address the kernel would send from to ``host`` (what the phone can reach us
    on when the kit listens on 0.0.0.0). A connected UDP socket sends nothing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, 5060))
            return str(sock.getsockname()[0])
    except OSError as exc:
        raise UsageError(
            f"no route to the phone {host} ({exc.strerror or exc}): give --advertise ADDR"
        ) from None


class _Driver:
    """Glue shared by both transports: feed, flush, re-arm the timer, notice the end."""

    def __init__(
        self,
        session: ProbeSession,
        send: Callable[[bytes, Address], None],
        progress: Progress | None = None,
    ) -> None:
        self.session = session
        self._send = send
        self._progress = progress
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.finished: asyncio.Future[None] = self._loop.create_future()

    def now(self) -> float:
        return self._loop.time()

    def feed(self, data: bytes, addr: Address) -> None:
        try:
            self.session.receive(data, addr, self.now())
        except Exception:  # the session promises not to raise; keep the run going if it does
            log.exception("phone session failed on a message from %s", addr)
        self.flush()

    def on_timer(self) -> None:
        self._timer = None
        try:
            self.session.handle_timer(self.now())
        except Exception:
            log.exception("phone session failed in handle_timer")
        self.flush()

    def interrupt(self, name: str) -> None:
        self.session.interrupt(self.now(), name)
        self.flush()

    def flush(self) -> None:
        for line in self.session.events():
            if self._progress is not None:
                self._progress(line)
        for data, addr in self.session.to_send():
            try:
                self._send(data, addr)
            except OSError as exc:
                log.debug("send to %s failed: %s", addr, exc)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.session.done:
            if not self.finished.done():
                self.finished.set_result(None)
            return
        when = self.session.get_timer()
        if when is not None:
            self._timer = self._loop.call_at(when, self.on_timer)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.driver: _Driver | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.driver is not None:
            self.driver.feed(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: the phone is gone; the probe time limit will say so.
        log.debug("socket error: %s", exc)


async def run_session(
    plan: tuple[Probe, ...],
    config: SessionConfig,
    *,
    ready: Callable[[Address], None] | None = None,
    progress: Progress | None = None,
    handle_signals: bool = False,
) -> ProbeSession:
    """Bind ``config.local_host:local_port``, walk ``plan`` with the phone, return the session.

    ``ready`` is called with the bound address once the kit listens (port 0 picks one).
    """
    loop = asyncio.get_running_loop()
    holder: dict[str, _Driver] = {}
    with _signals(loop, holder, handle_signals):
        if config.transport == "udp":
            return await _run_udp(loop, plan, config, ready, progress, holder)
        return await _run_tcp(loop, plan, config, ready, progress, holder)


@contextlib.contextmanager
def _signals(
    loop: asyncio.AbstractEventLoop, holder: dict[str, _Driver], enabled: bool
) -> Iterator[None]:
    """SIGINT/SIGTERM end the session (its report is still written), once the kit listens."""
    if not enabled:
        yield
        return
    caught = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: signal.Signals) -> None:
        driver = holder.get("driver")
        if driver is not None:
            driver.interrupt(signum.name)

    for signum in caught:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        yield
    finally:
        for signum in caught:
            loop.remove_signal_handler(signum)


async def _run_udp(loop, plan, config, ready, progress, holder):  # type: ignore[no-untyped-def]
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            _Udp, local_addr=(config.local_host, config.local_port)
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on UDP {config.local_host}:{config.local_port}: {exc}"
        ) from None
    try:
        host, port = transport.get_extra_info("sockname")[:2]
        session = ProbeSession(plan, _bound(config, port), loop.time())
        driver = _Driver(session, lambda data, addr: transport.sendto(data, addr), progress)
        protocol.driver = driver
        holder["driver"] = driver
        if ready is not None:
            ready((host, port))
        driver.flush()
        await _bounded(driver, config)
        return session
    finally:
        transport.close()


async def _run_tcp(loop, plan, config, ready, progress, holder):  # type: ignore[no-untyped-def]
    writers: dict[Address, asyncio.StreamWriter] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def reader_loop(reader: asyncio.StreamReader, addr: Address) -> None:
        framer = StreamFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for message in framer.feed(data):
                    holder["driver"].feed(message, addr)
        except (SipParseError, ConnectionError) as exc:
            log.debug("closing connection from %s: %s", addr, exc)
        finally:
            writer = writers.pop(addr, None)
            if writer is not None:
                writer.close()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        addr = (peer[0], peer[1])
        if len(writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        writers[addr] = writer
        await reader_loop(reader, addr)

    async def connect_and_send(data: bytes, addr: Address) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr), 5.0)
        except (OSError, TimeoutError) as exc:
            log.debug("cannot connect to %s: %s", addr, exc)
            return
        writers[addr] = writer
        writer.write(data)
        await reader_loop(reader, addr)

    def send(data: bytes, addr: Address) -> None:
        writer = writers.get(addr)
        if writer is not None and not writer.is_closing():
            writer.write(data)
            return
        task = loop.create_task(connect_and_send(data, addr))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        server = await asyncio.start_server(on_connect, config.local_host, config.local_port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on TCP {config.local_host}:{config.local_port}: {exc}"
        ) from None
    try:
        host, port = server.sockets[0].getsockname()[:2]
        session = ProbeSession(plan, _bound(config, port), loop.time())
        driver = _Driver(session, send, progress)
        holder["driver"] = driver
        if ready is not None:
            ready((host, port))
        driver.flush()
        await _bounded(driver, config)
        return session
    finally:
        server.close()
        for writer in list(writers.values()):
            writer.close()
        for task in list(tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2.0)


def _bound(config: SessionConfig, port: int) -> SessionConfig:
    from dataclasses import replace

    return replace(config, local_port=port)


async def _bounded(driver: _Driver, config: SessionConfig) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(driver.finished), config.plan_timeout + OUTER_MARGIN)
    except TimeoutError:
        raise HarnessError(
            f"the phone session did not end within {config.plan_timeout + OUTER_MARGIN:g} s"
        ) from None
    finally:
        driver.close()
