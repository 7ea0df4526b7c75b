"""SIPp's ``-trace_msg`` message file read back as SIP messages.

Sans-IO: the parser is fed bytes and returns messages; reading the file (while SIPp still writes
it) is the caller's business. SIPp writes one entry per message it sends or receives::

    ----------------------------------------------- 2026-11-27 09:53:01.446573
    UDP message sent (523 bytes):
    <blank line>
    <exactly 523 bytes of the message>
    <newline>

(received messages say ``UDP message received [343] bytes :``). The byte count is trusted, not
the separator, so a body that happens to contain a line of dashes cannot cut a message short.
Entries of other kinds (3PCC ``TCP control message`` lines, diagnostics) are skipped, and an
entry whose bytes are not all written yet is left in the buffer for the next ``feed``: SIPp
flushes after every message but a reader can still catch it mid-write.

Retransmissions are recognised, not hidden: a message with the same direction, Call-ID, Via
branch, CSeq and method (requests) or status (responses) as an earlier one is returned with
``retransmission=True``. A UDP peer retransmits whenever an answer is slow, so counting raw
entries would see NOTIFYs that were never sent as new ones (BEHAVIOUR.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from conformance.errors import SipParseError
from conformance.sip.message import Message, Request, Stamped, parse

_SEPARATOR = re.compile(rb"-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,9})?)\r?\n")
_HEADLINE = re.compile(
    rb"(?P<transport>[A-Z]+) (?P<control>control )?message "
    rb"(?:(?P<sent>sent) \((?P<slen>\d+) bytes\)|(?P<recv>received) \[(?P<rlen>\d+)\] bytes ?):"
    rb"\r?\n\r?\n"
)


@dataclass(frozen=True, slots=True)
class Traced(Stamped):
    """A message from the trace; ``direction`` is ``out`` for what SIPp sent, ``in`` received."""

    retransmission: bool = False
    """True when an earlier entry had the same transaction key (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A complete trace entry whose bytes are not a SIP message (evidence for a finding)."""

    timestamp: float
    direction: str
    data: bytes
    error: str


def transaction_key(message: Message, direction: str) -> tuple[object, ...]:
    """What makes two entries the same message sent twice."""
    kind: object = message.method if isinstance(message, Request) else message.status
    return (direction, message.call_id, message.branch, message.cseq, kind)


def _timestamp(text: bytes) -> float:
    # SIPp writes local wall-clock time; the same clock as time.time() on this host.
    stamp = text.decode("ascii")
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(stamp, fmt).timestamp()


@dataclass
class TraceParser:
    """Incremental parser: ``feed`` new bytes, get back the messages they completed."""

    _buffer: bytes = b""
    _seen: set[tuple[object, ...]] = field(default_factory=set)
    malformed: list[Malformed] = field(default_factory=list)
    """Entries that were complete but did not parse as SIP."""

    def feed(self, data: bytes) -> list[Traced]:
        """Append ``data`` and return every message completed by it, in file order."""
        self._buffer += data
        out: list[Traced] = []
        while True:
            entry = self._next_entry()
            if entry is None:
                return out
            if isinstance(entry, Traced):
                out.append(entry)

    def _next_entry(self) -> Traced | Malformed | bool | None:
        """One entry off the buffer: a message, Malformed, True (skipped) or None (need data)."""
        buf = self._buffer
        sep = _SEPARATOR.search(buf)
        if sep is None:
            return None
        head = _HEADLINE.match(buf, sep.end())
        if head is None:
            # Not (yet) a message headline: skip this separator if another entry follows,
            # otherwise wait, the headline may still be being written.
            nxt = _SEPARATOR.search(buf, sep.end())
            if nxt is None:
                return None
            self._buffer = buf[nxt.start() :]
            return True
        length = int(head.group("slen") or head.group("rlen"))
        start = head.end()
        if len(buf) < start + length:
            return None
        data = buf[start : start + length]
        self._buffer = buf[start + length :]
        if head.group("control"):
            return True
        direction = "out" if head.group("sent") else "in"
        timestamp = _timestamp(sep.group(1))
        try:
            message = parse(data)
        except SipParseError as exc:
            bad = Malformed(timestamp=timestamp, direction=direction, data=data, error=exc.message)
            self.malformed.append(bad)
            return bad
        key = transaction_key(message, direction)
        again = key in self._seen
        self._seen.add(key)
        return Traced(
            message=message, timestamp=timestamp, direction=direction, retransmission=again
        )


def parse_trace(data: bytes) -> tuple[Traced, ...]:
    """Every complete message in a whole message file (an unfinished last entry is ignored)."""
    return tuple(TraceParser().feed(data))
