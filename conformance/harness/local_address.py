"""Which local address the kit's SIP peers bind and advertise (Via, Contact), and whether it works.

A server on another host answers and sends NOTIFYs to what the peers advertise, so the address
must be one it can reach: by default the one the kernel itself would pick as the source towards
the target (a connected UDP socket sends nothing, it only asks the routing table). A user may
name another (``--local-address``); it is refused up front, in one line, when it is not an
address of this host or when the route to the target would not carry it (the kernel refuses a
loopback source towards a non-loopback target; a non-loopback source towards a loopback target
is refused here, because the kernel's own choice would be loopback and a server bound to
loopback only could not answer it). Only the SIP sockets are concerned: SIPp's 3PCC control
socket stays on loopback.
"""

from __future__ import annotations

import ipaddress
import socket

from conformance.errors import UsageError

LOCAL_OPTION = "--local-address"
"""How the command line names it (in the messages below)."""


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The target's family and numeric address (a name resolved as the peers' SIPp would)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot resolve the target host {host!r}: {exc}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, str(sockaddr[0])


def source_address(host: str, port: int) -> str:
    """The source address the kernel picks for datagrams to ``host:port`` (UDP connect trick)."""
    family, address = _resolve(host, port)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((address, port))
        except OSError as exc:
            raise UsageError(f"no route to the target {host}:{port}: {exc.strerror}") from None
        return str(s.getsockname()[0])


def check_local_address(local: str, host: str, port: int) -> str:
    """``local`` normalised when the peers can bind it and reach ``host:port`` from it.

    Raises UsageError with a one-line reason otherwise: not an IP address, another family
    than the target's, not an address of this host, or not usable on the route to the target.
    """
    text = local.strip().removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(
            f"{LOCAL_OPTION} {local!r} is not an IP address (use e.g. 127.0.0.3 or ::1)"
        ) from None
    family, address = _resolve(host, port)
    wanted = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    if wanted != family:
        raise UsageError(
            f"{LOCAL_OPTION} {ip} is IPv{ip.version} but the target {host} is "
            f"IPv{6 if family == socket.AF_INET6 else 4}"
        )
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((str(ip), 0))
        except OSError as exc:
            raise UsageError(
                f"{LOCAL_OPTION} {ip} is not an address of this host ({exc.strerror})"
            ) from None
        try:
            s.connect((address, port))
        except OSError as exc:
            raise UsageError(
                f"{LOCAL_OPTION} {ip} cannot reach the target {host}:{port} "
                f"(the route refuses that source: {exc.strerror})"
            ) from None
    chosen = ipaddress.ip_address(source_address(host, port))
    if ip.is_loopback != chosen.is_loopback:
        raise UsageError(
            f"{LOCAL_OPTION} {ip} is not on the route to the target {host}:{port} "
            f"(the kernel would send from {chosen})"
        )
    return str(ip)


def local_for(local: str | None, server: tuple[str, int]) -> str:
    """What a peer binds: ``local`` as given, else the kernel's choice towards ``server``."""
    return local if local else source_address(*server)


def sip_host(address: str) -> str:
    """``address`` as a SIP URI or Via host writes it (an IPv6 address in brackets)."""
    return f"[{address}]" if ":" in address else address


__all__ = ["LOCAL_OPTION", "check_local_address", "local_for", "sip_host", "source_address"]
