"""Two runs of the suite side by side: what a CI job must know after a server change.

``compare(old, new)`` reads two results documents (``results.json``) and lists the cases that
newly fail, the cases that were fixed, and the cases whose known deviations changed (a new
deviation, one that went away, or the same requirement with another reason). It is a
*regression* when a case that passed or was a known deviation now fails, or when a binding
requirement (``Level.binding``: MUST, MUST*, MAY) that did not fail before fails now; ``report
--compare`` exits 1 then. A case that only warned before and fails now is listed, but a
warning was already a finding, so it alone does not turn CI red; nor does a case that is new
in the second run unless its failure is a binding requirement's first.

Pure: documents in, a ``Comparison`` out; the command prints ``render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.oracle.requirements import CATALOGUE

REGRESSING_FROM = ("pass", "known deviation")
"""Case verdicts from which ``fail`` is a regression."""
FIXED_TO = ("pass", "known deviation", "warn", "info")
"""Case verdicts that count as fixed when the case failed before."""


@dataclass(frozen=True)
class CaseChange:
    """One case whose verdict or declared deviations differ between the runs."""

    nodeid: str
    old: str | None
    """The old verdict; None when the case did not run in the old run."""
    new: str
    detail: str = ""


@dataclass
class Comparison:
    """What changed from ``old_label`` to ``new_label``."""

    old_label: str
    new_label: str
    new_failures: list[CaseChange] = field(default_factory=list)
    fixed: list[CaseChange] = field(default_factory=list)
    changed_deviations: list[CaseChange] = field(default_factory=list)
    binding_failures: list[str] = field(default_factory=list)
    """Binding requirement ids that fail in the new run and did not in the old one."""

    @property
    def regressions(self) -> list[str]:
        """Why this comparison fails CI, one line each (empty when it does not)."""
        out = [
            f"{c.nodeid}: {c.old} -> fail" for c in self.new_failures if c.old in REGRESSING_FROM
        ]
        out += [f"{rid} ({CATALOGUE[rid].level}) newly fails" for rid in self.binding_failures]
        return out


def _cases(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("nodeid")): c for c in doc.get("cases") or ()}


def _deviations(case: Mapping[str, Any]) -> dict[str, str]:
    """The known deviations a case showed: requirement id -> declared reason."""
    return {
        str(f.get("requirement")): str(f.get("reason") or "")
        for f in case.get("findings") or ()
        if f.get("verdict") == "known deviation"
    }


def _requirement_verdicts(doc: Mapping[str, Any]) -> dict[str, str]:
    return {str(r.get("id")): str(r.get("verdict")) for r in doc.get("requirements") or ()}


def compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    """The differences from ``old`` to ``new`` (two results documents)."""
    result = Comparison(str(old.get("label") or "old"), str(new.get("label") or "new"))
    before, after = _cases(old), _cases(new)
    for nodeid, case in after.items():
        verdict = str(case.get("verdict"))
        previous = before.get(nodeid)
        was = str(previous.get("verdict")) if previous is not None else None
        if verdict == "fail" and was != "fail":
            result.new_failures.append(CaseChange(nodeid, was, verdict, _why(case)))
        elif was == "fail" and verdict in FIXED_TO:
            result.fixed.append(CaseChange(nodeid, was, verdict))
        if previous is not None and "skipped" not in (was, verdict):
            old_dev, new_dev = _deviations(previous), _deviations(case)
            if old_dev != new_dev:
                result.changed_deviations.append(
                    CaseChange(nodeid, was, verdict, _deviation_diff(old_dev, new_dev))
                )
    old_req, new_req = _requirement_verdicts(old), _requirement_verdicts(new)
    for rid, verdict in new_req.items():
        req = CATALOGUE.get(rid)
        if (
            req is not None
            and req.level.binding
            and verdict == "fail"
            and old_req.get(rid) != "fail"
        ):
            result.binding_failures.append(rid)
    return result


def _why(case: Mapping[str, Any]) -> str:
    failed = [
        f"{f.get('requirement')}: {f.get('message')}"
        for f in case.get("findings") or ()
        if f.get("verdict") == "fail"
    ]
    if failed:
        return "; ".join(failed)
    text = str(case.get("longrepr") or "").strip().splitlines()
    return text[-1] if text else ""


def _deviation_diff(old: dict[str, str], new: dict[str, str]) -> str:
    parts = [f"-{rid}" for rid in sorted(old.keys() - new.keys())]
    parts += [f"+{rid} ({new[rid]})" for rid in sorted(new.keys() - old.keys())]
    parts += [
        f"~{rid} ({old[rid]} -> {new[rid]})"
        for rid in sorted(old.keys() & new.keys())
        if old[rid] != new[rid]
    ]
    return ", ".join(parts)


def render(result: Comparison) -> str:
    """The comparison as text for a CI log: each list, then the verdict line."""
    lines = [f"compare {result.old_label} -> {result.new_label}"]

    def section(title: str, changes: list[CaseChange]) -> None:
        lines.append(f"{title}: {len(changes)}")
        for c in changes:
            was = c.old or "not run"
            lines.append(f"  {c.nodeid}: {was} -> {c.new}" + (f"  {c.detail}" if c.detail else ""))

    section("new failures", result.new_failures)
    section("fixed", result.fixed)
    section("changed deviations", result.changed_deviations)
    lines.append(f"binding requirements newly failing: {len(result.binding_failures)}")
    lines += [
        f"  {rid} ({CATALOGUE[rid].level}) {CATALOGUE[rid].title}"
        for rid in result.binding_failures
    ]
    regressions = result.regressions
    if regressions:
        lines.append(f"REGRESSION ({len(regressions)}): " + "; ".join(regressions))
    else:
        lines.append("no regression")
    return "\n".join(lines)


__all__ = ["CaseChange", "Comparison", "compare", "render"]
