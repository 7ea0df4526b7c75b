"""Mutation score: the suite against the reference server, once per fault; prints which cases
kill each fault and two scores, the recorded findings judged as a default run and as a strict
run (conformance.commands.mutation has the contract), with the time taken. Faults run a few
at a time (``CONCURRENCY``); rows come in the
order runs finish.

    .venv/bin/python benchmarks/mutation_score.py [FAULT ...]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from conformance.commands.mutation import CRASHES, SUITE_BLIND, run_faults
from conformance.server.faults import FAULTS


def main(argv: list[str]) -> int:
    faults = argv or sorted(set(FAULTS) - set(SUITE_BLIND))
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        print(
            f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(sorted(FAULTS))}",
            file=sys.stderr,
        )
        return 2
    own_default = own_strict = 0
    started = time.monotonic()
    print(f"{'fault':34} {'breaks':10} {'mode':9} {'verdict':26} {'s':>5}  killing cases")
    with tempfile.TemporaryDirectory() as tmp:
        for n, (fault, r) in enumerate(run_faults(faults, Path(tmp)), 1):
            if isinstance(r, Exception):
                print(f"{fault:34} {'':10} {'':9} {'ERROR':26} {'':>5}  {r}", flush=True)
                continue
            own_default += bool(r.own_default) or (fault in CRASHES and r.killed)
            own_strict += bool(r.own_strict) or (fault in CRASHES and r.killed)
            cases = sorted({f"{k.case}({k.requirement or 'error'})" for k in (r.own or r.kills)})
            shown = ", ".join(cases[:4]) + (f" +{len(cases) - 4} more" if len(cases) > 4 else "")
            others = sorted({k.requirement or "error" for k in r.kills} - set(r.broken))
            print(
                f"{fault:34} {','.join(r.broken):10} {r.mode:9} {r.verdict:26} "
                f"{r.seconds:5.0f}  {shown}" + (f"  [also: {', '.join(others)}]" if others else ""),
                flush=True,
            )
            print(f"  [{n}/{len(faults)}]", file=sys.stderr, flush=True)
    total = len(faults)
    print(
        f"\nmutation score, default judgement: {own_default}/{total} "
        f"({100 * own_default / total:.0f}%); strict judgement: {own_strict}/{total} "
        f"({100 * own_strict / total:.0f}%); killed through their own requirement (the crash "
        f"fault by any case) in {time.monotonic() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
