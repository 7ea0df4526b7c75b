"""What a fault is: a name, what it breaks, and how it bends the server's hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from conformance.server.hooks import Hooks


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    description: str
    """One line saying what the faulted server does wrong."""
    requirements: tuple[str, ...]
    """Catalogue ids a conforming suite must report as failed when the fault is on."""
    install: Callable[[Hooks], None]
    """Replaces or wraps hooks of one server's ``Hooks`` (called once per server instance, so
    a fault may keep its own state in a closure)."""
