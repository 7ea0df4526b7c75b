"""Loopback ports that no other kit process is using: one block per process, held by a lock file.

Why not bind port 0? SIPp and Kamailio are separate programs that need their ports on the
command line, and probing a free port then releasing it for a child is racy. Instead each process
(an xdist worker, a nested suite run by the mutation tests, a benchmark) takes a whole block of
ports under an ``flock`` that the kernel drops when the process dies, so a crashed run never
leaks a reservation. Inside a block ports are handed out round-robin from a cursor stored in the
lock file: a port is reused as late as possible, because a SIP server keeps sending NOTIFYs to a
subscription's old port for up to 32 s after its watcher went away (BEHAVIOUR.md).
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from conformance.errors import HarnessError

FIRST_PORT = 2000
BLOCK_SIZE = 1000
_LAST_PORT = 65535


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for unbound sockets' local ports (Linux default 32768-60999).

    A block inside it races every outgoing connection on the machine for its ports: a SIPp
    control socket once lost its port to one. Blocks are laid outside it."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _block_starts() -> tuple[int, ...]:
    low, high = _ephemeral_range()
    return tuple(
        start
        for start in range(FIRST_PORT, _LAST_PORT - BLOCK_SIZE + 1, BLOCK_SIZE)
        if start + BLOCK_SIZE - 1 < low or start > high
    )


BLOCK_STARTS = _block_starts()
BLOCK_COUNT = len(BLOCK_STARTS)
LOCK_DIR = Path(tempfile.gettempdir()) / "dialoginfo-conformance-ports"


@dataclass
class PortBlock:
    """``BLOCK_SIZE`` ports starting at ``start``, reserved while this object's lock is held."""

    index: int
    start: int
    size: int = BLOCK_SIZE
    _fd: int | None = field(default=None, repr=False)

    def take(self, count: int = 1, *, host: str = "127.0.0.1") -> list[int]:
        """``count`` consecutive ports that bind on UDP and TCP right now, advancing the cursor."""
        if self._fd is None:
            raise HarnessError("port block already released")
        for _ in range(self.size):
            first = self._advance(count)
            ports = list(range(first, first + count))
            if all(_bindable(host, p) for p in ports):
                return ports
            # Slide by one, not by a window: a port stuck in TIME_WAIT must not spoil the
            # same position of every later window.
            self._write_cursor(first - self.start + 1)
        raise HarnessError(
            f"no {count} free ports left in {self.start}-{self.start + self.size - 1}"
        )

    def take_one(self, *, host: str = "127.0.0.1") -> int:
        return self.take(1, host=host)[0]

    def _advance(self, count: int) -> int:
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        raw = os.read(self._fd, 32).strip()
        cursor = int(raw) if raw.isdigit() else 0
        if cursor + count > self.size:
            cursor = 0
        self._write_cursor(cursor + count)
        return self.start + cursor

    def _write_cursor(self, cursor: int) -> None:
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, str(cursor).encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> PortBlock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def reserve_block(preferred: int = 0) -> PortBlock:
    """Lock the first free block, trying ``preferred`` first (e.g. the xdist worker number)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for offset in range(BLOCK_COUNT):
        index = (preferred + offset) % BLOCK_COUNT
        path = LOCK_DIR / f"block-{index:02d}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return PortBlock(index=index, start=BLOCK_STARTS[index], _fd=fd)
    raise HarnessError(f"all {BLOCK_COUNT} port blocks under {LOCK_DIR} are in use")


def free_block_count() -> int:
    """Blocks no process holds right now (a snapshot: another run may take one next)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    free = 0
    for index in range(BLOCK_COUNT):
        fd = os.open(LOCK_DIR / f"block-{index:02d}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        else:
            free += 1
        finally:
            os.close(fd)  # closing drops the flock
    return free


def _bindable(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True
