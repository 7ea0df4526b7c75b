"""The unfaulted reference server passes the whole suite with no failure and no warning, in
both modes, under --dialoginfo-strict: the baseline the fault tests are measured against."""

from __future__ import annotations

import json
import subprocess

import pytest

from conformance.commands.run import suite_argv

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
