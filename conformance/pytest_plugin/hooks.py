"""The plugin's per-case hooks: markers, selection of the cases, judging each case's findings
and sending them to the controller.

Verdicts come from findings, not from asserts: after a case returns, ``conformance.oracle.
verdicts.judge`` applies the profile's declared deviations and the requirement levels. The
findings travel to the xdist controller as JSON in ``user_properties``; only the controller
summarises and writes results (``collector.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from conformance.oracle.requirements import CATALOGUE, add_requirement
from conformance.oracle.verdicts import Judged, judge
from conformance.pytest_plugin.fixtures import case_id, case_key
from conformance.pytest_plugin.options import SLOW_OPTION, settings

REQUIREMENT_MARK = "dialoginfo_requirement"
SLOW_MARK = "dialoginfo_slow"
MODE_MARK = "dialoginfo_mode"
SUITE_MARK = "dialoginfo"

USER_PROPERTY = "dialoginfo-conformance"
"""Key of the JSON blob each case report carries to the controller."""

judged_key = pytest.StashKey[Judged]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from conformance.pytest_plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    for rows in config.hook.pytest_dialoginfo_requirements(config=config):
        for row in rows or ():
            try:
                add_requirement(row["id"], ref=row["ref"], level=row["level"], title=row["title"])
            except (KeyError, ValueError, TypeError) as exc:
                raise pytest.UsageError(f"pytest_dialoginfo_requirements: {exc}") from None
    config.addinivalue_line(
        "markers",
        f"{REQUIREMENT_MARK}(*ids): the REQUIREMENTS.md ids this dialog-info conformance case "
        "checks; the case must emit a finding for each",
    )
    config.addinivalue_line(
        "markers", f"{SLOW_MARK}: a dialog-info conformance case that waits more than 30 s"
    )
    config.addinivalue_line("markers", f"{SUITE_MARK}: a case of the dialog-info conformance suite")
    config.addinivalue_line(
        "markers",
        f"{MODE_MARK}(name): the dialog-info conformance case applies only when the target runs "
        "in this mode ('aggregate' or 'single', i.e. force_single_dialog)",
    )


def is_case(item: pytest.Item) -> bool:
    """A dialog-info conformance case: it names the requirements it checks."""
    return item.get_closest_marker(REQUIREMENT_MARK) is not None


def declared_ids(item: pytest.Item) -> tuple[str, ...]:
    marker = item.get_closest_marker(REQUIREMENT_MARK)
    return tuple(marker.args) if marker else ()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cases = [item for item in items if is_case(item)]
    if not cases:
        return  # inert outside the suite: the profile is not even loaded
    resolved = settings(config)
    mode = "single" if resolved.profile.single_dialog else "aggregate"
    for item in cases:
        for rid in declared_ids(item):
            if rid not in CATALOGUE:
                raise pytest.UsageError(f"{item.nodeid}: unknown requirement id {rid!r}")
            item.user_properties.append(("requirement", rid))  # junit.xml test properties
        if item.get_closest_marker(SLOW_MARK) and not resolved.slow:
            item.add_marker(pytest.mark.skip(reason=f"slow case: opt in with {SLOW_OPTION}"))
        wanted = item.get_closest_marker(MODE_MARK)
        if wanted is not None and mode not in wanted.args:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"applies to {wanted.args[0]} mode; the target runs in {mode} mode"
                )
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    finally:
        case = item.stash.get(case_key, None)
        if case is not None:
            case.finish()
    if case is not None:
        _judge(item, case)
    return result


class ConformanceFailure(AssertionError):
    """A case's findings include a failure: the message lists each with its requirement id."""


def _judge(item: pytest.Item, case: Any) -> None:
    judged = judge(
        case.findings,
        profile=case.profile,
        case_id=case_id(item),
        strict=settings(item.config).strict,
        declared=declared_ids(item),
        variant=item.name,
    )
    item.stash[judged_key] = judged
    if judged.failures:
        raise ConformanceFailure(judged.explain())
    if judged.known:
        pytest.xfail("known deviation: " + "; ".join(judged.known_reasons))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if not is_case(item):
        return report
    case = item.stash.get(case_key, None)
    skipped_early = call.when == "setup" and report.outcome != "passed"
    if not (call.when == "call" and case is not None) and not skipped_early:
        return report
    judged = item.stash.get(judged_key, None)
    if judged is not None:
        rows = judged.findings
    else:
        rows = [(f, None, None) for f in (case.findings if case is not None else [])]
    blob = {
        "case": case_id(item),
        "requirements": list(declared_ids(item)),
        "duration": report.duration,
        "longrepr": str(report.longrepr) if report.longrepr else None,
        "findings": [
            {
                "requirement": f.requirement,
                "passed": f.passed,
                "message": f.message,
                "verdict": str(v) if v else None,
                "reason": r,
                "path": f.path,
                "sourceline": f.sourceline,
                "evidence": dict(f.evidence),
            }
            for f, v, r in rows
        ],
        "warnings": judged.warnings if judged else [],
        **(case.evidence() if case is not None else {"messages": [], "notifies": []}),
        "target": case.target.describe() if case is not None else None,
        "wildcards": dict(case.profile.deviations.get("*", {})) if case is not None else {},
        "waited": case.waited if case is not None else 0.0,
        "timed_out": case.timed_out if case is not None else 0.0,
        "user_agent": case.server_agent() if case is not None else None,
    }
    report.user_properties.append((USER_PROPERTY, json.dumps(blob, default=str)))
    if judged and judged.warnings and report.passed:
        report.sections.append(("conformance warnings", "\n".join(judged.warnings)))
    return report
