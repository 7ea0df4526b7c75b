"""``dialoginfo-conformance run``: the conformance suite, as ``pytest --pyargs conformance.suite``.

A thin wrapper: it builds the pytest command line and runs it in a child process, once per mode.
A launched target (the embedded reference server, Kamailio) is tested in both modes, aggregate
and force_single_dialog, unless ``--mode`` picks one; an external server is tested in the one
mode it declares. Anything after ``--`` goes to pytest unchanged (``-k``, ``-x``, ``-v`` ...).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from conformance.commands.concurrent import Job, run_at_once
from conformance.errors import UsageError
from conformance.harness.sipp import sipp_binary
from conformance.pytest_plugin.fixtures import EXIT_BAD_LOCAL_ADDRESS, EXIT_TARGET_UNAVAILABLE
from conformance.targets.profile import load_profile

LAUNCHED = ("reference", "kamailio", "kamailio-two")

EXIT_OK = 0
"""Every case passed, or deviated only as the profile declares."""
EXIT_NONCONFORMING = 1
"""A conformance failure: a case failed, or a declared deviation did not happen."""
EXIT_USAGE = 2
"""A bad option or profile: nothing ran."""
EXIT_TARGET = 3
"""The target could not be started or reached."""
EXIT_KIT = 4
"""The kit itself failed: pytest's internal error, or no case was collected."""
EXIT_INTERRUPTED = 130

_FROM_PYTEST = {
    0: EXIT_OK,
    1: EXIT_NONCONFORMING,
    2: EXIT_INTERRUPTED,  # pytest: interrupted
    3: EXIT_KIT,  # pytest: internal error
    4: EXIT_USAGE,  # pytest: usage error
    5: EXIT_KIT,  # pytest: no tests collected
    EXIT_TARGET_UNAVAILABLE: EXIT_TARGET,
    EXIT_BAD_LOCAL_ADDRESS: EXIT_USAGE,
}


def exit_code(pytest_code: int) -> int:
    """The kit's exit code (README "Exit codes") for a child pytest's exit status."""
    return _FROM_PYTEST.get(pytest_code, EXIT_KIT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default="reference",
        help="reference (embedded, default), kamailio, kamailio-two (call proxy + presence), "
        "or sip:HOST:PORT",
    )
    parser.add_argument("--profile", help="shipped profile name or TOML file")
    parser.add_argument(
        "--mode",
        choices=("aggregate", "single", "both"),
        default=None,
        help="launched targets: which modes to test (default both); external: "
        "the mode the server runs in (default aggregate)",
    )
    parser.add_argument("--single-dialog", action="store_true", help="same as --mode single")
    parser.add_argument(
        "--strict",
        "--strict-conformance",
        action="store_true",
        dest="strict",
        help="SHOULD/DEF/IMPL violations fail instead of warn",
    )
    parser.add_argument("--rfc", choices=("6665", "3265"), help="SIP events baseline")
    parser.add_argument(
        "-n",
        "--numprocesses",
        default="auto",
        metavar="N",
        help="pytest-xdist workers (default auto; 0 runs in one process)",
    )
    parser.add_argument(
        "--report-dir",
        "--conformance-report",
        dest="report_dir",
        default=None,
        metavar="DIR",
        help="where reports go (default ./reports)",
    )
    parser.add_argument(
        "--sip-timeout",
        default=None,
        metavar="SECONDS",
        help="bound of every wait for a SIP message (default 5)",
    )
    parser.add_argument(
        "--slow",
        action="store_true",
        help="also run the cases that wait out timers of more than 30 s",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="reference target only: inject a fault into the server",
    )
    parser.add_argument(
        "--local-address",
        metavar="ADDR",
        help="address the kit's SIP peers bind and advertise (default: the kernel's source "
        "address towards the target)",
    )
    parser.add_argument(
        "--proxy",
        metavar="sip:HOST:PORT",
        help="group E: the proxy calls go through, when not the target's address",
    )
    parser.add_argument(
        "--register",
        action="store_true",
        help="group E: callees REGISTER at the proxy and calls go to their AOR",
    )
    parser.add_argument(
        "--label",
        metavar="NAME",
        help="name of the target in reports (default: its kind, e.g. external)",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="sips: targets: CA certificates the server's certificate must chain to (its SAN "
        "must name the target's host or IP)",
    )
    parser.add_argument(
        "--tls-insecure", action="store_true", help="sips: targets: skip certificate checks"
    )
    parser.add_argument(
        "--auth-user",
        metavar="USER",
        help="digest-authenticate PUBLISH and SUBSCRIBE as USER (password: --auth-password-file "
        "or $DIALOGINFO_AUTH_PASSWORD; never on the command line)",
    )
    parser.add_argument(
        "--auth-password-file", metavar="FILE", help="first line: the auth user's password"
    )
    parser.add_argument(
        "--credentials",
        metavar="FILE",
        help="credentials TOML (default account, realm, nonce_ttl, [[users]] pool; README)",
    )
    parser.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest unchanged"
    )


def modes(args: argparse.Namespace) -> list[str]:
    if args.single_dialog:
        if args.mode not in (None, "single"):
            raise UsageError(f"--single-dialog contradicts --mode {args.mode}")
        return ["single"]
    launched = args.target.split(";")[0].split(":")[0] in LAUNCHED  # kamailio;transport=tcp
    if args.mode == "both" or (args.mode is None and launched):
        if not launched:
            raise UsageError(
                "--mode both needs a target the kit launches; an external server "
                "runs in one mode: say which with --mode"
            )
        return ["aggregate", "single"]
    return [args.mode or "aggregate"]


PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the ``conformance`` package (site-packages, or the checkout)."""


def suite_argv(*args: str) -> list[str]:
    """The command line that runs the conformance suite in a child pytest; the ``run`` command,
    the mutation runner, the benchmarks and the end-to-end tests all start from it.

    ``--rootdir`` is the directory holding the package, so node ids (JUnit, results.json) read
    ``conformance/suite/test_x.py::test_y`` wherever the kit is installed and whatever the
    working directory, never a virtualenv path."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "conformance.suite",
        "-p",
        "no:cacheprovider",
        # The suite uses no Hypothesis; its plugin (in a dev environment) would import it in
        # every xdist worker: 0.5 s of CPU each, a third of a worker's start.
        "-p",
        "no:hypothesispytest",
        f"--rootdir={PACKAGE_ROOT}",
        *args,
    ]


def pytest_command(args: argparse.Namespace, mode: str) -> list[str]:
    cmd = suite_argv("--dialoginfo-target", args.target)
    if args.profile:
        cmd += ["--dialoginfo-profile", args.profile]
    if mode == "single":
        cmd.append("--dialoginfo-single-dialog")
    if args.strict:
        cmd.append("--dialoginfo-strict")
    if args.rfc:
        cmd += ["--dialoginfo-rfc", args.rfc]
    for fault in args.fault:
        cmd += ["--dialoginfo-fault", fault]
    if args.report_dir:
        cmd += ["--dialoginfo-report", args.report_dir]
    if args.sip_timeout:
        cmd += ["--dialoginfo-sip-timeout", args.sip_timeout]
    if args.slow:
        cmd.append("--dialoginfo-slow")
    if args.local_address:
        cmd += ["--dialoginfo-local-address", args.local_address]
    if args.label:
        cmd += ["--dialoginfo-label", args.label]
    if args.proxy:
        cmd += ["--dialoginfo-proxy", args.proxy]
    if args.register:
        cmd.append("--dialoginfo-register")
    if args.tls_ca:
        cmd += ["--dialoginfo-tls-ca", args.tls_ca]
    if args.tls_insecure:
        cmd.append("--dialoginfo-tls-insecure")
    for option in ("auth_user", "auth_password_file", "credentials"):
        if getattr(args, option, None):  # names of files and users only, never a password
            cmd += [f"--dialoginfo-{option.replace('_', '-')}", getattr(args, option)]
    if str(args.numprocesses) not in ("0", ""):
        cmd += ["-n", str(args.numprocesses)]
    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return cmd + extra


def check_deployment(args: argparse.Namespace) -> None:
    """Refuse, before any case runs, a local address the route to an external target would
    not use (launched targets are checked by the plugin once they listen)."""
    if args.tls_ca or args.tls_insecure:
        from conformance.harness.relay import configure

        configure(args.tls_ca, insecure=args.tls_insecure)  # a bad file or both: one line
    if args.local_address and args.target.startswith("sip"):
        from conformance.harness.local_address import check_local_address
        from conformance.targets import parse_spec

        host, port, _ = parse_spec(args.target)
        check_local_address(args.local_address, host, port)
    check_target(args.target)
    from conformance.harness.credentials import resolve_keyring

    resolve_keyring(  # a missing file or password: one line, before any case
        user=args.auth_user,
        password_file=args.auth_password_file,
        credentials_file=args.credentials,
    )


def check_target(spec: str) -> None:
    """Refuse a bad ``--target`` here, in one line: inside pytest the refusal comes from a
    session fixture, which under xdist shows as an INTERNALERROR traceback per worker. The
    target is built, never started; its port block is released at once."""
    from conformance.harness.ports import reserve_block
    from conformance.targets import make_target

    with reserve_block() as block, tempfile.TemporaryDirectory(prefix="dialoginfo-check-") as d:
        make_target(spec, block=block, workdir=d)


def run(args: argparse.Namespace) -> int:
    if args.profile:
        load_profile(args.profile)  # a bad profile stops here, one line, before any case
    sipp_binary()  # ToolMissingError says how to install it
    check_deployment(args)
    selected = modes(args)
    # The plugin copies the JUnit file into the run's report folder as junit.xml; the temporary
    # one goes with its directory, so a run leaves nothing in the temp dir.
    with tempfile.TemporaryDirectory(prefix="dialoginfo-run-") as scratch:
        for mode in selected:
            (Path(scratch) / mode).mkdir()  # pytest makes its base temp, not the parents
        commands = {
            mode: with_scratch(
                pytest_command(args, mode),
                Path(scratch) / mode,
                mode if len(selected) > 1 else None,
            )
            for mode in selected
        }
        if len(selected) == 1:
            (mode,) = selected
            print(header(args, mode), flush=True)
            codes = [subprocess.run(commands[mode], check=False, env=os.environ.copy()).returncode]
        else:
            # The cases wait far more than they compute: both modes run at the same time, each
            # its own pytest session (own workers, servers, report), output held per mode.
            print(
                f"== dialog-info conformance: target {args.target}, "
                f"{' and '.join(selected)} modes at once; each mode's output follows when it "
                "ends ==",
                flush=True,
            )
            jobs = [Job(mode, commands[mode], header(args, mode)) for mode in selected]
            codes = run_at_once(jobs)
    mapped = [exit_code(c) for c in codes]
    return EXIT_INTERRUPTED if EXIT_INTERRUPTED in mapped else max(mapped)


def header(args: argparse.Namespace, mode: str) -> str:
    return f"== dialog-info conformance: target {args.target}, {mode} mode =="


_PATH_OPTIONS = ("--junitxml", "--junit-xml", "--basetemp")
"""pytest options naming a file or folder that two modes running at once must not share."""


def with_scratch(cmd: list[str], scratch: Path, mode: str | None = None) -> list[str]:
    """Give one mode's pytest its own JUnit file and base temp (SIPp traces and server logs:
    their evidence is in results.json already) in ``scratch``. A JUnit file or base temp the
    user chose is kept; with ``mode`` (both modes at once) its name gets ``-<mode>``, since
    pytest empties its base temp at start and two sessions would overwrite one JUnit file."""
    cmd = [_per_mode(a, mode) if mode else a for a in cmd]
    if mode:
        for i in range(1, len(cmd)):
            if cmd[i - 1] in _PATH_OPTIONS:
                cmd[i] = _suffixed(cmd[i], mode)
    if not any(a.startswith(("--junitxml", "--junit-xml")) for a in cmd):
        cmd.append(f"--junitxml={scratch / 'junit.xml'}")
    if not any(a.startswith("--basetemp") for a in cmd):
        cmd.append(f"--basetemp={scratch / 'pytest'}")
    return cmd


def _per_mode(arg: str, mode: str) -> str:
    option, eq, value = arg.partition("=")
    return f"{option}={_suffixed(value, mode)}" if eq and option in _PATH_OPTIONS else arg


def _suffixed(path: str, mode: str) -> str:
    """``out/junit.xml`` -> ``out/junit-single.xml``; ``tmp/base`` -> ``tmp/base-single``."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}-{mode}{p.suffix}"))
