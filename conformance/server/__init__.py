"""The embedded reference presence server for ``Event: dialog``.

``core`` is the sans-IO protocol core (no networking code at all) and ``bodies`` its own NOTIFY
body builder; ``protocol`` is the thin asyncio UDP adapter; ``hooks`` names every point a fault
may bend, with RFC-strict defaults; ``faults`` is the layer of named faults used for mutation
testing, installed through those hooks (the core imports nothing from it).
"""

from conformance.server.core import LogRecord, PresenceCore, ServerConfig
from conformance.server.faults import FAULTS, Fault, hooks_for
from conformance.server.hooks import Hooks

__all__ = ["FAULTS", "Fault", "Hooks", "LogRecord", "PresenceCore", "ServerConfig", "hooks_for"]
