"""``dialoginfo-conformance phone``: probe a phone with dialog-info bodies and tell what it takes.

The kit listens as a presence server; point the phone's BLF (dialog) subscription at it. Only
the ``--phone`` host may subscribe (others get 403, printed at once), and the kit sends requests
to that host only. Here the parts meet: the sans-IO probe session (``phone.session``), its
asyncio edge (``phone.runner``) and the report (``report.phone``); this module adds the options,
the terminal output and the exit status. Every wait is an option and is announced when it
starts; Ctrl-C or SIGTERM end the run early and still write the report, marked interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from datetime import UTC, datetime
from pathlib import Path

from conformance.commands.addresses import parse_listen
from conformance.errors import UsageError
from conformance.phone import probes
from conformance.phone.runner import run_session, source_address_towards
from conformance.phone.session import SessionConfig
from conformance.report import phone as report

EXIT_OK = 0
EXIT_RESTRICTIONS = 1
EXIT_USAGE = 2
EXIT_NO_SUBSCRIBE = 3
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}

EXIT_CODES = f"""\
exit status:
  {EXIT_OK}    no restriction found (every probe that ran was accepted)
  {EXIT_RESTRICTIONS}    restrictions found: server settings needed (see the conclusions)
  {EXIT_USAGE}    usage error (bad option, address in use)
  {EXIT_NO_SUBSCRIBE}    no SUBSCRIBE from the phone arrived: nothing was probed
  130  interrupted by Ctrl-C (SIGINT); the report holds what was found so far
  143  interrupted by SIGTERM; the report holds what was found so far
"""

UNSPECIFIED = ("0.0.0.0", "::")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXIT_CODES
    parser.add_argument(
        "--listen",
        default="127.0.0.1:5062",
        metavar="HOST:PORT",
        help="address the kit listens on for the phone's SUBSCRIBE (default 127.0.0.1:5062); "
        "with 0.0.0.0 the kit gives the phone the address the kernel sends from towards it",
    )
    parser.add_argument(
        "--phone",
        required=True,
        metavar="IP",
        help="IP address of the phone under test: the only host accepted and sent to",
    )
    parser.add_argument(
        "--advertise",
        metavar="ADDR",
        help="address to give the phone in Via/Contact (default: the --listen address, or with "
        "0.0.0.0 the source address towards --phone)",
    )
    parser.add_argument(
        "--plan", default="default", help=f"probe plan: {', '.join(sorted(probes.PLANS))}"
    )
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument(
        "--report-dir",
        default="reports/phone",
        metavar="DIR",
        help="where phone-<address>-<time>.html and .json go (default reports/phone)",
    )
    parser.add_argument(
        "--max-dialogs",
        type=int,
        default=20,
        metavar="N",
        help="search the dialog count limit up to N dialogs (default 20)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=16 * 1024,
        metavar="BYTES",
        help="search the body size limit up to BYTES (default 16384; 0: no size search)",
    )
    parser.add_argument(
        "--retry-crashes",
        action="store_true",
        help="send a probe that crashed the phone once more when it is back, to confirm",
    )
    parser.add_argument(
        "--probe-timeout",
        type=float,
        default=8.0,
        metavar="S",
        help="wait for the answer to one request (probe, liveness check; default 8)",
    )
    parser.add_argument(
        "--subscribe-wait",
        type=float,
        default=300.0,
        metavar="S",
        help="wait for the phone's first SUBSCRIBE (default 300)",
    )
    parser.add_argument(
        "--resubscribe-wait",
        type=float,
        default=90.0,
        metavar="S",
        help="wait for the phone to SUBSCRIBE again after its subscription ended (default 90)",
    )
    # The v1 name of --resubscribe-wait, kept for scripts that use it.
    parser.add_argument(
        "--resubscribe-timeout",
        dest="resubscribe_wait",
        type=float,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--plan-timeout",
        type=float,
        default=1800.0,
        metavar="S",
        help="the whole run, every wait included (default 1800)",
    )
    parser.add_argument(
        "--liveness",
        choices=("auto", "options", "notify"),
        default="auto",
        help="how to check the phone survived a probe (default: OPTIONS if it answers one)",
    )


def parse_phone(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise UsageError(f"--phone {text!r}: give the phone's IP address") from None


def advertised_address(listen_host: str, phone: str, advertise: str | None) -> str:
    """What the phone is told to send to: ``--advertise``, else the listen address, else (on
    0.0.0.0 / ::) the kernel's source address towards the phone. Never an unspecified one."""
    if advertise:
        try:
            address = ipaddress.ip_address(advertise.strip())
        except ValueError:
            raise UsageError(f"--advertise {advertise!r}: give an IP address") from None
        if address.is_unspecified:
            raise UsageError(f"--advertise {advertise}: the phone cannot send to that address")
        return str(address)
    if listen_host in UNSPECIFIED:
        return source_address_towards(phone)
    return listen_host


def run(args: argparse.Namespace) -> int:
    # A phone is a device on the LAN: the kit may listen on a non-loopback address here.
    host, port = parse_listen(args.listen, allow_remote=True)
    phone = parse_phone(args.phone)
    plan = probes.plan(args.plan)
    config = SessionConfig(
        phone_host=phone,
        local_host=host,
        local_port=port,
        advertise_host=advertised_address(host, phone, args.advertise),
        transport=args.transport,
        probe_timeout=args.probe_timeout,
        plan_timeout=args.plan_timeout,
        subscribe_wait=args.subscribe_wait,
        resubscribe_wait=args.resubscribe_wait,
        liveness=args.liveness,
        max_dialogs=args.max_dialogs if args.plan == "default" else min(args.max_dialogs, 2),
        max_body=args.max_body if args.plan == "default" else 0,
        retry_crashes=args.retry_crashes,
    )
    started = datetime.now(UTC)

    def ready(addr: tuple[str, int]) -> None:
        print(
            f"listening on {args.transport.upper()} {addr[0]}:{addr[1]} "
            f"(the phone is told {config.advertised}:{addr[1]}); point the phone's BLF "
            "subscription here and restart it or re-save its BLF settings",
            flush=True,
        )

    def progress(line: str) -> None:
        print(line, flush=True)

    session = asyncio.run(
        run_session(plan, config, ready=ready, progress=progress, handle_signals=True)
    )
    doc = report.build(session, plan_name=args.plan, started=started)
    json_path, html_path = report.write(doc, Path(args.report_dir))
    print(report.summary(doc))
    print(f"report: {html_path}\n        {json_path}", flush=True)
    return exit_status(session.state.interrupted, session.state.subscribes, doc)


def exit_status(interrupted: str | None, subscribes: int, doc: dict[str, object]) -> int:
    """The documented exit status (see ``EXIT_CODES``)."""
    if interrupted:
        return EXIT_SIGNAL.get(interrupted, 130)
    if not subscribes:
        return EXIT_NO_SUBSCRIBE
    return EXIT_RESTRICTIONS if doc.get("restrictions_found") else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    from conformance.cli import main

    sys.exit(main(["phone", *sys.argv[1:]]))
