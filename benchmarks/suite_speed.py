"""How long the default suite takes against the launched Kamailio, and what floor bounds it.

Runs ``dialoginfo-conformance run --target kamailio -n auto -- -q`` (both modes at once, one
Kamailio per worker) and prints its wall time, then per mode the floor no scheduling can beat:
the longest case, and the waits the cases impose (``waited``: expiry timers, silence windows,
the holds of a call; ``timed_out``: bounds a deviating server let run out) divided by the
workers. ``--harness`` also prints what the harness costs on top of bare SIPp, as before (one
worker against a shared Kamailio).

    .venv/bin/python benchmarks/suite_speed.py [--runs 3] [--workers auto] [--source DIR]
    .venv/bin/python benchmarks/suite_speed.py --store-durations   # refresh durations.json
    .venv/bin/python benchmarks/suite_speed.py --harness [--mode aggregate|single]

``--source DIR`` runs the kit from another checkout (e.g. ``git archive main | tar -x -C DIR``)
to compare before and after on the same machine, minutes apart.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.pytest_plugin.scheduling import DURATIONS_FILE


def run_both_modes(report: Path, workers: str, source: Path | None) -> tuple[float, int, str]:
    """``run --target kamailio`` as a user types it; wall seconds, exit code, output tail."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    cmd = [sys.executable, "-m", "conformance.cli", "run", "--target", "kamailio"]
    cmd += ["-n", workers, "--report-dir", str(report), "--", "-q"]
    started = time.perf_counter()
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=900,
        env=env,
        cwd=source or None,
    )
    return time.perf_counter() - started, proc.returncode, (proc.stdout + proc.stderr)[-2000:]


def mode_of(results: dict[str, Any]) -> str:
    return str(results.get("mode") or results.get("run", {}).get("mode") or "?")


def floor(results: dict[str, Any]) -> dict[str, Any]:
    """The longest case and the imposed waits of one mode's run, per worker."""
    cases = [c for c in results["cases"] if c.get("outcome") != "skipped"]
    workers = max(1, int(results.get("options", {}).get("workers") or 0))
    longest = max(cases, key=lambda c: c.get("duration") or 0.0)
    waited = sum(c.get("waited") or 0.0 for c in cases)
    timed_out = sum(c.get("timed_out") or 0.0 for c in cases)
    busy = sum(c.get("duration") or 0.0 for c in cases)
    return {
        "cases": len(cases),
        "collected": len(results["cases"]),
        "workers": workers,
        "longest": longest.get("duration") or 0.0,
        "longest_case": longest["nodeid"].split("::", 1)[-1],
        "waited": waited,
        "timed_out": timed_out,
        "case_time": busy,
        "waits_per_worker": (waited + timed_out) / workers,
        "time_per_worker": busy / workers,
    }


def load_runs(report: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(report.glob("*/results.json"))]


def store_durations(runs: list[dict[str, Any]]) -> None:
    """``file.py::case[param]`` -> the longer of the modes' durations, for the scheduler."""
    durations: dict[str, float] = {}
    for results in runs:
        for c in results["cases"]:
            if c.get("outcome") == "skipped":
                continue
            key = c["nodeid"].rsplit("/", 1)[-1]
            durations[key] = max(durations.get(key, 0.0), round(c.get("duration") or 0.0, 1))
    DURATIONS_FILE.write_text(json.dumps(dict(sorted(durations.items())), indent=1) + "\n")
    print(f"wrote {len(durations)} case durations to {DURATIONS_FILE}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="timed runs (default 1)")
    parser.add_argument("--workers", default="auto", help="-n of the run (default auto)")
    parser.add_argument("--source", type=Path, help="run the kit from this checkout")
    parser.add_argument("--store-durations", action="store_true", help="write durations.json")
    parser.add_argument("--harness", action="store_true", help="harness overhead vs bare SIPp")
    parser.add_argument("--mode", choices=("aggregate", "single"), default="aggregate")
    args = parser.parse_args()
    if args.harness:
        from _harness_overhead import harness_overhead

        return harness_overhead(args.mode)
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            report = Path(tmp) / f"run{i}"
            wall, code, tail = run_both_modes(report, args.workers, args.source)
            walls.append(wall)
            runs = load_runs(report)
            print(f"run {i + 1}/{args.runs}: {wall:5.1f} s wall, exit {code}", flush=True)
            if len(runs) != 2:
                print(f"expected two results.json, found {len(runs)}:\n{tail}")
                return 1
            for results in runs:
                f = floor(results)
                print(
                    f"  {mode_of(results):9} {f['cases']} cases run ({f['collected']} collected)"
                    f", {f['workers']} workers; longest case {f['longest']:.1f} s "
                    f"({f['longest_case']}); imposed waits {f['waited']:.1f} s + bounds run "
                    f"out {f['timed_out']:.1f} s = {f['waits_per_worker']:.1f} s per worker; "
                    f"case time {f['case_time']:.1f} s = {f['time_per_worker']:.1f} s per worker"
                )
            floors = [floor(r) for r in runs]
            limit = max(max(f["longest"], f["waits_per_worker"]) for f in floors)
            print(
                f"  floor: {limit:.1f} s (max of the longest case and the waits per worker); "
                f"the rest of the wall time is start-up, CPU and scheduling"
            )
            if args.store_durations and i == args.runs - 1:
                store_durations(runs)
    if len(walls) > 1:
        print(
            f"wall time over {len(walls)} runs: median {statistics.median(walls):.1f} s, "
            f"min {min(walls):.1f} s, max {max(walls):.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
