"""Faults of the call proxy's dialog tracker (group E): each breaks one E rule and no other.

Each bends one ``CallHooks`` decision of ``server/dialogs.py``. Where a fault touches one party
only, that is on purpose: the oracle names a misplaced state by the step it belongs to, and the
caller's ``trying`` (E12) would otherwise take the blame for a callee rule.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.server.faults.base import Fault
from conformance.server.hooks import Hooks


def _callee_never_early(h: Hooks) -> None:
    previous = h.calls.publishes

    def not_early(publish: bool, state: str, party: str) -> bool:
        return previous(publish, state, party) and not (party == "callee" and state == "early")

    h.calls.publishes = not_early


def _never_confirmed(h: Hooks) -> None:
    previous = h.calls.state

    def early(state: str, party: str) -> str:
        state = previous(state, party)
        return "early" if state == "confirmed" else state

    h.calls.state = early


def _swap_event(a: str, b: str) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.calls.event

        def swapped(event: str | None, party: str) -> str | None:
            event = previous(event, party)
            return {a: b, b: a}.get(event or "", event)

        h.calls.event = swapped

    return install


def _event_as(was: str, shown: str) -> Callable[[Hooks], None]:
    """A fault that shows the ``was`` event of a terminated dialog as ``shown``."""

    def install(h: Hooks) -> None:
        previous = h.calls.event

        def bent(event: str | None, party: str) -> str | None:
            event = previous(event, party)
            return shown if event == was else event

        h.calls.event = bent

    return install


def _direction_swapped(h: Hooks) -> None:
    previous = h.calls.direction

    def swapped(direction: str, party: str) -> str:
        direction = previous(direction, party)
        return {"initiator": "recipient", "recipient": "initiator"}.get(direction, direction)

    h.calls.direction = swapped


def _tags_swapped(h: Hooks) -> None:
    previous = h.calls.tags

    def swapped(tags: tuple[str | None, str | None], party: str) -> tuple[str | None, str | None]:
        local, remote = previous(tags, party)
        return (remote, local) if local and remote else (local, remote)

    h.calls.tags = swapped


def _identities_swapped(h: Hooks) -> None:
    previous = h.calls.identities

    def swapped(identities: tuple[str, str], party: str) -> tuple[str, str]:
        local, remote = previous(identities, party)
        return remote, local

    h.calls.identities = swapped


def _slow_end(h: Hooks) -> None:
    previous = h.calls.delay

    def late(delay: float, state: str) -> float:
        delay = previous(delay, state)
        return delay + 3.0 if state in ("local-bye", "remote-bye") else delay

    h.calls.delay = late


def _revives(h: Hooks) -> None:
    h.calls.revives = lambda revives: True


def _callee_trying(h: Hooks) -> None:
    h.calls.callee_trying = lambda publish: True


FAULTS: tuple[Fault, ...] = (
    Fault(
        "call-callee-never-early",
        "the callee's early dialog (tagged 1xx) is never published",
        ("E01",),
        _callee_never_early,
    ),
    Fault(
        "call-never-confirmed",
        "an answered call is still published 'early'",
        ("E02",),
        _never_confirmed,
    ),
    Fault(
        "call-rejected-as-cancelled",
        "a rejected call ends with event 'cancelled'",
        ("E03",),
        _event_as("rejected", "cancelled"),
    ),
    Fault(
        "call-cancelled-as-rejected",
        "a cancelled call ends with event 'rejected'",
        ("E04",),
        _event_as("cancelled", "rejected"),
    ),
    Fault(
        "call-bye-swapped",
        "local-bye and remote-bye are swapped",
        ("E05",),
        _swap_event("local-bye", "remote-bye"),
    ),
    Fault(
        "call-direction-swapped",
        "initiator and recipient are swapped",
        ("E06",),
        _direction_swapped,
    ),
    Fault(
        "call-tags-swapped",
        "local-tag and remote-tag are swapped once both are known",
        ("E07",),
        _tags_swapped,
    ),
    Fault(
        "call-identities-swapped",
        "the local and remote identities are swapped",
        ("E08",),
        _identities_swapped,
    ),
    Fault(
        "call-slow-end",
        "the end of a call by BYE is published 3 s late",
        ("E09",),
        _slow_end,
    ),
    Fault(
        "call-revives",
        "an ended call is published 'confirmed' again",
        ("E11",),
        _revives,
    ),
    Fault(
        "call-callee-trying",
        "the callee's 'trying' is published though the profile says publish on trying is off",
        ("E12",),
        _callee_trying,
    ),
)
