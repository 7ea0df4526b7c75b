"""Run several suite processes at once and keep their output readable.

The suite's cases mostly wait (server timers, silence windows), so ``run`` tests both modes at
the same time instead of one after the other. Two pytest sessions writing to one terminal would
interleave their dots and summaries, so each child's output is read line by line: its progress
lines (``report/progress.py``) are shown at once, prefixed with the child's name, and the rest
is held and printed whole, under a header, when that child ends. Reports are unaffected: each
child is its own pytest session and writes its own ``results.json``, ``report.html`` and
``junit.xml``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

PROGRESS_MARK = "dialog-info conformance: "
"""How the progress plugin's lines start (``Progress.prefix``): these are shown live."""

STOP_GRACE = 30.0
"""Seconds an interrupted child gets to stop its servers and SIPp before it is killed."""


@dataclass
class Job:
    """One child: its name (shown as a prefix and in its header), command and header line."""

    name: str
    argv: list[str]
    header: str
    lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None


def run_at_once(
    jobs: Sequence[Job],
    *,
    out: TextIO | None = None,
    env: dict[str, str] | None = None,
    is_progress: Callable[[str], bool] = lambda line: line.startswith(PROGRESS_MARK),
) -> list[int]:
    """Start every job, relay its output as the module docstring says, and return the exit
    statuses in the jobs' order. On Ctrl-C the children (same process group) got the signal
    too: they are given ``STOP_GRACE`` s to clean up, then killed, and the interrupt goes on."""
    stream = out if out is not None else sys.stdout
    lock = threading.Lock()
    child_env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    readers = []
    try:
        for job in jobs:
            job.proc = subprocess.Popen(
                job.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                env=child_env,
            )
            reader = threading.Thread(
                target=_relay, args=(job, stream, lock, is_progress), daemon=True
            )
            reader.start()
            readers.append(reader)
        for reader in readers:
            while reader.is_alive():
                reader.join(0.2)  # a bounded join keeps Ctrl-C deliverable to this thread
        return [job.proc.wait() if job.proc else 1 for job in jobs]
    except KeyboardInterrupt:
        _stop(jobs)
        for reader in readers:
            reader.join(2.0)  # let each child's held output out: it says what was cut short
        raise


def _relay(
    job: Job, stream: TextIO, lock: threading.Lock, is_progress: Callable[[str], bool]
) -> None:
    """Reader thread: progress lines out at once, the rest held until the child ends."""
    assert job.proc is not None and job.proc.stdout is not None
    for line in job.proc.stdout:
        if is_progress(line):
            with lock:
                stream.write(f"[{job.name}] {line}")
                stream.flush()
        else:
            job.lines.append(line)
    job.proc.wait()
    with lock:
        stream.write(f"{job.header}\n")
        stream.writelines(job.lines)
        stream.flush()


def _stop(jobs: Sequence[Job]) -> None:
    """A terminal's Ctrl-C reached the children already (one process group); a SIGINT sent to
    this process alone did not, so a child still running after a moment gets one of its own.
    Either way pytest then stops its workers, servers and SIPp; a child that hangs is killed."""
    running = [job.proc for job in jobs if job.proc is not None]
    deadline = time.monotonic() + STOP_GRACE
    for phase_end, nudge in ((time.monotonic() + 5.0, True), (deadline, False)):
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, phase_end - time.monotonic()))
            except subprocess.TimeoutExpired:
                if nudge:
                    proc.send_signal(signal.SIGINT)
    for proc in running:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
