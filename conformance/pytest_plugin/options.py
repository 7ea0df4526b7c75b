"""The plugin's command-line options, all prefixed ``--dialoginfo-``, and the settings they
resolve to.

The plugin loads in every pytest session of an environment where the kit is installed, so it
registers no name another project could own: a conftest that defines ``--slow`` or ``--target``
keeps working beside it. The ``dialoginfo-conformance run`` command keeps the short names and
translates them (``conformance/commands/run.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from conformance.errors import ConformanceError

PREFIX = "--dialoginfo-"
GROUP = "dialog-info conformance"
TARGET_OPTION = PREFIX + "target"
PROFILE_OPTION = PREFIX + "profile"
SINGLE_OPTION = PREFIX + "single-dialog"
STRICT_OPTION = PREFIX + "strict"
RFC_OPTION = PREFIX + "rfc"
FAULT_OPTION = PREFIX + "fault"
TIMEOUT_OPTION = PREFIX + "sip-timeout"
REPORT_OPTION = PREFIX + "report"
SLOW_OPTION = PREFIX + "slow"
LOCAL_ADDRESS_OPTION = PREFIX + "local-address"
LABEL_OPTION = PREFIX + "label"
CATALOGUE_OPTION = PREFIX + "catalogue"
TLS_CA_OPTION = PREFIX + "tls-ca"
TLS_INSECURE_OPTION = PREFIX + "tls-insecure"
AUTH_USER_OPTION = PREFIX + "auth-user"
AUTH_PASSWORD_FILE_OPTION = PREFIX + "auth-password-file"
CREDENTIALS_OPTION = PREFIX + "credentials"
PROXY_OPTION = PREFIX + "proxy"
REGISTER_OPTION = PREFIX + "register"
WORKERS_OPTION = PREFIX + "workers"

_settings_key = pytest.StashKey["Settings"]()


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise pytest.UsageError(f"{TIMEOUT_OPTION} takes seconds, not {value!r}") from None
    if not 0.1 <= seconds <= 32:
        raise pytest.UsageError(f"{TIMEOUT_OPTION} must be between 0.1 and 32 s (Timer N)")
    return seconds


def _proxy(value: str) -> tuple[str, int]:
    """``sip:HOST:PORT`` of the proxy group E's calls go through, UDP (the call peers' only
    transport); a bad value is one line, never a traceback."""
    from conformance.errors import UsageError
    from conformance.targets.external import parse_target

    try:
        host, port, _domain, transport = parse_target(value)
    except UsageError as exc:
        raise pytest.UsageError(f"{PROXY_OPTION}: {exc.message}") from None
    if transport != "udp":
        raise pytest.UsageError(f"{PROXY_OPTION} takes a UDP proxy (sip:HOST:PORT), not {value!r}")
    return host, port


def _rfc(value: str) -> int:
    if value not in ("6665", "3265"):
        raise pytest.UsageError(f"{RFC_OPTION} takes 6665 or 3265, not {value!r}")
    return int(value)


def _workers(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise pytest.UsageError(f"{WORKERS_OPTION} takes a number, not {value!r}") from None
    if not 1 <= count <= 64:
        raise pytest.UsageError(f"{WORKERS_OPTION} must be between 1 and 64")
    return count


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "dialog-info conformance (Event: dialog presence servers)")
    group.addoption(
        TARGET_OPTION,
        default="reference",
        dest="dialoginfo_target",
        metavar="TARGET",
        help="server under test: 'reference' (embedded, default), 'kamailio' "
        "(launched from /usr/sbin/kamailio), 'kamailio-two' (a call-proxy Kamailio publishing "
        "to a presence Kamailio: group E's second shape), or sip:HOST:PORT (yours)",
    )
    group.addoption(
        PROFILE_OPTION,
        default=None,
        dest="dialoginfo_profile",
        metavar="NAME|FILE",
        help="target profile: a shipped name (reference, kamailio, opensips, "
        "generic) or a TOML file; default: the target's own",
    )
    group.addoption(
        SINGLE_OPTION,
        action="store_true",
        default=None,
        dest="dialoginfo_single_dialog",
        help="the server runs force_single_dialog=1 (launched targets start so)",
    )
    group.addoption(
        STRICT_OPTION,
        action="store_true",
        default=False,
        dest="dialoginfo_strict",
        help="SHOULD/DEF/IMPL violations fail instead of warn",
    )
    group.addoption(
        RFC_OPTION,
        type=_rfc,
        default=None,
        dest="dialoginfo_rfc",
        metavar="6665|3265",
        help="SIP events baseline (overrides the profile)",
    )
    group.addoption(
        FAULT_OPTION,
        action="append",
        default=[],
        dest="dialoginfo_fault",
        metavar="NAME",
        help="reference target only: inject a fault (mutation testing)",
    )
    group.addoption(
        TIMEOUT_OPTION,
        type=_timeout,
        default=5.0,
        dest="dialoginfo_sip_timeout",
        metavar="SECONDS",
        help="bound of every wait for a SIP message (default 5)",
    )
    group.addoption(
        SLOW_OPTION,
        action="store_true",
        default=False,
        dest="dialoginfo_slow",
        help="also run the cases marked slow (they wait out timers of more than 30 s)",
    )
    group.addoption(
        "--dialoginfo-explore-steps",
        type=int,
        default=0,
        dest="dialoginfo_explore_steps",
        metavar="N",
        help="opt in to the explorer case: N generated operations (issue 13; default 0: off)",
    )
    group.addoption(
        "--dialoginfo-explore-seed",
        type=int,
        default=None,
        dest="dialoginfo_explore_seed",
        metavar="S",
        help="the explorer case's seed (default: drawn and printed)",
    )
    group.addoption(
        REPORT_OPTION,
        default=None,
        dest="dialoginfo_report",
        metavar="DIR",
        help="write results under DIR (default: reports/ of the working directory)",
    )
    group.addoption(
        CATALOGUE_OPTION,
        action="append",
        default=[],
        dest="dialoginfo_catalogue",
        metavar="FILE",
        help="a TOML catalogue extension: own requirement ids (group X) for own cases (repeatable)",
    )
    group.addoption(
        WORKERS_OPTION,
        type=_workers,
        default=None,
        dest="dialoginfo_workers",
        metavar="N",
        help="the workers '-n auto' starts (default: enough for the cases' waits, at most 8)",
    )
    _add_deployment_options(group)


def _add_deployment_options(group: Any) -> None:
    """Options for testing a deployed server: where the kit's peers live, how it names the
    target, how it trusts a TLS server."""
    group.addoption(
        LOCAL_ADDRESS_OPTION,
        default=None,
        dest="dialoginfo_local_address",
        metavar="ADDR",
        help="address every SIP peer binds and advertises in Via/Contact (default: the "
        "source address the kernel picks towards the target)",
    )
    group.addoption(
        LABEL_OPTION,
        default=None,
        dest="dialoginfo_label",
        metavar="NAME",
        help="name of the target in reports and matrix columns (default: its kind, e.g. "
        "external, with the transport when not UDP)",
    )
    group.addoption(
        PROXY_OPTION,
        type=_proxy,
        default=None,
        dest="dialoginfo_proxy",
        metavar="sip:HOST:PORT",
        help="group E: the proxy calls go through when it is not the target's address (it "
        "must record-route, track calls and PUBLISH their state to the target; default: "
        "the target's own call proxy, none for sip:HOST:PORT targets)",
    )
    group.addoption(
        REGISTER_OPTION,
        action="store_true",
        default=False,
        dest="dialoginfo_register",
        help="group E: each callee REGISTERs its Contact at the call proxy and callers INVITE "
        "its AOR, for a proxy that routes by registration (no digest: the registrar must "
        "accept the kit's users)",
    )
    group.addoption(
        TLS_CA_OPTION,
        default=None,
        dest="dialoginfo_tls_ca",
        metavar="FILE",
        help="sips: targets: CA certificates (PEM) the server's certificate must chain to; its "
        "SAN must name the target's host or IP (default: the system's CAs)",
    )
    group.addoption(
        TLS_INSECURE_OPTION,
        action="store_true",
        default=False,
        dest="dialoginfo_tls_insecure",
        help="sips: targets: do not verify the server's certificate",
    )
    group.addoption(
        AUTH_USER_OPTION,
        default=None,
        dest="dialoginfo_auth_user",
        metavar="USER",
        help="digest-authenticate every PUBLISH and SUBSCRIBE as USER (password from "
        f"{AUTH_PASSWORD_FILE_OPTION} or $DIALOGINFO_AUTH_PASSWORD, never the command line)",
    )
    group.addoption(
        AUTH_PASSWORD_FILE_OPTION,
        default=None,
        dest="dialoginfo_auth_password_file",
        metavar="FILE",
        help="file whose first line is the digest password of the auth user",
    )
    group.addoption(
        CREDENTIALS_OPTION,
        default=None,
        dest="dialoginfo_credentials",
        metavar="FILE",
        help="credentials TOML: user/password (or password_file), realm, nonce_ttl and a "
        "[[users]] pool the suite's presentities and watchers are mapped onto (README)",
    )


@dataclass(frozen=True)
class Settings:
    """The resolved options: target spec, profile with command-line overrides, strictness."""

    target: str
    profile: Any  # conformance.targets.profile.Profile, imported late (the plugin stays light)
    strict: bool
    faults: tuple[str, ...]
    timeout: float
    slow: bool
    report: str | None
    keyring: Any = None
    """conformance.harness.credentials.Keyring, or None: no digest authentication."""


def settings(config: pytest.Config) -> Settings:
    """The session's settings, resolved once; a bad profile or option is a usage error."""
    if _settings_key not in config.stash:
        from conformance.targets.profile import load_profile

        opt = config.option
        target = opt.dialoginfo_target
        kind = target.split(";")[0].split(":")[0]  # kamailio;transport=tcp -> kamailio
        default_profile = {
            "reference": "reference",
            "kamailio": "kamailio",
            "kamailio-two": "kamailio",
        }.get(kind, "generic")
        try:
            profile = load_profile(opt.dialoginfo_profile or default_profile)
            profile = profile.with_overrides(
                single_dialog=opt.dialoginfo_single_dialog, rfc=opt.dialoginfo_rfc
            )
        except ConformanceError as exc:
            raise pytest.UsageError(exc.message) from None
        faults = tuple(opt.dialoginfo_fault)
        if faults and kind != "reference":
            raise pytest.UsageError(f"{FAULT_OPTION} works only with {TARGET_OPTION} reference")
        from conformance.harness.credentials import resolve_keyring

        try:
            keyring = resolve_keyring(
                user=opt.dialoginfo_auth_user,
                password_file=opt.dialoginfo_auth_password_file,
                credentials_file=opt.dialoginfo_credentials,
            )
        except ConformanceError as exc:
            raise pytest.UsageError(exc.message.replace("--auth-", PREFIX + "auth-")) from None
        config.stash[_settings_key] = Settings(
            target=target,
            profile=profile,
            strict=opt.dialoginfo_strict,
            faults=faults,
            timeout=opt.dialoginfo_sip_timeout,
            slow=opt.dialoginfo_slow,
            report=opt.dialoginfo_report,
            keyring=keyring,
        )
    return config.stash[_settings_key]


def worker(config: pytest.Config) -> str:
    """The xdist worker id (``gw0``...), or ``gw`` without xdist."""
    return str(getattr(config, "workerinput", {}).get("workerid", "gw"))
