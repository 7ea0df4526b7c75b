"""The judge: one case's findings, the profile's declared deviations -> the case's verdict.

Pure (no pytest): the plugin calls it after each case, and the tests call it directly. A
declared deviation that did not happen is a failure, because a stale declaration would hide a
regression later; a requirement the case names but never judged is a failure too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from conformance.oracle.findings import Finding, Verdict


class DeclaresDeviations(Protocol):
    """What the judge reads of a profile: case id -> requirement id -> reason."""

    @property
    def deviations(self) -> Mapping[str, Mapping[str, str]]: ...


@dataclass
class Judged:
    """The verdicts of one case: every finding with its verdict and excuse, and the lines the
    failure message, the warnings section and the known-deviation summary are made of."""

    findings: list[tuple[Finding, Verdict, str | None]]
    failures: list[str]
    known: list[Finding]
    known_reasons: list[str]
    warnings: list[str]

    def explain(self) -> str:
        lines = [f"{len(self.failures)} conformance failure(s):"]
        lines += [f"  {line}" for line in self.failures]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += [f"  {line}" for line in self.warnings]
        return "\n".join(lines)


def judge(
    findings: list[Finding],
    *,
    profile: DeclaresDeviations,
    case_id: str,
    strict: bool,
    declared: tuple[str, ...] = (),
    variant: str | None = None,
) -> Judged:
    """Verdicts for one case's findings, with the profile's declared deviations applied.

    A declared deviation that did not happen (no violated finding with that id) is a failure:
    the declaration is stale, and a stale declaration would hide a regression later."""
    rows: list[tuple[Finding, Verdict, str | None]] = []
    failures: list[str] = []
    warnings: list[str] = []
    known: list[Finding] = []
    reasons: list[str] = []
    # Declared for the case, or for one parametrised variant of it ("test_x[489]").
    here = {**profile.deviations.get(case_id, {}), **profile.deviations.get(variant or "", {})}
    deviations = dict(profile.deviations.get("*", {}))
    deviations.update(here)
    for f in findings:
        reason = deviations.get(f.requirement)
        verdict = f.verdict(strict=strict, known=reason is not None)
        rows.append((f, verdict, reason))
        if verdict is Verdict.FAIL:
            failures.append(str(f))
        elif verdict is Verdict.WARN:
            warnings.append(str(f))
        elif verdict is Verdict.KNOWN and f.requirement in here:
            # Only a deviation declared for this case makes it an xfail; one declared for
            # every case ("*") is reported as known, and the run checks it happened somewhere.
            known.append(f)
            if reason not in reasons:
                reasons.append(f"{f.requirement}: {reason}")
    violated = {f.requirement for f in findings if not f.passed}
    for rid, reason in here.items():
        if rid not in violated:
            failures.append(
                f"{rid}: declared deviation did not happen ({reason}); update the profile"
            )
    emitted = {f.requirement for f in findings}
    for rid in declared:
        if rid not in emitted:
            failures.append(f"{rid}: the case names it but emitted no finding for it")
    return Judged(rows, failures, known, reasons, warnings)
