"""SIP digest authentication (RFC 3261 §22.4, RFC 2617, RFC 8760), sans-IO.

Both sides of a challenge in one pure module: ``parse_challenge`` reads a ``WWW-Authenticate``
or ``Proxy-Authenticate`` value, ``authorization`` answers it, ``parse_credentials`` reads an
``Authorization`` value back and ``expected_response`` recomputes what it must say. The kit's
peers answer challenges here when SIPp cannot (in-dialog SUBSCRIBEs, whose digest ``uri`` must
be the server's Contact, and SHA-256, which SIPp 3.6.1 refuses); the reference server checks
answers with it. SIPp's own MD5 (the Publisher) and Kamailio's auth module are the independent
implementations these are checked against (tests/integration/test_auth.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field

from conformance.errors import SipParseError

ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
"""Digest algorithms a peer can answer (RFC 8760 adds SHA-256; SHA-512-256 is left out)."""

# auth-param = token "=" ( token / quoted-string ), separated by commas (RFC 3261 §25.1).
_PARAM = re.compile(r'\s*([A-Za-z0-9._-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')


@dataclass(frozen=True)
class Challenge:
    """One digest challenge, as a 401 or 407 carried it."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    """The offered quality-of-protection values (``auth``, ``auth-int``); empty: RFC 2069."""
    opaque: str | None = None
    stale: bool = False
    """The previous credentials were right but their nonce had expired (RFC 2617 §3.2.1)."""
    proxy: bool = False
    """Came in Proxy-Authenticate (407): answer with Proxy-Authorization."""

    @property
    def answer_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"


@dataclass(frozen=True)
class DigestCredentials:
    """An ``Authorization`` value as read back (the server's side)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    params: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


def _params(text: str) -> dict[str, str]:
    scheme, _, rest = text.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipParseError(f"not a digest challenge or answer: {text[:60]!r}")
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            raise SipParseError(f"bad digest parameter at {rest[pos : pos + 40]!r}")
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1).lower()] = value
        pos = m.end()
    return out


def parse_challenge(value: str, *, proxy: bool = False) -> Challenge:
    """A ``WWW-Authenticate`` (``proxy``: ``Proxy-Authenticate``) value; SipParseError when it
    is not a digest challenge with a realm and a nonce."""
    p = _params(value)
    if "realm" not in p or "nonce" not in p:
        raise SipParseError(f"digest challenge without realm or nonce: {value[:80]!r}")
    qop = tuple(q.strip() for q in p.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=p["realm"],
        nonce=p["nonce"],
        algorithm=p.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=p.get("opaque"),
        stale=p.get("stale", "").lower() == "true",
        proxy=proxy,
    )


def parse_credentials(value: str) -> DigestCredentials:
    """An ``Authorization``/``Proxy-Authorization`` value; SipParseError when a field is missing."""
    p = _params(value)
    missing = [k for k in ("username", "realm", "nonce", "uri", "response") if k not in p]
    if missing:
        raise SipParseError(f"digest answer without {', '.join(missing)}")
    return DigestCredentials(
        username=p["username"],
        realm=p["realm"],
        nonce=p["nonce"],
        uri=p["uri"],
        response=p["response"].lower(),
        algorithm=p.get("algorithm", "MD5").upper(),
        qop=p.get("qop"),
        nc=p.get("nc"),
        cnonce=p.get("cnonce"),
        opaque=p.get("opaque"),
        params=p,
    )


def _hash(algorithm: str, text: str) -> str:
    try:
        fn = ALGORITHMS[algorithm.upper()]
    except KeyError:
        raise SipParseError(f"digest algorithm {algorithm!r} is not one of MD5, SHA-256") from None
    return fn(text.encode("utf-8")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password), what a server may store instead of the password."""
    return _hash(algorithm, f"{username}:{realm}:{password}")


def response_for(
    algorithm: str,
    ha1_value: str,
    *,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str | None,
    cnonce: str | None,
) -> str:
    """The ``response`` value (RFC 2617 §3.2.2.1; ``qop=auth`` or none, never auth-int)."""
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1_value}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1_value}:{nonce}:{ha2}")


def authorization(
    challenge: Challenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
) -> str:
    """The header value answering ``challenge`` for a request ``method uri``. ``uri`` must be
    the request's Request-URI (RFC 3261 §22.4): in a dialog that is the remote target."""
    qop = "auth" if "auth" in challenge.qop else None
    count = f"{nc:08x}"
    value = response_for(
        challenge.algorithm,
        ha1(challenge.algorithm, username, challenge.realm, password),
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=qop,
        nc=count,
        cnonce=cnonce,
    )
    parts = [
        f'username="{username}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        f'response="{value}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    if qop:
        parts += [f"qop={qop}", f"nc={count}", f'cnonce="{cnonce}"']
    return "Digest " + ", ".join(parts)


def expected_response(answer: DigestCredentials, ha1_value: str, method: str) -> str:
    """What ``answer.response`` must be for a request ``method`` (the server's check)."""
    return response_for(
        answer.algorithm,
        ha1_value,
        method=method,
        uri=answer.uri,
        nonce=answer.nonce,
        qop=answer.qop,
        nc=answer.nc,
        cnonce=answer.cnonce,
    )


def challenge_value(challenge: Challenge) -> str:
    """The ``WWW-Authenticate``/``Proxy-Authenticate`` value a server sends."""
    parts = [
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f"algorithm={challenge.algorithm}",
    ]
    if challenge.qop:
        parts.append(f'qop="{",".join(challenge.qop)}"')
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    if challenge.stale:
        parts.append("stale=true")
    return "Digest " + ", ".join(parts)


class DigestClient:
    """One account's side of digest auth across requests: the last challenge and its nonce
    count, so later requests carry credentials before being asked (RFC 2617 §3.3) and an
    expired nonce shows as a 401/407 with ``stale=true``, answered without asking the user."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self.challenge: Challenge | None = None
        self._nc = 0

    def __repr__(self) -> str:
        return f"DigestClient({self.username!r})"

    def take(self, status: int, headers: list[str]) -> Challenge | None:
        """Remember the challenge of a 401 (``WWW-Authenticate`` values in ``headers``) or a
        407 (``Proxy-Authenticate``); None when it carries no digest challenge we can answer."""
        for value in headers:
            try:
                found = parse_challenge(value, proxy=status == 407)
            except SipParseError:
                continue
            if found.algorithm in ALGORITHMS and (not found.qop or "auth" in found.qop):
                self.challenge = found
                self._nc = 0
                return found
        return None

    def header_line(self, method: str, uri: str) -> str | None:
        """``Authorization: ...`` (or ``Proxy-Authorization``) for the next request, once a
        challenge was taken; ``uri`` is that request's Request-URI."""
        if self.challenge is None:
            return None
        self._nc += 1
        value = authorization(
            self.challenge,
            username=self.username,
            password=self._password,
            method=method,
            uri=uri,
            cnonce=secrets.token_hex(8),
            nc=self._nc,
        )
        return f"{self.challenge.answer_header}: {value}"


__all__ = [
    "ALGORITHMS",
    "Challenge",
    "DigestClient",
    "DigestCredentials",
    "authorization",
    "challenge_value",
    "expected_response",
    "ha1",
    "parse_challenge",
    "parse_credentials",
    "response_for",
]
