"""Named points where the reference server's behaviour can be bent, with RFC-strict defaults.

The core and the body builder compute the RFC answer at each decision, then pass it through
the matching hook: ``hooks.core.etag_ok(found)`` says whether an unknown entity-tag still gets
412, ``hooks.bodies.priority(rank, state)`` ranks a single-dialog candidate, and so on. Every
default returns the strict answer unchanged, so a server built with ``Hooks()`` is the
RFC-strict server and nothing here knows which faults exist.

Faults live in ``conformance.server.faults``: each one replaces or wraps a few of these
callables on one ``Hooks`` instance (a wrapper calls the previous callable, so several faults
compose). Nothing in ``core.py``, ``bodies.py`` or ``protocol.py`` imports the faults layer; a
layer test checks it. A third component (a call proxy) adds its own group of hooks here.

Triggers, the reason a NOTIFY is sent, are named by ``Trigger``; a state change of the
presentity is one of ``CHANGE_TRIGGERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from conformance.server.dialogs import CallHooks

if TYPE_CHECKING:
    from lxml import etree

    from conformance.server.bodies import Publication
    from conformance.sip.message import Request, Response

Trigger = Literal[
    "publish",
    "publish-refresh",
    "remove",
    "publication-expiry",
    "subscribe",
    "resubscribe",
    "unsubscribe",
    "fetch",
    "subscription-expiry",
]
CHANGE_TRIGGERS: frozenset[str] = frozenset(
    {"publish", "publish-refresh", "remove", "publication-expiry"}
)
"""Triggers that are a change of the presentity's state (B24), not of one subscription."""

WinnerRule = Literal["first", "last", "kamailio"]
"""How single-dialog mode picks among candidates of the best priority (D09): the first, the
last, or Kamailio's whole loop (last of the class, with its ``check_relevant_state`` skips)."""


def _same(value: Any, *_context: Any) -> Any:
    """The default of every hook: the strict answer, unchanged."""
    return value


@dataclass(slots=True)
class CoreHooks:
    """Decisions of the protocol core (PUBLISH, SUBSCRIBE, NOTIFY), strict by default."""

    publish_event_ok: Callable[[bool], bool] = _same
    """PUBLISH names the ``dialog`` package (else 489, C01)."""
    etag_ok: Callable[[bool], bool] = _same
    """SIP-If-Match names a stored publication (else 412, C11)."""
    etag_count_ok: Callable[[bool], bool] = _same
    """SIP-If-Match carries at most one entity-tag (else 400, C12)."""
    media_type_ok: Callable[[bool], bool] = _same
    """The PUBLISH Content-Type is dialog-info (else 415, C07)."""
    root_ok: Callable[[bool], bool] = _same
    """The PUBLISH body's root is ``dialog-info`` in the RFC 4235 namespace (else 400)."""
    accept_ok: Callable[[bool], bool] = _same
    """SUBSCRIBE's Accept allows dialog-info (else 406, B15)."""
    new_etag: Callable[[str, str | None], str] = _same
    """The entity-tag a successful PUBLISH returns: fresh, given the one it replaces (C14)."""
    removal_applies: Callable[[bool], bool] = _same
    """A remove (Expires: 0) of a stored publication deletes it (C16)."""
    expires_minimum: Callable[[int, str], int] = _same
    """The smallest non-zero Expires taken without 423, for ``publish`` or ``subscribe``."""
    publication_granted: Callable[[int], int] = _same
    """The Expires a PUBLISH is granted, already capped (C05, C06)."""
    publication_expires: Callable[[float], float] = _same
    """The absolute time a stored or refreshed publication expires (C17)."""
    refreshed_expires: Callable[[float, float], float] = _same
    """A refresh's new expiry, given the one it replaces (C13)."""
    modify_replaces: Callable[[bool], bool] = _same
    """A modify replaces the publication it names (C15)."""
    modified_body: Callable[[bytes, Publication, float], bytes] = _same
    """The body a modify stores, given the stored publication and the time (C18)."""
    modify_applies: Callable[[bool, Publication], bool] = _same
    """A modify of this stored publication is applied at all (else answered 200, kept: C15)."""
    refresh_applies: Callable[[bool, Publication], bool] = _same
    """A refresh of this stored publication is applied at all (else answered 200 with a new
    ETag, but the old expiry and ETag kept: C13, C14)."""
    notifies_before_change: Callable[[bool, Trigger], bool] = _same
    """A remove or an expiry notifies from the store before the change (C16, C17)."""
    partial_on_publish: Callable[[bool], bool] = _same
    """A PUBLISH with a body is notified as a partial document of that body alone (A17)."""
    late_notify_after_unsubscribe: Callable[[float | None], float | None] = _same
    """Seconds after the next change an unsubscribed watcher still gets a NOTIFY (None: never,
    B21)."""
    entity: Callable[[str, str], str] = _same
    """The bodies' ``entity``, given the module's rebuilt ``sip:user@host`` (A12)."""
    subscription_expires: Callable[[int, bool], int] = _same
    """The Expires a SUBSCRIBE is granted, already capped; True for a refresh (B03, B19)."""
    response: Callable[[Response, Request], Response] = _same
    """Every response the core builds to a request it could read (B02, C19)."""
    notifies: Callable[[bool, Trigger], bool] = _same
    """A NOTIFY goes out for this trigger (B05, B23, B24)."""
    subscription_state: Callable[[str, Trigger], str] = _same
    """The Subscription-State header value (B09, B21)."""
    document_state: Callable[[str, Trigger], str] = _same
    """The body's ``state`` attribute (A14)."""
    notify_request: Callable[[Request, tuple[str, ...]], Request] = _same
    """The NOTIFY about to be sent, given the SUBSCRIBE's Accept values (A01, B06-B14)."""
    next_cseq: Callable[[int, int], int] = _same
    """The CSeq of a subscription's next NOTIFY, given the previous one (B12)."""
    version: Callable[[int, int, str], int | str] = _same
    """The body version, given the subscription's body index and the presentity (A07-A11)."""
    drops_subscription: Callable[[bool, int | None], bool] = _same
    """A final NOTIFY response (``None``: Timer F fired) ends the subscription (B25, B26)."""
    halts: Callable[[bool, int], bool] = _same
    """After a NOTIFY with this many dialogs the server stops for good (a crash)."""

    challenges: Callable[[bool], bool] = _same
    """With digest auth on: a PUBLISH or SUBSCRIBE without credentials gets 401 (A31)."""
    credentials_ok: Callable[[bool], bool] = _same
    """With digest auth on: the answer names a known user and its response is right (A31)."""
    nonce_fresh: Callable[[bool], bool] = _same
    """With digest auth on: the answer's nonce is younger than the nonce lifetime (A31)."""
    stale_flag: Callable[[bool], bool] = _same
    """With digest auth on: a challenge after an expired nonce says ``stale=true`` (A31)."""

    throttles: Callable[[bool, Trigger], bool] = _same
    """A state-change NOTIFY waits out the per-subscription rate limit (A30)."""
    notify_items: Callable[
        [tuple[etree._Element, ...] | None, Trigger], tuple[etree._Element, ...] | None
    ] = _same
    """The root children a NOTIFY carries instead of the aggregate (None: the aggregate)."""


@dataclass(slots=True)
class BodyHooks:
    """Decisions of the NOTIFY body builder (group D and the A group), strict by default."""

    publications: Callable[[Sequence[Publication]], Sequence[Publication]] = _same
    """The live publications that are aggregated, in aggregation order (D03)."""
    priority: Callable[[int, str], int] = _same
    """Single-dialog rank of a candidate state (D08)."""
    winner_rule: Callable[[WinnerRule], WinnerRule] = _same
    """Single-dialog tie rule (D09)."""
    single_dialog_applies: Callable[[bool, int], bool] = _same
    """Single-dialog mode trims this many publications (D10: only from two on)."""
    idle: Callable[[list[etree._Element]], list[etree._Element]] = _same
    """The root children sent when nothing is published (B27, D11)."""
    items: Callable[[list[etree._Element]], list[etree._Element]] = _same
    """The root children of the document about to be written (A19, A34)."""
    document: Callable[[bytes], bytes] = _same
    """The serialised document (A02, A05, A06)."""


@dataclass(slots=True)
class Hooks:
    """Every hook group of the reference server; ``Hooks()`` is the RFC-strict server."""

    core: CoreHooks = field(default_factory=CoreHooks)
    bodies: BodyHooks = field(default_factory=BodyHooks)
    calls: CallHooks = field(default_factory=CallHooks)
