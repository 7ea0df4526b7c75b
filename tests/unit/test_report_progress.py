"""Progress: when it prints, what it counts, and that it stays quiet when it should."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from conformance.report.progress import Progress

KEY = "dialoginfo-conformance"


class FakeReporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


class FakeConfig:
    def __init__(self) -> None:
        self.reporter = FakeReporter()
        self.pluginmanager = self

    def get_plugin(self, name: str) -> Any:
        return self.reporter if name == "terminalreporter" else None


@dataclass
class FakeReport:
    nodeid: str
    when: str
    outcome: str = "passed"
    user_properties: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _finish(p: Progress, nodeid: str, outcome: str = "passed", **extra: Any) -> None:
    call = FakeReport(nodeid, "call", outcome, [(KEY, "{}")])
    for k, v in extra.items():
        setattr(call, k, v)
    p.pytest_runtest_logreport(call)  # type: ignore[arg-type]
    p.pytest_runtest_logreport(FakeReport(nodeid, "teardown"))  # type: ignore[arg-type]


def _progress(total: int = 40, **kw: Any) -> tuple[Progress, FakeConfig, Clock]:
    config, clock = FakeConfig(), Clock()
    p = Progress(config, clock=clock, **kw)  # type: ignore[arg-type]
    p.pytest_xdist_node_collection_finished(node=None, ids=[f"t{i}" for i in range(total)])
    return p, config, clock


def test_prints_every_n_cases_with_failures() -> None:
    p, config, _ = _progress(every=10)
    for i in range(25):
        _finish(p, f"t{i}", "failed" if i in (3, 12) else "passed")
    lines = config.reporter.lines
    assert len(lines) == 2
    assert lines[0].startswith("dialog-info conformance: 10/40 cases done (25%), 1 failed")
    assert lines[1].startswith("dialog-info conformance: 20/40 cases done (50%), 2 failed")


def test_prints_after_interval_even_between_multiples() -> None:
    p, config, clock = _progress(every=100, interval=5.0)
    _finish(p, "t0")
    assert config.reporter.lines == []
    clock.now += 6
    _finish(p, "t1")
    assert len(config.reporter.lines) == 1
    assert "2/40 cases done" in config.reporter.lines[0]
    assert "6 s elapsed" in config.reporter.lines[0]
    assert "about 1 min 54 s left" in config.reporter.lines[0]


def test_xfail_is_a_known_deviation_not_a_failure() -> None:
    p, config, _ = _progress(every=2)
    _finish(p, "t0", "skipped", wasxfail="known deviation: A07")
    _finish(p, "t1")
    assert "0 failed, 1 known deviation(s)" in config.reporter.lines[0]


def test_setup_error_counts_once() -> None:
    p, config, _ = _progress(every=1)
    p.pytest_runtest_logreport(FakeReport("t0", "setup", "failed", [(KEY, "{}")]))  # type: ignore[arg-type]
    p.pytest_runtest_logreport(FakeReport("t0", "teardown", "failed"))  # type: ignore[arg-type]
    assert "1/40 cases done (2%), 1 failed" in config.reporter.lines[0]


def test_quiet_for_short_runs_and_at_the_end() -> None:
    p, config, _ = _progress(total=5, every=1)
    for i in range(5):
        _finish(p, f"t{i}")
    assert config.reporter.lines == []
    p, config, _ = _progress(total=20, every=10)
    for i in range(20):
        _finish(p, f"t{i}")
    assert len(config.reporter.lines) == 1  # at 10, not at 20/20: pytest's summary follows


def test_inert_until_a_conformance_report_arrives() -> None:
    p, config, _ = _progress(every=1, property_key=KEY)
    p.pytest_runtest_logreport(FakeReport("t0", "call"))  # type: ignore[arg-type]
    p.pytest_runtest_logreport(FakeReport("t0", "teardown"))  # type: ignore[arg-type]
    assert config.reporter.lines == []
    _finish(p, "t1")
    assert len(config.reporter.lines) == 1


def test_in_process_collection_sets_total() -> None:
    config, clock = FakeConfig(), Clock()
    p = Progress(config, clock=clock, every=1, min_total=1)  # type: ignore[arg-type]

    class Session:
        items = [object()] * 3

    p.pytest_collection_finish(Session())  # type: ignore[arg-type]
    _finish(p, "t0")
    assert config.reporter.lines == [
        "dialog-info conformance: 1/3 cases done (33%), 0 failed, 0 s elapsed, about 0 s left"
    ]


def test_ends_a_pending_line_of_dots_first() -> None:
    class Writer:
        width_of_current_line = 10
        ended = 0

        def line(self) -> None:
            self.ended += 1
            self.width_of_current_line = 0

    writer = Writer()
    p, config, _ = _progress(every=1)
    config.get_terminal_writer = lambda: writer  # type: ignore[attr-defined]
    _finish(p, "t0")
    assert writer.ended == 1 and len(config.reporter.lines) == 1
    _finish(p, "t1")
    assert writer.ended == 1  # already at the start of a line: no blank line
