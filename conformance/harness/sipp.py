"""Run SIPp: build its command line, bound it in time, always reap it, read its message trace.

Every SIP message the kit sends or receives goes through a SIPp process (the harness never fakes
a peer). Two shapes of use:

* ``run(...)``: a one-shot scenario (PUBLISH, fetch, raw request) that ends by itself; the result
  is a frozen ``SippResult`` with the parsed messages of its ``-trace_msg`` file.
* ``SippProcess``: a long-lived scenario (the 3PCC watcher) started, watched and stopped by its
  owner; ``messages()`` re-reads the trace incrementally while SIPp runs.

What is pinned, and why (BEHAVIOUR.md, "SIPp 3.6.1 pitfalls"):
* ``-i LOCAL -p -cp -mp`` from the caller's ``PortBlock``: unpinned, SIPp probes 5060-5119 and
  binds 8888 and 6000+, colliding with servers and other workers.
* ``-nostdin`` and stdin from /dev/null: with stdin closed SIPp 3.6.1 exits at once with 255.
* ``-default_behaviors none``: the default answers surprises with BYE.
* ``-message_file``/``-error_file`` under the caller's workdir: otherwise they land in the cwd.
* ``-r 1000``: the default rate schedules the first call 100 ms after start-up.
* Each SIPp runs in its own session (process group) with a parent-death signal, so it dies with
  the Python process that started it even if that one is SIGKILLed; a 3PCC SIPp whose controller
  vanished would otherwise run forever.

Termination is always: SIGTERM to the group, a short wait, SIGKILL, a blocking reap; this runs
on success, failure, timeout and KeyboardInterrupt (``finally``).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.errors import HarnessError, ToolMissingError
from conformance.harness.ports import PortBlock
from conformance.harness.relay import TlsRelay
from conformance.sip.trace import Malformed, Traced, TraceParser

INSTALL_HINT = "apt-get install sip-tester"
TERM_GRACE = 0.3
"""Seconds between SIGTERM and SIGKILL. SIPp 3.6.1 usually exits ~3 ms after SIGTERM, but
now and then (a signal landing just after it handled a message) ignores it altogether."""
PORTS_PER_PROCESS = 6
"""SIP (-p), control (-cp), 3PCC twin, media (-mp) and the two above it, consecutive in a
PortBlock: SIPp also binds the video RTP port (-mp + 2). With 4-port windows that port lay in
the next window, and a SIPp started right after another failed to bind its control port (exit
254; seen with LivePeers and Watchers started in quick succession)."""
LOOPBACK = "127.0.0.1"
"""Where SIPp binds when a caller names no address (tests of the harness itself)."""
SIPP_TRANSPORTS = {"udp": "u1", "tcp": "t1"}
"""SIPp's ``-t`` mode per transport: one socket for everything. With ``t1`` SIPp also listens
on its ``-p`` port, where a server's own connections (NOTIFYs to a watcher's Contact) land.
TLS is TCP behind the harness's relay (conformance/harness/relay.py)."""


class SippExit(enum.IntEnum):
    """How a SIPp process ended. Values >= 0 are SIPp's own exit statuses."""

    OK = 0
    """Every call reached the end of its scenario."""
    CALL_FAILED = 1
    """At least one call failed (unexpected message, timeout without ``ontimeout``)."""
    INTERNAL_STOP = 97
    """Stopped by an internal command (the watcher's ``stop_gracefully``)."""
    NO_CALLS = 99
    """Exited normally without processing a call."""
    BIND_FAILED = 254
    """A socket could not be bound (a port is taken)."""
    FATAL = 255
    """A fatal error: bad scenario, bad option, missing file."""
    TIMEOUT = -1
    """The kit's deadline passed and the kit stopped it."""
    STOPPED = -2
    """The kit stopped it on request (``SippProcess.stop``) before it ended by itself."""
    SIGNALLED = -3
    """Killed by a signal the kit did not send."""
    UNKNOWN = -4
    """Any other exit status (see ``SippResult.returncode``)."""


@dataclass(frozen=True)
class SippResult:
    """What one SIPp process did: how it ended, what went over the wire, where its logs are."""

    exit: SippExit
    messages: tuple[Traced, ...]
    command: tuple[str, ...]
    logs: dict[str, Path]
    duration: float
    returncode: int | None = None
    malformed: tuple[Malformed, ...] = ()
    stderr: bytes = b""
    """SIPp's standard error, when it was captured (one-shot runs)."""

    def ok(self, *allowed: SippExit) -> SippResult:
        """Return self when the exit is OK (or one of ``allowed``), else raise HarnessError."""
        if self.exit is SippExit.OK or self.exit in allowed:
            return self
        raise HarnessError(
            failure_message(self.command, self.exit, self.returncode, self.logs, self.stderr)
        )


def sipp_binary() -> str:
    """The path of ``sipp``, or ToolMissingError saying how to install it."""
    path = shutil.which("sipp")
    if path is None:
        raise ToolMissingError(f"SIPp is not installed (no 'sipp' on PATH): {INSTALL_HINT}")
    return path


@dataclass(frozen=True)
class Ports:
    """The ports one SIPp process binds, taken together from a PortBlock."""

    sip: int
    control: int
    media: int
    twin: int

    @classmethod
    def take(cls, block: PortBlock, *, host: str = LOOPBACK) -> Ports:
        """Ports free on ``host``, the address SIPp binds its SIP and media sockets to."""
        sip, control, twin, media, _rtcp, _video = block.take(PORTS_PER_PROCESS, host=host)
        return cls(sip=sip, control=control, media=media, twin=twin)


def command(
    scenario: Path,
    *,
    server: tuple[str, int],
    ports: Ports,
    workdir: Path,
    keys: Mapping[str, str] | None = None,
    sets: Mapping[str, str] | None = None,
    calls: int | None = 1,
    timeout: float | None = None,
    extra: Sequence[str] = (),
    prefix: str = "",
    local: str = LOOPBACK,
    transport: str = "udp",
    advertise: tuple[str, int] | None = None,
    via: str | None = None,
) -> tuple[list[str], dict[str, Path]]:
    """The argv for one SIPp process and the log files it will write under ``workdir``.

    ``prefix`` names the files (``<prefix>messages.log``...) so that many one-shot processes
    can share one directory: creating a directory per process costs as much as the process's
    whole SIP exchange on this kind of disk. ``local`` is the address SIPp binds (``-i``) and
    writes as ``[local_ip]`` into Via and Contact; ``transport`` (udp or tcp) picks SIPp's
    ``-t`` mode. Via and Contact advertise ``advertise`` (address, port; by default SIPp's own)
    and ``via`` as transport (by default ``transport``): the TLS relay puts itself there.
    """
    logs = {
        "messages": workdir / f"{prefix}messages.log",
        "errors": workdir / f"{prefix}errors.log",
    }
    host, port = server
    if transport not in SIPP_TRANSPORTS:
        raise HarnessError(f"SIPp speaks {', '.join(SIPP_TRANSPORTS)}, not {transport!r}")
    argv = [
        sipp_binary(),
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "-sf",
        str(scenario),
        "-i",
        local,
        "-t",
        SIPP_TRANSPORTS[transport],
        *(() if transport == "udp" else ("-max_socket", "64")),
        *_advertised(advertise or (local, ports.sip), transport if via is None else via),
        "-p",
        str(ports.sip),
        "-cp",
        str(ports.control),
        "-mp",
        str(ports.media),
        "-nostdin",
        "-default_behaviors",
        "none",
        "-r",
        "1000",
        "-trace_msg",
        "-message_file",
        str(logs["messages"]),
        "-trace_err",
        "-error_file",
        str(logs["errors"]),
    ]
    if calls is not None:
        argv += ["-m", str(calls)]
    if timeout is not None:
        # SIPp's own global bound, a second line of defence behind the kit's deadline.
        argv += ["-timeout", f"{max(1, int(timeout + 1.5))}s"]
    for name, value in (keys or {}).items():
        argv += ["-key", name, value]
    for name, value in (sets or {}).items():
        argv += ["-set", name, value]
    argv += list(extra)
    return argv, logs


@dataclass(frozen=True)
class TlsEdge:
    """A started relay for one SIPp: where SIPp connects, and what it advertises."""

    relay: TlsRelay
    plain: tuple[str, int]
    advertised: tuple[str, int]

    @property
    def sipp_args(self) -> dict[str, Any]:
        """``command`` keywords: TCP to the relay, TLS and the relay's address in Via/Contact."""
        return {"transport": "tcp", "advertise": self.advertised, "via": "tls"}


def advertised_port(proc: SippProcess, ports: Ports) -> int:
    """The port a started SIPp's Via and Contact name: its relay's TLS side, else its own."""
    relay = proc.relay
    return relay.advertised_port if relay is not None else ports.sip


def start_with_edge(proc: SippProcess, edge: TlsEdge | None) -> SippProcess:
    """Start ``proc``; its relay (if any) closes when it is stopped, or now if it cannot start."""
    if edge is not None:
        proc.relay = edge.relay
        proc.on_stop.append(edge.relay.close)
    try:
        proc.start()
    except BaseException:
        if edge is not None:
            edge.relay.close()
        raise
    return proc


def tls_edge(server: tuple[str, int], local: str, ports: Ports, block: PortBlock) -> TlsEdge:
    """Start the TLS relay for a SIPp that will bind ``local``:``ports.sip`` (relay.py)."""
    plain, advertised = block.take(2, host=local)
    relay = TlsRelay(
        server=server,
        local=local,
        plain_port=plain,
        advertised_port=advertised,
        sipp_port=ports.sip,
    ).start()
    return TlsEdge(relay, (local, plain), (local, advertised))


def _advertised(where: tuple[str, int], transport: str) -> list[str]:
    """The -key arguments the scenarios write into Via and Contact."""
    host, port = where
    return [
        "-key", "sip_host", f"[{host}]" if ":" in host else host,
        "-key", "sip_port", str(port),
        "-key", "via_transport", transport.upper(),
        "-key", "contact_params", "" if transport == "udp" else f";transport={transport}",
    ]  # fmt: skip


def failure_message(
    argv: Sequence[str],
    exit: SippExit,
    returncode: int | None,
    logs: Mapping[str, Path],
    stderr: bytes = b"",
) -> str:
    """One message naming the command, how it ended and the tail of its logs."""
    lines = [f"SIPp failed ({exit.name}, exit status {returncode}): {' '.join(argv)}"]
    if stderr.strip():
        lines.append(f"--- tail of its standard error:\n{_tail_text(stderr)}")
    for name in ("errors",):
        path = logs.get(name)
        tail = _tail(path) if path else ""
        if tail:
            lines.append(f"--- tail of {path}:\n{tail}")
    lines.append("logs: " + ", ".join(str(p) for p in logs.values() if p.exists()))
    return "\n".join(lines)


def _tail(path: Path, max_bytes: int = 4096) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return _tail_text(data)


def _tail_text(data: bytes, lines: int = 12) -> str:
    text = data[-4096:].decode("utf-8", "replace")
    # SIPp's screen output is full of separator rules; keep the lines that say something.
    useful = [ln for ln in text.splitlines() if ln.strip() and not set(ln.strip()) <= set("-+|= ")]
    return "\n".join(useful[-lines:])


_PR_SET_PDEATHSIG = 1


_LIBC: ctypes.CDLL | None = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(Exception):
        assert _LIBC is not None
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _load_libc() -> None:
    # Loaded in the parent: dlopen between fork and exec is slow and not async-signal-safe.
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)


class SippProcess:
    """One running SIPp, in its own process group, reaped by ``stop`` or the context manager."""

    def __init__(
        self,
        argv: Sequence[str],
        logs: Mapping[str, Path],
        *,
        cwd: Path,
        die_with_parent: bool = True,
        capture_stderr: bool = False,
    ) -> None:
        """``die_with_parent`` sets PR_SET_PDEATHSIG (SIGKILL): needed for a long-lived SIPp,
        but it forces a full fork() of the Python process (a preexec function rules out vfork),
        which costs milliseconds in a big pytest worker; a one-shot SIPp, bounded by its own
        ``-timeout``, can do without. ``capture_stderr`` reads standard error through a pipe
        (for short processes; a long one could fill the pipe) instead of discarding it.
        """
        self.argv = tuple(argv)
        self.logs = dict(logs)
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self.capture_stderr = capture_stderr
        self.stderr = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self.relay: TlsRelay | None = None
        """The TLS relay carrying this SIPp's streams (``sips:`` targets), else None."""
        self.on_stop: list[Callable[[], None]] = []
        """Called once SIPp is reaped: the TLS relay that carried its streams closes there."""
        self._ended: float | None = None
        self._exit: SippExit | None = None
        self._parser = TraceParser()
        self._offset = 0
        self._messages: list[Traced] = []

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> SippProcess:
        # stdout is SIPp's screen (statistics): nobody reads it. Its errors, even a scenario
        # it cannot load, also go to the -error_file log, so stderr is only a convenience.
        if self.die_with_parent:
            _load_libc()
        err = subprocess.PIPE if self.capture_stderr else subprocess.DEVNULL
        try:
            self._started = time.monotonic()
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        except FileNotFoundError:
            raise ToolMissingError(f"cannot run {self.argv[0]!r}: {INSTALL_HINT}") from None
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for SIPp to exit by itself; True when it has (and is reaped).

        Waits on a pidfd when the kernel has them, so a 15 ms process is noticed at once
        rather than at Popen.wait's next polling step.
        """
        proc = self._require()
        if proc.poll() is not None:
            self._note_exit()
            return True
        try:
            fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            try:
                proc.wait(timeout=max(0.0, timeout))
            except subprocess.TimeoutExpired:
                return False
            self._note_exit()
            return True
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
        finally:
            os.close(fd)
        if not ready:
            return False
        proc.wait()
        self._note_exit()
        return True

    def stop(self, *, grace: float = TERM_GRACE, reason: SippExit = SippExit.STOPPED) -> SippExit:
        """End SIPp now (SIGTERM, then SIGKILL after ``grace``) and reap it; idempotent.

        ``grace=0`` sends SIGKILL at once: nothing is lost, SIPp flushes its trace after every
        message, and it is the only signal SIPp never ignores.
        """
        proc = self._proc
        if proc is None:
            return SippExit.UNKNOWN
        if proc.poll() is None:
            if grace > 0:
                self._signal(signal.SIGTERM)
            if grace <= 0 or not self.wait(grace):
                self._signal(signal.SIGKILL)
                proc.wait()
                self._note_exit()
            # SIPp exits 0 on SIGTERM: what ended it is the kit's reason, not its status.
            self._exit = reason
        else:
            self._note_exit()
        self._ended = self._ended or time.monotonic()
        while self.on_stop:
            self.on_stop.pop()()
        return SippExit.UNKNOWN if self._exit is None else self._exit

    def __enter__(self) -> SippProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- results ----------------------------------------------------------------------------
    @property
    def exit(self) -> SippExit | None:
        return self._exit

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def messages(self) -> list[Traced]:
        """Every message traced so far (retransmissions flagged); reads only new bytes."""
        path = self.logs["messages"]
        try:
            with path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return list(self._messages)
        self._offset += len(data)
        if data:
            self._messages.extend(self._parser.feed(data))
        return list(self._messages)

    def result(self) -> SippResult:
        messages = tuple(self.messages())
        end = self._ended or time.monotonic()
        return SippResult(
            exit=SippExit.UNKNOWN if self._exit is None else self._exit,
            messages=messages,
            command=self.argv,
            logs=dict(self.logs),
            duration=end - self._started,
            returncode=self.returncode,
            stderr=self.stderr,
            malformed=tuple(self._parser.malformed),
        )

    def failure(self, what: str) -> HarnessError:
        """A HarnessError for ``what`` went wrong, with the command and the logs' tails."""
        if self.alive():
            state, exit = "still running", SippExit.UNKNOWN
        else:
            exit = SippExit.UNKNOWN if self._exit is None else self._exit
            state = f"{exit.name}, exit status {self.returncode}"
        text = failure_message(self.argv, exit, self.returncode, self.logs, self.stderr)
        return HarnessError(f"{what} (SIPp {state})\n" + text.split("\n", 1)[-1])

    # -- internals --------------------------------------------------------------------------
    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise HarnessError("SIPp process not started")
        return self._proc

    def _note_exit(self) -> None:
        if self._ended is None:
            self._ended = time.monotonic()
        proc = self._proc
        if proc is not None and proc.stderr is not None and proc.returncode is not None:
            with contextlib.suppress(OSError, ValueError):
                self.stderr += proc.stderr.read()
                proc.stderr.close()
        if self._exit is None and self._proc is not None and self._proc.returncode is not None:
            self._exit = exit_of(self._proc.returncode)

    def _signal(self, sig: int) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)


def exit_of(returncode: int) -> SippExit:
    """Map a Popen return code (negative: killed by that signal) to SippExit."""
    if returncode < 0:
        return SippExit.SIGNALLED
    try:
        return SippExit(returncode)
    except ValueError:
        return SippExit.UNKNOWN


def run(
    scenario: Path,
    *,
    server: tuple[str, int],
    block: PortBlock,
    workdir: Path,
    timeout: float,
    keys: Mapping[str, str] | None = None,
    sets: Mapping[str, str] | None = None,
    extra: Sequence[str] = (),
    ports: Ports | None = None,
    prefix: str = "",
    local: str = LOOPBACK,
    transport: str = "udp",
) -> SippResult:
    """Run a one-shot scenario (``-m 1``) to its end or ``timeout`` s, whichever comes first.

    Never raises for how SIPp ended (see ``SippResult.exit`` / ``.ok()``): a negative case's
    "failure" is often the point. Raises ToolMissingError without sipp, HarnessError when the
    process cannot be started.
    """
    ports = ports or Ports.take(block, host=local)
    edge = tls_edge(server, local, ports, block) if transport == "tls" else None
    argv, logs = command(
        scenario,
        server=edge.plain if edge else server,
        ports=ports,
        workdir=workdir,
        keys=keys,
        sets=sets,
        timeout=timeout,
        extra=extra,
        prefix=prefix,
        local=local,
        **(edge.sipp_args if edge else {"transport": transport}),
    )
    # No parent-death signal (see SippProcess): SIPp's own -timeout bounds an orphan.
    proc = SippProcess(argv, logs, cwd=workdir, die_with_parent=False, capture_stderr=True)
    start_with_edge(proc, edge)
    try:
        if not proc.wait(timeout):
            proc.stop(reason=SippExit.TIMEOUT)
    finally:
        proc.stop()
    return proc.result()


def request_files(workdir: Path, files: Iterable[tuple[str, bytes]]) -> dict[str, Path]:
    """Write the per-run input files (headers, body, raw request) and return their paths."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, data in files:
        path = workdir / name
        path.write_bytes(data)
        paths[name] = path
    return paths


__all__ = [
    "INSTALL_HINT",
    "Ports",
    "SippExit",
    "SippProcess",
    "SippResult",
    "command",
    "exit_of",
    "failure_message",
    "request_files",
    "run",
    "sipp_binary",
]
