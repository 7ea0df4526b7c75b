"""Expected dialog state of a call's caller and callee, derived from what the peers saw."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class CallProfile:
    """What the publishing module was told to send (pua_dialoginfo's parameters)."""

    include_callid: bool = True
    include_tags: bool = True
    include_localremote: bool = True
    caller_confirmed: bool = False
    publish_on_trying: bool = False

    @classmethod
    def kamailio(cls) -> CallProfile:
        return cls()

    def describe(self) -> dict[str, bool]:
        return asdict(self)
