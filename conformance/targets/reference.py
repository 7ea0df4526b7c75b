"""The embedded reference server as a target: the default when no ``--target`` is given.

It runs as its own process (``python -m conformance.cli serve``), never in the pytest process:
fault switches then live only in the server and cannot reach the oracle that judges it, and a
faulted server that "crashes" cannot take the suite down with it. The child gets its own
process group and a parent-death signal (Linux ``PR_SET_PDEATHSIG``) so a killed pytest worker
never leaves a server behind; ``stop()`` signals it by PID: SIGTERM, wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conformance.errors import HarnessError, UsageError
from conformance.harness.ports import PortBlock, reserve_block
from conformance.oracle.aggregator import FLAVOURS
from conformance.server.faults import check_names
from conformance.targets.base import Target, wait_ready
from conformance.targets.profile import Profile, load_profile, shipped_path

START_TIMEOUT = 30.0
"""A bound, not a wait: ``-n auto`` starts one server per worker, both modes at once, all at the
same moment; on two busy cores a Python server's start took more than 10 s."""
STOP_TIMEOUT = 5.0
_BIND_ATTEMPTS = 3

_block: PortBlock | None = None


def _shared_block() -> PortBlock:
    """One port block per process, reserved on first use (xdist workers each get their own)."""
    global _block
    if _block is None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        digits = "".join(c for c in worker if c.isdigit())
        _block = reserve_block(int(digits) if digits else 0)
    return _block


def reference_profile(flavour: str = "strict", **overrides: Any) -> Profile:
    """What the reference server declares about itself: the shipped ``reference`` profile with
    ``overrides`` (profile field names; ``None`` ignored). A module ``flavour`` also declares that
    module's store behaviour and tie rule, because ``--flavour`` switches them on in the server."""
    base = (
        load_profile("reference")
        if shipped_path("reference").is_file()
        else Profile(name="reference", description="embedded reference server", source="builtin")
    )
    if flavour in ("opensips", "kamailio"):
        kamailio = flavour == "kamailio"
        base = base.with_overrides(
            flavour=flavour,
            replaces_on_same_first_id=kamailio,
        )
    return base.with_overrides(**overrides)


class ReferenceTarget(Target):
    """``dialoginfo-conformance serve`` on a loopback port, started and stopped by the suite.

    The profile is the single source of the server's declared behaviour: single-dialog mode,
    first version, partial NOTIFY on PUBLISH, empty form, tie break and refresh NOTIFYs are
    passed to the server from it, so what the oracle predicts and what the server does cannot
    drift apart. Keyword options override the profile. ``faults`` and ``flavour`` are server
    switches only; the oracle never sees the faults.
    """

    name = "reference"

    def __init__(
        self,
        *,
        profile: Profile | None = None,
        faults: Iterable[str] = (),
        flavour: str = "strict",
        single_dialog: bool | None = None,
        first_version: int | None = None,
        partial_on_publish: bool | None = None,
        empty_form: str | None = None,
        block: PortBlock | None = None,
        workdir: str | os.PathLike[str] | None = None,
        ports: PortBlock | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        domain: str | None = None,
        extra_args: Iterable[str] = (),
    ) -> None:
        if flavour not in FLAVOURS:
            raise UsageError(f"reference flavour {flavour!r}: use strict, opensips or kamailio")
        overrides = {
            "single_dialog": single_dialog,
            "first_version": first_version,
            "partial_on_publish": partial_on_publish,
            "empty_form": empty_form,
        }
        if profile is None:
            profile = reference_profile(flavour, **overrides)
        else:
            profile = profile.with_overrides(**overrides)
        super().__init__(host=host, port=0, domain=domain, profile=profile)
        self.faults = check_names(tuple(faults))
        self.flavour = flavour
        # ``ports``/``log_dir`` are accepted as aliases of ``block``/``workdir``.
        self._block = block or ports
        where = workdir if workdir is not None else log_dir
        self._workdir = Path(where) if where is not None else None
        self._extra = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def call_proxy(self) -> tuple[str, int]:
        """Where calls go (group E): the server is its own proxy (``server/proxy.py``)."""
        return self.host, self.port

    # ---- the Target interface ----------------------------------------------------------------

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        block = self._block or _shared_block()
        last = ""
        for _ in range(_BIND_ATTEMPTS):
            port = block.take_one(host=self.host)
            try:
                self._launch(port)
                return
            except _BindFailed as exc:  # someone took the port between probe and bind
                last = str(exc)
                self.stop()
        raise HarnessError(f"reference server could not bind a port: {last}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
        if proc.stdout is not None:
            proc.stdout.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and super().alive()

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update(
            faults=sorted(self.faults),
            flavour=self.flavour,
            pid=self._proc.pid if self._proc else None,
            log=str(self.log_path) if self.log_path else None,
        )
        return out

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # ---- process handling ---------------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        """The ``serve`` command line for this target's profile, flavour and faults."""
        p = self.profile
        cmd = [sys.executable, "-m", "conformance.cli", "serve", "--listen", f"{self.host}:{port}"]
        tie = "last" if p.flavour == "kamailio" else "first"  # the flavour decides ties
        cmd += ["--flavour", self.flavour, "--tie-break", tie]
        cmd += ["--first-version", str(p.first_version), "--empty-form", p.empty_form]
        cmd += ["--max-expires", str(p.publish_expires_cap or 3600)]
        if p.single_dialog:
            cmd.append("--single-dialog")
        if p.partial_on_publish:
            cmd.append("--partial-on-publish")
        for fault in sorted(self.faults):
            cmd += ["--fault", fault]
        return cmd + self._extra

    def _launch(self, port: int) -> None:
        log_dir = self._workdir or Path(tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"reference-{port}-{os.getpid()}.log"
        cmd = self.command(port)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                env=_child_env(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        line = self._read_line(deadline)
        if not line.startswith("listening on "):
            code = self._proc.poll()
            tail = _tail(self.log_path)
            if "Address already in use" in tail:
                raise _BindFailed(tail)
            self.stop()
            raise HarnessError(
                f"reference server did not start (exit {code}): {tail or line or 'no output'}; "
                f"command: {' '.join(cmd)}; log: {self.log_path}"
            )
        self.port = int(line.rsplit(":", 1)[1])
        try:
            wait_ready(
                self.host,
                self.port,
                timeout=max(0.5, deadline - time.monotonic()),
                what="the reference server",
            )
        except HarnessError:
            self.stop()
            raise

    def _read_line(self, deadline: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    break
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        return buf.decode("utf-8", "replace").split("\n", 1)[0].strip()


class _BindFailed(HarnessError):
    """The chosen port was taken before the child bound it; start() tries another."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux only; harmless elsewhere)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _child_env() -> dict[str, str]:
    """The parent's environment, with this checkout importable even when not installed."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _tail(path: Path | None, limit: int = 400) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text("utf-8", "replace").strip()
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-3:])[-limit:]
