"""Digest authentication of PUBLISH and SUBSCRIBE for the reference server (A31), sans-IO.

RFC 4235 §7 says implementations MUST support digest authentication and SHOULD authenticate
subscriptions. With ``ServerConfig.auth_realm`` set, the core asks ``DigestGuard.check`` about
every PUBLISH and SUBSCRIBE before anything else: no credentials get 401 with a challenge
(MD5, ``qop="auth"``); a nonce older than ``nonce_ttl`` gets 401 with ``stale=true`` (the peer
answers again without asking its user, RFC 2617 §3.2.1); an unknown user or a wrong response
gets 403; a digest ``uri`` that is not the Request-URI gets 400 (RFC 2617 §3.2.2.5).

Nonces carry their own issue time and an HMAC over it with a per-instance key, so the guard
keeps no state per challenge and a nonce of another instance is refused. The hash arithmetic
is ``sip/digest.py``'s; SIPp's own MD5 (the kit's Publisher) is the independent client it is
tested against. Every decision passes a hook (``hooks.py``) so a fault can bend it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from conformance.errors import SipParseError
from conformance.server.hooks import CoreHooks
from conformance.sip import digest
from conformance.sip.message import Request

GUARDED = ("PUBLISH", "SUBSCRIBE")
"""Methods that must authenticate; OPTIONS stays open (probes and readiness checks use it)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to answer instead of processing the request, or ``status == 0``: go on."""

    status: int = 0
    reason: str = ""
    challenge: str | None = None
    """The ``WWW-Authenticate`` value of a 401."""
    detail: str = ""
    """For the log line and the Warning header: never the password, never the response."""


PASS = Verdict()


class DigestGuard:
    """Checks one request's credentials against ``users`` (user -> password) in ``realm``."""

    def __init__(
        self,
        realm: str,
        users: dict[str, str],
        *,
        nonce_ttl: float,
        hooks: CoreHooks,
    ) -> None:
        self.realm = realm
        self._ha1 = {u: digest.ha1("MD5", u, realm, p) for u, p in users.items()}
        self.nonce_ttl = nonce_ttl
        self.hooks = hooks
        self._key = secrets.token_bytes(16)

    # -- nonces ---------------------------------------------------------------------------------
    def _sign(self, issued: str) -> str:
        return hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()[:24]

    def new_nonce(self, now: float) -> str:
        issued = f"{int(now * 1000):x}"
        return f"{issued}.{self._sign(issued)}"

    def _nonce_state(self, nonce: str, now: float) -> str:
        """``fresh``, ``stale`` (ours, expired) or ``foreign`` (not issued by this guard)."""
        issued, dot, mac = nonce.partition(".")
        if not dot or not hmac.compare_digest(mac, self._sign(issued)):
            return "foreign"
        try:
            age = now - int(issued, 16) / 1000
        except ValueError:
            return "foreign"
        return "fresh" if self.hooks.nonce_fresh(age <= self.nonce_ttl) else "stale"

    def _challenge(self, now: float, *, stale: bool, detail: str) -> Verdict:
        value = digest.challenge_value(
            digest.Challenge(
                realm=self.realm,
                nonce=self.new_nonce(now),
                qop=("auth",),
                stale=self.hooks.stale_flag(stale),
            )
        )
        return Verdict(401, "Unauthorized", value, detail)

    # -- the check ------------------------------------------------------------------------------
    def check(self, req: Request, now: float) -> Verdict:
        if req.method not in GUARDED:
            return PASS
        values = req.header_all("Authorization") or req.header_all("Proxy-Authorization")
        mine = []
        for value in values:
            try:
                answer = digest.parse_credentials(value)
            except SipParseError:
                continue
            if answer.realm == self.realm:
                mine.append(answer)
        if not mine:
            if not self.hooks.challenges(True):
                return PASS
            return self._challenge(now, stale=False, detail="challenged: no credentials")
        answer = mine[0]
        if answer.uri != req.uri:
            return Verdict(400, "Bad Request", None, "digest uri is not the Request-URI")
        if answer.algorithm not in ("MD5",) or (answer.qop not in (None, "auth")):
            return self._challenge(now, stale=False, detail="unsupported algorithm or qop")
        state = self._nonce_state(answer.nonce, now)
        if state == "foreign":
            return self._challenge(now, stale=False, detail="challenged: unknown nonce")
        ha1 = self._ha1.get(answer.username)
        right = ha1 is not None and hmac.compare_digest(
            answer.response, digest.expected_response(answer, ha1, req.method)
        )
        if not self.hooks.credentials_ok(right):
            return Verdict(403, "Forbidden", None, f"wrong credentials for {answer.username}")
        if state == "stale":
            return self._challenge(now, stale=True, detail="challenged: stale nonce")
        return PASS


__all__ = ["GUARDED", "PASS", "DigestGuard", "Verdict"]
