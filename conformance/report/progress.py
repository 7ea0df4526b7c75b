"""Progress of long runs on the terminal: cases done / total, failures so far, time left.

A run against a server with long timers takes minutes, and pytest's dots (or xdist's
``[gw1] PASSED`` lines) do not say how far along it is or whether anything failed yet. This
plugin prints one line every ``every`` cases or ``interval`` seconds, whichever comes first,
through ``terminalreporter.write_line`` on a line of its own (a pending line of pytest's dots
is ended first), so pytest's own output is never cut in the middle.

Register it on the controller only (under xdist, workers' terminals are not shown), e.g. in
``pytest_configure``::

    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Progress(config), "dialoginfo-conformance-progress")

It counts a test as done at its teardown report, and as failed when any phase failed (an
xfail is a known deviation, not a failure). With ``property_key`` set it stays silent until a
report carrying that user property arrives, so registering it unconditionally does not make
an ordinary pytest session chatty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


class Progress:
    """A pytest plugin object; see the module docstring for how to register it."""

    def __init__(
        self,
        config: pytest.Config,
        *,
        every: int = 10,
        interval: float = 5.0,
        min_total: int = 20,
        property_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "dialog-info conformance",
    ) -> None:
        self.config = config
        self.every = max(1, every)
        self.interval = interval
        self.min_total = min_total
        self.property_key = property_key
        self.clock = clock
        self.prefix = prefix
        self.total = 0
        self.done = 0
        self.failed: set[str] = set()
        self.known: set[str] = set()
        self.active = property_key is None
        self.started = clock()
        self.last_print = self.started
        self.last_done = 0

    # -- totals: collected in-process, or reported by each xdist worker -----------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not hasattr(self.config, "workerinput"):
            self.total = max(self.total, len(session.items))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        # Every worker collects the whole session (then runs its share): any one gives total.
        self.total = max(self.total, len(ids))

    # -- counting ----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # tryfirst, and registered after the conformance collector (also tryfirst, so called
        # after this one): the collector takes its blob out of user_properties, and without
        # the blob this plugin never saw a conformance case and stayed silent.
        if not self.active and any(k == self.property_key for k, _ in report.user_properties):
            self.active = True
        if hasattr(report, "wasxfail"):
            self.known.add(report.nodeid)
        elif report.failed:
            self.failed.add(report.nodeid)
        if report.when != "teardown":
            return
        self.done += 1
        self._maybe_print()

    def line(self) -> str:
        """The progress line as it would print now."""
        elapsed = self.clock() - self.started
        total = f"/{self.total}" if self.total else ""
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        eta = ""
        if self.total and 0 < self.done < self.total:
            left = elapsed / self.done * (self.total - self.done)
            eta = f", about {_duration(left)} left"
        known = f", {len(self.known)} known deviation(s)" if self.known else ""
        return (
            f"{self.prefix}: {self.done}{total} cases done{pct}, "
            f"{len(self.failed)} failed{known}, {_duration(elapsed)} elapsed{eta}"
        )

    def _maybe_print(self) -> None:
        if not self.active or (self.total and self.total < self.min_total):
            return
        if self.total and self.done >= self.total:
            return  # pytest's own summary follows at once
        now = self.clock()
        due = self.done - self.last_done >= self.every or now - self.last_print >= self.interval
        if not due:
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        self._end_partial_line()
        reporter.write_line(self.line())
        self.last_print, self.last_done = now, self.done

    def _end_partial_line(self) -> None:
        """Finish a line of progress dots first: ``write_line`` only breaks lines it knows
        pytest left open per file, and under ``-q`` and xdist the dots line is not one."""
        get_writer = getattr(self.config, "get_terminal_writer", None)
        writer = get_writer() if get_writer is not None else None
        if writer is not None and getattr(writer, "width_of_current_line", None):
            writer.line()


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    return f"{minutes} min {secs:02d} s"
