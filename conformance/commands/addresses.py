"""Command-line addresses shared by the commands that bind a socket (serve, phone)."""

from __future__ import annotations

import ipaddress

from conformance.errors import UsageError


def parse_listen(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); refuses non-loopback unless allowed."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:5060")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--listen {text!r}: the host must be an IP address") from None
    if not ip.is_loopback and not allow_remote:
        raise UsageError(
            f"--listen {text!r} is not a loopback address; add --allow-remote if you mean it"
        )
    return host, int(port_text)
