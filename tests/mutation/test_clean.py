"""The unfaulted reference server passes the whole suite with no failure and no warning, in
both modes, under --dialoginfo-strict: the baseline the fault tests are measured against.

The same run lists the binding requirement ids the suite emits; each must be broken by some
fault of the reference server, so that every binding check is shown able to fail (issue 12).
Ids a team adds through the catalogue extension are not in the shipped catalogue and are
exempt."""

from __future__ import annotations

import json
import subprocess

import pytest

from conformance.commands.run import suite_argv
from conformance.oracle.requirements import CATALOGUE
from conformance.server.faults import FAULTS

pytestmark = pytest.mark.mutation


@pytest.mark.parametrize("mode", ["aggregate", "single"])
def test_reference_server_is_clean(mode, tmp_path):
    cmd = suite_argv(
        "-q",
        "-n",
        "2",
        "--dialoginfo-strict",
        "--dialoginfo-sip-timeout",
        "2",
        f"--dialoginfo-report={tmp_path}",
    )
    if mode == "single":
        cmd.append("--dialoginfo-single-dialog")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    (results,) = tmp_path.glob("*/results.json")
    data = json.loads(results.read_text())
    verdicts = {f["verdict"] for c in data["cases"] for f in c["findings"]}
    assert verdicts <= {"pass", "info"}, verdicts
    emitted = {f["requirement"] for c in data["cases"] for f in c["findings"]}
    binding = {rid for rid in emitted if rid in CATALOGUE and CATALOGUE[rid].level.binding}
    broken = {rid for fault in FAULTS.values() for rid in fault.requirements}
    assert sorted(binding - broken) == [], (
        f"binding ids the suite emits ({mode}) but no fault breaks"
    )
