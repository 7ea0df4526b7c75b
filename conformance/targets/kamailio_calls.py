"""Kamailio 5.6.3 as proxy and presence server on one instance: calls light the BLF (group E).

The seed's first figure: tm + rr + dialog route and track each call, pua_dialoginfo PUBLISHes the
caller's and the callee's dialog state, and presence + presence_dialoginfo (the same instance)
NOTIFY the watchers. Everything about launching, files and stopping is ``KamailioTarget``'s; this
only swaps the template (``templates/kamailio_calls.cfg.tmpl``) and adds the call settings.

Routing: an INVITE goes where its Request-URI points, so a case reaches its callee by putting the
callee's own address in the Request-URI (``Caller.invite`` does by default) and the callee's AOR
in To (the presentity pua_dialoginfo publishes for). In-dialog requests follow Record-Route.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conformance.errors import ToolMissingError, UsageError
from conformance.oracle.calls import CallProfile
from conformance.targets import kamailio as _kamailio
from conformance.targets.kamailio import KamailioTarget, Mode

TEMPLATE = Path(__file__).resolve().parent / "templates" / "kamailio_calls.cfg.tmpl"
CALL_MODULES = ("rr", "pv", "maxfwd", "siputils", "dialog", "pua", "pua_dialoginfo")
"""Modules the call shape needs on top of the presence ones."""
DOMAIN = "conformance.test"
"""Default domain of the AORs. Not the host: Kamailio's ``alias`` without a port makes every port
of that host "myself", and a callee's Contact (127.0.0.1:PORT) would then look local to
``loose_route``, which takes it for a strict-routing case and loses the ACK and BYE."""
MAX_FR_INV_TIMER = 5.0
"""Seconds: issue 15 bounds the proxy's INVITE timer so a no-answer case ends within 5 s."""


def check_call_modules() -> None:
    """``ToolMissingError`` naming the package when a module of the call shape is missing."""
    dirs = [p for pattern in _kamailio._MODULE_DIRS for p in Path("/").glob(pattern.lstrip("/"))]
    for module in CALL_MODULES:
        if not any((d / f"{module}.so").is_file() for d in dirs):
            raise ToolMissingError(
                f"Kamailio module {module}.so not found; install them with: "
                f"apt-get install {_kamailio.APT_PACKAGES}"
            )


class KamailioCallsTarget(KamailioTarget):
    """Kamailio routing calls and publishing their dialog state into its own presence store.

    ``calls`` is the pua_dialoginfo profile the oracle derives expectations from; its fields are
    the module parameters written into the config (``publish_on_trying`` is ``callee_trying``).
    """

    def __init__(
        self,
        mode: Mode = "aggregate",
        *,
        calls: CallProfile | None = None,
        fr_inv_timer: float = 5.0,
        template: str | os.PathLike[str] | None = None,
        domain: str = DOMAIN,
        **kwargs: Any,
    ) -> None:
        if not 0 < fr_inv_timer <= MAX_FR_INV_TIMER:
            raise UsageError(
                f"fr_inv_timer is in (0, {MAX_FR_INV_TIMER:g}] seconds, not {fr_inv_timer!r}"
            )
        if domain in ("127.0.0.1", "::1", "localhost", kwargs.get("host")):
            raise UsageError(
                f"the call shape needs a domain that is not the host ({domain!r}): see DOMAIN"
            )
        super().__init__(mode, template=template or TEMPLATE, domain=domain, **kwargs)
        self.calls = calls if calls is not None else CallProfile.kamailio()
        self.fr_inv_timer = fr_inv_timer
        self.settings.update(
            fr_inv_timer_ms=int(fr_inv_timer * 1000),
            include_callid=int(self.calls.include_callid),
            include_tags=int(self.calls.include_tags),
            include_localremote=int(self.calls.include_localremote),
            caller_confirmed=int(self.calls.caller_confirmed),
            callee_trying=int(self.calls.publish_on_trying),
        )

    @property
    def call_proxy(self) -> tuple[str, int]:
        """Where calls go (group E): this instance proxies them."""
        return self.host, self.port

    def start(self) -> None:
        if self.process is None:
            check_call_modules()
        super().start()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(shape="same-instance proxy", calls=self.calls.describe())
        return info


__all__ = ["CALL_MODULES", "DOMAIN", "KamailioCallsTarget", "check_call_modules"]
