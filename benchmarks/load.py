"""NOTIFY fan-out at office scale: Kamailio and the reference server side by side (issue 17).

For each target and each size (M presentities × K watchers), ``load --step`` raises the
PUBLISH rate until the knee (p99 over 1 s or loss over 0.1 %) and this prints the knee, the p99
of the last rate below it, and the CPU seconds the kit (all its SIPp processes) spent next to
the server's: a kit that burns more than the server would be measuring itself.

    .venv/bin/python benchmarks/load.py                       both targets, both sizes
    .venv/bin/python benchmarks/load.py --targets kamailio --sizes 100x20 --rate-max 400

Each run is a separate ``dialoginfo-conformance load`` process with its own report folder
(kept under --report-dir, default a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_one(target: str, m: int, k: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One stepping run; its ``load`` section (plus the wall time) or an ``error``."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "conformance.cli", "load",
        "--target", target,
        "--presentities", str(m), "--watchers-per-presentity", str(k),
        "--step",
        "--rate-start", str(args.rate_start), "--rate-step", str(args.rate_step),
        "--step-seconds", str(args.step_seconds), "--rate-max", str(args.rate_max),
        "--max-seconds", str(args.max_seconds),
        "--report-dir", str(out),
    ]  # fmt: skip
    print(f"== {target} M={m} K={k}: {' '.join(cmd[3:])}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, check=False)
    wall = time.monotonic() - start
    found = sorted(out.glob("*/results.json"))
    if not found:
        return {"error": f"exit {proc.returncode}, no results", "wall": wall}
    section = json.loads(found[-1].read_text())["load"]
    section["wall"] = wall
    return section


def _last_good(section: dict[str, Any]) -> dict[str, Any] | None:
    steps = section.get("steps") or []
    good = [s for s in steps if not s.get("knee")]
    return good[-1] if good else None


def row(target: str, m: int, k: int, section: dict[str, Any]) -> str:
    if "error" in section:
        return f"| {target} | {m}×{k} | error: {section['error']} | | | | | |"
    knee = section.get("knee")
    good = _last_good(section)
    knee_text = f"{knee['rate']:g}/s ({knee['reason']})" if knee else "none up to the last step"
    good_text = (
        f"{good['rate']:g}/s (achieved {good['achieved_rate']:g}), p99 "
        f"{good['latency_ms']['p99']} ms"
        if good
        else "none"
    )
    cpu = section["cpu_seconds"]
    return (
        f"| {target} | {m}×{k} ({m * k}) | {knee_text} | {good_text} | "
        f"{cpu['kit']:.1f} | {cpu['server']:.1f} | "
        f"{'yes' if section['valid'] else 'NO: ' + '; '.join(section['invalid_reasons'])} | "
        f"{section['wall']:.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="kamailio,reference")
    parser.add_argument("--sizes", default="100x20,500x10", help="MxK,MxK (100x20,500x10)")
    parser.add_argument("--rate-start", type=float, default=50)
    parser.add_argument("--rate-step", type=float, default=50)
    parser.add_argument("--step-seconds", type=float, default=6)
    parser.add_argument("--rate-max", type=float, default=1000)
    parser.add_argument("--max-seconds", type=float, default=90)
    parser.add_argument("--report-dir", type=Path, default=None)
    args = parser.parse_args()
    sizes = []
    for item in args.sizes.split(","):
        m, _, k = item.partition("x")
        if not (m.isdigit() and k.isdigit()):
            parser.error(f"--sizes: {item!r} is not MxK")
        sizes.append((int(m), int(k)))
    base = args.report_dir or Path(tempfile.mkdtemp(prefix="load-bench-"))
    rows = []
    for m, k in sizes:
        for target in args.targets.split(","):
            section = run_one(target, m, k, args, base / f"{target}-{m}x{k}")
            rows.append(row(target, m, k, section))
    print()
    print(
        f"steps: from {args.rate_start:g}/s by {args.rate_step:g}/s every "
        f"{args.step_seconds:g} s, up to {args.rate_max:g}/s or {args.max_seconds:g} s"
    )
    print(
        "| target | M×K (subscriptions) | knee | last rate below the knee | kit CPU s | "
        "server CPU s | valid | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for line in rows:
        print(line)
    print(f"reports: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
