"""``dialoginfo-conformance aggregate``: print the body a presence_dialoginfo server builds.

Each FILE is one publication body, given in publication order (the first file is the oldest
publication). None of them expires. The document is printed with ``version="0"``: versions are
per watcher, so the number is the caller's to fill in. The default entity is
``sip:presentity@example.invalid`` (a reserved name, RFC 6761, so it never collides with a
real presentity); pass ``--entity`` to rebuild it from a real presentity URI the way the
modules do (``sips:alice@example.com:5061`` gives ``sip:alice@example.com``).

A missing file, or a body the module could not aggregate (not well-formed XML, D13; nothing
with a ``<state>`` in single-dialog mode), ends with a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.errors import UsageError
from conformance.oracle.aggregator import FLAVOURS, Publication, aggregate

DEFAULT_ENTITY = "sip:presentity@example.invalid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="publication bodies, oldest first")
    parser.add_argument(
        "--single-dialog",
        action="store_true",
        help="model force_single_dialog=1 (applies only with two or more publications)",
    )
    parser.add_argument(
        "--flavour",
        choices=FLAVOURS,
        default="opensips",
        help="whose single-dialog tie and stale-state rules to apply (default: opensips)",
    )
    parser.add_argument(
        "--entity",
        default=DEFAULT_ENTITY,
        metavar="URI",
        help=f"presentity URI the entity is rebuilt from (default: {DEFAULT_ENTITY})",
    )


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a publication body") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    publications = [
        Publication(body=_read(path), etag=path, received=float(n), expires=float("inf"), seq=n)
        for n, path in enumerate(args.files)
    ]
    result = aggregate(
        publications,
        presentity=args.entity,
        now=0.0,
        single_dialog=args.single_dialog,
        flavour=args.flavour,
    )
    if result.broken:
        raise UsageError(f"no document: {result.reason}")
    out = result.body(0)
    sys.stdout.buffer.write(out if out.endswith(b"\n") else out + b"\n")
    sys.stdout.flush()
    return 0
