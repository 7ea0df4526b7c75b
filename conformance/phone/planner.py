"""Which probe comes next: the fixed probes, and two searches for exact limits (pure).

A phone that takes 4 dialogs and fails at 5 should be reported as exactly that, not as
"accepts 2, fails at 5". The planner first sends the plain one-dialog probe, then searches the
dialog count and the body size, then the fixed probes (those most likely to end the subscription
last, see ``probes.FIXED_PLAN``).

A search walks a coarse ladder (2, 5, 20 dialogs; 4 kB, 16 kB) up to its maximum
(``--max-dialogs``, ``--max-body``) until a probe fails, then bisects between the largest value
accepted and the smallest that failed. A failure is anything but a 2xx: a rejection, a NOTIFY
ignored by a live phone (a silent drop), or a crash. Bisection only ever probes *below* the
smallest failure, so a value that crashed the phone is never sent again, unless
``retry_crashes`` asks to send it once more to confirm the crash reproduces.

Pure: the session tells the planner each outcome (``record``) and asks for the next probe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from conformance.phone import probes
from conformance.phone.probes import Probe

SearchKind = Literal["count", "size"]


@dataclass(slots=True)
class Search:
    """The state of one search: what is known about the limit so far."""

    kind: SearchKind
    maximum: int
    ladder: list[int]
    accepted: int = 0
    """Largest value the phone accepted (0: none yet)."""
    failed: int | None = None
    """Smallest value the phone failed on (None: none yet)."""
    crashed: int | None = None
    """Smallest value that crashed the phone."""
    retried: set[int] = field(default_factory=set)

    @property
    def gap(self) -> int:
        return 1 if self.kind == "count" else probes.SIZE_PRECISION

    def peek(self) -> int | None:
        """The value to probe next, or None when the limit is known (or the maximum passed)."""
        if self.failed is None:
            return next((v for v in self.ladder if v > self.accepted), None)
        if self.failed - self.accepted <= self.gap:
            return None
        return (self.accepted + self.failed) // 2

    def take(self) -> int | None:
        """``peek``, and drop the ladder steps up to it (they are being probed or known)."""
        value = self.peek()
        if value is not None and self.failed is None:
            self.ladder = [v for v in self.ladder if v > value]
        return value

    def record(self, value: int, ok: bool, crashed: bool) -> None:
        if ok:
            self.accepted = max(self.accepted, value)
            return
        self.failed = value if self.failed is None else min(self.failed, value)
        if crashed:
            self.crashed = value if self.crashed is None else min(self.crashed, value)


def _ladder(steps: tuple[int, ...], maximum: int) -> list[int]:
    return sorted({v for v in steps if v <= maximum} | {maximum})


class Planner:
    """Hands out probes one at a time and learns from each outcome; see the module docstring."""

    def __init__(
        self,
        fixed: tuple[Probe, ...],
        *,
        max_dialogs: int = 20,
        max_body: int = 16 * 1024,
        retry_crashes: bool = False,
    ) -> None:
        first = [p for p in fixed if p.name == probes.FIRST.name]
        self._queue: list[Probe] = first[:1]
        self._rest: list[Probe] = [p for p in fixed if p.name != probes.FIRST.name]
        self.retry_crashes = retry_crashes
        self.searches: dict[SearchKind, Search] = {}
        if max_dialogs > 1:
            self.searches["count"] = Search(
                "count", max_dialogs, _ladder(probes.COUNT_LADDER, max_dialogs)
            )
        if max_body > 0:
            self.searches["size"] = Search("size", max_body, _ladder(probes.SIZE_LADDER, max_body))
        self._order: list[SearchKind] = [k for k in ("count", "size") if k in self.searches]
        self._retry: Probe | None = None

    def next(self) -> Probe | None:
        """The next probe to send, or None when the plan is through."""
        if self._retry is not None:
            probe, self._retry = self._retry, None
            return probe
        if self._queue:
            return self._queue.pop(0)
        while self._order:
            search = self.searches[self._order[0]]
            value = search.take()
            if value is not None:
                return self._probe(search.kind, value)
            self._order.pop(0)
        if self._rest:
            return self._rest.pop(0)
        return None

    def record(self, probe: Probe, outcome: str, body_bytes: int | None = None) -> None:
        """Learn from one settled probe (``accepted``, ``rejected``, ``dropped``, ``crashed``).

        The first probe's body, when accepted, is also the smallest size known to pass: the
        size search never bisects below it (smaller padded bodies are the same body)."""
        ok = outcome == "accepted"
        crashed = outcome == "crashed"
        size = self.searches.get("size")
        if ok and probe.name == probes.FIRST.name and size is not None and body_bytes:
            size.accepted = max(size.accepted, body_bytes)
        kind, value = _search_value(probe)
        if kind is None:
            return
        search = self.searches.get(kind)
        if search is None:
            return
        search.record(value, ok, crashed)
        if crashed and self.retry_crashes and value not in search.retried:
            search.retried.add(value)
            self._retry = probe

    def remaining(self) -> list[Probe]:
        """What would still have been sent: a stand-in for each unfinished search, then the
        fixed probes not reached (all reported as not run)."""
        out: list[Probe] = []
        if self._retry is not None:
            out.append(self._retry)
        out += self._queue
        for kind in self._order:
            value = self.searches[kind].peek()
            if value is not None:
                out.append(self._probe(kind, value))
        return out + self._rest

    def drain(self) -> list[Probe]:
        """``remaining()``, and forget it all: nothing more will be handed out."""
        out = self.remaining()
        self._retry = None
        self._queue.clear()
        self._order.clear()
        self._rest.clear()
        return out

    @staticmethod
    def _probe(kind: SearchKind, value: int) -> Probe:
        return probes.count_probe(value) if kind == "count" else probes.size_probe(value)


def _search_value(probe: Probe) -> tuple[SearchKind | None, int]:
    """Which search a probe informs, and with which value: the first probe counts as one
    dialog (it is the plain body the count probes extend)."""
    if probe.group == "count" or probe.name == probes.FIRST.name:
        return "count", probe.dialogs
    if probe.group == "size":
        return "size", probe.size
    return None, 0
