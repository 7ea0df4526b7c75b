"""Kamailio 5.6.3 from Debian's packages, launched by the kit as a presence server for the suite.

Each instance is self-contained (BEHAVIOUR.md, "Running Kamailio 5.6.3 here"): its own config
rendered from ``templates/kamailio.cfg.tmpl``, a fresh SQLite database created from the
packaged schema, runtime dir (``-Y``), PID file (``-P``), working dir (``-w``), log file and a
port from the caller's ``PortBlock``, so any number of instances can run side by side. No
``ctl`` module is loaded, so there is no control socket to collide on.

Kamailio forks a dozen processes. It runs in the foreground (``-DD -E``) in its own session,
so ``stop`` signals the whole process group (TERM, wait, KILL) and reaps strays even when the
main process was killed with SIGKILL. ``PR_SET_PDEATHSIG`` sends the main process SIGTERM if
the Python process dies first; SIGTERM rather than SIGKILL because Kamailio's main process
then stops its children itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from conformance.errors import HarnessError, ToolMissingError, UsageError
from conformance.harness.ports import PortBlock
from conformance.targets import probe as _probe
from conformance.targets.base import Target
from conformance.targets.profile import Profile, load_profile

Mode = Literal["aggregate", "single", "dummy"]

MODES: dict[str, dict[str, int]] = {
    "aggregate": {"force_single_dialog": 0, "force_dummy_dialog": 0},
    "single": {"force_single_dialog": 1, "force_dummy_dialog": 0},
    "dummy": {"force_single_dialog": 0, "force_dummy_dialog": 1},
}
"""presence_dialoginfo settings per mode; the template is the same for all three."""

BINARY = "/usr/sbin/kamailio"
SQL_DIR = Path("/usr/share/kamailio/db_sqlite")
APT_PACKAGES = "kamailio kamailio-presence-modules kamailio-sqlite-modules"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "kamailio.cfg.tmpl"

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_MODULE_DIRS = (
    "/usr/lib/*/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/lib64/kamailio/modules",
)
_NEEDED_MODULES = ("tm", "sl", "db_sqlite", "presence", "presence_dialoginfo")


TRANSPORTS = ("udp", "tcp", "tls")
"""What one launched Kamailio serves: one transport per instance, as a deployment would."""


TLS_CONFIG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""
"""tls.so's domains: the server side presents the test certificate; as a client (NOTIFYs to a
watcher's Contact over a new connection) it does not check the kit's self-signed one."""


def transport_settings(transport: str, host: str, port: int, tls_config: Path | None = None) -> str:
    """The core settings that make an instance listen on ``transport`` only.

    TCP keeps one TCP worker (``tcp_children=1``): the SQLite driver has no busy timeout, so
    a second worker would give "database is locked" 500s, as with UDP ``children``.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if transport == "udp":
        return f"disable_tcp=yes\nlisten=udp:{where}"
    lines = f"tcp_children=1\ntcp_accept_no_cl=yes\nlisten={transport}:{where}"
    if transport == "tls":
        lines += f'\nenable_tls=yes\nloadmodule "tls.so"\nmodparam("tls", "config", "{tls_config}")'
    return lines


def check_tls_installed() -> None:
    """``ToolMissingError`` naming the package when Kamailio's TLS module or openssl is absent."""
    dirs = [p for pattern in _MODULE_DIRS for p in Path("/").glob(pattern.lstrip("/"))]
    if not any((d / "tls.so").is_file() for d in dirs):
        raise ToolMissingError("Kamailio's tls.so not found: apt-get install kamailio-tls-modules")
    if shutil.which("openssl") is None:
        raise ToolMissingError("openssl not found (test certificates): apt-get install openssl")


def render_config(template: str, values: dict[str, object]) -> str:
    """Fill ``{{name}}`` placeholders; a placeholder without a value is a kit bug, said plainly.

    Double braces because Kamailio's own syntax uses ``$`` (pseudo-variables) and ``@``.
    """
    missing = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if missing:
        raise UsageError(f"Kamailio config template needs values for: {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def check_installed(binary: str | os.PathLike[str] = BINARY) -> None:
    """``ToolMissingError`` naming the Debian packages when Kamailio or a module is missing."""
    hint = f"install them with: apt-get install {APT_PACKAGES}"
    if not os.access(binary, os.X_OK):
        raise ToolMissingError(f"Kamailio not found at {str(binary)!r}; {hint}")
    if not (SQL_DIR / "presence-create.sql").is_file():
        raise ToolMissingError(f"Kamailio's SQLite schema is missing ({SQL_DIR}); {hint}")
    dirs = [p for pattern in _MODULE_DIRS for p in Path("/").glob(pattern.lstrip("/"))]
    for module in _NEEDED_MODULES:
        if not any((d / f"{module}.so").is_file() for d in dirs):
            raise ToolMissingError(f"Kamailio module {module}.so not found; {hint}")


def create_database(path: Path, accounts: dict[str, str] | None = None, domain: str = "") -> None:
    """A fresh SQLite database with the ``version`` table and the presence tables; with
    ``accounts``, auth_db's subscriber table too (plain passwords, HA1 computed by Kamailio)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    db = sqlite3.connect(path)
    try:
        names = ("standard", "presence", *(("auth_db",) if accounts else ()))
        for name in names:
            db.executescript((SQL_DIR / f"{name}-create.sql").read_text())
        if accounts:
            db.executemany(
                "INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                [(user, domain, password) for user, password in accounts.items()],
            )
        db.commit()
    finally:
        db.close()


AUTH_NONCE_TTL = 4
"""Seconds a launched Kamailio's nonces live (auth ``nonce_expire``; its default is 300): short,
so the stale-nonce case (A31) waits seconds, not minutes."""


def auth_settings(
    accounts: dict[str, str],
    realm: str,
    db: Path,
    nonce_ttl: int = AUTH_NONCE_TTL,
    challenge: Literal["proxy", "www"] = "proxy",
) -> dict[str, str]:
    """Template values: digest authentication of the requests the template guards, or nothing.

    ``challenge``: ``proxy`` (407, ``proxy_authorize``) for PUBLISH and SUBSCRIBE at a presence
    server; ``www`` (401, ``www_authorize``) for REGISTER at a registrar, as RFC 3261 §22.2
    has a registrar answer. The realm is written literally: ``proxy_authorize("$fd", ...)``
    failed in 5.6.3 with "failed to get realm value" (seen in a spike)."""
    if not accounts:
        return {"auth_modules": "", "auth_check": ""}
    modules = (
        'loadmodule "auth.so"\nloadmodule "auth_db.so"\n'
        f'modparam("auth", "nonce_expire", {nonce_ttl})\n'
        f'modparam("auth_db", "db_url", "sqlite:///{db}")\n'
        'modparam("auth_db", "calculate_ha1", yes)\n'
        'modparam("auth_db", "password_column", "password")\n'
    )
    check = (
        f'\t\tif (!{challenge}_authorize("{realm}", "subscriber")) {{\n'
        # -4: the nonce expired; flag 16 says stale=true (Kamailio does not on its own), 1 asks
        # for qop=auth (so nc and cnonce are checked too).
        "\t\t\tif ($rc == -4) {\n"
        f'\t\t\t\t{challenge}_challenge("{realm}", "17");\n'
        "\t\t\t} else {\n"
        f'\t\t\t\t{challenge}_challenge("{realm}", "1");\n'
        "\t\t\t}\n"
        "\t\t\texit;\n"
        "\t\t}\n"
        "\t\tconsume_credentials();"
    )
    return {"auth_modules": modules, "auth_check": check}


class KamailioTarget(Target):
    """Kamailio with presence + presence_dialoginfo in one of three modes.

    ``aggregate``: the module defaults; ``single``: ``force_single_dialog=1``; ``dummy``:
    ``force_dummy_dialog=1``. The profile is the shipped ``kamailio`` profile (or the one
    given) with the facts this config fixes applied on top: single-dialog mode, empty-body
    form, expiry timer period and the Expires limits.
    """

    name = "kamailio"

    def __init__(
        self,
        mode: Mode = "aggregate",
        *,
        block: PortBlock | None = None,
        port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        domain: str | None = None,
        profile: Profile | None = None,
        binary: str | os.PathLike[str] = BINARY,
        template: str | os.PathLike[str] | None = None,
        clean_period: int = 2,
        max_expires: int = 3600,
        min_expires: int = 0,
        shm_mb: int = 256,
        debug: int = 2,
        ready_timeout: float = 30.0,  # a bound: all workers' instances start at once
        keep_files: bool = False,
        transport: str = "udp",
        accounts: dict[str, str] | None = None,
        realm: str | None = None,
        nonce_ttl: int = AUTH_NONCE_TTL,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"Kamailio mode {mode!r} is not one of {', '.join(MODES)}")
        if transport not in TRANSPORTS:
            raise UsageError(
                f"Kamailio transport {transport!r} is not one of {', '.join(TRANSPORTS)}"
            )
        if port is None:
            if block is None:
                raise UsageError("KamailioTarget needs a PortBlock (block=) or a port (port=)")
            port = block.take_one(host=host)
        base = profile if profile is not None else load_profile("kamailio")
        facts: dict[str, Any] = {
            "single_dialog": mode == "single",
            "empty_form": "dummy-dialog" if mode == "dummy" else "no-body",
            "expiry_timer": float(clean_period),
            "publish_expires_cap": max_expires,
        }
        super().__init__(
            host=host,
            port=port,
            domain=domain,
            profile=base.with_overrides(**facts),
            transport=transport,
        )
        self.mode: Mode = mode
        self.binary = str(binary)
        self.template = Path(template) if template is not None else TEMPLATE
        self.settings: dict[str, Any] = {
            "clean_period": clean_period,
            "max_expires": max_expires,
            "min_expires": min_expires,
            **MODES[mode],
        }
        self.shm_mb = shm_mb
        self.debug = debug
        self.ready_timeout = ready_timeout
        self.keep_files = keep_files
        self.accounts = dict(accounts or {})
        """Digest accounts (user -> password) of the subscriber table; when any, PUBLISH and
        SUBSCRIBE must authenticate (auth_db, 407 challenges)."""
        self.realm = realm or self.domain
        """The digest realm of the challenges (default: the domain)."""
        self.nonce_ttl = float(nonce_ttl) if self.accounts else None
        self.auth_challenge: Literal["proxy", "www"] = "proxy"
        """How the template's ``auth_check`` challenges (``auth_settings``): 407 here; a
        registrar's template (the two-instance call proxy) sets ``www`` for 401."""
        self.ca_path: Path | None = None
        """With TLS: the CA that signed this instance's certificate (made at start)."""
        self._parent_dir = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []

    @property
    def server_address(self) -> str:
        """The URI presence puts in its NOTIFYs' Contact: where in-dialog SUBSCRIBEs come."""
        params = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.address}{params}"

    # -- files ---------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "kamailio.log" if self.workdir else None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of Kamailio's log (empty when there is none)."""
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        text = path.read_bytes()[-16384:].decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def _prepare(self) -> Path:
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        work = Path(
            tempfile.mkdtemp(
                prefix=f"kamailio-{self.mode}-{self.port}-",
                dir=self._parent_dir,
            )
        )
        (work / "run").mkdir()
        db = work / "kamailio.db"
        create_database(db, self.accounts, self.realm)
        tls_config = self._make_tls(work) if self.transport == "tls" else None
        values = {
            "debug": self.debug,
            "host": self.host,
            "port": self.port,
            "domain": self.domain,
            "db_path": db,
            "transport_settings": transport_settings(
                self.transport, self.host, self.port, tls_config
            ),
            "server_address": self.server_address,
            **auth_settings(
                self.accounts,
                self.realm,
                db,
                int(self.nonce_ttl or AUTH_NONCE_TTL),
                self.auth_challenge,
            ),
            **self.settings,
        }
        try:
            template = self.template.read_text()
        except OSError as exc:
            raise UsageError(
                f"cannot read Kamailio template {str(self.template)!r}: {exc}"
            ) from None
        (work / "kamailio.cfg").write_text(render_config(template, values))
        return work

    def _make_tls(self, work: Path) -> Path:
        """A CA and a server certificate for ``host`` (SAN IP or DNS), made now, and tls.cfg.

        ``ca_path`` is what a client passes as ``--tls-ca`` to verify this instance."""
        from conformance.harness.relay import make_server_tls

        tls = work / "tls"
        self.ca_path, cert, key = make_server_tls(tls, self.host)
        config = tls / "tls.cfg"
        config.write_text(TLS_CONFIG.format(key=key, cert=cert))
        return config

    # -- process -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.process is not None:
            return
        check_installed(self.binary)
        if self.transport == "tls":
            check_tls_installed()
        self.workdir = self._prepare()
        work = self.workdir
        self.command = [
            self.binary,
            "-f", str(work / "kamailio.cfg"),
            "-DD", "-E",
            "-m", str(self.shm_mb),
            "-Y", str(work / "run"),
            "-P", str(work / "kamailio.pid"),
            "-w", str(work),
        ]  # fmt: skip
        with open(work / "kamailio.log", "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise self._failure(f"exited with status {code} before answering OPTIONS")
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failure(f"did not answer OPTIONS within {self.ready_timeout:g} s")
            result = _probe.probe(
                self.host,
                self.port,
                timeout=min(0.5, left),
                transport=self.transport,
                tls=self.tls_context(),
            )
            if result.response is not None:
                if result.ok:
                    return
                raise self._failure(f"answered OPTIONS with {result.response.status}")

    def _failure(self, what: str) -> HarnessError:
        tail = self.log_tail()
        return HarnessError(
            f"Kamailio ({self.mode}, {self.address}) {what}\n"
            f"command: {' '.join(self.command)}\n"
            f"log tail:\n{tail or '(empty)'}"
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            return False
        return super().alive()

    def stop(self, *, grace: float = 5.0) -> None:
        """TERM the process group, wait up to ``grace`` s, KILL what is left, remove the files."""
        proc, self.process = self.process, None
        try:
            if proc is not None:
                _stop_group(proc, grace)
        finally:
            work, self.workdir = self.workdir, None
            if work is not None and not self.keep_files:
                shutil.rmtree(work, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            mode=self.mode,
            binary=self.binary,
            version=kamailio_version(self.binary),
            settings=dict(self.settings),
            pid=self.pid,
            auth={"realm": self.realm, "accounts": len(self.accounts)} if self.accounts else None,
        )
        return info


def _stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    pgid = proc.pid  # start_new_session: the main process leads its own group
    deadline = time.monotonic() + grace
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=max(0.0, grace))
    # The main process may be gone (or was killed with -9) while children linger.
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is None or _group_members(pgid):
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)
        end = time.monotonic() + 2.0
        while _group_members(pgid) and time.monotonic() < end:
            time.sleep(0.02)
    leftover = _group_members(pgid)
    if leftover:
        raise HarnessError(f"Kamailio processes {leftover} survived SIGKILL of group {pgid}")


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in group ``pgid``.

    Read from /proc because ``killpg(pgid, 0)`` also succeeds for zombies, which an init that
    does not reap (some containers) would leave forever.
    """
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the process that started it dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_VERSIONS: dict[str, str] = {}


def kamailio_version(binary: str = BINARY) -> str:
    """``kamailio -v``'s first line (cached), e.g. ``version: kamailio 5.6.3 (x86_64/linux)``."""
    if binary not in _VERSIONS:
        try:
            out = subprocess.run(
                [binary, "-v"],
                capture_output=True,
                timeout=5,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            first = (out.stdout or out.stderr).decode("utf-8", "replace").strip().splitlines()
            _VERSIONS[binary] = first[0].strip() if first else "unknown"
        except (OSError, subprocess.TimeoutExpired):
            _VERSIONS[binary] = "unknown"
    return _VERSIONS[binary]
