"""A Kamailio the benchmarks share: started once, stopped at exit (by its own process group)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.commands.run import suite_argv
from conformance.harness.ports import reserve_block
from conformance.targets.kamailio import KamailioTarget


@contextmanager
def kamailio(mode: str = "aggregate"):
    with reserve_block(30) as block:
        target = KamailioTarget(mode, block=block)
        target.start()
        try:
            yield target
        finally:
            target.stop()


def run_suite(
    target: KamailioTarget, workers: str, report: Path, *extra: str
) -> tuple[float, dict]:
    """The default suite against ``target`` as an external server; wall seconds and results."""
    cmd = suite_argv(
        "-q",
        "--dialoginfo-target",
        f"sip:{target.address}",
        "--dialoginfo-profile",
        "kamailio",
        f"--dialoginfo-report={report}",
        "-n",
        workers,
        *extra,
    )
    if target.profile.single_dialog:
        cmd.append("--dialoginfo-single-dialog")
    started = time.perf_counter()
    subprocess.run(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=900,
    )
    wall = time.perf_counter() - started
    (results,) = sorted(report.glob("*/results.json"))[-1:]
    return wall, json.loads(results.read_text())
