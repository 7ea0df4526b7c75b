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
from conformance.targets.external import TRANSPORTS
from conformance.targets.profile import Profile, load_profile, shipped_path

START_TIMEOUT = 30.0
"""A bound, not a wait: ``-n auto`` starts one server per worker, both modes at once, all at the
same moment; on two busy cores a Python server's start took more than 10 s."""
AUTH_NONCE_TTL = 2.0
"""Seconds the server's nonces live when it authenticates: short, so the stale-nonce case
(A31) waits seconds."""
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
        accounts: dict[str, str] | None = None,
        realm: str | None = None,
        nonce_ttl: float = AUTH_NONCE_TTL,
        transport: str = "udp",
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
        if transport not in TRANSPORTS:
            raise UsageError(f"reference transport {transport!r}: use udp, tcp or tls")
        super().__init__(host=host, port=0, domain=domain, profile=profile, transport=transport)
        self.faults = check_names(tuple(faults))
        self.flavour = flavour
        # ``ports``/``log_dir`` are accepted as aliases of ``block``/``workdir``.
        self._block = block or ports
        where = workdir if workdir is not None else log_dir
        self._workdir = Path(where) if where is not None else None
        self._extra = list(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.accounts = dict(accounts or {})
        """Digest accounts (user -> password): when any, the server challenges PUBLISH and
        SUBSCRIBE (``serve --auth-credentials``, server/auth.py)."""
        self.realm = realm or self.domain
        self.nonce_ttl = float(nonce_ttl) if self.accounts else None
        self._tls_files: tuple[Path, Path] | None = None

    @property
    def call_proxy(self) -> tuple[str, int] | None:
        """Where calls go (group E): the server is its own proxy (``server/proxy.py``). Over
        UDP only: the call peers and the proxy are written for UDP, so over TCP and TLS group
        E skips, as it does on a TCP or TLS Kamailio."""
        return (self.host, self.port) if self.transport == "udp" else None

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
            auth={"realm": self.realm, "accounts": len(self.accounts)} if self.accounts else None,
        )
        return out

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    # ---- process handling ---------------------------------------------------------------------

    def command(self, port: int) -> list[str]:
        """The ``serve`` command line for this target's profile, flavour and faults."""
        p = self.profile
        listen = f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"
        cmd = [sys.executable, "-m", "conformance.cli", "serve", "--listen", listen]
        cmd += ["--transport", self.transport]
        if self._tls_files is not None:
            cmd += ["--tls-cert", str(self._tls_files[0]), "--tls-key", str(self._tls_files[1])]
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
        if self.accounts:
            # The passwords go in a mode-0600 file (never in argv), removed once it is read.
            cmd += ["--auth-credentials", str(self._credentials_file(port))]
            cmd += ["--auth-realm", self.realm, "--nonce-ttl", f"{self.nonce_ttl:g}"]
        return cmd + self._extra

    def _auth_path(self, port: int) -> Path:
        return (self._workdir or Path(tempfile.gettempdir())) / f"auth-{port}-{os.getpid()}.toml"

    def _credentials_file(self, port: int) -> Path:
        where = self._auth_path(port)
        where.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(
            f"[[users]]\nuser = {_toml(user)}\npassword = {_toml(password)}\n"
            for user, password in self.accounts.items()
        )
        fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return where

    def _launch(self, port: int) -> None:
        log_dir = self._workdir or Path(tempfile.gettempdir())
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"reference-{port}-{os.getpid()}.log"
        if self.transport == "tls" and self._tls_files is None:
            self._make_tls(log_dir / f"reference-tls-{port}-{os.getpid()}")
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
        try:
            line = self._read_line(deadline)
        finally:
            self._auth_path(port).unlink(missing_ok=True)  # read before "listening" is printed
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
                transport=self.transport,
                tls=self.tls_context(),
            )
        except HarnessError:
            self.stop()
            raise

    def _make_tls(self, where: Path) -> None:
        """A CA and a certificate for ``host`` made now, as for a TLS Kamailio; ``ca_path`` is
        what the kit trusts (the plugin passes it to the relay when no ``--tls-ca`` is given)."""
        from conformance.harness.relay import make_server_tls

        self.ca_path, cert, key = make_server_tls(where, self.host)
        self._tls_files = (cert, key)

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


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escaping is valid TOML for these)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _tail(path: Path | None, limit: int = 400) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text("utf-8", "replace").strip()
    except OSError:
        return ""
    return " | ".join(text.splitlines()[-3:])[-limit:]
