"""``dialoginfo-conformance serve``: run the embedded reference presence server.

For people who develop phones or publishers against it, and for the suite, which starts it as
its own process (``targets/reference.py``). It serves one transport (``--transport
udp|tcp|tls``; TLS with the certificate and key given, and no plain listener). Once the socket
is bound it prints exactly one line, ``listening on HOST:PORT``, on stdout and flushes it, so a
parent can wait for that line. Each finished transaction is logged as one line on stderr.

It listens on loopback only unless ``--allow-remote`` is given: its fault switches make it lie
on purpose, and it authenticates nobody unless ``--auth-credentials FILE`` is given (digest,
``server/auth.py``: PUBLISH and SUBSCRIBE of the file's accounts only), so exposing it on a
network by a typo would be a poor default. SIGTERM and SIGINT stop it cleanly with exit
status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys

from conformance.commands.addresses import parse_listen
from conformance.errors import UsageError
from conformance.oracle.aggregator import EMPTY_FORMS, FLAVOURS
from conformance.server.core import ServerConfig
from conformance.server.faults import FAULTS, check_names, hooks_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:5060",
        metavar="HOST:PORT",
        help="address to bind (default 127.0.0.1:5060; port 0 picks a free port)",
    )
    parser.add_argument(
        "--transport",
        choices=("udp", "tcp", "tls"),
        default="udp",
        help="what to serve (default udp); tls needs --tls-cert and --tls-key and opens no "
        "plain listener",
    )
    parser.add_argument("--tls-cert", metavar="FILE", help="TLS: the certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="TLS: the certificate's key (PEM)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --listen address that is not loopback",
    )
    parser.add_argument(
        "--single-dialog", action="store_true", help="force_single_dialog=1 aggregation"
    )
    parser.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default="strict",
        help="aggregation rules: RFC-strict (default) or a module's",
    )
    parser.add_argument(
        "--tie-break",
        choices=("first", "last"),
        default="first",
        help="strict single-dialog mode: who wins a priority tie (default first)",
    )
    parser.add_argument(
        "--notify-on-refresh",
        action="store_true",
        default=None,
        help="a body-less refresh PUBLISH notifies (default: only with --flavour kamailio)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="break one rule on purpose (repeatable; see --list-faults)",
    )
    parser.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    parser.add_argument(
        "--partial-on-publish",
        action="store_true",
        help="NOTIFY caused by a PUBLISH carries only that body, state=partial (OpenSIPS)",
    )
    parser.add_argument(
        "--first-version",
        type=int,
        default=0,
        metavar="N",
        help="version of a subscription's first body (default 0; Kamailio uses 1)",
    )
    parser.add_argument(
        "--empty-form",
        choices=EMPTY_FORMS,
        default="empty-document",
        help="NOTIFY body when nothing is published",
    )
    parser.add_argument(
        "--max-expires",
        type=int,
        default=3600,
        metavar="S",
        help="cap for PUBLISH and SUBSCRIBE Expires (default 3600)",
    )
    parser.add_argument(
        "--min-expires",
        type=int,
        default=1,
        metavar="S",
        help="smaller non-zero Expires get 423 with Min-Expires (default 1: accept all)",
    )
    parser.add_argument(
        "--auth-credentials",
        metavar="FILE",
        help="digest-authenticate PUBLISH and SUBSCRIBE against the accounts of this "
        "credentials TOML (user/password and [[users]]; keep it mode 0600)",
    )
    parser.add_argument(
        "--auth-realm",
        metavar="REALM",
        help="the digest realm (default: the file's realm, else the listen host)",
    )
    parser.add_argument(
        "--nonce-ttl",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds a nonce is accepted; older ones are challenged with stale=true (30)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log transactions")


def config_from(args: argparse.Namespace) -> ServerConfig:
    check_names(args.fault)
    if args.min_expires < 1 or args.max_expires < args.min_expires:
        raise UsageError(
            f"--min-expires {args.min_expires} / --max-expires {args.max_expires}: "
            "need 1 <= min <= max"
        )
    auth: dict[str, object] = {}
    if args.auth_credentials:
        from conformance.harness.credentials import load_keyring

        ring = load_keyring(args.auth_credentials)
        if not 0.5 <= args.nonce_ttl <= 86400:
            raise UsageError(f"--nonce-ttl {args.nonce_ttl:g}: use 0.5 to 86400 seconds")
        host = args.listen.rsplit(":", 1)[0].strip("[]")
        auth = {
            "auth_realm": args.auth_realm or ring.realm or host,
            "auth_users": tuple(ring.accounts.items()),
            "nonce_ttl": args.nonce_ttl,
        }
    elif args.auth_realm:
        raise UsageError("--auth-realm needs --auth-credentials FILE")
    return ServerConfig(
        transport=args.transport,
        **auth,  # type: ignore[arg-type]
        single_dialog=args.single_dialog,
        flavour=args.flavour,
        tie_break=args.tie_break,
        notify_on_refresh=args.notify_on_refresh,
        partial_on_publish=args.partial_on_publish,
        first_version=args.first_version,
        empty_form=args.empty_form,
        publish_expires_max=args.max_expires,
        publish_expires_min=args.min_expires,
        subscribe_expires_max=args.max_expires,
        subscribe_expires_min=args.min_expires,
    )


def run(args: argparse.Namespace) -> int:
    if args.list_faults:
        for fault in FAULTS.values():
            print(f"{fault.name:32} {','.join(fault.requirements):8} {fault.description}")
        return 0
    host, port = parse_listen(args.listen, allow_remote=args.allow_remote)
    config = config_from(args)
    faults = check_names(args.fault)
    tls = _tls_files(args)
    return asyncio.run(_serve(host, port, config, faults, quiet=args.quiet, tls=tls))


def _tls_files(args: argparse.Namespace) -> tuple[str, str] | None:
    """(certificate, key) for ``--transport tls``, checked readable; None otherwise."""
    given = (args.tls_cert, args.tls_key)
    if args.transport != "tls":
        if any(given):
            raise UsageError("--tls-cert and --tls-key need --transport tls")
        return None
    if not all(given):
        raise UsageError("--transport tls needs --tls-cert FILE and --tls-key FILE")
    from conformance.server.streams import server_context

    try:
        server_context(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"--tls-cert {args.tls_cert} / --tls-key {args.tls_key}: cannot load them: {exc}"
        ) from None
    return args.tls_cert, args.tls_key


async def _serve(
    host: str,
    port: int,
    config: ServerConfig,
    faults: frozenset[str],
    *,
    quiet: bool,
    tls: tuple[str, str] | None = None,
) -> int:
    from conformance.server.protocol import serve

    def log(record: object) -> None:
        print(record, file=sys.stderr, flush=True)

    try:
        server = await serve(
            host,
            port,
            config=config,
            on_log=None if quiet else log,
            hooks=hooks_for(faults),
            tls=tls,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound_host, bound_port = server.address
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    extras = [f"transport={config.transport}"]
    if faults:
        extras.append("faults=" + ",".join(sorted(faults)))
    if config.single_dialog:
        extras.append("single-dialog")
    extras.append(f"flavour={config.flavour}")
    if config.auth_realm:
        extras.append(f"auth-realm={config.auth_realm} accounts={len(config.auth_users)}")
    print(f"listening on {shown}:{bound_port}", flush=True)
    print(f"reference server: {' '.join(extras)}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
