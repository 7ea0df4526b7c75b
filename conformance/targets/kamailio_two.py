"""Kamailio 5.6.3 as two instances: a call proxy PUBLISHes to a separate presence server.

The seed's second figure. The proxy (tm, rr, dialog, pua, pua_dialoginfo;
``templates/kamailio_proxy.cfg.tmpl``) routes and tracks each call, and pua_dialoginfo PUBLISHes
the parties' dialog state over SIP to the presence instance (presence, presence_dialoginfo; the
plain ``templates/kamailio.cfg.tmpl``), which NOTIFYs the watchers. So, unlike the same-instance
shape, every call publication crosses the wire as a real PUBLISH, as in a deployment where the
BLF server is not the proxy.

This target *is* the presence instance (``KamailioTarget``: the kit's publishers and watchers go
to its address) and owns the proxy, a ``KamailioCallsTarget`` with the proxy template, whose
address is ``call_proxy``. Launching, files and stopping are those two classes'; this only joins
them: the presence instance starts first, so the proxy's first PUBLISH finds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.harness.ports import PortBlock
from conformance.oracle.calls import CallProfile
from conformance.targets.kamailio import KamailioTarget, Mode
from conformance.targets.kamailio_calls import DOMAIN, KamailioCallsTarget

PROXY_TEMPLATE = Path(__file__).resolve().parent / "templates" / "kamailio_proxy.cfg.tmpl"


class KamailioTwoTarget(KamailioTarget):
    """A presence Kamailio plus a call-proxy Kamailio whose pua_dialoginfo PUBLISHes to it.

    ``calls`` and ``fr_inv_timer`` configure the proxy as ``KamailioCallsTarget`` does; the
    presence instance takes every other ``KamailioTarget`` argument (mode, profile, limits)
    except ``accounts`` and ``realm``: those provision the proxy's registrar, which then
    challenges REGISTER (401, auth_db), while the presence instance accepts PUBLISH and
    SUBSCRIBE unauthenticated (``presence_auth`` is False, so the A31 cases skip).
    """

    name = "kamailio"
    presence_auth = False

    def __init__(
        self,
        mode: Mode = "aggregate",
        *,
        block: PortBlock | None = None,
        calls: CallProfile | None = None,
        fr_inv_timer: float = 5.0,
        domain: str = DOMAIN,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("transport", "udp") != "udp":
            raise UsageError("the two-instance Kamailio shape is written for UDP only")
        if block is None:
            raise UsageError("the two-instance Kamailio shape needs a PortBlock (block=)")
        # The accounts are the registrar's (the proxy): the presence instance stays open, as
        # pua_dialoginfo's PUBLISHes carry no credentials (pua has no digest support).
        accounts = kwargs.pop("accounts", None)
        realm = kwargs.pop("realm", None)
        super().__init__(mode, block=block, domain=domain, **kwargs)
        self.proxy = KamailioCallsTarget(
            mode,
            calls=calls,
            fr_inv_timer=fr_inv_timer,
            template=PROXY_TEMPLATE,
            domain=domain,
            block=block,
            host=self.host,
            workdir=self._parent_dir,
            profile=self.profile,
            debug=self.debug,
            keep_files=self.keep_files,
            accounts=accounts,
            realm=realm,
        )
        self.proxy.auth_challenge = "www"
        self.proxy.settings["presence_server"] = f"sip:{self.address}"
        self.calls = self.proxy.calls

    @property
    def call_proxy(self) -> tuple[str, int]:
        """Where calls go (group E): the proxy instance, not the presence one."""
        return self.proxy.host, self.proxy.port

    def start(self) -> None:
        if self.process is not None:
            return
        super().start()
        try:
            self.proxy.start()
        except BaseException:
            super().stop()
            raise

    def stop(self, *, grace: float = 5.0) -> None:
        try:
            self.proxy.stop(grace=grace)
        finally:
            super().stop(grace=grace)

    def alive(self) -> bool:
        return super().alive() and self.proxy.alive()

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(
            shape="two instances (proxy publishes to presence)",
            proxy={"address": self.proxy.address, "pid": self.proxy.pid},
            calls=self.calls.describe(),
        )
        return info


__all__ = ["PROXY_TEMPLATE", "KamailioTwoTarget"]
