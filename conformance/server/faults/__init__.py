"""The faults layer of the reference server: each fault breaks one rule of REQUIREMENTS.md.

A conformance suite is only as good as the faults it catches. The mutation tests start the
reference server with ``--fault NAME`` and expect at least one finding carrying one of the
fault's requirement ids. The server itself knows no fault: ``core.py``, ``bodies.py`` and
``protocol.py`` expose named hooks (``hooks.py``) with RFC-strict defaults, and each fault here
replaces or wraps a few of them (``hooks_for``). Faults are grouped by the component they bend:
``faults/core.py`` (PUBLISH, SUBSCRIBE, NOTIFY, versions) and ``faults/bodies.py`` (the body
builder); a call proxy adds its own module. Nothing here is imported by the oracle that judges
the server, so a fault can never leak into the expectation.

The registry is frozen (a ``MappingProxyType``): the set of faults is part of the kit's
contract, and the mutation score is computed over exactly these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType

from conformance.errors import UsageError
from conformance.server.faults import bodies, calls, core
from conformance.server.faults.base import Fault
from conformance.server.hooks import Hooks

__all__ = ["FAULTS", "Fault", "check_names", "hooks_for"]

FAULTS: MappingProxyType[str, Fault] = MappingProxyType(
    {f.name: f for f in (*bodies.FAULTS, *core.FAULTS, *calls.FAULTS)}
)
"""Every fault by name: the body builder's, then the core's."""


def check_names(names: Iterable[str]) -> frozenset[str]:
    """The names as a set; a ``UsageError`` naming the first unknown one and listing the rest."""
    names = tuple(names)
    for name in names:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    return frozenset(names)


def hooks_for(names: Iterable[str]) -> Hooks:
    """Fresh hooks for one server with the named faults installed (sorted, so the order the
    names were given in does not matter)."""
    hooks = Hooks()
    for name in sorted(check_names(names)):
        FAULTS[name].install(hooks)
    return hooks
