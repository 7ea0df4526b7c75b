"""Flake check: the suite run N times must give the same verdict per case every time.

Default (``--mode both``): ``dialoginfo-conformance run --target kamailio -n auto`` as users run
it, both modes at once, one Kamailio per worker; each case is keyed by mode and node id and
compared by outcome and verdict (pass, warn, known deviation, fail). With ``--mode aggregate``
or ``single``: one external Kamailio shared by the suite, alternately ``-n auto`` and ``-n 0``.
Prints the differences, if any.

    .venv/bin/python benchmarks/repeat_verdicts.py [--repeat 10] [--mode both|aggregate|single]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from _kamailio import kamailio, run_suite
from suite_speed import load_runs, mode_of, run_both_modes


def verdicts(runs: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {
        f"{mode_of(r)} {c['nodeid']}": (c["outcome"], c.get("verdict", ""))
        for r in runs
        for c in r["cases"]
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--mode", choices=("both", "aggregate", "single"), default="both")
    parser.add_argument("--workers", default="auto", help="--mode both: -n of the run")
    args = parser.parse_args()
    baseline: dict[str, tuple[str, str]] | None = None
    flakes = total = 0

    def compare(label: str, wall: float, seen: dict[str, tuple[str, str]]) -> None:
        nonlocal baseline, flakes, total
        total += 1
        if baseline is None:
            baseline = seen
        keys = set(seen) | set(baseline)
        diff = {
            k: (baseline.get(k), seen.get(k))
            for k in sorted(keys)
            if baseline.get(k) != seen.get(k)
        }
        flakes += bool(diff)
        state = "same verdicts" if not diff else f"DIFFERENT: {diff}"
        print(f"{label}: {len(seen)} cases, {wall:5.1f} s, {state}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        if args.mode == "both":
            for i in range(args.repeat):
                report = Path(tmp) / str(i)
                wall, code, _ = run_both_modes(report, args.workers, None)
                compare(
                    f"run {i + 1:2}/{args.repeat} both modes, exit {code}",
                    wall,
                    verdicts(load_runs(report)),
                )
        else:
            with kamailio(args.mode) as target:
                for i in range(args.repeat):
                    for workers in ("auto", "0"):
                        wall, results = run_suite(target, workers, Path(tmp) / f"{i}-{workers}")
                        compare(
                            f"run {i + 1:2}/{args.repeat} -n {workers:4}", wall, verdicts([results])
                        )
    print(f"\n{total} runs, {flakes} with verdicts different from the first")
    return 1 if flakes else 0


if __name__ == "__main__":
    raise SystemExit(main())
