"""The kit's exceptions, one root for all of them.

    ConformanceError            never raised itself; ``except ConformanceError`` catches the kit
    ├── UsageError              the kit was misused: a bad option, a missing file, a bad profile
    │   └── ToolMissingError    SIPp or Kamailio is not installed (the message says how to get it)
    ├── BodyError               a dialog-info body was refused: not well-formed, hostile, too big
    ├── SipParseError           bytes that are not a SIP message
    └── HarnessError            a process the kit started failed or did not answer in time
        └── NotReceivedError    an awaited message (a response, a NOTIFY) did not arrive in time

The split follows h11's Local/Remote: a ``UsageError`` is the user's to fix; ``BodyError`` and
``SipParseError`` describe what a peer sent and usually become findings; ``HarnessError`` says the
experiment itself could not be run.
"""

from __future__ import annotations


class ConformanceError(Exception):
    """Root of the kit's exceptions. Raise a subclass."""

    def __init__(self, message: str) -> None:
        if type(self) is ConformanceError:
            raise TypeError("raise a subclass of ConformanceError")
        super().__init__(message)
        self.message = message


class UsageError(ConformanceError):
    """The kit was called wrongly: the message names the bad input and what would be right."""


class ToolMissingError(UsageError):
    """A program the kit drives (sipp, kamailio) is not installed."""


class BodyError(ConformanceError):
    """A dialog-info body could not be accepted.

    ``requirement`` is the catalogue id the refusal stands for (A02 for a body that is not
    well-formed, A04 for bytes that are not UTF-8).
    """

    def __init__(self, message: str, *, requirement: str = "A02") -> None:
        super().__init__(message)
        self.requirement = requirement


class SipParseError(ConformanceError):
    """Bytes that could not be read as a SIP message; the message quotes the bad part."""


class HarnessError(ConformanceError):
    """A process the kit started failed; the message names the command and its log files."""


class NotReceivedError(HarnessError):
    """An awaited message did not arrive within its time bound; the message says which."""
