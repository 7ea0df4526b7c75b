"""Steps per second of the first explorer executor (conformance/explore/execute.py).

Runs one generated operation sequence (``--steps``, ``--seed``) against a launched Kamailio
and the reference server and prints steps/s, NOTIFYs seen and the steps with findings (schema
failures of NOTIFY bodies, liveness). Twice per target: with every operation kind, and without
``expire`` steps, which wait for the server's expiry timer (seconds each) and so dominate the
wall time until the runner overlaps them with other steps.

    python benchmarks/explore_steps.py [--steps 200] [--seed 1] [--target kamailio,reference]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_publisher import make_target  # the benchmark next door: same targets, one place

from conformance.explore import ops
from conformance.explore.execute import Executor, summary
from conformance.explore.ops import Expire, Limits
from conformance.harness.ports import reserve_block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", default="kamailio,reference")
    parser.add_argument("--show", type=int, default=5, help="findings to print per run")
    args = parser.parse_args()
    limits = Limits()
    everything = ops.generate(args.seed, args.steps, limits)
    no_expire = ops.normalize(
        op for op in ops.generate(args.seed, args.steps * 2, limits) if not isinstance(op, Expire)
    )[: args.steps]
    with reserve_block(35) as block, tempfile.TemporaryDirectory(prefix="explore-") as tmp:
        for name in args.target.split(","):
            for label, sequence in (("all kinds", everything), ("no expire", no_expire)):
                target = make_target(name, block, Path(tmp))
                target.start()
                try:
                    run_id = f"{args.seed}{label[0]}{int(time.time()) % 10000}"
                    work = Path(tmp) / f"{name}-{label[0]}"
                    started = time.monotonic()
                    with Executor(
                        server=(target.host, target.port),
                        domain=target.host,
                        block=block,
                        workdir=work,
                        run_id=run_id,
                        publishers=limits.publishers,
                    ) as ex:
                        records = ex.run(sequence)
                        wall = time.monotonic() - started
                finally:
                    target.stop()
                s = summary(records, wall)
                print(
                    f"{name:9s} {label:9s} {s['steps']:4.0f} steps in {wall:6.1f} s = "
                    f"{s['steps_per_second']:5.1f} steps/s   NOTIFYs {s['notifies']:.0f}   "
                    f"steps with findings {s['with_findings']:.0f}   skipped {s['skipped']:.0f}"
                )
                per_kind: dict[str, list[float]] = {}
                for r in records:
                    per_kind.setdefault(r.op.kind, []).append(r.seconds)
                print(
                    "          mean s/step: "
                    + ", ".join(
                        f"{k} {sum(v) / len(v):.3f} ({len(v)})" for k, v in sorted(per_kind.items())
                    )
                )
                shown = 0
                for r in records:
                    for f in r.findings:
                        if shown < args.show:
                            print(f"          step {r.index} {r.op.kind}: {f[:160]}")
                        shown += 1


if __name__ == "__main__":
    main()
