"""The reference presence server's protocol core: bytes and a clock in, bytes and timers out.

Sans-IO in the aioquic style: ``receive_datagram(data, addr, now)`` consumes one message (a
UDP datagram, or one message framed off a TCP/TLS stream by the adapter), ``datagrams_to_send
(now)`` drains what must go out with the peer address it goes to, ``get_timer()`` says when the
core next needs ``handle_timer(now)``. No sockets, no clock, no asyncio: the unit tests drive it
with a fake clock, and ``protocol.py`` (UDP) and ``streams.py`` (TCP, TLS) are thin adapters.

What it implements, for ``Event: dialog`` only:

* RFC 3903 PUBLISH as an ESC: initial, refresh, modify, remove, expiry; 400/412/415/423/489.
  Entity-tags are a per-instance random prefix plus a counter, so one is never issued twice.
  A PUBLISH is checked completely before anything is stored (RFC 3903 §6 asks for atomic
  processing), so a rejected request leaves the state untouched.
* RFC 6665 SUBSCRIBE/NOTIFY as a notifier: 200 (never 202), immediate NOTIFY with the full
  state, refresh, unsubscribe, fetch, 481/489/406, expiry, removal on the NOTIFY error codes of
  §4.2.2, NOTIFY retransmission over UDP (RFC 3261 Timer E/F, non-INVITE client transaction).
* RFC 4235 bodies built by the server's own ``bodies.BodyBuilder`` (written from the rules,
  independently of the oracle that judges it), with per-subscription versions.

Every decision a fault may bend goes through a named hook (``hooks.py``) whose default is the
strict answer; the faults layer (``faults/``) installs the bent ones. This module imports
nothing from it, so it reads as the RFC-strict server.

The clock is injected: every entry point takes ``now`` (seconds, any monotonic origin), and
``get_timer`` says when the core next needs ``handle_timer``; tests drive it with a fake clock.

The default is RFC-strict. Where presence_dialoginfo breaks an RFC rule the strict core does
not follow it: duplicate dialog ids across publications (A19) are resolved in favour of the
newest publication. Module behaviour (no de-duplication, Kamailio's replace-on-same-first-id,
NOTIFY on refresh PUBLISH) only comes with ``flavour="opensips"`` or ``"kamailio"``.

Expires policy (documented choice): PUBLISH and SUBSCRIBE take the requested value, capped at
``*_expires_max``; values below ``*_expires_min`` (default 1, so never in practice) get 423 with
``Min-Expires``. Both branches are RFC-strict (C06, B18); accepting short values lets the suite
observe expiry within seconds.

Robustness: a datagram that is not a SIP message gets a 400 if Via, From, To, Call-ID and CSeq
can still be read from it, and is dropped otherwise. Nothing a peer sends may raise out of
``receive_datagram``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from conformance.errors import BodyError, SipParseError, UsageError
from conformance.server import bodies
from conformance.server.auth import DigestGuard
from conformance.server.bodies import Publication
from conformance.server.dialogs import DialogTracker
from conformance.server.hooks import CHANGE_TRIGGERS, Hooks, Trigger
from conformance.server.proxy import CallProxy
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response, tag_of, uri_of

Flavour = Literal["strict", "opensips", "kamailio"]
Transport = Literal["udp", "tcp", "tls"]
EmptyForm = Literal["empty-document", "no-body", "dummy-dialog"]
Address = tuple[str, int]

ALLOW = "PUBLISH, SUBSCRIBE, OPTIONS"
EVENT_PACKAGE = "dialog"
SERVER_NAME = "dialoginfo-conformance reference server"

REMOVING_NOTIFY_STATUS = frozenset(
    {404, 405, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604}
)
"""Responses to a NOTIFY after which the subscription is gone (RFC 6665 §4.2.2, B25)."""

RESPONSE_CACHE_SIZE = 4096
"""Answered server transactions remembered for retransmissions; oldest dropped first."""

_ACCEPTABLE = {"application/dialog-info+xml", "application/*", "*/*"}
_EXPIRES = re.compile(r"^\s*(\d{1,10})\s*$")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the reference server behaves. Every default is the RFC-strict choice."""

    host: str = "127.0.0.1"
    """Address written into Via and Contact of NOTIFYs (the adapter sets the bound one)."""
    port: int = 5060
    transport: Transport = "udp"
    """What the adapter serves: named in the NOTIFYs' Via and Contact. Over TCP and TLS a
    NOTIFY is never retransmitted (RFC 3261 §17.1.2.2: Timer E is for unreliable transports);
    Timer F still ends a subscription whose watcher never answers."""
    single_dialog: bool = False
    """presence_dialoginfo ``force_single_dialog=1`` (D08-D10)."""
    flavour: Flavour = "strict"
    """Aggregation rules: strict (newest duplicate id wins, first wins ties), or a module's."""
    partial_on_publish: bool = False
    """OpenSIPS: a NOTIFY caused by a PUBLISH with a body is partial and carries only that body."""
    first_version: int = 0
    """Version of a subscription's first body (RFC 4235 says 0; Kamailio uses 1)."""
    empty_form: EmptyForm = "empty-document"
    """The NOTIFY when nothing is published: empty full document, no body, or a dummy dialog."""
    tie_break: Literal["first", "last"] = "first"
    """Strict single-dialog mode, equal priority: first or last in aggregation order wins (the
    RFCs leave it open; a target profile declares it, D09). Module flavours bring their own."""
    notify_on_refresh: bool | None = None
    """A body-less refresh PUBLISH notifies (same content). None: only with flavour kamailio."""
    publish_expires_default: int = 3600
    publish_expires_max: int = 3600
    publish_expires_min: int = 1
    subscribe_expires_default: int = 3600
    subscribe_expires_max: int = 3600
    subscribe_expires_min: int = 1
    notify_interval: float | None = None
    """Least time between two NOTIFYs to one subscription (RFC 4235 §3.10, A30): a state
    change inside it is held back and coalesced into one NOTIFY of the latest state when it
    ends. The initial, refresh and terminated NOTIFYs are never held. None: 1 s with flavour
    strict, 0 (no throttle, as the modules) otherwise."""
    t1: float = 0.5
    """RFC 3261 T1: the first NOTIFY retransmission interval; Timer F is 64*T1."""
    t2: float = 4.0
    auth_realm: str | None = None
    """Digest realm: PUBLISH and SUBSCRIBE must authenticate (``auth.py``, A31); None: open."""
    auth_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(user, password) accounts of ``auth_realm``; kept out of repr so no log shows one."""
    nonce_ttl: float = 30.0
    """Seconds a nonce is accepted; an older one is challenged again with ``stale=true``."""

    def __post_init__(self) -> None:
        if self.flavour not in ("strict", "opensips", "kamailio"):
            raise UsageError(f"flavour {self.flavour!r}: use strict, opensips or kamailio")
        if self.transport not in ("udp", "tcp", "tls"):
            raise UsageError(f"transport {self.transport!r}: use udp, tcp or tls")
        if self.tie_break not in ("first", "last"):
            raise UsageError(f"tie break {self.tie_break!r}: use first or last")
        if self.empty_form not in ("empty-document", "no-body", "dummy-dialog"):
            raise UsageError(
                f"empty form {self.empty_form!r}: use empty-document, no-body or dummy-dialog"
            )
        if not 0 <= self.first_version <= 0xFFFFFFFF:
            raise UsageError(f"first version {self.first_version}: use 0 to 4294967295")
        for name in ("publish", "subscribe"):
            low = getattr(self, f"{name}_expires_min")
            high = getattr(self, f"{name}_expires_max")
            if not 1 <= low <= high:
                raise UsageError(f"{name} expires: need 1 <= min ({low}) <= max ({high})")
            # The default follows the cap, so lowering the cap alone is enough.
            default = getattr(self, f"{name}_expires_default")
            object.__setattr__(self, f"{name}_expires_default", min(max(default, low), high))

    @property
    def min_notify_interval(self) -> float:
        if self.notify_interval is not None:
            return max(0.0, self.notify_interval)
        return 1.0 if self.flavour == "strict" else 0.0

    @property
    def refresh_notifies(self) -> bool:
        if self.notify_on_refresh is not None:
            return self.notify_on_refresh
        return self.flavour == "kamailio"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One finished transaction, for the ``serve`` command's one-line log."""

    method: str
    peer: str
    """The From URI of the request (for a NOTIFY: the watcher it went to)."""
    presentity: str
    status: int | str
    """The final status, or ``timeout`` for a NOTIFY never answered."""
    detail: str = ""
    """``etag=...`` for PUBLISH, ``version=...`` for NOTIFY, a reason for errors."""

    def __str__(self) -> str:
        text = f"{self.method} from={self.peer} presentity={self.presentity} status={self.status}"
        return f"{text} {self.detail}".rstrip()


@dataclass(slots=True)
class _Subscription:
    call_id: str
    local_tag: str
    remote_tag: str
    presentity: str
    local_party: str
    """SUBSCRIBE's To with our tag: the NOTIFY's From."""
    remote_party: str
    """SUBSCRIBE's From: the NOTIFY's To."""
    target: str
    """Request-URI of NOTIFYs: the watcher's Contact."""
    addr: Address
    event: str
    expires_at: float
    accept: tuple[str, ...] = ()
    """The SUBSCRIBE's Accept header values (none: the package default)."""
    entity: str = ""
    """The ``entity`` of its bodies (empty: the module's rebuilt ``sip:user@host``)."""
    cseq: int = 0
    bodies: int = 0
    """Bodies sent so far: the version of the next one is ``first_version + bodies``."""
    last_notify_at: float | None = None
    """When the last NOTIFY went out (the A30 throttle counts from it)."""
    held: Trigger | None = None
    """The latest state change held back by the throttle, sent at ``held_until``."""
    held_until: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)


@dataclass(slots=True)
class _ClientTransaction:
    """An outstanding NOTIFY (RFC 3261 §17.1.2, non-INVITE client transaction over UDP)."""

    branch: str
    cseq: int
    data: bytes
    addr: Address
    subscription: tuple[str, str, str]
    log: LogRecord
    retransmit_at: float
    interval: float
    timeout_at: float


@dataclass(slots=True)
class _Presentity:
    publications: list[Publication] = field(default_factory=list)
    """In aggregation order: oldest first, a modify moves its publication to the end."""


class PresenceCore:
    """The presence server's state machine. One instance serves every presentity."""

    def __init__(self, config: ServerConfig | None = None, *, hooks: Hooks | None = None) -> None:
        self.config = config or ServerConfig()
        self._hooks = hooks or Hooks()
        self.hooks = self._hooks.core
        self.builder = bodies.BodyBuilder(
            flavour=self.config.flavour,
            single_dialog=self.config.single_dialog,
            tie_break=self.config.tie_break,
            hooks=self._hooks.bodies,
        )
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._seq = itertools.count(1)
        self._presentities: dict[str, _Presentity] = {}
        self._subscriptions: dict[tuple[str, str, str], _Subscription] = {}
        self._client: dict[str, _ClientTransaction] = {}
        self._responses: OrderedDict[tuple[object, ...], tuple[bytes, float]] = OrderedDict()
        self._out: list[tuple[bytes, Address]] = []
        self._log: list[LogRecord] = []
        self._halted = False
        self._last_aggregate: tuple[tuple[object, ...], bodies.Built] | None = None
        self._ended: dict[tuple[str, str, str], tuple[_Subscription, float]] = {}
        """Unsubscribed subscriptions a hook still notifies late (strict: never any)."""
        self._late: list[_Subscription] = []
        # Group E: calls through the server light its own presence store (proxy.py, dialogs.py).
        self.proxy = CallProxy(
            self.config.host,
            self.config.port,
            DialogTracker(self._on_publish, hooks=self._hooks.calls),
            t1=self.config.t1,
        )
        self.guard = (
            DigestGuard(
                self.config.auth_realm,
                dict(self.config.auth_users),
                nonce_ttl=self.config.nonce_ttl,
                hooks=self.hooks,
            )
            if self.config.auth_realm
            else None
        )

    # ---- the sans-IO API -------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Consume one datagram from ``addr``; never raises for anything a peer can send."""
        if self._halted:
            return
        try:
            msg = sipmsg.parse(data)
        except SipParseError:
            self._answer_unparsable(data, addr)
            return
        if self.proxy.claims(msg):
            self.proxy.receive(msg, addr, now)
            self._out.extend(self.proxy.datagrams_to_send())
            return
        if isinstance(msg, Response):
            self._on_response(msg, now)
            return
        self._on_request(msg, addr, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Everything queued since the last call, in order."""
        out, self._out = self._out, []
        return out

    def get_timer(self) -> float | None:
        """The earliest time ``handle_timer`` must run, or None when nothing is pending."""
        if self._halted:
            return None
        times = [
            p.expires_at
            for pres in self._presentities.values()
            for p in pres.publications
            if math.isfinite(p.expires_at)
        ]
        times.extend(s.expires_at for s in self._subscriptions.values())
        times.extend(s.held_until for s in self._subscriptions.values() if s.held is not None)
        times.extend(s.held_until for s in self._late)
        for t in self._client.values():
            times.append(t.retransmit_at)
            times.append(t.timeout_at)
        if (call_timer := self.proxy.get_timer()) is not None:
            times.append(call_timer)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        """Expire publications and subscriptions, retransmit NOTIFYs, give up on Timer F."""
        if self._halted:
            return
        self.proxy.handle_timer(now)
        self._out.extend(self.proxy.datagrams_to_send())
        self._expire_publications(now)
        for sub in [s for s in self._subscriptions.values() if s.held and s.held_until <= now]:
            trigger, sub.held = sub.held, None
            if trigger is not None and sub.expires_at > now:
                self._notify(sub, now, trigger=trigger)  # the coalesced, latest state
        for sub in [s for s in self._late if s.held_until <= now]:
            self._late.remove(sub)
            self._notify(sub, now, trigger=sub.held or "publish")
        for sub in [s for s in self._subscriptions.values() if s.expires_at <= now]:
            self._subscriptions.pop(sub.key, None)
            self._notify(sub, now, trigger="subscription-expiry", terminated=True)
        for txn in list(self._client.values()):
            if txn.timeout_at <= now:
                # Timer F: the watcher is gone; RFC 6665 §4.2.2 says drop the subscription.
                del self._client[txn.branch]
                if self.hooks.drops_subscription(True, None):
                    self._subscriptions.pop(txn.subscription, None)
                self._log.append(dataclasses.replace(txn.log, status="timeout"))
            elif txn.retransmit_at <= now:
                self._out.append((txn.data, txn.addr))
                txn.interval = min(txn.interval * 2, self.config.t2)
                txn.retransmit_at = now + txn.interval

    def pop_log(self) -> list[LogRecord]:
        """Transactions finished since the last call (for the ``serve`` command's log)."""
        out, self._log = self._log, []
        return out

    # ---- introspection for tests and the log ---------------------------------------------------

    @property
    def crashed(self) -> bool:
        """A hook halted the server (the crash fault): it ignores everything from then on."""
        return self._halted

    def publications(self, presentity: str) -> list[Publication]:
        pres = self._presentities.get(bodies.entity_of(presentity))
        return list(pres.publications) if pres else []

    def subscription_count(self) -> int:
        return len(self._subscriptions)

    # ---- requests ------------------------------------------------------------------------------

    def _on_request(self, req: Request, addr: Address, now: float) -> None:
        if req.method == "ACK":
            return  # no INVITE server transactions here: nothing to acknowledge
        if not all(req.header(h) for h in ("Via", "From", "To", "Call-ID", "CSeq")):
            self._answer_unparsable(bytes(req), addr)
            return
        key = (req.branch, req.call_id, req.header("CSeq"), req.from_tag, req.method)
        cached = self._responses.get(key)
        if cached is not None and cached[1] > now:
            self._out.append((cached[0], addr))  # a retransmission: answer, don't reprocess
            return
        self._mark = len(self._out)
        cseq = req.cseq
        if cseq is None or cseq[1] != req.method:
            response = self._response(req, 400, "Bad CSeq")
        else:
            try:
                response = self._dispatch(req, addr, now)
            except (BodyError, SipParseError, ValueError) as exc:
                response = self._response(req, 400, "Bad Request", detail=str(exc))
        data = bytes(response)
        self._responses[key] = (data, now + 64 * self.config.t1)
        while len(self._responses) > RESPONSE_CACHE_SIZE:
            self._responses.popitem(last=False)
        # The response goes before anything the request caused (the initial NOTIFY).
        self._out.insert(self._mark, (data, addr))
        if req.method != "PUBLISH" and req.method != "SUBSCRIBE":
            self._log.append(
                LogRecord(req.method, uri_of(req.header("From")) or "-", req.uri, response.status)
            )

    def _dispatch(self, req: Request, addr: Address, now: float) -> Response:
        if self.guard is not None:
            verdict = self.guard.check(req, now)
            if verdict.status:
                peer = uri_of(req.header("From")) or "-"
                self._log.append(
                    LogRecord(req.method, peer, req.uri, verdict.status, verdict.detail)
                )
                extra = [("WWW-Authenticate", verdict.challenge)] if verdict.challenge else []
                return self._response(
                    req, verdict.status, verdict.reason, extra=extra, detail=verdict.detail
                )
        if req.method == "PUBLISH":
            return self._on_publish(req, now)
        if req.method == "SUBSCRIBE":
            return self._on_subscribe(req, addr, now)
        if req.method == "OPTIONS":
            return self._response(
                req,
                200,
                "OK",
                extra=(
                    ("Allow", ALLOW),
                    ("Allow-Events", EVENT_PACKAGE),
                    ("Accept", bodies.MEDIA_TYPE),
                ),
            )
        return self._response(req, 405, "Method Not Allowed", extra=(("Allow", ALLOW),))

    _mark = 0
    """Where in the send queue the current request's response goes (before its NOTIFYs)."""

    # ---- PUBLISH (RFC 3903 §6) -------------------------------------------------------------------

    def _on_publish(self, req: Request, now: float) -> Response:
        response, detail = self._publish(req, now)
        peer = uri_of(req.header("From")) or "-"
        self._log.append(LogRecord("PUBLISH", peer, req.uri, response.status, detail))
        return response

    def _publish(self, req: Request, now: float) -> tuple[Response, str]:
        # Step 1: the Request-URI must name a presentity we can serve.
        presentity = self._presentity_key(req.uri)
        if presentity is None:
            return self._response(req, 416, "Unsupported URI Scheme"), ""
        # Step 2: the event package.
        if not self.hooks.publish_event_ok(_package(req.header("Event")) == EVENT_PACKAGE):
            return self._response(
                req, 489, "Bad Event", extra=(("Allow-Events", EVENT_PACKAGE),)
            ), ""
        pres = self._presentities.get(presentity) or _Presentity()
        # Step 3: the entity-tag.
        tags = [t.strip() for v in req.header_all("SIP-If-Match") for t in v.split(",")]
        if not self.hooks.etag_count_ok(len(tags) <= 1):
            return self._response(req, 400, "Multiple Entity-Tags"), ""
        if tags and not tags[0]:
            return self._response(req, 400, "Empty SIP-If-Match"), ""
        etag = tags[0] if tags else None
        stored = None
        if etag is not None:
            stored = next((p for p in pres.publications if p.etag == etag), None)
            if not self.hooks.etag_ok(stored is not None):
                return self._response(req, 412, "Conditional Request Failed"), ""
        # Step 4: the expiration interval.
        expires = self._expires(req, "publish")
        if isinstance(expires, Response):
            return expires, ""
        if expires:
            expires = self.hooks.publication_granted(expires)
        # Step 5: the body.
        body = req.body
        if etag is None and not body:
            return self._response(req, 400, "Missing Body"), ""
        if body and expires != 0:
            problem = self._check_body(req)
            if problem is not None:
                return problem, ""
        # Step 6: the state change, then the answer.
        new_etag = self.hooks.new_etag(self._new_etag(), etag if stored is not None else None)
        ok = self._response(
            req, 200, "OK", extra=(("SIP-ETag", new_etag), ("Expires", str(expires)))
        )
        self._presentities[presentity] = pres
        if expires == 0:
            if stored is not None and self.hooks.removal_applies(True):
                stale = self.hooks.notifies_before_change(False, "remove")
                if stale:
                    self._notify_presentity(presentity, now, trigger="remove")
                pres.publications.remove(stored)
                if not stale:
                    self._notify_presentity(presentity, now, trigger="remove")
            return ok, f"etag={new_etag} removed"
        expires_at = self.hooks.publication_expires(now + expires)
        if stored is not None and body:
            body = self.hooks.modified_body(body, stored, now)
        publication = Publication(
            body=body,
            etag=new_etag,
            stored_at=now,
            expires_at=expires_at,
            arrival=next(self._seq),
        )
        if stored is None:
            kind = "new"
            if self.config.flavour == "kamailio":
                replaced = bodies.replaced_by(pres.publications, body)
                if replaced is not None:
                    pres.publications.remove(replaced)
            pres.publications.append(publication)
        elif not body and not self.hooks.refresh_applies(True, stored):
            kind = "refresh-skipped"  # answered 200, the stored publication left as it was
        elif not body:
            kind = "refresh"
            index = pres.publications.index(stored)
            refreshed = dataclasses.replace(
                stored,
                etag=new_etag,
                expires_at=self.hooks.refreshed_expires(expires_at, stored.expires_at),
            )
            if self.config.flavour == "kamailio":
                # Kamailio's update_presentity rewrites received_time on a refresh too: the
                # publication moves to the end of the aggregation order (oracle: refreshed).
                refreshed = dataclasses.replace(refreshed, stored_at=now, arrival=next(self._seq))
            pres.publications[index] = refreshed
        elif not self.hooks.modify_applies(True, stored):
            kind = "modify-skipped"  # answered 200, the stored publication left as it was
        else:
            kind = "modify"
            if self.hooks.modify_replaces(True):
                pres.publications.remove(stored)
            pres.publications.append(publication)  # a modify moves to the end (BEHAVIOUR.md)
        if kind not in ("refresh", "refresh-skipped"):
            self._notify_presentity(presentity, now, trigger="publish", published=body)
        elif self.config.refresh_notifies:
            self._notify_presentity(presentity, now, trigger="publish-refresh")
        return ok, f"etag={new_etag} {kind} expires={expires}"

    def _check_body(self, req: Request) -> Response | None:
        """415 for a foreign Content-Type, 400 for a body that is not a dialog-info document."""
        ctype = _media_type(req.header("Content-Type"))
        if not self.hooks.media_type_ok(ctype == bodies.MEDIA_TYPE):
            return self._response(
                req, 415, "Unsupported Media Type", extra=(("Accept", bodies.MEDIA_TYPE),)
            )
        try:
            root = bodies.read_xml(req.body)
        except BodyError as exc:
            return self._response(req, 400, "Bad Body", detail=exc.message)
        if not self.hooks.root_ok(bodies.is_dialog_info(root)):
            return self._response(req, 400, "Not A Dialog-Info Document")
        return None

    def _new_etag(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"

    def _expire_publications(self, now: float) -> None:
        for presentity, pres in list(self._presentities.items()):
            live = [p for p in pres.publications if p.expires_at > now]
            if len(live) == len(pres.publications):
                continue
            stale = self.hooks.notifies_before_change(False, "publication-expiry")
            if stale:  # the NOTIFY is built while the expired publications are still stored
                pres.publications = [
                    p if p in live else dataclasses.replace(p, expires_at=math.inf)
                    for p in pres.publications
                ]
                self._notify_presentity(presentity, now, trigger="publication-expiry")
            pres.publications = live
            if not stale:
                self._notify_presentity(presentity, now, trigger="publication-expiry")
        watched = {s.presentity for s in self._subscriptions.values()}
        for presentity, pres in list(self._presentities.items()):
            if not pres.publications and presentity not in watched:
                del self._presentities[presentity]

    # ---- SUBSCRIBE (RFC 6665 §4.2.1) -------------------------------------------------------------

    def _on_subscribe(self, req: Request, addr: Address, now: float) -> Response:
        response, detail = self._subscribe(req, addr, now)
        self._log.append(
            LogRecord(
                "SUBSCRIBE", uri_of(req.header("From")) or "-", req.uri, response.status, detail
            )
        )
        return response

    def _subscribe(self, req: Request, addr: Address, now: float) -> tuple[Response, str]:
        if _package(req.header("Event")) != EVENT_PACKAGE:
            return self._response(
                req, 489, "Bad Event", extra=(("Allow-Events", EVENT_PACKAGE),)
            ), ""
        if not self.hooks.accept_ok(_accepts_dialog_info(req.header_all("Accept"))):
            return self._response(
                req, 406, "Not Acceptable", extra=(("Accept", bodies.MEDIA_TYPE),)
            ), ""
        from_tag = req.from_tag
        if not from_tag:
            return self._response(req, 400, "Missing From Tag"), ""
        expires = self._expires(req, "subscribe")
        if isinstance(expires, Response):
            return expires, ""
        expires = self.hooks.subscription_expires(expires, bool(req.to_tag))
        to_tag = req.to_tag
        if to_tag:  # in-dialog: refresh or unsubscribe
            sub = self._subscriptions.get((req.call_id or "", to_tag, from_tag))
            if sub is None:
                return self._response(req, 481, "Subscription Does Not Exist"), ""
            ok = self._response(req, 200, "OK", extra=self._sub_extra(sub, expires))
            if req.header("Contact"):
                sub.target = uri_of(req.header("Contact")) or sub.target
            sub.addr = addr
            sub.expires_at = now + expires
            if expires == 0:
                self._subscriptions.pop(sub.key, None)
                self._notify(sub, now, trigger="unsubscribe", terminated=True)
                late = self.hooks.late_notify_after_unsubscribe(None)
                if late is not None:
                    self._ended[sub.key] = (sub, late)
                return ok, "unsubscribed"
            self._notify(sub, now, trigger="resubscribe")
            return ok, f"refreshed expires={expires}"
        presentity = self._presentity_key(req.uri)
        if presentity is None:
            return self._response(req, 416, "Unsupported URI Scheme"), ""
        local_tag = secrets.token_hex(6)
        to = req.header("To") or ""
        sub = _Subscription(
            call_id=req.call_id or "",
            local_tag=local_tag,
            remote_tag=from_tag,
            presentity=presentity,
            local_party=f"{to};tag={local_tag}",
            remote_party=req.header("From") or "",
            target=uri_of(req.header("Contact")) or uri_of(req.header("From")) or req.uri,
            addr=addr,
            event=req.header("Event") or EVENT_PACKAGE,
            expires_at=now + expires,
            accept=tuple(req.header_all("Accept")),
            entity=self._entity(req.uri),
        )
        ok = self._response(req, 200, "OK", to_tag=local_tag, extra=self._sub_extra(sub, expires))
        self._presentities.setdefault(presentity, _Presentity())
        if expires == 0:  # a fetch (RFC 6665 §4.4.3): one terminated NOTIFY, nothing kept
            self._notify(sub, now, trigger="fetch", terminated=True)
            return ok, "fetch"
        self._subscriptions[sub.key] = sub
        self._notify(sub, now, trigger="subscribe")
        return ok, f"expires={expires}"

    def _entity(self, uri: str) -> str:
        """Strict: the Request-URI's scheme and port kept (A12); the modules rebuild
        ``"sip:"+user+"@"+domain`` (D02)."""
        rebuilt = bodies.entity_of(uri)
        strict = bodies.entity_uri(uri) if self.config.flavour == "strict" else rebuilt
        return self.hooks.entity(strict, rebuilt)

    def _sub_extra(self, sub: _Subscription, expires: int) -> tuple[tuple[str, str], ...]:
        return (("Expires", str(expires)), ("Contact", self._contact()))

    def _has_watchers(self, presentity: str) -> bool:
        return any(s.presentity == presentity for s in self._subscriptions.values())

    # ---- NOTIFY (RFC 6665 §4.2.2) ----------------------------------------------------------------

    def _notify_presentity(
        self, presentity: str, now: float, *, trigger: Trigger, published: bytes = b""
    ) -> None:
        """A state change: every active subscription of ``presentity`` gets a NOTIFY (B24)."""
        for sub in [s for s in self._subscriptions.values() if s.presentity == presentity]:
            self._notify(sub, now, trigger=trigger, published=published)
        for key, (sub, delay) in list(self._ended.items()):
            if sub.presentity == presentity:
                del self._ended[key]
                sub.held, sub.held_until = trigger, now + delay
                self._late.append(sub)

    def _notify(
        self,
        sub: _Subscription,
        now: float,
        *,
        trigger: Trigger,
        terminated: bool = False,
        published: bytes = b"",
    ) -> None:
        if self._halted or not self.hooks.notifies(True, trigger):
            return
        if self._held_back(sub, now, trigger, terminated):
            return
        sub.held = None  # whatever goes out now carries the latest state
        sub.last_notify_at = now
        if terminated:
            state = "terminated;reason=timeout"
        else:
            state = f"active;expires={max(0, math.floor(sub.expires_at - now))}"
        state = self.hooks.subscription_state(state, trigger)
        doc_state = "full"
        items_override = None
        partial = self.hooks.partial_on_publish(self.config.partial_on_publish)
        if partial and trigger == "publish" and published:
            doc_state = "partial"
            items_override = tuple(bodies.root_children(published))
        doc_state = self.hooks.document_state(doc_state, trigger)
        items_override = self.hooks.notify_items(items_override, trigger)
        body, dialogs, version = self._body(sub, now, doc_state, items_override)
        sub.cseq = self.hooks.next_cseq(sub.cseq + 1, sub.cseq)
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        headers: list[tuple[str, str]] = [
            (
                "Via",
                f"SIP/2.0/{self.config.transport.upper()} {self._hostport()};branch={branch};rport",
            ),
            ("Max-Forwards", "70"),
            ("From", sub.local_party),
            ("To", sub.remote_party),
            ("Call-ID", sub.call_id),
            ("CSeq", f"{sub.cseq} NOTIFY"),
            ("Contact", self._contact()),
            ("Event", sub.event),
            ("Subscription-State", state),
            ("Server", SERVER_NAME),
        ]
        if body is not None:
            headers.append(("Content-Type", bodies.MEDIA_TYPE))
        request = Request(method="NOTIFY", uri=sub.target, headers=tuple(headers), body=body or b"")
        request = self.hooks.notify_request(request, sub.accept)
        data = bytes(request)
        self._out.append((data, sub.addr))
        detail = f"version={version}" if version is not None else "no-body"
        self._client[branch] = _ClientTransaction(
            branch=branch,
            cseq=sub.cseq,
            data=data,
            addr=sub.addr,
            subscription=sub.key,
            log=LogRecord("NOTIFY", uri_of(sub.remote_party) or "-", sub.presentity, 0, detail),
            retransmit_at=now + self.config.t1 if self.config.transport == "udp" else math.inf,
            interval=self.config.t1,
            timeout_at=now + 64 * self.config.t1,
        )
        self._halted = self.hooks.halts(False, dialogs)

    def _held_back(
        self, sub: _Subscription, now: float, trigger: Trigger, terminated: bool
    ) -> bool:
        """A30: a state change less than ``min_notify_interval`` after the last NOTIFY waits
        (RFC 6665 §4.2.2 lets the notifier skip intermediate states: only the latest is sent)."""
        interval = self.config.min_notify_interval
        if terminated or trigger not in CHANGE_TRIGGERS or sub.last_notify_at is None:
            return False
        due = sub.last_notify_at + interval
        if now >= due or not self.hooks.throttles(interval > 0, trigger):
            return False
        sub.held = trigger
        sub.held_until = due
        return True

    def _body(
        self,
        sub: _Subscription,
        now: float,
        doc_state: str,
        items_override: tuple[etree._Element, ...] | None,
    ) -> tuple[bytes | None, int, int | str | None]:
        """(body or None, number of dialogs in it, version used)."""
        self._presentities.setdefault(sub.presentity, _Presentity())
        entity = sub.entity or bodies.entity_of(sub.presentity)
        if items_override is not None:
            items: tuple[etree._Element, ...] = items_override
        else:
            built = self._aggregate(sub.presentity, now)
            if built.publications == 0 and self.config.empty_form == "no-body":
                return None, 0, None
            items = built.items
            if built.publications == 0 and self.config.empty_form == "dummy-dialog":
                items = (bodies.idle_dialog(),)
            if built.publications == 0:
                items = tuple(self.builder.hooks.idle(list(items)))
        written = self.builder.finish(items)
        index = sub.bodies
        sub.bodies += 1
        version = self.hooks.version(self.config.first_version + index, index, sub.presentity)
        body = self.builder.document(entity, version, doc_state, written)
        return body, bodies.count_dialogs(written), version

    def _aggregate(self, presentity: str, now: float) -> bodies.Built:
        """The presentity's aggregate. One build serves every watcher notified for the same
        change; only the version differs per watcher (as in the modules)."""
        pubs = self._presentities[presentity].publications
        key = (presentity, now, tuple((p.etag, p.expires_at) for p in pubs if p.expires_at > now))
        if self._last_aggregate is not None and self._last_aggregate[0] == key:
            return self._last_aggregate[1]
        built = self.builder.build(pubs, now)
        self._last_aggregate = (key, built)
        return built

    # ---- responses to our NOTIFYs ----------------------------------------------------------------

    def _on_response(self, resp: Response, now: float) -> None:
        branch = resp.branch
        txn = self._client.get(branch or "")
        if txn is None or resp.cseq != (txn.cseq, "NOTIFY"):
            return  # a stray or a retransmitted final response: nothing to do
        if resp.status < 200:
            if self.config.transport == "udp":
                txn.interval = self.config.t2  # proceeding: keep retransmitting at T2
                txn.retransmit_at = now + txn.interval
            return
        del self._client[txn.branch]
        self._log.append(dataclasses.replace(txn.log, status=resp.status))
        if self.hooks.drops_subscription(resp.status in REMOVING_NOTIFY_STATUS, resp.status):
            self._subscriptions.pop(txn.subscription, None)

    # ---- building blocks -------------------------------------------------------------------------

    def _expires(self, req: Request, kind: str) -> int | Response:
        cfg = self.config
        text = req.header("Expires")
        if text is None:
            return int(getattr(cfg, f"{kind}_expires_default"))
        m = _EXPIRES.match(text)
        if not m:
            return self._response(req, 400, "Bad Expires")
        value = int(m.group(1))
        low = self.hooks.expires_minimum(int(getattr(cfg, f"{kind}_expires_min")), kind)
        if 0 < value < low:
            return self._response(
                req, 423, "Interval Too Brief", extra=(("Min-Expires", str(low)),)
            )
        return min(value, int(getattr(cfg, f"{kind}_expires_max")))

    def _presentity_key(self, uri: str) -> str | None:
        if not re.match(r"^sips?:[^@\s]+@[^@\s]+$", uri, re.IGNORECASE):
            return None
        try:
            return bodies.entity_of(uri)
        except BodyError:  # a URI the builder cannot read is one we do not serve
            return None

    def _hostport(self) -> str:
        host = self.config.host
        return f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"

    def _contact(self) -> str:
        params = "" if self.config.transport == "udp" else f";transport={self.config.transport}"
        return f"<sip:presence@{self._hostport()}{params}>"

    def _response(
        self,
        req: Request,
        status: int,
        reason: str,
        *,
        extra: Iterable[tuple[str, str]] = (),
        to_tag: str | None = None,
        detail: str = "",
    ) -> Response:
        more = list(extra)
        if detail:
            more.append(("Warning", f'399 reference "{_header_safe(detail)}"'))
        response = sipmsg.response_to(
            req, status, reason, to_tag=to_tag, server=SERVER_NAME, extra=more
        )
        return self.hooks.response(response, req)

    def _answer_unparsable(self, data: bytes, addr: Address) -> None:
        """A 400 when the five headers a response needs can be read, silence otherwise."""
        if len(data) > sipmsg.MAX_MESSAGE_BYTES:
            return
        text = data.decode("utf-8", "replace").replace("\r\n", "\n")
        head = text.split("\n\n", 1)[0].split("\n")
        start = head[0].strip() if head else ""
        m = re.match(r"^([A-Za-z]+) \S+ SIP/2\.0$", start)
        if not m or m.group(1).upper() == "ACK":
            return
        found: dict[str, str] = {}
        vias: list[str] = []
        for line in head[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                continue
            canonical = sipmsg.canonical_name(name)
            value = _header_safe(value.strip())
            if canonical == "Via":
                vias.append(value)
            elif canonical in ("From", "To", "Call-ID", "CSeq"):
                found.setdefault(canonical, value)
        if not vias or not all(found.get(h) for h in ("From", "To", "Call-ID", "CSeq")):
            return
        headers = [("Via", v) for v in vias]
        to = found["To"] if tag_of(found["To"]) else f"{found['To']};tag={secrets.token_hex(6)}"
        headers += [
            ("From", found["From"]),
            ("To", to),
            ("Call-ID", found["Call-ID"]),
            ("CSeq", found["CSeq"]),
            ("Server", SERVER_NAME),
        ]
        self._out.append(
            (bytes(Response(status=400, reason="Bad Request", headers=tuple(headers))), addr)
        )
        self._log.append(LogRecord(m.group(1).upper(), "-", "-", 400, "unparsable"))


# ---- pure helpers ------------------------------------------------------------------------------


def _package(event: str | None) -> str | None:
    if event is None:
        return None
    return event.split(";", 1)[0].strip().lower() or None


def _media_type(value: str | None) -> str | None:
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()


def _accepts_dialog_info(values: list[str]) -> bool:
    """No Accept (or only empty ones) means the package default, dialog-info+xml (A01)."""
    types = [_media_type(t) for v in values for t in v.split(",") if t.strip()]
    return not types or any(t in _ACCEPTABLE for t in types)


def _header_safe(text: str) -> str:
    return "".join(c if c.isprintable() and c != '"' else "?" for c in text)[:200]
