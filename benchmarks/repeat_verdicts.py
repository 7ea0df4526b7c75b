"""Flake check: one external Kamailio shared by the suite, run N times with -n auto and with
-n 0; every run must give the same verdict per case. Prints the differences, if any.

    .venv/bin/python benchmarks/repeat_verdicts.py [--repeat 10] [--mode aggregate|single]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _kamailio import kamailio, run_suite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--mode", choices=("aggregate", "single"), default="aggregate")
    args = parser.parse_args()
    baseline: dict[str, str] | None = None
    flakes = 0
    with tempfile.TemporaryDirectory() as tmp, kamailio(args.mode) as target:
        for i in range(args.repeat):
            for workers in ("auto", "0"):
                wall, results = run_suite(target, workers, Path(tmp) / f"{i}-{workers}")
                verdicts = {c["nodeid"]: c["outcome"] for c in results["cases"]}
                if baseline is None:
                    baseline = verdicts
                diff = {
                    k: (baseline.get(k), v) for k, v in verdicts.items() if baseline.get(k) != v
                }
                flakes += bool(diff)
                print(
                    f"run {i + 1:2}/{args.repeat} -n {workers:4}: {len(verdicts)} cases, "
                    f"{wall:5.1f} s, {'same verdicts' if not diff else f'DIFFERENT: {diff}'}",
                    flush=True,
                )
    print(f"\n{2 * args.repeat} runs, {flakes} with verdicts different from the first")
    return 1 if flakes else 0


if __name__ == "__main__":
    raise SystemExit(main())
