"""Own cases (issue 14, point 4): the example package in ``examples/own_cases`` copied out of the
tree and run with plain pytest against the reference server, its requirement id coming from a
TOML catalogue extension. Against a server with the ``no-aggregation`` fault the same case
must fail on its own id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_cases"
OWN_ID = "X-acme-1"


def _run(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The example package, copied to ``tmp_path``, run from there with the kit's plugin."""
    package = tmp_path / "acme_cases"
    shutil.copytree(EXAMPLE, package)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    cmd = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", "0",
        str(package / "test_acme.py"),
        "--dialoginfo-catalogue", str(package / "acme.toml"),
        "--dialoginfo-report", str(tmp_path / "reports"), *extra,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    found = list((tmp_path / "reports").glob("*/results.json"))
    assert len(found) == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc, json.loads(found[0].read_text())


def _own(results: dict[str, Any]) -> dict[str, Any]:
    (row,) = [r for r in results["requirements"] if r["id"] == OWN_ID]
    return row


def test_an_external_case_package_runs_against_the_reference_server(tmp_path: Path) -> None:
    proc, results = _run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    row = _own(results)
    assert row["verdict"] == "pass" and row["findings"].get("pass", 0) >= 1
    assert row["ref"] == "ACME PBX BLF spec 3.2" and row["level"] == "MUST"
    (case,) = results["cases"]
    assert case["requirements"] == [OWN_ID] and case["verdict"] == "pass"


def test_the_external_case_fails_against_a_server_that_breaks_its_rule(tmp_path: Path) -> None:
    proc, results = _run(tmp_path, "--dialoginfo-fault", "no-aggregation")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert _own(results)["verdict"] == "fail"
    assert results["cases"][0]["verdict"] == "fail"


def test_a_bad_catalogue_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('["X1"]\nref = "x"\nlevel = "OFTEN"\ntitle = "t"\n')
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q"]
    proc = subprocess.run(
        [*cmd, "--dialoginfo-catalogue", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "level 'OFTEN'" in errors[0] and str(bad) in errors[0]
