"""The explorer's figures (issue 13): steps/s against Kamailio and the reference server, and for
every fault of the reference server whether it is found within a step budget, how many steps
the first failure took, and how small the shrunk reproducer is.

    python benchmarks/explore.py [--steps 300] [--seed 1] [--lanes 8] [--faults all|none|a,b]
                                 [--fault-steps 500] [--shrink-budget 60]

Throughput runs the explorer as the command does (lanes concurrently, each with presentities
of its own, so one lane waiting out an expiry does not stall the others). A fault counts as
found when a failure names one of the fault's own requirement ids (a crash fault: any id);
"steps to first failure" is the lane step the earliest failure names (its contradicted
stimulus, or the step whose response broke the rule; the lane's length when it names none):
steps of one sequence, as a single-lane run would count them.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.explore.runner import Explorer, summary
from conformance.harness.ports import reserve_block
from conformance.targets import make_target

SINGLE_IDS = ("D08", "D09", "D10")
"""Rules of force_single_dialog mode: their faults are explored in that mode."""


def throughput(name: str, steps: int, seed: int, lanes: int, block, tmp: Path) -> dict:
    target = make_target(name, block=block, workdir=tmp)
    target.start()
    try:
        explorer = Explorer(target, target.profile, block, tmp / name)
        started = time.monotonic()
        results = explorer.run(seed, lanes=lanes, steps=steps)
        return summary(results, time.monotonic() - started)
    finally:
        target.stop()


def fault_run(
    fault: str, ids: tuple[str, ...], steps: int, seed: int, lanes: int, shrink: float, block, tmp
) -> dict:
    single = any(rid in SINGLE_IDS for rid in ids)
    target = make_target(
        "reference",
        block=block,
        workdir=tmp,
        faults=(fault,),
        overrides={"single_dialog": True if single else None},
    )
    target.start()
    try:
        explorer = Explorer(target, target.profile, block, tmp / fault, restart=target.start)
        results = explorer.run(seed, lanes=lanes, steps=steps)
        crash = fault.startswith("crash")
        hits = [
            (r, f) for r in results for f, _ in r.judged.failures if crash or f.requirement in ids
        ]
        if not hits:
            other = sorted({f.requirement for r in results for f, _ in r.judged.failures})
            return {"found": False, "other": other}
        lane, finding = min(hits, key=lambda h: _step_of(h[1], len(h[0].ops)))
        first = _step_of(finding, len(lane.ops))
        small, confirmed, _ = explorer.shrink(lane, finding.requirement, budget=shrink)
        return {
            "found": True,
            "requirement": finding.requirement,
            "steps_to_first": first,
            "shrunk": len(small),
            "confirmed": confirmed,
        }
    finally:
        target.stop()


def _step_of(finding, default: int) -> int:
    """The lane step a failure names (its contradicted stimulus, or the step whose response
    broke the rule); ``default`` (the lane's length) when it names none."""
    stimulus = str(finding.evidence.get("stimulus") or "")
    match = re.search(r"at step (\d+)", stimulus)
    if match:
        return int(match.group(1))
    step = finding.evidence.get("step")
    return int(step) if isinstance(step, int) else default


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lanes", type=int, default=8)
    parser.add_argument("--target", default="kamailio,kamailio:single,reference")
    parser.add_argument("--faults", default="none", help="all, none, or a comma list")
    parser.add_argument("--fault-steps", type=int, default=500)
    parser.add_argument("--shrink-budget", type=float, default=60.0)
    args = parser.parse_args()
    print(f"seed {args.seed}, {args.lanes} lanes")
    with reserve_block(33) as block, tempfile.TemporaryDirectory(prefix="explore-") as tmp:
        for name in args.target.split(","):
            s = throughput(name, args.steps, args.seed, args.lanes, block, Path(tmp))
            print(
                f"{name:16s} {s['steps']:4d} steps in {s['wall_seconds']:6.1f} s = "
                f"{s['steps_per_second']:5.1f} steps/s   NOTIFYs {s['notifies']}   "
                f"failures {s['failures']} {[d['requirement'] for d in s['distinct_failures']]}"
                f"   known {s['known']}"
            )
        if args.faults == "none":
            return
        from conformance.server.faults import FAULTS

        names = list(FAULTS) if args.faults == "all" else args.faults.split(",")
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            raise SystemExit(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
        found, firsts, sizes, missed = 0, [], [], []
        for fault in names:
            ids = tuple(getattr(FAULTS[fault], "requirements", ()))
            r = fault_run(
                fault, ids, args.fault_steps, args.seed, args.lanes, args.shrink_budget, block,
                Path(tmp),
            )  # fmt: skip
            if r["found"]:
                found += 1
                firsts.append(r["steps_to_first"])
                sizes.append(r["shrunk"])
                print(
                    f"  {fault:34s} found {r['requirement']} at lane step {r['steps_to_first']:4d}"
                    f"; reproducer {r['shrunk']} step(s)"
                    f"{'' if r['confirmed'] else ' (not confirmed)'}"
                )
            else:
                missed.append(fault)
                print(f"  {fault:34s} MISSED (other failures: {r['other']})")
        print(
            f"faults found {found}/{len(names)}; median steps to first failure "
            f"{statistics.median(firsts) if firsts else '-'}; reproducer sizes {sorted(sizes)}"
        )
        if missed:
            print("missed: " + ", ".join(missed))


if __name__ == "__main__":
    main()
