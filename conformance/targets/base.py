"""The one interface every server under test offers the suite.

A target is an address (host, port), the domain presentity URIs use, and a profile that
declares its known behaviour. Targets the kit launches (Kamailio, the reference server) also
own a process; an external target only checks that something answers. The suite never asks
which kind it has: it calls ``start()``/``stop()`` (or uses ``with``) and reads the address.
"""

from __future__ import annotations

import abc
import ssl
from pathlib import Path
from typing import Any

from conformance.errors import HarnessError
from conformance.targets import probe as _probe
from conformance.targets.profile import Profile


class Target(abc.ABC):
    """A presence server the suite sends PUBLISH and SUBSCRIBE to."""

    name: str
    """Short kind name for reports: ``kamailio``, ``reference``, ``external``."""
    nonce_ttl: float | None = None
    """Seconds the server's digest nonces live, when known (a launched server with accounts
    sets it; the stale-nonce case of A31 waits it out)."""
    presence_auth: bool = True
    """False when the run's credentials are not the presence server's: the two-instance
    Kamailio gives them to its registrar, and its presence instance authenticates nobody
    (pua_dialoginfo's PUBLISHes carry no credentials), so the A31 cases skip there."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        domain: str | None,
        profile: Profile,
        transport: str = "udp",
    ) -> None:
        self.host = host
        self.port = port
        self.transport = transport
        """udp, tcp or tls: how the kit's peers reach the server (reports name it)."""
        self.domain = domain or (f"[{host}]" if ":" in host else host)
        """Host part of presentity URIs (``sip:user@DOMAIN``); the host when not configured
        (an IPv6 address in brackets, as a SIP URI writes it)."""
        self.profile = profile
        self.ca_path: Path | None = None
        """A launched TLS server: the CA made for it (what a client passes as ``--tls-ca``)."""

    def tls_context(self) -> ssl.SSLContext | None:
        """How the kit checks this server's certificate: its own CA when the kit made one,
        else ``--tls-ca``/``--tls-insecure`` (``harness/relay.py``); None unless TLS."""
        if self.transport != "tls":
            return None
        if self.ca_path is not None:
            return ssl.create_default_context(cafile=str(self.ca_path))
        from conformance.harness.relay import settings

        return settings().client_context()

    @property
    def address(self) -> str:
        """``host:port`` as SIPp's remote-host argument wants it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def presentity_uri(self, user: str) -> str:
        """The AOR the suite publishes to and subscribes to for ``user``."""
        return f"sip:{user}@{self.domain}"

    @abc.abstractmethod
    def start(self) -> None:
        """Make the target ready to answer; raise ``HarnessError`` saying why when it cannot."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Release everything ``start`` took. Safe to call twice, and after a failed start."""

    def alive(self) -> bool:
        """Whether the server answers an OPTIONS now (a quick probe, at most 1 s)."""
        result = _probe.probe(
            self.host, self.port, timeout=1.0, transport=self.transport, tls=self.tls_context()
        )
        return result.response is not None

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for reports: what was tested, where, under which profile."""
        return {
            "kind": self.name,
            "host": self.host,
            "port": self.port,
            "address": self.address,
            "transport": self.transport,
            "domain": self.domain,
            "profile": self.profile.name,
            "profile_source": self.profile.source,
            "single_dialog": self.profile.single_dialog,
        }

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name} {self.address} {self.transport} "
            f"profile={self.profile.name}>"
        )


def wait_ready(
    host: str,
    port: int,
    *,
    timeout: float,
    what: str,
    transport: str = "udp",
    tls: ssl.SSLContext | None = None,
) -> _probe.ProbeResult:
    """Probe until an OPTIONS is answered; ``HarnessError`` naming ``what`` when none is."""
    result = _probe.probe(host, port, timeout=timeout, transport=transport, tls=tls)
    if result.response is None:
        why = f": {result.error}" if result.error else ""
        raise HarnessError(
            f"{what} did not answer OPTIONS at {host}:{port} ({transport.upper()}) within "
            f"{timeout:g} s ({result.attempts} sent){why}"
        )
    return result
