"""The conformance suite end to end, as a user runs it: real SIPp, real servers, real verdicts.

Subsets keep the project's own test run short; CI also runs the whole suite against Kamailio and
the reference server in both modes, and the mutation tests run it once per fault."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conformance.commands.run import suite_argv

pytestmark = pytest.mark.integration

SUBSET = "initial or aggregated or single_dialog_priority or refresh_sends or remove_drops"


def run_suite(tmp_path: Path, *args: str, timeout: float = 300) -> tuple[int, str, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "reports"
    cmd = suite_argv(
        "-q", f"--dialoginfo-report={report}", "--basetemp", str(tmp_path / "base"), *args
    )
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    runs = sorted(report.glob("*/results.json"))
    results = json.loads(runs[-1].read_text()) if runs else {}
    return proc.returncode, proc.stdout + proc.stderr, results


def descendants(root: int) -> set[int]:
    """PIDs below ``root`` in the process tree right now."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            if "State:\tZ" not in Path(f"/proc/{pid}/status").read_text():
                out.add(pid)
        except OSError:
            pass
    return out


def processes_mentioning(marker: str) -> list[str]:
    """Live processes whose command line names ``marker`` (our own temp folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker in cmdline and "State:\tZ" not in status and int(entry.name) != os.getpid():
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


@pytest.mark.parametrize("mode", [[], ["--dialoginfo-single-dialog"]], ids=["aggregate", "single"])
def test_reference_subset_passes_clean(tmp_path, mode):
    code, out, results = run_suite(tmp_path, "-n", "2", "--dialoginfo-strict", "-k", SUBSET, *mode)
    assert code == 0, out[-3000:]
    assert results["cases"], "no case ran"
    assert "requirements covered" in out


def test_a_broken_server_fails_the_suite(tmp_path):
    code, out, results = run_suite(
        tmp_path, "-n", "2", "--dialoginfo-fault", "version-repeats", "-k", SUBSET
    )
    assert code == 1, out[-3000:]
    failed = {
        f["requirement"] for c in results["cases"] for f in c["findings"] if f["verdict"] == "fail"
    }
    assert "A09" in failed


@pytest.mark.kamailio
def test_kamailio_subset_same_verdicts_with_and_without_xdist(tmp_path):
    verdicts = []
    for n, workers in enumerate(("0", "2")):
        code, out, results = run_suite(
            tmp_path / str(n),
            "--dialoginfo-target",
            "kamailio",
            "-n",
            workers,
            "-k",
            SUBSET + " or duplicate_ids",
        )
        assert code == 0, out[-3000:]
        verdicts.append({c["nodeid"]: c["outcome"] for c in results["cases"]})
    assert verdicts[0] == verdicts[1]
    assert "xfailed" in verdicts[0].values()  # the declared Kamailio deviations showed up


def test_ctrl_c_leaves_no_process_behind(tmp_path):
    base = tmp_path / "base"
    cmd = suite_argv(
        "-q",
        "-n",
        "2",
        f"--dialoginfo-report={tmp_path / 'reports'}",
        "--basetemp",
        str(base),
    )
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        seen: list[str] = []
        while time.monotonic() < deadline and not seen:
            # One look decides: a one-shot SIPp seen here may be gone by a second look.
            seen = processes_mentioning(str(base) + "/")
            if not seen:
                time.sleep(0.1)
        assert seen, "the suite started no SIPp or server"
        time.sleep(1.0)
        started = descendants(proc.pid)  # workers, servers, SIPp: everything the run started
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and processes_mentioning(str(base) + "/"):
        time.sleep(0.1)
    assert processes_mentioning(str(base) + "/") == []
    assert alive(started) == set()
