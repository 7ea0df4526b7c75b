"""Mutation testing: run the whole conformance suite against the reference server with one fault
switched on, and see which cases kill it.

A fault counts as killed "through its own requirement" when some case fails with a finding
whose id is one the fault breaks; a fault that only makes unrelated cases fail (a crash noticed
by a timeout) is reported as killed by unrelated cases. The suite runs in a child pytest with
``--dialoginfo-strict``, so a broken SHOULD fails too. Shared by ``tests/mutation`` and
``benchmarks/mutation_score.py``.

Fault runs spend most of their time waiting on SIP timers, so ``run_faults`` runs a few at once
(``CONCURRENCY``); each is its own suite process on its own port blocks.

This module stays in ``commands/`` rather than next to ``server/faults/``: it drives whole suite
runs through ``commands.run.suite_argv``, and ``server/`` is an edge layer that may import
nothing from ``commands/``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from conformance.commands.run import suite_argv
from conformance.errors import HarnessError
from conformance.server.faults import FAULTS

SINGLE_MODE_FAULTS = frozenset({"priority-wrong", "tie-wrong", "single-dialog-one-publication"})
"""Faults that exist only in force_single_dialog mode; the others are run in aggregate mode."""
SLOW_FAULTS = frozenset({"subscription-kept-after-timeout"})
"""Faults only a slow case (a 32 s timer) can see; their runs add --slow."""
CALL_CASES = "test_calls"
"""The group E module: it places real calls (seconds each), so a fault run includes it only
when the fault breaks an E rule, and an E fault's run is group E alone; the clean baseline
(``tests/mutation/test_clean.py``) runs everything."""

CONCURRENCY = 3
"""Fault runs at once: they wait on SIP timers far more than they compute (2 cores here)."""


@dataclass(frozen=True)
class Kill:
    case: str
    requirement: str
    message: str


@dataclass(frozen=True)
class MutationResult:
    fault: str
    broken: tuple[str, ...]
    """Requirement ids the fault breaks (from its declaration)."""
    mode: str
    returncode: int
    kills: tuple[Kill, ...] = field(default=())
    """Every failed finding of every failed case."""
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return bool(self.kills)

    @property
    def own(self) -> tuple[Kill, ...]:
        """Kills through a finding with one of the broken requirement ids."""
        return tuple(k for k in self.kills if k.requirement in self.broken)

    @property
    def verdict(self) -> str:
        if self.own:
            return "killed"
        return "killed by unrelated cases" if self.killed else "SURVIVED"


def mode_for(fault: str) -> str:
    return "single" if fault in SINGLE_MODE_FAULTS else "aggregate"


def run_fault(
    fault: str,
    workdir: Path,
    *,
    workers: str = "0",
    timeout: float = 600,
    extra: tuple[str, ...] = ("--dialoginfo-sip-timeout", "2"),
) -> MutationResult:
    """Run the suite against the reference server with ``fault``; bounded by ``timeout``.

    The embedded server answers on loopback within milliseconds, so a 2 s bound per awaited
    message is generous, and it keeps faults that silence the server from costing 5 s a wait."""
    if fault not in FAULTS:
        raise HarnessError(f"unknown fault {fault!r}")
    mode = mode_for(fault)
    report_dir = workdir / fault
    cmd = suite_argv(
        "-q",
        "--dialoginfo-target",
        "reference",
        "--dialoginfo-fault",
        fault,
        "--dialoginfo-strict",
        f"--dialoginfo-report={report_dir}",
        "-n",
        workers,
        "--basetemp",
        str(workdir / f"{fault}-tmp"),
        *extra,
    )
    # An E fault bends only the dialog tracker, which no other group exercises.
    calls = any(r.startswith("E") for r in FAULTS[fault].requirements)
    cmd += ["-k", CALL_CASES if calls else f"not {CALL_CASES}"]
    if mode == "single":
        cmd.append("--dialoginfo-single-dialog")
    if fault in SLOW_FAULTS:
        cmd.append("--dialoginfo-slow")
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"suite against fault {fault} ran over {timeout} s") from None
    runs = sorted(report_dir.glob("*/results.json"))
    if not runs:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise HarnessError(f"suite against fault {fault} wrote no results:\n{tail}")
    results = json.loads(runs[-1].read_text(encoding="utf-8"))
    kills: list[Kill] = []
    for case in results["cases"]:
        if case.get("outcome") != "failed":
            continue
        failed = [
            Kill(case["case"], f["requirement"], f["message"])
            for f in case["findings"]
            if f.get("verdict") == "fail"
        ]
        # A case that failed without a failing finding died on an error (a timeout, say).
        why = (case.get("longrepr") or "failed").strip().splitlines()[-1:] or ["failed"]
        kills += failed or [Kill(case["case"], "", why[0][:200])]
    return MutationResult(
        fault,
        FAULTS[fault].requirements,
        mode,
        proc.returncode,
        tuple(kills),
        time.monotonic() - started,
    )


def run_faults(
    faults: Iterable[str],
    workdir: Path,
    *,
    concurrency: int = CONCURRENCY,
    workers: str = "2",
) -> Iterator[tuple[str, MutationResult | HarnessError]]:
    """Run every fault, ``concurrency`` at a time; yields ``(fault, result or error)`` as each
    finishes, so a caller can report progress. Unknown names raise before anything runs."""
    names = list(dict.fromkeys(faults))
    unknown = [f for f in names if f not in FAULTS]
    if unknown:
        raise HarnessError(f"unknown fault(s): {', '.join(unknown)}")
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(run_fault, f, workdir, workers=workers): f for f in names}
        for future in as_completed(futures):
            fault = futures[future]
            try:
                yield fault, future.result()
            except HarnessError as exc:
                yield fault, exc
