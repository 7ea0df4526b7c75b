"""The judge: one case's findings, the profile's declared deviations -> the case's verdict.

Pure (no pytest): the plugin calls it after each case, and the tests call it directly. A
declared deviation that did not happen is a failure, because a stale declaration would hide a
regression later; a requirement the case names but never judged is a failure too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from conformance.oracle.findings import Finding, Verdict, skipped
from conformance.oracle.requirements import CATALOGUE, Level, get

MODULE_ROWS = frozenset({"D01", "D03", "D04", "D05", "D06", "D08", "D09", "D10"})
"""The D rows that describe presence_dialoginfo's aggregation: binding, like MUSTs, for a
server whose profile claims the module's behaviour (``claims_presence_dialoginfo``)."""


def exact_only(requirement: str, *, claims_module: bool) -> bool:
    """Whether a deviation from ``requirement`` may only name an exact observation (never a
    pattern): MUST and MUST* rows, and the module rows where the server claims the module."""
    level = get(requirement).level if requirement in CATALOGUE else Level.INFO
    return level in (Level.MUST, Level.MUST_STAR) or (claims_module and requirement in MODULE_ROWS)


@dataclass(frozen=True)
class Deviation:
    """One declared deviation: a requirement, the one observation it excuses, and why.

    ``observed`` must equal the finding's ``observed`` exactly; ``observed_re`` must match it
    whole (``re.fullmatch``). Exactly one of the two is set. A different failure with the same
    requirement id is not excused."""

    requirement: str
    reason: str
    observed: str | None = None
    observed_re: str | None = None
    mode: str | None = None
    """``aggregate`` or ``single``: the deviation applies in that dialog mode only."""
    fact: str | None = None
    """The profile fact this deviation follows from (``first_version = 1``), if any."""

    def __post_init__(self) -> None:
        if (self.observed is None) == (self.observed_re is None):
            raise ValueError("a deviation names exactly one of observed and observed_re")
        if self.observed_re is not None:
            re.compile(self.observed_re)

    def matches(self, finding: Finding) -> bool:
        if finding.requirement != self.requirement or finding.passed or finding.skipped:
            return False
        if self.observed is not None:
            return finding.observed == self.observed
        return re.fullmatch(self.observed_re or "", finding.observed) is not None

    @property
    def key(self) -> str:
        """A stable name for this declaration in reports: id and observation."""
        if self.observed is not None:
            return f"{self.requirement} observed {self.observed!r}"
        return f"{self.requirement} observed_re {self.observed_re!r}"

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason}
        if self.observed is not None:
            out["observed"] = self.observed
        else:
            out["observed_re"] = self.observed_re or ""
        if self.mode is not None:
            out["mode"] = self.mode
        return out


class DeclaresDeviations(Protocol):
    """What the judge reads of a profile."""

    @property
    def claims_presence_dialoginfo(self) -> bool: ...

    def deviations_for(self, case_id: str, variant: str | None) -> tuple[Deviation, ...]:
        """Declared for this case (or this parametrised variant of it)."""
        ...

    def wildcard_deviations(self) -> tuple[Deviation, ...]:
        """Declared for every case ("*"), and those that follow from the profile's facts."""
        ...


class Outcome:
    """The case outcomes of the verdict table (docs/VERDICTS.md)."""

    FAIL = "fail"
    KNOWN = "known deviation"
    WARN = "warn"
    PASS = "pass"


@dataclass
class Judged:
    """The verdicts of one case: every finding with its verdict and the deviation that excused
    it, the case's outcome from the verdict table, and the lines its messages are made of."""

    findings: list[tuple[Finding, Verdict, Deviation | None]]
    failures: list[str]
    known: list[tuple[Finding, Deviation]]
    warnings: list[str]
    outcome: str

    @property
    def known_reasons(self) -> list[str]:
        return list(dict.fromkeys(f"{d.requirement}: {d.reason}" for _, d in self.known))

    def explain(self) -> str:
        lines = [f"{len(self.failures)} conformance failure(s):"]
        lines += [f"  {line}" for line in self.failures]
        if self.known:
            lines.append(f"{len(self.known)} known deviation(s):")
            lines += [f"  {f} [excused: {d.reason}]" for f, d in self.known]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += [f"  {line}" for line in self.warnings]
        return "\n".join(lines)


def binding_level(finding: Finding, *, claims_module: bool) -> Level:
    """The level a violation is judged at: the module rows are MUST where the server claims
    presence_dialoginfo compatibility. A finding marked INFO stays INFO: it says it cannot
    prove anything (a table within the clock allowance, a body relayed as published), and
    promoting it failed Kamailio's single mode on D09 in the explorer."""
    if finding.level is Level.INFO:
        return Level.INFO
    if claims_module and finding.requirement in MODULE_ROWS:
        return Level.MUST
    return finding.effective_level


def unexcused_verdict(finding: Finding, *, strict: bool, claims_module: bool) -> Verdict:
    """The verdict a finding earns when nothing excuses it."""
    if finding.skipped:
        return Verdict.SKIPPED
    if finding.passed:
        return Verdict.PASS
    level = binding_level(finding, claims_module=claims_module)
    if level.binding:
        return Verdict.FAIL
    if level in (Level.SHOULD, Level.DEF, Level.IMPL):
        return Verdict.FAIL if strict else Verdict.WARN
    return Verdict.INFO


def judge(
    findings: list[Finding],
    *,
    profile: DeclaresDeviations,
    case_id: str,
    strict: bool,
    declared: tuple[str, ...] = (),
    variant: str | None = None,
    stopped: str | None = None,
) -> Judged:
    """Verdicts for one case's findings, with the profile's declared deviations applied, and
    the case's outcome by the verdict table:

    ============================================  ====================================
    findings of a case                            outcome
    ============================================  ====================================
    any fail-level finding not excused            fail
    fail-level findings, all excused              known deviation (strict xfail)
    only warn-level findings (excused or not)     pass, with a mark (fail under strict)
    none of the above                             pass
    ============================================  ====================================

    A finding is fail-level when, unexcused, it would fail (MUST, MUST*, MAY done wrongly, a
    claimed module row; SHOULD/DEF/IMPL under ``strict``; a violation of a rule a profile fact
    predicts, with another observation than the fact's). A deviation excuses a finding only
    when its observation matches. A deviation declared for this case that excused nothing is a
    failure (it is stale, and would hide a regression later); a requirement the case names
    but never judged is a failure too, unless the case ``stopped`` early (a skip or an error
    after observations): then it gets a ``skipped`` finding, which covers nothing."""
    claims = profile.claims_presence_dialoginfo
    here = profile.deviations_for(case_id, variant)
    everywhere = profile.wildcard_deviations()
    emitted = {f.requirement for f in findings}
    all_findings = list(findings)
    for rid in declared:
        if rid not in emitted and stopped is not None:
            all_findings.append(skipped(rid, stopped))
    rows: list[tuple[Finding, Verdict, Deviation | None]] = []
    failures: list[str] = []
    warnings: list[str] = []
    known: list[tuple[Finding, Deviation]] = []
    used: set[Deviation] = set()
    fail_level = False
    facts = {d.requirement: d for d in everywhere if d.fact}
    for f in all_findings:
        plain = unexcused_verdict(f, strict=strict, claims_module=claims)
        excuse = None
        if plain in (Verdict.FAIL, Verdict.WARN, Verdict.INFO):
            excuse = next((d for d in (*here, *everywhere) if d.matches(f)), None)
        fact = facts.get(f.requirement)
        if excuse is None and fact is not None and plain in (Verdict.WARN, Verdict.INFO):
            # The profile predicted this rule's outcome and the server did something else:
            # the prediction failed, whatever the rule's level.
            rows.append((f, Verdict.FAIL, None))
            predicted = fact.observed or fact.observed_re
            failures.append(f"{f} (the profile's {fact.fact} predicts {predicted!r})")
            continue
        if excuse is not None:
            used.add(excuse)
            rows.append((f, Verdict.KNOWN, excuse))
            known.append((f, excuse))
            fail_level = fail_level or plain is Verdict.FAIL
            continue
        rows.append((f, plain, None))
        if plain is Verdict.FAIL:
            failures.append(str(f))
        elif plain is Verdict.WARN:
            warnings.append(str(f))
    for d in here:
        if d not in used:
            failures.append(
                f"{d.key}: declared deviation did not happen ({d.reason}); update the profile"
            )
    if stopped is None:
        for rid in declared:
            if rid not in emitted:
                failures.append(f"{rid}: the case names it but emitted no finding for it")
    if failures:
        outcome = Outcome.FAIL
    elif fail_level:
        outcome = Outcome.KNOWN
    elif warnings or known:
        outcome = Outcome.WARN
    else:
        outcome = Outcome.PASS
    return Judged(rows, failures, known, warnings, outcome)
