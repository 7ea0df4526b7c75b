"""Mutation testing: run the whole conformance suite against the reference server with one fault
switched on, and see which cases kill it.

The contract (issue 12): each fault runs ONCE, as a default (non-strict) run; its recorded
findings (``results.json``) are then judged twice with ``oracle.verdicts.judge``, as a default
run and as a strict run, since strictness only changes the judge. A fault whose ids include a
binding one (MUST, MUST*, MAY) is killed by default when the default judgement fails through one
of its own ids; a SHOULD/DEF fault is killed by default when a warn finding with one of its
ids appears. Either is killed strictly when the strict judgement fails through one of its own
ids. A fault that only makes unrelated cases fail (a crash noticed by a timeout) is reported as
killed by unrelated cases. Shared by ``tests/mutation`` and ``benchmarks/mutation_score.py``.

Fault runs spend most of their time waiting on SIP timers, so ``run_faults`` runs a few at once
(``CONCURRENCY``); each is its own suite process on its own port blocks.

This module stays in ``commands/`` rather than next to ``server/faults/``: it drives whole suite
runs through ``commands.run.suite_argv``, and ``server/`` is an edge layer that may import
nothing from ``commands/``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from conformance.commands.run import suite_argv
from conformance.errors import HarnessError
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import CATALOGUE, Level
from conformance.oracle.verdicts import Deviation, judge
from conformance.server.faults import FAULTS

SINGLE_MODE_FAULTS = frozenset({"priority-wrong", "tie-wrong", "single-dialog-one-publication"})
"""Faults that exist only in force_single_dialog mode; the others are run in aggregate mode."""
SLOW_FAULTS = frozenset({"subscription-kept-after-timeout"})
"""Faults only a slow case (a 32 s timer) can see; their runs add --slow."""
CRASHES = frozenset({"crash-after-two-dialogs"})
"""Faults whose only symptom is a crash: killed by any case (timeouts), not only their own."""
SUITE_BLIND = {
    "entity-rebuilt": "the suite's presentities carry no port and no sips:, so the rebuilt "
    "entity equals the Request-URI; tests/unit/test_server_core.py::test_fault_entity_rebuilt "
    "shows the A12 check kill it on a presentity with a port",
    "root-extensions-first": "no suite case publishes a root-level extension element; "
    "tests/unit/test_server_core.py::test_fault_root_extensions_first shows the A34 check kill "
    "it, and the explorer's tests/data/explore/reference-A34-*.json replays fail under it",
}
"""Faults no suite case can see against the embedded reference target, with where they are
shown killed instead; the mutation step leaves them out (never silently: each names its proof)."""
CALL_CASES = "test_calls"
"""The group E module: it places real calls (seconds each), so a fault run includes it only
when the fault breaks an E rule, and an E fault's run is group E alone; the clean baseline
(``tests/mutation/test_clean.py``) runs everything."""

AUTH_CASES = "test_auth"
"""The A31 module: it runs only with credentials, so an auth fault's run is it alone, given a
generated account the launched reference server then requires."""

CONCURRENCY = 3
"""Fault runs at once: they wait on SIP timers far more than they compute (2 cores here)."""


@dataclass(frozen=True)
class Kill:
    case: str
    requirement: str
    message: str
    strict_only: bool = False
    """Failed only under the strict judgement (a warn in the default one)."""


class _NoDeviations:
    """The reference server's profile, as the judge sees it: it declares nothing."""

    claims_presence_dialoginfo = False

    def deviations_for(self, case_id: str, variant: str | None) -> tuple[Deviation, ...]:
        return ()

    def wildcard_deviations(self) -> tuple[Deviation, ...]:
        return ()


def _recorded(entry: dict) -> Finding:
    """A finding back from ``results.json``. The file keeps the verdict of the run, not the
    level a check may have overridden (A08, B21), so the level is restored from the verdict:
    a recorded fail is binding, a warn is SHOULD-like, an info is INFO."""
    rid = entry["requirement"]
    level = CATALOGUE[rid].level if rid in CATALOGUE else Level.INFO
    verdict = entry.get("verdict")
    if verdict == Verdict.FAIL and not level.binding:
        level = Level.MUST
    elif verdict == Verdict.WARN and level not in (Level.SHOULD, Level.DEF, Level.IMPL):
        level = Level.SHOULD
    elif verdict == Verdict.INFO:
        level = Level.INFO
    return Finding(
        rid,
        bool(entry["passed"]),
        entry.get("message", ""),
        level=level,
        observed=entry.get("observed", ""),
        skipped=bool(entry.get("skipped")),
    )


def judge_case(case: dict) -> list[Kill]:
    """One recorded case judged as a default and as a strict run: every finding that fails
    (``strict_only`` for those only the strict judgement fails), or the case's error when it
    failed without a failing finding (a timeout, a crash)."""
    findings = [_recorded(f) for f in case.get("findings", [])]
    kills: list[Kill] = []
    for strict in (False, True):
        judged = judge(findings, profile=_NoDeviations(), case_id=case["case"], strict=strict)
        kills += [
            Kill(case["case"], f.requirement, f.message, strict_only=strict)
            for f, verdict, _ in judged.findings
            if verdict is Verdict.FAIL
            and not any(k.requirement == f.requirement and k.message == f.message for k in kills)
        ]
    if case.get("outcome") == "failed" and not any(not k.strict_only for k in kills):
        why = (case.get("longrepr") or "failed").strip().splitlines()[-1:] or ["failed"]
        kills.append(Kill(case["case"], "", why[0][:200]))
    return kills


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
    def binding(self) -> bool:
        """The fault breaks a binding id: the default judgement alone must kill it."""
        return any(CATALOGUE[r].level.binding for r in self.broken if r in CATALOGUE)

    @property
    def killed(self) -> bool:
        return bool(self.kills)

    @property
    def own_strict(self) -> tuple[Kill, ...]:
        """Failures of the strict judgement through one of the broken requirement ids."""
        return tuple(k for k in self.kills if k.requirement in self.broken)

    @property
    def own_default(self) -> tuple[Kill, ...]:
        """Binding fault: default-judgement failures through its ids. SHOULD/DEF fault: its
        ids' warnings (the strict-only failures, which the default judgement shows as warn)."""
        if self.binding:
            return tuple(k for k in self.own_strict if not k.strict_only)
        return self.own_strict

    @property
    def own(self) -> tuple[Kill, ...]:
        """Killed through its own ids under both judgements (the contract); else empty."""
        return self.own_strict if self.own_default else ()

    def verdict_for(self, own: tuple[Kill, ...]) -> str:
        if own:
            return "killed"
        return "killed by unrelated cases" if self.killed else "SURVIVED"

    @property
    def verdict(self) -> str:
        return self.verdict_for(self.own)


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
        f"--dialoginfo-report={report_dir}",
        "-n",
        workers,
        "--basetemp",
        str(workdir / f"{fault}-tmp"),
        *extra,
    )
    # An E fault bends only the dialog tracker, which no other group exercises; an A31 fault
    # only the digest guard, which is on only when the run has credentials.
    calls = any(r.startswith("E") for r in FAULTS[fault].requirements)
    if "A31" in FAULTS[fault].requirements:
        cmd += ["-k", AUTH_CASES, "--dialoginfo-credentials", str(_credentials(workdir, fault))]
    else:
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
    kills = [kill for case in results["cases"] for kill in judge_case(case)]
    return MutationResult(
        fault,
        FAULTS[fault].requirements,
        mode,
        proc.returncode,
        tuple(kills),
        time.monotonic() - started,
    )


def _credentials(workdir: Path, fault: str) -> Path:
    """A one-account credentials file (mode 0600) with a fresh random password."""
    path = workdir / f"{fault}-credentials.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(f'user = "mutation"\npassword = "{secrets.token_hex(12)}"\n')
    return path


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
