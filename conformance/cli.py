"""``dialoginfo-conformance``: one entry point, one module per subcommand.

Each subcommand lives in ``conformance/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; it is imported only when chosen, so ``validate`` never pays for the SIPp
harness. Errors the user can fix end as one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from conformance import __version__
from conformance.errors import ConformanceError

COMMANDS: dict[str, str] = {
    "run": "run the conformance suite against a presence server (default: the embedded one)",
    "serve": "run the embedded reference presence server",
    "validate": "check dialog-info documents against RFC 4235",
    "aggregate": "print the document a presence_dialoginfo server must send for publications",
    "report": "render reports and the compatibility matrix from results.json files",
    "phone": "probe a phone: which dialog-info bodies does it survive?",
    "explore": "generated operation sequences against a server, failures shrunk to reproducers",
    "load": "measure NOTIFY fan-out latency and loss under many watchers (SIPp load)",
}

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialoginfo-conformance", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
    return parser


def _command_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"conformance.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"conformance.commands.{name}":
            return None  # not built yet in this checkout
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    try:
        module = _command_module(args.command)
        assert module is not None  # the parser only offers the commands whose module loaded
        return int(module.run(args))
    except ConformanceError as exc:
        print(f"dialoginfo-conformance {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"dialoginfo-conformance {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
