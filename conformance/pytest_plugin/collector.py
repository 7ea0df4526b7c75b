"""The controller side: gathers every case's blob, prints the summary, writes the report.

Registered on the xdist controller only (or the single process without xdist), like junitxml's
LogXML: a worker's stash never reaches the controller, so everything the summary needs travels
in the reports' ``user_properties``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import ConformanceError
from conformance.oracle.findings import Verdict
from conformance.oracle.requirements import CATALOGUE, GROUPS, Level
from conformance.pytest_plugin.hooks import USER_PROPERTY
from conformance.pytest_plugin.options import LABEL_OPTION, STRICT_OPTION, Settings, settings

COLLECTOR_NAME = "dialoginfo-conformance-collector"
PROGRESS_NAME = "dialoginfo-conformance-progress"

_collector_key = pytest.StashKey["Collector"]()


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # results are gathered on the xdist controller only
        return
    from conformance.report.progress import Progress

    collector = Collector(config)
    config.stash[_collector_key] = collector
    config.pluginmanager.register(collector, COLLECTOR_NAME)
    config.pluginmanager.register(Progress(config, property_key=USER_PROPERTY), PROGRESS_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    collector = config.stash.get(_collector_key, None)
    if collector is None:
        return
    config.pluginmanager.unregister(collector)
    progress = config.pluginmanager.get_plugin(PROGRESS_NAME)
    if progress is not None:
        config.pluginmanager.unregister(progress)
    del config.stash[_collector_key]


class Collector:
    """Gathers case blobs on the controller and prints the summary."""

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
            blob = json.loads(str(value))
            if blob.get("target") and not self.target:
                self.target = dict(blob["target"])
            if blob.get("user_agent") and self.target and not self.target.get("user_agent"):
                self.target["user_agent"] = blob["user_agent"]
            blob["nodeid"] = report.nodeid
            blob["outcome"] = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            self.cases.append(blob)

    def coverage(self) -> dict[str, set[str]]:
        """Requirement ids per group that some judged finding named (passed or not); a
        ``skipped`` finding covers nothing."""
        seen: dict[str, set[str]] = defaultdict(set)
        for blob in self.cases:
            for f in blob["findings"]:
                if not f.get("skipped"):
                    seen[f["requirement"][0]].add(f["requirement"])
        return seen

    def stale_wildcards(self) -> list[str]:
        """Deviations declared for every case ("*", or implied by a profile fact) that excused
        nothing in this run although their requirement was judged: stale declarations."""
        declared: dict[str, dict[str, Any]] = {}
        for c in self.cases:
            for d in c.get("wildcards", []):
                declared[json.dumps(d, sort_keys=True)] = d
        used = {
            json.dumps({"requirement": f["requirement"], **f["excused_by"]}, sort_keys=True)
            for c in self.cases
            for f in c["findings"]
            if f.get("excused_by")
        }
        ran = {f["requirement"] for c in self.cases for f in c["findings"] if not f.get("skipped")}
        return [
            f"{d['requirement']} observed {d.get('observed') or d.get('observed_re')!r}: "
            f"{d['reason']}"
            for key, d in declared.items()
            if d["requirement"] in ran and key not in used
        ]

    def outcomes(self) -> str:
        """Cases per outcome, counted exactly as results.json counts them."""
        from conformance.report.results import CASE_VERDICTS, case_verdict

        verdicts = [case_verdict(c) for c in self.cases]
        return ", ".join(f"{verdicts.count(v)} {v}" for v in CASE_VERDICTS if v in verdicts)

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
        resolved = settings(self.config)
        tr = terminalreporter
        tr.section("dialog-info conformance")
        tr.write_line(
            f"target: {resolved.target}  profile: {resolved.profile.name}  "
            f"single-dialog: {resolved.profile.single_dialog}  "
            f"strict: {resolved.strict}"
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
        self._write_report(tr, resolved)
        tr.write_line("cases by the verdict table (docs/VERDICTS.md): " + self.outcomes())
        if warnings:
            tr.write_line(
                f"{len(warnings)} warning(s) (SHOULD/DEF/IMPL; {STRICT_OPTION} makes them fail):"
            )
            for case, w in warnings:
                tr.write_line(f"  WARN {case}: {w}")
        if known:
            tr.write_line(f"{len(known)} known deviation(s) declared by the profile:")
            for case, f in known:
                tr.write_line(f"  KNOWN {case}: {f['requirement']} {f['reason']}")

    def _write_report(self, tr: Any, resolved: Settings) -> None:
        from conformance import __version__
        from conformance.report.results import build_results
        from conformance.report.run_dir import write_run

        profile = resolved.profile
        target = dict(self.target) or {
            "kind": resolved.target,
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
                "target": resolved.target,
                "profile": profile.name,
                "strict": resolved.strict,
                "faults": list(resolved.faults),
                "rfc": profile.rfc,
                # xdist workers after -n auto was resolved (0: one process); benchmarks
                # divide the waits by it to give a run's floor
                "workers": int(getattr(self.config.option, "numprocesses", 0) or 0),
            },
        }
        base = Path(resolved.report or "reports")
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
