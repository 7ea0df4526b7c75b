"""The pytest plugin: options, fixtures and verdicts of the conformance suite.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an
environment where the kit is installed. It stays inert there: the options exist, but nothing
starts, prints or writes unless a collected item carries the ``requirement`` marker (the cases
of ``conformance.suite`` do).

Verdicts come from findings, not from asserts. After a case returns, its findings are judged:
a violated MUST fails the case; a SHOULD/DEF/IMPL violation warns (fails under ``--strict``); a
violation the profile declares for this case is a known deviation, reported as a strict xfail, so
a declared deviation that stops happening turns the run red. Findings travel to the xdist
controller as JSON in ``user_properties``; only the controller summarises and writes results.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import ConformanceError
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import CATALOGUE, GROUPS, Level

GROUP = "dialog-info conformance"
TARGET_OPTION = "--target"
PROFILE_OPTION = "--profile"
SINGLE_OPTION = "--single-dialog"
STRICT_OPTION = "--strict-conformance"
RFC_OPTION = "--rfc"
FAULT_OPTION = "--fault"
TIMEOUT_OPTION = "--sip-timeout"
REPORT_OPTION = "--conformance-report"
SLOW_OPTION = "--slow"
LOCAL_ADDRESS_OPTION = "--dialoginfo-local-address"
LABEL_OPTION = "--dialoginfo-label"
TLS_CA_OPTION = "--dialoginfo-tls-ca"
TLS_INSECURE_OPTION = "--dialoginfo-tls-insecure"

USER_PROPERTY = "dialoginfo-conformance"
"""Key of the JSON blob each case report carries to the controller."""

_settings_key = pytest.StashKey["Settings"]()
_collector_key = pytest.StashKey["Collector"]()
_case_key = pytest.StashKey[Any]()


# -- options -------------------------------------------------------------------------------------


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise pytest.UsageError(f"{TIMEOUT_OPTION} takes seconds, not {value!r}") from None
    if not 0.1 <= seconds <= 32:
        raise pytest.UsageError(f"{TIMEOUT_OPTION} must be between 0.1 and 32 s (Timer N)")
    return seconds


def _rfc(value: str) -> int:
    if value not in ("6665", "3265"):
        raise pytest.UsageError(f"{RFC_OPTION} takes 6665 or 3265, not {value!r}")
    return int(value)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "dialog-info conformance (Event: dialog presence servers)")
    group.addoption(
        TARGET_OPTION,
        default="reference",
        metavar="TARGET",
        help="server under test: 'reference' (embedded, default), 'kamailio' "
        "(launched from /usr/sbin/kamailio), or sip:HOST:PORT (yours)",
    )
    group.addoption(
        PROFILE_OPTION,
        default=None,
        metavar="NAME|FILE",
        help="target profile: a shipped name (reference, kamailio, opensips, "
        "generic) or a TOML file; default: the target's own",
    )
    group.addoption(
        SINGLE_OPTION,
        action="store_true",
        default=None,
        help="the server runs force_single_dialog=1 (launched targets start so)",
    )
    group.addoption(
        STRICT_OPTION,
        "--strict-rfc",
        action="store_true",
        default=False,
        dest="conformance_strict",
        help="SHOULD/DEF/IMPL violations fail instead of warn",
    )
    group.addoption(
        RFC_OPTION,
        type=_rfc,
        default=None,
        metavar="6665|3265",
        help="SIP events baseline (overrides the profile)",
    )
    group.addoption(
        FAULT_OPTION,
        action="append",
        default=[],
        metavar="NAME",
        help="reference target only: inject a fault (mutation testing)",
    )
    group.addoption(
        TIMEOUT_OPTION,
        type=_timeout,
        default=5.0,
        metavar="SECONDS",
        help="bound of every wait for a SIP message (default 5)",
    )
    group.addoption(
        SLOW_OPTION,
        action="store_true",
        default=False,
        help="also run the cases marked slow (they wait out timers of more than 30 s)",
    )
    _add_deployment_options(group)
    group.addoption(
        REPORT_OPTION,
        default=None,
        metavar="DIR",
        help="write results under DIR (default: reports/ of the working directory)",
    )


def _add_deployment_options(group: Any) -> None:
    """Options for testing a deployed server (issue 14): where the kit's peers live."""
    group.addoption(
        LOCAL_ADDRESS_OPTION,
        default=None,
        metavar="ADDR",
        help="address every SIP peer binds and advertises in Via/Contact (default: the "
        "source address the kernel picks towards the target)",
    )
    group.addoption(
        LABEL_OPTION,
        default=None,
        metavar="NAME",
        help="name of the target in reports and matrix columns (default: its kind, e.g. "
        "external, with the transport when not UDP)",
    )
    group.addoption(
        TLS_CA_OPTION,
        default=None,
        metavar="FILE",
        help="sips: targets: CA certificates (PEM) the server's certificate must chain to; its "
        "SAN must name the target's host or IP (default: the system's CAs)",
    )
    group.addoption(
        TLS_INSECURE_OPTION,
        action="store_true",
        default=False,
        help="sips: targets: do not verify the server's certificate",
    )


# -- settings and the target ---------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    target: str
    profile: Any  # conformance.targets.profile.Profile
    strict: bool
    faults: tuple[str, ...]
    timeout: float


def _settings(config: pytest.Config) -> Settings:
    if _settings_key not in config.stash:
        from conformance.targets.profile import load_profile

        target = config.getoption(TARGET_OPTION)
        kind = target.split(";")[0].split(":")[0]  # kamailio:single;transport=tcp -> kamailio
        default_profile = {"reference": "reference", "kamailio": "kamailio"}.get(kind, "generic")
        try:
            profile = load_profile(config.getoption(PROFILE_OPTION) or default_profile)
            profile = profile.with_overrides(
                single_dialog=config.getoption(SINGLE_OPTION), rfc=config.getoption(RFC_OPTION)
            )
        except ConformanceError as exc:
            raise pytest.UsageError(exc.message) from None
        faults = tuple(config.getoption(FAULT_OPTION))
        if faults and target != "reference":
            raise pytest.UsageError(f"{FAULT_OPTION} works only with {TARGET_OPTION} reference")
        config.stash[_settings_key] = Settings(
            target=target,
            profile=profile,
            strict=config.getoption("conformance_strict"),
            faults=faults,
            timeout=config.getoption(TIMEOUT_OPTION),
        )
    return config.stash[_settings_key]


def _worker(config: pytest.Config) -> str:
    return getattr(config, "workerinput", {}).get("workerid", "gw")


@pytest.fixture(scope="session")
def conformance_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved options: target spec, profile with command-line overrides, strictness."""
    return _settings(pytestconfig)


@pytest.fixture(scope="session")
def port_block(pytestconfig: pytest.Config) -> Iterator[Any]:
    """This worker's block of loopback ports, locked for the session."""
    from conformance.harness.ports import reserve_block

    worker = _worker(pytestconfig)
    digits = re.sub(r"\D", "", worker)
    block = reserve_block(int(digits) if digits else 0)
    yield block
    block.release()


@pytest.fixture(scope="session")
def target(
    conformance_settings: Settings,
    port_block: Any,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Any]:
    """The server under test for this worker: launched here, or the user's external one."""
    from conformance.harness import relay
    from conformance.harness.sipp import sipp_binary
    from conformance.targets import make_target

    workdir = tmp_path_factory.mktemp("target")
    ca = (pytestconfig.getoption(TLS_CA_OPTION), pytestconfig.getoption(TLS_INSECURE_OPTION))
    try:
        sipp_binary()  # every case needs SIPp: say so once, not in every case
        relay.configure(ca[0], insecure=ca[1])
        tgt = make_target(
            conformance_settings.target,
            profile=conformance_settings.profile,
            block=port_block,
            workdir=workdir,
            faults=conformance_settings.faults,
        )
        tgt.start()
        if getattr(tgt, "ca_path", None) and not any(ca):
            relay.configure(str(tgt.ca_path))  # a launched TLS server: trust its own CA
    except ConformanceError as exc:
        pytest.exit(f"dialog-info conformance: cannot start target: {exc.message}", returncode=3)
    try:
        yield tgt
    finally:
        tgt.stop()


@pytest.fixture(scope="session")
def local_address(target: Any, pytestconfig: pytest.Config) -> str:
    """The address the peers bind and advertise: ``--dialoginfo-local-address``, checked
    against the route to the target before any case runs, or the kernel's own choice."""
    from conformance.harness.local_address import check_local_address, source_address

    given = pytestconfig.getoption(LOCAL_ADDRESS_OPTION)
    try:
        if given:
            return check_local_address(given, target.host, target.port)
        return source_address(target.host, target.port)
    except ConformanceError as exc:
        pytest.exit(f"dialog-info conformance: {exc.message}", returncode=4)


@pytest.fixture
def presentity(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> str:
    """A user part unique to this test, worker and run (the suite may share a server)."""
    from conformance.case import unique_user

    return unique_user(_worker(pytestconfig), request.node.name[:12].strip("_[") or "p")


@pytest.fixture
def publisher(
    target: Any,
    port_block: Any,
    tmp_path: Path,
    conformance_settings: Settings,
    local_address: str,
) -> Any:
    """Sends PUBLISH through short-lived SIPp processes."""
    from conformance.harness.peers import Publisher

    return Publisher(
        server=(target.host, target.port),
        block=port_block,
        workdir=tmp_path / "publish",
        domain=target.domain,
        timeout=conformance_settings.timeout,
        local=local_address,
        transport=target.transport,
    )


@pytest.fixture
def watcher(
    target: Any,
    port_block: Any,
    tmp_path: Path,
    conformance_settings: Settings,
    local_address: str,
) -> Iterator[Any]:
    """A factory: ``watcher(user=..., expires=..., accept=..., answer=...)`` -> a started-later
    SIPp watcher; every watcher it made is closed (unsubscribed, reaped) after the test."""
    from conformance.harness.peers import Watcher

    made: list[Any] = []
    counter = iter(range(10_000))

    def make(**kw: Any) -> Any:
        w = Watcher(
            server=(target.host, target.port),
            block=port_block,
            workdir=tmp_path / f"watch-{next(counter)}",
            domain=target.domain,
            timeout=conformance_settings.timeout,
            local=local_address,
            transport=target.transport,
            **kw,
        )
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def case(
    request: pytest.FixtureRequest,
    target: Any,
    publisher: Any,
    watcher: Any,
    conformance_settings: Settings,
    pytestconfig: pytest.Config,
) -> Iterator[Any]:
    """The experiment handle: publish, subscribe, expect; findings are judged after the test."""
    from conformance.case import Case

    c = Case(
        name=_case_id(request.node),
        target=target,
        profile=conformance_settings.profile,
        publisher=publisher,
        new_watcher=watcher,
        worker=_worker(pytestconfig),
        timeout=conformance_settings.timeout,
    )
    request.node.stash[_case_key] = c
    yield c
    c.close()


@pytest.fixture
def expectation(case: Any, presentity: str) -> Any:
    """The oracle over what this test published to ``presentity``."""
    return case.expectation(presentity)


def _case_id(item: pytest.Item) -> str:
    """The id profiles key deviations by: the test function's name, without parameters."""
    return getattr(item, "originalname", None) or item.name.split("[", 1)[0]


# -- markers and verdicts ------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requirement(*ids): the REQUIREMENTS.md ids this conformance case checks; the case "
        "must emit a finding for each",
    )
    config.addinivalue_line("markers", "slow: a conformance case that waits more than 30 s")
    config.addinivalue_line("markers", "conformance: a case of the dialog-info conformance suite")
    config.addinivalue_line(
        "markers",
        "mode(name): the case applies only when the target runs in this mode "
        "('aggregate' or 'single', i.e. force_single_dialog)",
    )
    if not hasattr(config, "workerinput"):  # results are gathered on the xdist controller only
        from conformance.report.progress import Progress

        collector = Collector(config)
        config.stash[_collector_key] = collector
        config.pluginmanager.register(collector, "dialoginfo-conformance-collector")
        config.pluginmanager.register(
            Progress(config, property_key=USER_PROPERTY), "dialoginfo-conformance-progress"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(_collector_key, None)
    if collector is not None:
        config.pluginmanager.unregister(collector)
        progress = config.pluginmanager.get_plugin("dialoginfo-conformance-progress")
        if progress is not None:
            config.pluginmanager.unregister(progress)
        del config.stash[_collector_key]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cases = [item for item in items if item.get_closest_marker("requirement")]
    if not cases:
        return  # inert outside the suite: the profile is not even loaded
    mode = "single" if _settings(config).profile.single_dialog else "aggregate"
    for item in cases:
        for rid in item.get_closest_marker("requirement").args:
            if rid not in CATALOGUE:
                raise pytest.UsageError(f"{item.nodeid}: unknown requirement id {rid!r}")
            item.user_properties.append(("requirement", rid))  # junit.xml test properties
        if item.get_closest_marker("slow") and not config.getoption(SLOW_OPTION):
            item.add_marker(pytest.mark.skip(reason=f"slow case: opt in with {SLOW_OPTION}"))
        wanted = item.get_closest_marker("mode")
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
        case = item.stash.get(_case_key, None)
        if case is not None:
            case.finish()
    if case is not None:
        _judge(item, case)
    return result


def _judge(item: pytest.Item, case: Any) -> None:
    settings = _settings(item.config)
    case_id = _case_id(item)
    marker = item.get_closest_marker("requirement")
    declared = tuple(marker.args) if marker else ()
    judged = judge(
        case.findings,
        profile=case.profile,
        case_id=case_id,
        strict=settings.strict,
        declared=declared,
        variant=item.name,
    )
    item.stash[_judged_key] = judged
    if judged.failures:
        raise ConformanceFailure(judged.explain())
    if judged.known:
        pytest.xfail("known deviation: " + "; ".join(judged.known_reasons))


_judged_key = pytest.StashKey["Judged"]()


class ConformanceFailure(AssertionError):
    """A case's findings include a failure: the message lists each with its requirement id."""


@dataclass
class Judged:
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
    profile: Any,
    case_id: str,
    strict: bool,
    declared: tuple[str, ...] = (),
    variant: str | None = None,
) -> Judged:
    """Verdicts for one case's findings, with the profile's declared deviations applied.

    A declared deviation that did not happen (no violated finding with that id) is a failure:
    the declaration is stale, and a stale declaration would hide a regression later."""
    rows: list[tuple[Finding, Verdict, str | None]] = []
    failures, warnings, known, reasons = [], [], [], []
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    marker = item.get_closest_marker("requirement")
    if marker is None:
        return report
    case = item.stash.get(_case_key, None)
    skipped_early = call.when == "setup" and report.outcome != "passed"
    if not (call.when == "call" and case is not None) and not skipped_early:
        return report
    judged = item.stash.get(_judged_key, None)
    if judged is not None:
        rows = judged.findings
    else:
        rows = [(f, None, None) for f in (case.findings if case is not None else [])]
    blob = {
        "case": _case_id(item),
        "requirements": list(marker.args),
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


# -- controller: coverage and summary ------------------------------------------------------------


class Collector:
    """Gathers case blobs on the controller and prints the summary; registered as a plugin
    there only, like junitxml's LogXML (a worker's stash never reaches the controller)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cases: list[dict[str, Any]] = []
        self.started = time.time()
        self.target: dict[str, Any] = {}

    def pytest_sessionstart(self) -> None:
        self.started = time.time()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Take the blob out before junitxml sees it: junit.xml keeps the requirement ids only.
        blobs = [v for k, v in report.user_properties if k == USER_PROPERTY]
        report.user_properties[:] = [p for p in report.user_properties if p[0] != USER_PROPERTY]
        for value in blobs:
            blob = json.loads(value)
            if blob.get("target") and not self.target:
                self.target = dict(blob["target"])
            if blob.get("user_agent") and self.target and not self.target.get("user_agent"):
                self.target["user_agent"] = blob["user_agent"]
            blob["nodeid"] = report.nodeid
            blob["outcome"] = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            self.cases.append(blob)

    def coverage(self) -> dict[str, set[str]]:
        """Requirement ids per group that some finding named (passed or not)."""
        seen: dict[str, set[str]] = defaultdict(set)
        for blob in self.cases:
            for f in blob["findings"]:
                seen[f["requirement"][0]].add(f["requirement"])
        return seen

    def stale_wildcards(self) -> list[str]:
        """Deviations declared for every case ("*") that no case observed in this run."""
        declared = {rid: why for c in self.cases for rid, why in c.get("wildcards", {}).items()}
        seen = {
            f["requirement"]
            for c in self.cases
            for f in c["findings"]
            if f["verdict"] == str(Verdict.KNOWN)
        }
        ran = {f["requirement"] for c in self.cases for f in c["findings"]}
        return [
            f"{rid}: {reason}" for rid, reason in declared.items() if rid in ran and rid not in seen
        ]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.cases and self.stale_wildcards() and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.cases:
            return  # inert: no conformance case ran in this session
        for line in self.stale_wildcards():
            terminalreporter.write_line(
                f"FAILED declared deviation for every case did not happen: {line}; "
                "update the profile",
                red=True,
            )
        settings = _settings(self.config)
        tr = terminalreporter
        tr.section("dialog-info conformance")
        tr.write_line(
            f"target: {settings.target}  profile: {settings.profile.name}  "
            f"single-dialog: {settings.profile.single_dialog}  "
            f"strict: {settings.strict}"
        )
        seen = self.coverage()
        for g, title in GROUPS.items():
            rows = [r for r in CATALOGUE.values() if r.group == g]
            must = [r for r in rows if r.level in (Level.MUST, Level.MUST_STAR)]
            got = seen.get(g, set())
            line = f"{g} {title}: {len(got)}/{len(rows)} requirements covered"
            if must:
                covered = sum(1 for r in must if r.id in got)
                line += f"; MUST/MUST* {covered}/{len(must)} ({100 * covered // len(must)}%)"
            tr.write_line(line)
        warnings = [(c["case"], w) for c in self.cases for w in c.get("warnings", [])]
        known = [
            (c["case"], f)
            for c in self.cases
            for f in c["findings"]
            if f["verdict"] == str(Verdict.KNOWN)
        ]
        self._write_report(tr, settings)
        if warnings:
            tr.write_line(
                f"{len(warnings)} warning(s) (SHOULD/DEF/IMPL; {STRICT_OPTION} makes them fail):"
            )
            for case_id, w in warnings:
                tr.write_line(f"  WARN {case_id}: {w}")
        if known:
            tr.write_line(f"{len(known)} known deviation(s) declared by the profile:")
            for case_id, f in known:
                tr.write_line(f"  KNOWN {case_id}: {f['requirement']} {f['reason']}")

    def _write_report(self, tr: Any, settings: Settings) -> None:
        from conformance import __version__
        from conformance.report.results import build_results
        from conformance.report.run_dir import write_run

        profile = settings.profile
        target = dict(self.target) or {
            "kind": settings.target,
            "profile": profile.name,
            "single_dialog": profile.single_dialog,
        }
        if self.config.getoption(LABEL_OPTION):
            target["label"] = self.config.getoption(LABEL_OPTION)
        run_info = {
            "target": target,
            "kit_version": __version__,
            "started": _iso(self.started),
            "finished": _iso(time.time()),
            "mode": "single" if profile.single_dialog else "aggregate",
            "options": {
                "target": settings.target,
                "profile": profile.name,
                "strict": settings.strict,
                "faults": list(settings.faults),
                "rfc": profile.rfc,
            },
        }
        base = Path(self.config.getoption(REPORT_OPTION) or "reports")
        try:
            run_dir = write_run(build_results(run_info, self.cases), base)
        except (ConformanceError, OSError) as exc:
            tr.write_line(f"report not written: {getattr(exc, 'message', exc)}")
            return
        junit = getattr(self.config.option, "xmlpath", None)
        if junit and Path(junit).is_file():  # --junitxml was written just before this summary
            shutil.copyfile(junit, run_dir / "junit.xml")
        tr.write_line(f"report: {run_dir / 'report.html'}")


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat(timespec="seconds")
