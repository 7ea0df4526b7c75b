"""A server the user runs themselves, named with ``--target sip:HOST:PORT``.

The kit does not start or stop it; ``start`` only checks, with a bounded OPTIONS probe, that
something answers, so a wrong address fails in seconds with a clear message instead of as a
suite full of timeouts. Any host is accepted, not only loopback: the kit sends traffic only
to the address the user names, and the user is responsible for pointing it at a server they
may test.
"""

from __future__ import annotations

import re
from typing import Any

from conformance.errors import HarnessError, UsageError
from conformance.targets import probe as _probe
from conformance.targets.base import Target
from conformance.targets.profile import Profile

_SPEC = re.compile(
    r"""^(?P<scheme>sips?):
        (?:(?P<user>[^@;]+)@)?                  # an AOR-style user part is tolerated and ignored
        (?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9.-]+))
        (?::(?P<port>[0-9]{1,5}))?
        (?P<params>;.*)?$""",
    re.VERBOSE,
)

DEFAULT_PORT = 5060
TLS_PORT = 5061
TRANSPORTS = ("udp", "tcp", "tls")


def parse_spec(spec: str) -> tuple[str, int, str | None]:
    """``sip:HOST[:PORT][;transport=udp|tcp][;domain=D]`` or ``sips:...`` -> (host, port,
    domain or None); ``parse_target`` also returns the transport.

    ``domain`` names the host part of presentity URIs when the server serves a domain other
    than its address (``sip:10.0.0.5:5060;domain=example.com``).
    """
    host, port, domain, _ = parse_target(spec)
    return host, port, domain


def parse_target(spec: str) -> tuple[str, int, str | None, str]:
    """(host, port, domain or None, transport) of a ``sip:``/``sips:`` target.

    ``sips:`` means TLS (default port 5061, RFC 3261 §19.1.2); ``;transport=tcp`` TCP;
    otherwise UDP.
    """
    m = _SPEC.match(spec.strip())
    if m is None:
        raise UsageError(
            f"bad target {spec!r}: use sip:HOST:PORT, e.g. sip:127.0.0.1:5060, "
            "sip:[::1]:5060, sip:HOST:PORT;transport=tcp or sips:HOST:PORT (TLS); "
            "add ;domain=NAME for presentity URIs"
        )
    secure = m.group("scheme") == "sips"
    host = m.group("v6") or m.group("host")
    port = int(m.group("port")) if m.group("port") else (TLS_PORT if secure else DEFAULT_PORT)
    if not 1 <= port <= 65535:
        raise UsageError(f"bad target {spec!r}: port {port} is not 1-65535")
    domain = None
    transport = "tls" if secure else "udp"
    for param in (m.group("params") or "").split(";")[1:]:
        key, _, value = (part.strip() for part in param.partition("="))
        if key.lower() == "domain" and value:
            domain = value
        elif key.lower() == "transport" and value.lower() in TRANSPORTS:
            wanted = value.lower()
            if secure != (wanted == "tls"):
                raise UsageError(
                    f"bad target {spec!r}: TLS is written sips:HOST:PORT, and a sips: target "
                    "takes no other transport"
                )
            transport = wanted
        else:
            raise UsageError(
                f"bad target {spec!r}: unsupported parameter {param!r} "
                "(only ;domain=NAME and ;transport=udp or tcp)"
            )
    return host, port, domain, transport


class ExternalTarget(Target):
    """A running server at ``sip:HOST:PORT``; its profile says what it is known to do."""

    name = "external"

    def __init__(
        self,
        spec: str,
        *,
        profile: Profile,
        domain: str | None = None,
        ready_timeout: float = 5.0,
    ) -> None:
        host, port, spec_domain, transport = parse_target(spec)
        super().__init__(
            host=host,
            port=port,
            domain=domain or spec_domain,
            profile=profile,
            transport=transport,
        )
        self.spec = spec
        self.ready_timeout = ready_timeout
        self.options_status: int | None = None

    def start(self) -> None:
        from conformance.harness.relay import settings

        tls = settings().client_context() if self.transport == "tls" else None
        result = _probe.probe(
            self.host, self.port, timeout=self.ready_timeout, transport=self.transport, tls=tls
        )
        if result.response is None and result.error:
            raise HarnessError(f"{self.spec} ({self.address}): {result.error}")
        if result.response is None:
            raise HarnessError(
                f"nothing answered OPTIONS at {self.spec} ({self.address}, "
                f"{self.transport.upper()}) within "
                f"{self.ready_timeout:g} s ({result.attempts} sent): is the server running "
                "and listening on that address?"
            )
        # Any final response proves a SIP server listens; a 405 to OPTIONS is not our business.
        self.options_status = result.response.status

    def stop(self) -> None:
        """Nothing to release: the user's server keeps running."""

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(spec=self.spec, options_status=self.options_status)
        return info
