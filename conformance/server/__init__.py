"""The embedded reference presence server for ``Event: dialog``.

``core`` is the sans-IO protocol core (no networking code at all); ``protocol`` is the thin
asyncio UDP adapter; ``faults`` holds the named fault switches used for mutation testing.
"""

from conformance.server.core import LogRecord, PresenceCore, ServerConfig
from conformance.server.faults import FAULTS, Fault

__all__ = ["FAULTS", "Fault", "LogRecord", "PresenceCore", "ServerConfig"]
