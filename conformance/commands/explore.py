"""``dialoginfo-conformance explore``: generated operation sequences against a server of its own.

The explorer (issue 13, ``conformance/explore/runner.py``) launches its own target instance (the
reference server or a Kamailio, like ``run``; an external ``sip:`` target is used as is), runs
``--steps`` operations (or as many as ``--budget`` allows) drawn from ``--seed`` over several
concurrent lanes, judges every NOTIFY with the suite's checks and history, shrinks each distinct
failure to a small sequence (``--shrink-budget``), re-runs it to confirm, and writes it as a
regression file under the report directory; ``--replay FILE`` runs one such file. Findings go
into results.json and report.html. The seed is always printed.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from conformance.commands.run import EXIT_NONCONFORMING, EXIT_OK, EXIT_TARGET
from conformance.errors import ConformanceError, UsageError

LANES = 8
"""Lanes run concurrently (each with its own presentities, publishers and watchers)."""


def _seconds(value: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m)?\s*", value)
    if not match:
        raise argparse.ArgumentTypeError(f"{value!r} is not a duration (e.g. 60s, 2m, 90)")
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", default="reference", help="reference (default), kamailio, or sip:HOST:PORT"
    )
    parser.add_argument("--profile", help="shipped profile name or TOML file")
    parser.add_argument("--single-dialog", action="store_true", help="single-dialog mode")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="NAME", help="reference only: a fault"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive, help="operations in all (default 200)")
    budget.add_argument("--budget", type=_seconds, help="explore for this long (e.g. 60s)")
    parser.add_argument(
        "--shrink-budget", type=_seconds, default=120.0, help="seconds for shrinking (120s)"
    )
    parser.add_argument("--seed", type=int, help="the run's seed (default: drawn, printed)")
    parser.add_argument("--lanes", type=_positive, default=LANES, help="concurrent lanes (8)")
    parser.add_argument("--replay", metavar="FILE", help="run one regression file instead")
    parser.add_argument("--strict", action="store_true", help="SHOULD/DEF violations fail")
    parser.add_argument(
        "--report-dir", default="reports", metavar="DIR", help="where reports go (./reports)"
    )
    parser.add_argument(
        "--sip-timeout", type=_seconds, default=5.0, metavar="SECONDS", help="SIP wait bound"
    )


def run(args: argparse.Namespace) -> int:
    from conformance.explore import replay as replay_mod
    from conformance.explore.runner import Explorer, reproduce, summary
    from conformance.harness.ports import reserve_block
    from conformance.harness.sipp import sipp_binary
    from conformance.targets import make_target

    sipp_binary()
    loaded = replay_mod.read(args.replay) if args.replay else None
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    if loaded is not None and loaded.seed is not None and args.seed is None:
        seed = loaded.seed
    print(f"explore: seed {seed}", flush=True)
    with reserve_block(7) as block, tempfile.TemporaryDirectory(prefix="explore-") as tmp:
        overrides = {"single_dialog": True if args.single_dialog else None}
        target = make_target(
            args.target,
            profile=args.profile,
            overrides=overrides,
            block=block,
            workdir=tmp,
            faults=tuple(args.fault),
        )
        try:
            target.start()
        except ConformanceError as exc:
            print(f"dialoginfo-conformance explore: cannot start target: {exc.message}")
            return EXIT_TARGET
        try:
            explorer = Explorer(
                target,
                target.profile,
                block,
                Path(tmp),
                timeout=args.sip_timeout,
                strict=args.strict,
                limits=loaded.limits if loaded is not None else None,
                restart=target.start,
                log=lambda line: print(line, flush=True),
            )
            started = time.monotonic()
            if loaded is not None:
                results = [explorer.run_lane(list(loaded.ops), seed=seed)]
            else:
                steps = None if args.budget else (args.steps or 200)
                results = explorer.run(seed, lanes=args.lanes, steps=steps, budget=args.budget)
            wall = time.monotonic() - started
            info = summary(results, wall)
            print(
                f"explore: {info['steps']} steps in {wall:.1f} s ({info['steps_per_second']} "
                f"steps/s), {info['notifies']} NOTIFYs, {info['failures']} failure(s) in "
                f"{len(info['distinct_failures'])} distinct, {info['known']} known deviation(s)",
                flush=True,
            )
            found: list[Any] = []
            if loaded is None and info["failures"]:
                found = reproduce(
                    explorer,
                    results,
                    Path(tmp) / "regressions",
                    budget=args.shrink_budget,
                    meta={
                        "target": args.target,
                        "profile": target.profile.name,
                        "single_dialog": target.profile.single_dialog,
                        "faults": list(args.fault),
                    },
                    log=lambda line: print(line, flush=True),
                )
        finally:
            target.stop()
        run_dir = _write_report(args, seed, target, results, info, found, loaded is not None)
    print(f"explore: report {run_dir / 'report.html'}")
    for rep in found:
        kept = run_dir / "regressions" / rep.path.name
        print(f"explore: reproducer {kept} (replay: explore --replay {kept})")
    return EXIT_NONCONFORMING if info["failures"] else EXIT_OK


def _write_report(
    args: argparse.Namespace,
    seed: int,
    target: Any,
    results: list[Any],
    info: dict[str, Any],
    found: list[Any],
    replayed: bool,
) -> Path:
    from datetime import UTC, datetime

    from conformance import __version__
    from conformance.explore import ops as ops_mod
    from conformance.pytest_plugin.hooks import finding_json
    from conformance.report.results import build_results
    from conformance.report.run_dir import write_run

    profile = target.profile
    cases = []
    for r in results:
        failed = bool(r.judged.failures)
        known = bool(r.judged.known)
        cases.append(
            {
                "case": "explore",
                "nodeid": f"explore[seed={seed},lane={r.lane}]",
                "requirements": [],
                "outcome": "failed" if failed else ("xfailed" if known else "passed"),
                "judged": "fail" if failed else ("known deviation" if known else "pass"),
                "findings": [finding_json(f, v, d) for f, v, d, _ in r.judged.rows if not f.passed],
                "longrepr": ops_mod.describe(r.ops) if failed else None,
                "duration": r.wall,
            }
        )
    cases += [_reproducer_case(rep, ops_mod.describe, finding_json) for rep in found]
    now = datetime.now(tz=UTC).isoformat(timespec="seconds")
    run_info = {
        "target": {**target.describe(), "kind": args.target},
        "kit_version": __version__,
        "started": now,
        "finished": now,
        "mode": "single" if profile.single_dialog else "aggregate",
        "options": {"target": args.target, "profile": profile.name, "faults": list(args.fault)},
        "explore": {**info, "seed": seed, "replay": args.replay if replayed else None},
    }
    try:
        run_dir = write_run(build_results(run_info, cases), Path(args.report_dir))
    except OSError as exc:
        raise UsageError(f"cannot write the report: {exc}") from None
    if found:
        (run_dir / "regressions").mkdir(exist_ok=True)
    for rep in found:
        shutil.copyfile(rep.path, run_dir / "regressions" / rep.path.name)
    return run_dir


def _reproducer_case(rep: Any, describe: Any, finding_json: Any) -> dict[str, Any]:
    """One shrunk reproducer as a report case: the ladder of its confirming re-run (the
    offending NOTIFY marked), its failures with the watcher's table and the oracle's
    expectation side by side, and the offending NOTIFY bodies next to them."""
    rerun = rep.rerun
    evidence = (rerun.evidence if rerun is not None else None) or {"messages": [], "notifies": []}
    rows = rerun.judged.rows if rerun is not None else []
    findings = [
        finding_json(f, v, d)
        for f, v, d, _ in rows
        if not f.passed and f.requirement == rep.requirement
    ]
    offending = [n for n in evidence["notifies"] if n.get("offending")]
    for item in findings[:1]:
        if not offending:
            continue
        first = offending[0]
        if "expected" in item["evidence"]:  # the history's tables keep the diff; bodies below
            keys = ("oracle's document", "offending NOTIFY")
        else:  # a body rule: the oracle's document and the offending NOTIFY side by side
            keys = ("expected", "observed")
        bodies = dict(zip(keys, (first.get("expected"), first["body"]), strict=True))
        item["evidence"] = {**item["evidence"], **bodies}
    status = "confirmed" if rep.confirmed else "not confirmed (no re-run showed it again)"
    return {
        "case": "explore-reproducer",
        "nodeid": f"explore reproducer {rep.requirement} ({rep.shape}): {len(rep.ops)} step(s)",
        "requirements": [rep.requirement],
        "outcome": "failed",
        "judged": "fail",
        "findings": findings,
        "messages": evidence["messages"],
        "notifies": evidence["notifies"],
        "longrepr": f"{status}; replay: explore --replay regressions/{rep.path.name}\n"
        + describe(rep.ops),
        "duration": rerun.wall if rerun is not None else None,
    }
