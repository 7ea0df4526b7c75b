"""SIP messages as values: parse bytes into a Request or Response, build one back into bytes.

Sans-IO: no sockets, no clock. The parser is total over bytes: it returns a message or raises
``SipParseError`` quoting the offending line, never anything else (tests/unit/test_sip_message.py
checks that for arbitrary bytes). Header names are matched case-insensitively and compact forms
(RFC 3261 §7.3.3, RFC 6665 §8.2.1) are expanded, so ``i:`` and ``Call-ID:`` read the same.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from conformance.errors import SipParseError

COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",  # RFC 6665
    "u": "Allow-Events",  # RFC 6665
}

# Canonical spelling of the headers this kit reads, for output and lookups.
_CANONICAL = {
    name.lower(): name
    for name in (
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Event",
        "Expires",
        "From",
        "To",
        "Via",
        "Max-Forwards",
        "Subscription-State",
        "SIP-ETag",
        "SIP-If-Match",
        "Min-Expires",
        "Accept",
        "Allow",
        "Allow-Events",
        "Record-Route",
        "Route",
        "User-Agent",
        "Server",
        "Supported",
        "WWW-Authenticate",
        "Authorization",
    )
}

_REQUEST_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9._!%*+`'~-]*) (\S+) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9._!%*+`'~-]+$")
_TAG = re.compile(r";\s*tag=([^;>\s]+)", re.IGNORECASE)
_URI_IN_BRACKETS = re.compile(r"<([^>]*)>")

MAX_MESSAGE_BYTES = 65535


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name; compact one-letter forms are expanded."""
    name = name.strip()
    if len(name) == 1:
        name = COMPACT.get(name.lower(), name)
    return _CANONICAL.get(name.lower(), name)


@dataclass(frozen=True, slots=True)
class _Message:
    headers: tuple[tuple[str, str], ...] = ()
    """(name, value) in wire order, names in canonical spelling."""
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case, compact form accepted), or None."""
        key = canonical_name(name).lower()
        for n, v in self.headers:
            if n.lower() == key:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        """Every value of ``name``; comma-separated values stay as sent (one per header line)."""
        key = canonical_name(name).lower()
        return [v for n, v in self.headers if n.lower() == key]

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq(self) -> tuple[int, str] | None:
        """(number, method) of the CSeq header, or None when absent or malformed."""
        value = self.header("CSeq")
        if value is None:
            return None
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit():
            return None
        return int(parts[0]), parts[1].upper()

    @property
    def branch(self) -> str | None:
        via = self.header("Via")
        if via is None:
            return None
        m = re.search(r";\s*branch=([^;,\s]+)", via, re.IGNORECASE)
        return m.group(1) if m else None

    @property
    def from_tag(self) -> str | None:
        return tag_of(self.header("From"))

    @property
    def to_tag(self) -> str | None:
        return tag_of(self.header("To"))

    def _head(self) -> str:
        raise NotImplementedError

    def __bytes__(self) -> bytes:
        lines = [self._head()]
        has_length = False
        for name, value in self.headers:
            if name.lower() == "content-length":
                has_length = True
                value = str(len(self.body))
            lines.append(f"{name}: {value}")
        if not has_length:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(frozen=True, slots=True)
class Request(_Message):
    method: str = ""
    uri: str = ""

    def _head(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(frozen=True, slots=True)
class Response(_Message):
    status: int = 0
    reason: str = ""

    def _head(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}".rstrip()


Message = Request | Response


@dataclass(frozen=True, slots=True)
class Stamped:
    """A message with where and when it was seen (the runner and the server add this)."""

    message: Message
    timestamp: float
    direction: str = field(default="in")
    """``in`` (received by the peer that logged it) or ``out`` (sent)."""


def tag_of(header_value: str | None) -> str | None:
    if not header_value:
        return None
    # The tag parameter belongs to the header, not to a URI inside <...>.
    outside = _URI_IN_BRACKETS.sub("<>", header_value)
    m = _TAG.search(outside)
    return m.group(1) if m else None


def uri_of(header_value: str | None) -> str | None:
    """The URI of a From/To/Contact value: inside <...> when present, else up to the first ';'."""
    if not header_value:
        return None
    m = _URI_IN_BRACKETS.search(header_value)
    if m:
        return m.group(1).strip()
    return header_value.split(";", 1)[0].strip()


@dataclass(frozen=True, slots=True)
class SipUri:
    """A URI cut into the parts this kit compares, each as written (escapes and case kept)."""

    scheme: str
    userinfo: str
    """``user`` or ``user:password``; empty when the URI names no user."""
    hostport: str
    """``host`` or ``host:port``; an IPv6 reference keeps its brackets."""

    @property
    def user(self) -> str:
        return self.userinfo.split(":", 1)[0]

    @property
    def host(self) -> str:
        """The host without its port: the port follows the bracket of an IPv6 reference."""
        hostport = self.hostport
        if hostport.startswith("["):
            return hostport[: hostport.find("]") + 1] if "]" in hostport else hostport
        return hostport.split(":", 1)[0]

    @property
    def port(self) -> int | None:
        """The port when one is written as decimal digits, else None."""
        digits = self.hostport[len(self.host) :].removeprefix(":")
        return int(digits) if digits.isascii() and digits.isdigit() else None


def split_uri(uri: str) -> SipUri | None:
    """Scheme, userinfo and hostport of a SIP URI (RFC 3261 §19.1.1), as written; None when there
    is no scheme or nothing after it.

    ``<...>`` around the URI is dropped, and so is everything from the first ``;``, ``?`` or
    ``>``: URI parameters and headers, or what follows the URI in a header value. The one place
    that cuts URIs, so the aggregator's ``entity`` (A12, T5) and the checks that compare URIs
    agree on where the user ends and the host begins.
    """
    text = uri.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme or not rest:
        return None
    for stop in ";?>":
        rest = rest.split(stop, 1)[0]
    userinfo, at, hostport = rest.rpartition("@")
    return SipUri(scheme, userinfo, hostport) if at else SipUri(scheme, "", rest)


def value_of(header_value: str | None) -> str | None:
    """A header value without its parameters, trimmed and lower-cased: the media type of a
    Content-Type, the package of an Event, the state of a Subscription-State. These compare
    case-insensitively (RFC 3261 §7.3.1, RFC 6665 §8.2.1); None for an absent or empty value."""
    return header_value.split(";", 1)[0].strip().lower() if header_value else None


def param_of(header_value: str | None, name: str) -> str | None:
    """A ``;name=value`` parameter of a header value (e.g. ``expires`` of Subscription-State)."""
    if not header_value:
        return None
    outside = _URI_IN_BRACKETS.sub("<>", header_value)
    m = re.search(rf";\s*{re.escape(name)}\s*=\s*\"?([^;\",\s]+)\"?", outside, re.IGNORECASE)
    return m.group(1) if m else None


def parse(data: bytes) -> Message:
    """Parse one SIP message. The body is cut to Content-Length when the header is present."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"a SIP message is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: ignore CRLFs before the start line
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    if not sep:
        raise SipParseError("no blank line ends the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("header section is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    start, header_lines = lines[0], lines[1:]
    headers = tuple(_headers(header_lines))
    length_text = next((v for n, v in headers if n.lower() == "content-length"), None)
    if length_text is not None:
        if not length_text.strip().isdigit():
            raise SipParseError(f"bad Content-Length {length_text!r}")
        length = int(length_text.strip())
        if length > len(body):
            raise SipParseError(f"Content-Length {length} but only {len(body)} body bytes")
        body = body[:length]
    if m := _REQUEST_LINE.match(start):
        return Request(headers=headers, body=body, method=m.group(1).upper(), uri=m.group(2))
    if m := _STATUS_LINE.match(start):
        return Response(headers=headers, body=body, status=int(m.group(1)), reason=m.group(2))
    raise SipParseError(f"illegal start line {start[:120]!r}")


def _headers(lines: list[str]) -> Iterator[tuple[str, str]]:
    current: list[str] | None = None
    for line in lines:
        if line[:1] in (" ", "\t"):  # folded continuation (RFC 3261 §7.3.1)
            if current is None:
                raise SipParseError(f"continuation line before any header {line[:80]!r}")
            current[1] = f"{current[1]} {line.strip()}".strip()
            continue
        if current is not None:
            yield current[0], current[1]
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(name.strip()):
            raise SipParseError(f"malformed header line {line[:120]!r}")
        current = [canonical_name(name), value.strip()]
    if current is not None:
        yield current[0], current[1]


def response_to(
    request: Request,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    server: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> Response:
    """A response to ``request`` as RFC 3261 §8.2.6.2 builds it: every Via, From, To (with
    ``to_tag`` added when the request's To has none), Call-ID and CSeq copied, then ``extra``.
    A random tag is drawn when none is given; the caller keeps it by passing its own."""
    to = request.header("To") or ""
    if tag_of(to) is None:
        to = f"{to};tag={to_tag or secrets.token_hex(6)}"
    headers = [(n, v) for n, v in request.headers if n == "Via"]
    headers += [
        ("From", request.header("From") or ""),
        ("To", to),
        ("Call-ID", request.call_id or ""),
        ("CSeq", request.header("CSeq") or ""),
    ]
    if server:
        headers.append(("Server", server))
    headers.extend(extra)
    return Response(status=status, reason=reason, headers=tuple(headers))
