"""``dialoginfo-conformance phone``: probe a phone with dialog-info bodies and tell what it takes.

The kit listens as a presence server; point the phone's BLF (dialog) subscription at it. Only
the ``--phone`` host may subscribe (others get 403), and the kit sends requests to that host
only. The run is bounded by ``--plan-timeout``; each probe by ``--probe-timeout``. At the end
it writes ``phone-report.json`` and ``phone-report.html`` and prints the conclusions.
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
from conformance.phone import probes, report
from conformance.phone.runner import run_session
from conformance.phone.session import SessionConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default="127.0.0.1:5062",
        metavar="HOST:PORT",
        help="address the kit listens on for the phone's SUBSCRIBE (default 127.0.0.1:5062)",
    )
    parser.add_argument(
        "--phone",
        required=True,
        metavar="IP",
        help="IP address of the phone under test: the only host accepted and sent to",
    )
    parser.add_argument(
        "--plan", default="default", help=f"probe plan: {', '.join(sorted(probes.PLANS))}"
    )
    parser.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--report-dir", default="reports/phone", metavar="DIR")
    parser.add_argument(
        "--probe-timeout", type=float, default=8.0, metavar="S", help="per request (default 8)"
    )
    parser.add_argument(
        "--plan-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="whole run, including waiting for the first SUBSCRIBE (default 600)",
    )
    parser.add_argument(
        "--resubscribe-timeout",
        type=float,
        default=90.0,
        metavar="S",
        help="wait for the phone to come back after a fatal probe (default 90)",
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


def run(args: argparse.Namespace) -> int:
    # A phone is a device on the LAN: the kit may listen on a non-loopback address here.
    host, port = parse_listen(args.listen, allow_remote=True)
    config = SessionConfig(
        phone_host=parse_phone(args.phone),
        local_host=host,
        local_port=port,
        transport=args.transport,
        probe_timeout=args.probe_timeout,
        plan_timeout=args.plan_timeout,
        resubscribe_timeout=args.resubscribe_timeout,
        liveness=args.liveness,
    )
    plan = probes.plan(args.plan)
    started = datetime.now(UTC)

    def ready(addr: tuple[str, int]) -> None:
        print(
            f"listening on {args.transport.upper()} {addr[0]}:{addr[1]}; "
            f"waiting up to {config.plan_timeout:g} s for a SUBSCRIBE (Event: dialog) from "
            f"{config.phone_host}",
            flush=True,
        )

    session = asyncio.run(run_session(plan, config, ready=ready))
    doc = report.build(session, plan_name=args.plan, started=started)
    json_path, html_path = report.write(doc, Path(args.report_dir))
    print(report.summary(doc))
    print(f"report: {html_path}\n        {json_path}")
    return 0 if session.state.subscribes else 1


if __name__ == "__main__":  # pragma: no cover
    from conformance.cli import main

    sys.exit(main(["phone", *sys.argv[1:]]))
