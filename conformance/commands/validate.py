"""``dialoginfo-conformance validate FILE...``: check dialog-info documents against RFC 4235.

One verdict per file: VALID when no MUST/MUST* requirement is violated (SHOULD/DEF violations
are listed as warnings), INVALID otherwise. A body that is not well-formed is an A02 failure,
so INVALID, not a usage error. Exit status: 0 all valid, 1 any invalid, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from conformance.errors import UsageError
from conformance.oracle import schema
from conformance.oracle.findings import Finding, Verdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="dialog-info document; - is stdin")
    parser.add_argument("--json", action="store_true", help="print a machine-readable list")
    parser.add_argument(
        "--subscribe-uri", metavar="URI", help="SUBSCRIBE Request-URI, to check entity (A12)"
    )


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None


def _result(name: str, findings: list[Finding]) -> dict[str, Any]:
    verdicts = [(f, f.verdict()) for f in findings]
    failures = [f for f, v in verdicts if v is Verdict.FAIL]
    warnings = [f for f, v in verdicts if v is Verdict.WARN]
    return {
        "file": name,
        "valid": not failures,
        "failures": [_as_dict(f) for f in failures],
        "warnings": [_as_dict(f) for f in warnings],
        "checked": sorted({f.requirement for f in findings}),
    }


def _as_dict(f: Finding) -> dict[str, Any]:
    return {
        "requirement": f.requirement,
        "level": str(f.effective_level),
        "message": f.message,
        "path": f.path,
        "sourceline": f.sourceline,
    }


def run(args: argparse.Namespace) -> int:
    bodies = [(name, _read(name)) for name in args.files]  # all I/O errors before any output
    results = [
        _result(name, schema.check(body, subscribe_uri=args.subscribe_uri)) for name, body in bodies
    ]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            extra = f" ({len(r['warnings'])} warning(s))" if r["warnings"] else ""
            print(f"{r['file']}: {'VALID' if r['valid'] else 'INVALID'}{extra}")
            for kind, items in (("FAIL", r["failures"]), ("WARN", r["warnings"])):
                for f in items:
                    where = f" at {f['path']}" if f["path"] else ""
                    line = f" line {f['sourceline']}" if f["sourceline"] else ""
                    print(
                        f"  {kind} {f['requirement']} [{f['level']}]{where}{line}: {f['message']}"
                    )
    return 0 if all(r["valid"] for r in results) else 1
