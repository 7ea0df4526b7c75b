"""The plugin's per-case hooks: markers, selection of the cases, judging each case's findings
and sending them to the controller.

Verdicts come from findings, not from asserts: after a case returns, ``conformance.oracle.
verdicts.judge`` applies the profile's declared deviations and the requirement levels. The
findings travel to the xdist controller as JSON in ``user_properties``; only the controller
summarises and writes results (``collector.py``).
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import BodyError, UsageError
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import CATALOGUE, add_requirement, parse_catalogue
from conformance.oracle.verdicts import Deviation, Judged, Outcome, judge
from conformance.pytest_plugin.fixtures import case_id, case_key
from conformance.pytest_plugin.options import CATALOGUE_OPTION, SLOW_OPTION, settings

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


def _load_catalogues(config: pytest.Config) -> None:
    """``--dialoginfo-catalogue FILE``: add the file's own requirement rows (a bad file is a
    usage error in one line)."""
    for path in config.getoption(CATALOGUE_OPTION) or ():
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise pytest.UsageError(f"{CATALOGUE_OPTION} {path}: cannot read it: {exc}") from None
        try:
            for row in parse_catalogue(text, f"{CATALOGUE_OPTION} {path}"):
                add_requirement(row.id, ref=row.ref, level=row.level, title=row.title)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    _load_catalogues(config)
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
    """Judge the case's findings whatever the case did: returned, skipped, or raised.

    Findings are never lost: a skip or an error after observations still has them judged (the
    ids the case named but did not reach get ``skipped`` findings); a ``BodyError`` escaping a
    check is the server's unreadable body (A02), never a case error."""
    stopped: str | None = None
    error: BaseException | None = None
    case = item.stash.get(case_key, None)
    try:
        result = yield
    except BodyError as exc:
        if case is None:
            raise
        case.findings.append(Finding(exc.requirement, False, f"unreadable body: {exc.message}"))
        stopped = f"the case stopped at an unreadable body: {exc.message}"
        result = None
    except (Exception, pytest.skip.Exception, pytest.fail.Exception) as exc:
        if case is None:
            raise
        _finish(case)
        if not case.findings:
            raise  # nothing observed: a plain skip or error
        stopped = f"the case stopped: {_one_line(exc)}"
        error = exc
        result = None
    if case is None:
        return result
    _finish(case)
    _judge(item, case, stopped=stopped, error=error)
    if error is not None:
        raise error
    return result


def _finish(case: Any) -> None:
    """Check every NOTIFY the case captured (idempotent); an unreadable body is A02."""
    try:
        case.finish()
    except BodyError as exc:
        case.findings.append(Finding(exc.requirement, False, f"unreadable body: {exc.message}"))


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "msg", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


class ConformanceFailure(AssertionError):
    """A case's findings include a failure: the message lists each with its requirement id."""


def _judge(
    item: pytest.Item, case: Any, *, stopped: str | None, error: BaseException | None
) -> None:
    judged = judge(
        case.findings,
        profile=case.profile,
        case_id=case_id(item),
        strict=settings(item.config).strict,
        declared=declared_ids(item),
        variant=item.name,
        stopped=stopped,
    )
    item.stash[judged_key] = judged
    # junit.xml (which reads the item's properties): the verdict results.json and the summary show
    item.user_properties.append(("verdict", judged.outcome))
    if judged.outcome == Outcome.FAIL:
        message = judged.explain()
        if stopped:
            message += f"\n{stopped}"
        raise ConformanceFailure(message) from None
    if judged.outcome == Outcome.KNOWN and error is None:
        pytest.xfail("known deviation: " + "; ".join(judged.known_reasons))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not is_case(item):
        return report
    case = item.stash.get(case_key, None)
    skipped_early = call.when == "setup" and report.outcome != "passed"
    if not (call.when == "call" and case is not None) and not skipped_early:
        return report
    judged = item.stash.get(judged_key, None)
    if call.excinfo is not None and call.excinfo.errisinstance((ConformanceFailure, UsageError)):
        # The findings are the story; the plugin's own frames would only hide them. A usage
        # error (a user pool too small for the case) is one line for the user to act on.
        report.longrepr = str(call.excinfo.value)
    data = blob(item, case, judged, report)
    report.user_properties.append((USER_PROPERTY, json.dumps(data, default=str)))
    if judged and judged.warnings and report.passed:
        report.sections.append(("conformance warnings", "\n".join(judged.warnings)))
    return report


def finding_json(f: Finding, verdict: Verdict | None, excuse: Deviation | None) -> dict[str, Any]:
    """One finding as results.json carries it (reports/README.md, "cases")."""
    return {
        "requirement": f.requirement,
        "passed": f.passed,
        "message": f.message,
        "observed": f.observed,
        "skipped": f.skipped,
        "verdict": str(verdict) if verdict else None,
        "reason": excuse.reason if excuse else None,
        "excused_by": excuse.to_dict() if excuse else None,
        "path": f.path,
        "sourceline": f.sourceline,
        "evidence": dict(f.evidence),
    }


def blob(item: pytest.Item, case: Any, judged: Judged | None, report: pytest.TestReport) -> Any:
    """What the controller needs of one case: findings with verdicts, evidence, the outcome
    the verdict table gives, and the wildcard deviations in force (to tell stale ones)."""
    rows: Sequence[tuple[Finding, Verdict | None, Deviation | None]]
    if judged is not None:
        rows = judged.findings
    else:
        rows = [(f, None, None) for f in (case.findings if case is not None else [])]
    wildcards = case.profile.wildcard_deviations() if case is not None else ()
    return {
        "case": case_id(item),
        "requirements": list(declared_ids(item)),
        "duration": report.duration,
        "longrepr": str(report.longrepr) if report.longrepr else None,
        "findings": [finding_json(f, v, d) for f, v, d in rows],
        "judged": judged.outcome if judged else None,
        "warnings": judged.warnings if judged else [],
        **(case.evidence() if case is not None else {"messages": [], "notifies": []}),
        "target": case.target.describe() if case is not None else None,
        "wildcards": [{"requirement": d.requirement, **d.to_dict()} for d in wildcards],
        "waited": case.waited if case is not None else 0.0,
        "timed_out": case.timed_out if case is not None else 0.0,
        "user_agent": case.server_agent() if case is not None else None,
    }
