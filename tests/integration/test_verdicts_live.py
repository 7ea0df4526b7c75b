"""Verdicts that hide nothing, against the real reference server with a fault injected: both
runs below exited 0 before (a module row only warned; a skip after a failed observation hid it).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conformance.commands.run import suite_argv

pytestmark = pytest.mark.integration


def run_suite(tmp_path: Path, *args: str) -> tuple[int, str, dict]:
    report = tmp_path / "reports"
    cmd = suite_argv(
        "-q", f"--dialoginfo-report={report}", "--basetemp", str(tmp_path / "b"), *args
    )
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL
    )
    (results,) = report.glob("*/results.json")
    return proc.returncode, proc.stdout + proc.stderr, json.loads(results.read_text())


def test_a_wrong_single_dialog_choice_fails_a_default_run(tmp_path: Path) -> None:
    """The reference server claims its flavour's presence_dialoginfo behaviour: D08/D09 are
    binding, so ``priority-wrong`` fails without ``--strict``."""
    code, out, results = run_suite(
        tmp_path,
        "--dialoginfo-single-dialog",
        "--dialoginfo-fault",
        "priority-wrong",
        "-k",
        "single_dialog_priority",
    )
    assert code == 1, out[-3000:]
    failed = {
        f["requirement"] for c in results["cases"] for f in c["findings"] if f["verdict"] == "fail"
    }
    assert failed & {"D08", "D09", "D10"}, failed


def test_a_skip_after_a_failed_observation_still_fails(tmp_path: Path) -> None:
    code, out, results = run_suite(
        tmp_path,
        "--dialoginfo-fault",
        "expires-lengthened",
        "-k",
        "test_subscription_expiry_sends_terminated",
    )
    assert code == 1, out[-3000:]
    assert "B03 VIOLATED" in out
    (case,) = results["cases"]
    assert case["verdict"] == "fail"


@pytest.mark.parametrize(("profile", "code"), [("generic", 0), ("reference", 1)])
def test_a_tie_names_a_winner_only_for_a_server_that_claims_the_module(
    tmp_path: Path, profile: str, code: int
) -> None:
    """``tie-wrong`` makes the server pick the other tied publication: fine for a server that
    claims nothing (generic), a D09 failure for one that claims its flavour's rules."""
    got, out, _ = run_suite(
        tmp_path,
        "--dialoginfo-single-dialog",
        "--dialoginfo-profile",
        profile,
        "--dialoginfo-fault",
        "tie-wrong",
        "-k",
        "ties_and_stale_states and tie]",
    )
    assert got == code, out[-3000:]
