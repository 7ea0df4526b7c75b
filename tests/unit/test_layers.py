"""Layers point one way: the oracle and sip/ never reach for sockets, processes, asyncio or pytest.

Checked on the source (imports), so a violation fails here before it hides in a code path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "conformance"
ORACLE = [
    "dialoginfo.py",
    "schema.py",
    "aggregator.py",
    "view.py",
    "requirements.py",
    "_catalogue.py",
    "findings.py",
    "checks.py",
    "errors.py",
    "sip/message.py",
    "sip/trace.py",
]
FORBIDDEN = {
    "socket",
    "asyncio",
    "subprocess",
    "pytest",
    "selectors",
    "conformance.sipp",
    "conformance.peers",
    "conformance.server",
    "conformance.plugin",
    "conformance.targets",
    "conformance.case",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ORACLE)
def test_oracle_module_imports_no_io(module):
    path = PACKAGE / module
    if not path.exists():
        pytest.fail(f"{module} is part of the oracle layer and must exist")
    bad = {
        m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{module} imports {sorted(bad)}; the oracle must stay free of I/O"


def test_the_check_catches_a_violation(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("import socket\nfrom conformance.sipp import Sipp\n")
    assert {"socket", "conformance.sipp"} <= imported_modules(sample)
