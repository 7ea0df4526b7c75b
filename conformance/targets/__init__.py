"""Servers under test: one ``Target`` interface, three kinds, and the profiles that describe them.

    kamailio         Kamailio 5.6.3 launched by the kit (aggregate, single or dummy mode)
    kamailio-two     the same as a call proxy publishing to a separate presence instance
    reference        the kit's embedded RFC-strict server (conformance/targets/reference.py)
    sip:HOST:PORT    a server the user runs (ExternalTarget)

``make_target`` turns a ``--target`` value into a target with its profile resolved, so the
plugin and the CLI share one spelling of the options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.harness.ports import PortBlock
from conformance.targets.base import Target
from conformance.targets.external import TRANSPORTS, ExternalTarget, parse_spec, parse_target
from conformance.targets.profile import SHIPPED, Profile, load_profile

__all__ = [
    "SHIPPED",
    "ExternalTarget",
    "Profile",
    "Target",
    "load_profile",
    "make_target",
    "parse_spec",
    "parse_target",
]

_KAMAILIO_MODES = ("aggregate", "single", "dummy")


def make_target(
    spec: str,
    *,
    profile: str | os.PathLike[str] | Profile | None = None,
    overrides: dict[str, Any] | None = None,
    block: PortBlock | None = None,
    workdir: str | os.PathLike[str] | None = None,
    faults: tuple[str, ...] | list[str] = (),
    keyring: Any = None,
) -> Target:
    """Build (not start) the target named by ``spec``.

    ``spec``: ``kamailio`` or ``kamailio:MODE`` (aggregate, single, dummy) or ``reference``,
    each optionally with ``;transport=tcp`` or ``tls``, or ``sip:HOST:PORT[;transport=tcp]``
    or ``sips:HOST:PORT``. ``profile``: a shipped name, a TOML path or a ``Profile``; by
    default the profile named like the target (``generic`` for an external server).
    ``overrides`` are command-line values that beat the profile (``None`` values are
    ignored); for Kamailio, ``single_dialog=True`` selects the single mode. ``block`` supplies
    ports for launched servers. ``faults`` (reference only) switch on the reference server's
    fault injection. ``keyring`` (``harness.credentials.Keyring``): a launched server
    provisions its accounts and digest-authenticates PUBLISH and SUBSCRIBE (A31); an
    external one is told nothing, but its nonce lifetime is taken from the keyring when given.
    """
    accounts = dict(keyring.accounts) if keyring is not None else {}
    realm = keyring.realm if keyring is not None else None
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    kind, _, variant = spec.partition(":")
    launched_transport = "udp"
    if kind.startswith(("kamailio", "reference")) and ";" in spec:
        spec, _, param = spec.partition(";")
        kind, _, variant = spec.partition(":")
        key, _, value = param.partition("=")
        if key.strip().lower() != "transport" or value.strip().lower() not in TRANSPORTS:
            raise UsageError(
                f"bad target {spec};{param}: a launched server takes ;transport=udp, tcp or tls"
            )
        launched_transport = value.strip().lower()
    if faults and spec != "reference":
        raise UsageError(f"fault injection works only with the reference target, not {spec!r}")
    if kind == "kamailio-two":
        return _kamailio_two(
            spec, variant, launched_transport, profile, given, block, workdir, accounts, realm
        )
    if kind == "kamailio":
        from conformance.targets.kamailio import KamailioTarget

        base = _resolve(profile, "kamailio").with_overrides(**given)
        mode = _kamailio_mode(spec, "kamailio", variant, base, given, _KAMAILIO_MODES)
        from conformance.errors import ToolMissingError
        from conformance.targets.kamailio_calls import KamailioCallsTarget, check_call_modules

        try:
            check_call_modules()
            # The call config is written for UDP, and its pua PUBLISHes carry no credentials.
            calls = launched_transport == "udp" and not accounts
        except ToolMissingError:  # no pua_dialoginfo: the presence shape; group E skips
            calls = False
        if not calls:
            return KamailioTarget(
                mode,  # type: ignore[arg-type]
                block=block,
                workdir=workdir,
                profile=base,
                transport=launched_transport,
                accounts=accounts,
                realm=realm,
            )
        from conformance.oracle.calls import CallProfile

        # The call shape (tm, rr, dialog, pua_dialoginfo on the same instance) so group E runs.
        return KamailioCallsTarget(
            mode,  # type: ignore[arg-type]
            calls=CallProfile.from_profile(base),
            block=block,
            workdir=workdir,
            profile=base,
        )
    if spec == "reference":
        from conformance.targets.reference import ReferenceTarget  # type: ignore[import-not-found]

        base = _resolve(profile, "reference").with_overrides(**given)
        return ReferenceTarget(  # type: ignore[no-any-return]
            profile=base,
            single_dialog=base.single_dialog,
            faults=tuple(faults),
            ports=block,
            log_dir=Path(workdir) if workdir is not None else None,
            accounts=accounts,
            realm=realm,
            transport=launched_transport,
        )
    if kind in ("sip", "sips"):
        base = _resolve(profile, "generic").with_overrides(**given)
        external = ExternalTarget(spec, profile=base)
        if keyring is not None:
            external.nonce_ttl = keyring.nonce_ttl
        return external
    raise UsageError(
        f"bad target {spec!r}: use kamailio, kamailio:single, kamailio:dummy, kamailio-two, "
        "kamailio-two:single, reference or sip:HOST:PORT"
    )


def _kamailio_two(
    spec: str,
    variant: str,
    transport: str,
    profile: str | os.PathLike[str] | Profile | None,
    given: dict[str, Any],
    block: PortBlock | None,
    workdir: str | os.PathLike[str] | None,
    accounts: dict[str, str],
    realm: str | None,
) -> Target:
    """``kamailio-two[:MODE]``: a call-proxy Kamailio publishing to a presence Kamailio; with
    ``accounts`` its registrar challenges REGISTER (the presence instance stays open)."""
    from conformance.oracle.calls import CallProfile
    from conformance.targets.kamailio_two import KamailioTwoTarget

    if transport != "udp":
        raise UsageError(f"bad target {spec!r}: the two-instance shape runs on UDP only")
    base = _resolve(profile, "kamailio").with_overrides(**given)
    mode = _kamailio_mode(spec, "kamailio-two", variant, base, given, ("aggregate", "single"))
    return KamailioTwoTarget(
        mode,  # type: ignore[arg-type]
        calls=CallProfile.from_profile(base),
        block=block,
        workdir=workdir,
        profile=base,
        accounts=accounts,
        realm=realm,
    )


def _kamailio_mode(
    spec: str,
    kind: str,
    variant: str,
    base: Profile,
    given: dict[str, Any],
    modes: tuple[str, ...],
) -> str:
    """The mode a ``kind[:MODE]`` target runs: the one named, else the profile's; refused when
    unknown or when it contradicts an explicit ``--single-dialog``."""
    mode = variant or ("single" if base.single_dialog else "aggregate")
    if mode not in modes:
        raise UsageError(
            f"bad target {spec!r}: {kind} mode {mode!r} is not one of " + ", ".join(modes)
        )
    if "single_dialog" in given and given["single_dialog"] != (mode == "single"):
        raise UsageError(
            f"--target {spec} contradicts --single-dialog={given['single_dialog']}: "
            f"use --target {kind}:single or drop one of them"
        )
    return mode


def _resolve(profile: str | os.PathLike[str] | Profile | None, default: str) -> Profile:
    if isinstance(profile, Profile):
        return profile
    return load_profile(profile if profile is not None else default)
