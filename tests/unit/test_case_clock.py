"""The case's bookkeeping runs on the clock it is given: expiry and order follow that clock, and
imposed waits advance it instead of sleeping."""

from __future__ import annotations

from unittest.mock import MagicMock

from conformance.case import Case, Clock, Expectation
from conformance.oracle.dialoginfo import dialog, document
from conformance.oracle.history import Stimulus
from conformance.targets.profile import Profile


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def _stimulus(body: bytes, expires: int) -> Stimulus:
    return Stimulus("publish", "publish #1", 0.0, 0.0, 200, body=body, etag="e1", expires=expires)


def test_expectation_expires_publications_on_the_given_clock() -> None:
    fake = FakeClock()
    clock = Clock(now=fake.now, sleep=fake.sleep)
    exp = Expectation("sip:a@example.com", Profile(), clock)
    body = document("sip:a@example.com", [dialog("x", "confirmed")])
    exp.record(_stimulus(body, expires=60))
    assert [d.id for d in exp.aggregate().dialogs] == ["x"]
    fake.t += 61  # no real time passes
    assert exp.aggregate().dialogs == ()


def test_case_waits_advance_the_clock_instead_of_sleeping() -> None:
    fake = FakeClock()
    case = Case(
        name="t",
        target=MagicMock(),
        profile=Profile(),
        publisher=MagicMock(),
        new_watcher=MagicMock(),
        worker="gw0",
        timeout=1.0,
        clock=Clock(now=fake.now, sleep=fake.sleep),
    )
    case.wait(35.0)
    assert fake.slept == [35.0]
    assert fake.t == 1035.0
    assert case.waited == 35.0
