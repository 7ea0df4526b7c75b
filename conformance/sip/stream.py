"""SIP message framing on a byte stream (TCP): where one message ends and the next begins.

Over a stream, Content-Length is mandatory (RFC 3261 §18.3) and is the only way to find the end
of a body. Pure: bytes in, whole messages out; a peer that sends an endless header section or
a bad Content-Length gets ``SipParseError`` and the runner closes its connection.
"""

from __future__ import annotations

import re

from conformance.errors import SipParseError
from conformance.sip.message import MAX_MESSAGE_BYTES

_LENGTH = re.compile(
    rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*$", re.IGNORECASE | re.MULTILINE
)


class StreamFramer:
    """Feed it received bytes; it returns each complete message once."""

    def __init__(self, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._buffer = b""
        self._max = max_bytes

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        while True:
            # Keep-alive CRLFs between messages (RFC 5626 §3.5.1) carry nothing.
            self._buffer = self._buffer.lstrip(b"\r\n")
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._max:
                    raise SipParseError(f"no end of headers within {self._max} bytes")
                return out
            head = self._buffer[:end]
            m = _LENGTH.search(head)
            if m is None:
                raise SipParseError("a message on a stream without Content-Length")
            if not m.group(1).isdigit():
                raise SipParseError(f"bad Content-Length {m.group(1)[:20]!r}")
            total = end + 4 + int(m.group(1))
            if total > self._max:
                raise SipParseError(f"message of {total} bytes exceeds {self._max}")
            if len(self._buffer) < total:
                return out
            out.append(self._buffer[:total])
            self._buffer = self._buffer[total:]
