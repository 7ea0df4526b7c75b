"""Findings: what a check observed about one requirement, and the verdict it earns.

A check never asserts. It returns findings, passed or not, because a requirement counts as
covered only when some check emitted a finding with its id. The verdict is derived late, from
the requirement's level, ``--strict`` and the target profile's declared deviations, so the same
observation can be a failure on one target and a known deviation on another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conformance.oracle.requirements import Level, get


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    KNOWN = "known deviation"
    INFO = "info"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Finding:
    requirement: str
    """Catalogue id; unknown ids are refused at construction."""
    passed: bool
    """Whether the observation met the requirement."""
    message: str
    """What was observed, quoting the offending value."""
    path: str | None = None
    """Where in the document or message (an XPath-like path or a header name)."""
    sourceline: int | None = None
    level: Level | None = None
    """Overrides the catalogue level for rows whose verdict note splits them (A08: a gap warns,
    B21: the reason is DEF while the NOTIFY is MUST)."""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    observed: str = ""
    """What the check saw, as a stable canonical value: the same server behaviour gives the
    same text in every run (no timings, tags, Call-IDs or generated user names), so a profile can
    excuse exactly this observation and nothing else. Checks whose message carries such values
    set it; otherwise it is the message with timings and generated names normalised."""
    skipped: bool = False
    """The case stopped before it could judge this requirement: not covered, never a pass."""

    def __post_init__(self) -> None:
        get(self.requirement)  # raises on an id that is not in the catalogue
        if not self.observed:
            object.__setattr__(self, "observed", canonical(self.message))

    @property
    def effective_level(self) -> Level:
        return self.level or get(self.requirement).level

    def verdict(self, *, strict: bool = False, known: bool = False) -> Verdict:
        """The verdict this finding earns: a violated MUST fails, a SHOULD/DEF warns (fails under
        ``strict``), IMPL/INFO rows only inform; ``known`` marks a deviation a profile declared."""
        if self.skipped:
            return Verdict.SKIPPED
        if self.passed:
            return Verdict.PASS
        if known:
            return Verdict.KNOWN
        level = self.effective_level
        if level.binding:
            return Verdict.FAIL
        if level in (Level.SHOULD, Level.DEF):
            return Verdict.FAIL if strict else Verdict.WARN
        if level is Level.IMPL:
            return Verdict.FAIL if strict else Verdict.WARN
        return Verdict.INFO

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        line = f" (line {self.sourceline})" if self.sourceline else ""
        status = "ok" if self.passed else "VIOLATED"
        return f"{self.requirement} {status}{where}{line}: {self.message}"


_SECONDS = re.compile(r"[+-]?\d+(?:\.\d+)?\s?(?:s|ms|seconds?)\b")
_GENERATED_USER = re.compile(r"[\w.-]*-gw\d*-[0-9a-f]+-\d+")
_WHITESPACE = re.compile(r"\s+")


def canonical(message: str) -> str:
    """A message with what differs from run to run taken out: durations become ``<t>``, the
    kit's generated user parts ``<user>``; whitespace collapses. Used as the default
    ``observed`` of a finding."""
    text = _GENERATED_USER.sub("<user>", message)
    text = _SECONDS.sub("<t>", text)
    return _WHITESPACE.sub(" ", text).strip()


def skipped(requirement: str, why: str) -> Finding:
    """The finding for a requirement a case named but could not judge (it stopped first)."""
    return Finding(requirement, False, f"not judged: {why}", observed="skipped", skipped=True)


def failures(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that did not pass, in order (skipped ones are not failures)."""
    return [f for f in findings if not f.passed and not f.skipped]
