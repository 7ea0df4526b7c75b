"""Faults of the protocol core: PUBLISH (group C), SUBSCRIBE/NOTIFY (group B), versions."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

from conformance.errors import BodyError
from conformance.server.bodies import DIALOG, DIALOG_INFO_NS, Publication, read_xml
from conformance.server.faults.base import Fault
from conformance.server.hooks import CHANGE_TRIGGERS, Hooks, Trigger
from conformance.sip.message import Request, Response


def _waive(check: str) -> Callable[[Hooks], None]:
    """A fault that lets a failed check pass (the strict answer ``False`` becomes ``True``)."""

    def install(h: Hooks) -> None:
        setattr(h.core, check, lambda ok: True)

    return install


def _content_type_ignored(h: Hooks) -> None:
    h.core.media_type_ok = lambda ok: True
    h.core.root_ok = lambda ok: True


def _etag_not_renewed(h: Hooks) -> None:
    h.core.new_etag = lambda fresh, previous: previous or fresh


def _waive_throttle(h: Hooks) -> None:
    h.core.throttles = lambda throttled, trigger: False


def _auth_not_required(h: Hooks) -> None:
    h.core.challenges = lambda challenged: False


def _stale_nonce_refused(h: Hooks) -> None:
    h.core.stale_flag = lambda stale: False


def _remove_ignored(h: Hooks) -> None:
    h.core.removal_applies = lambda applies: False


def _expired_publication_kept(h: Hooks) -> None:
    h.core.publication_expires = lambda at: math.inf


def _rewrite_response(edit: Callable[[Response, Request], Response]) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.core.response
        h.core.response = lambda resp, req: edit(previous(resp, req), req)

    return install


def _echo_record_route(resp: Response, req: Request) -> Response:
    routes = tuple((n, v) for n, v in req.headers if n == "Record-Route")
    return Response(status=resp.status, reason=resp.reason, headers=resp.headers + routes)


def _subscribe_202(resp: Response, req: Request) -> Response:
    if req.method != "SUBSCRIBE" or resp.status != 200:
        return resp
    return Response(status=202, reason="Accepted", headers=resp.headers, body=resp.body)


def _version(compute: Callable[[int, int, int | str], int | str]) -> Callable[[Hooks], None]:
    """A version fault from ``compute(strict, index, first)``; ``first = strict - index``."""

    def install(h: Hooks) -> None:
        previous = h.core.version

        def version(value: int, index: int, presentity: str) -> int | str:
            return compute(value, index, previous(value, index, presentity))

        h.core.version = version

    return install


def _version_shared(h: Hooks) -> None:
    counters: dict[str, int] = {}

    def shared(value: int, index: int, presentity: str) -> int:
        n = counters.get(presentity, 0)
        counters[presentity] = n + 1
        return value - index + n

    h.core.version = shared


def _silence(triggers: frozenset[str]) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.core.notifies

        def notifies(ok: bool, trigger: Trigger) -> bool:
            return trigger not in triggers and previous(ok, trigger)

        h.core.notifies = notifies

    return install


def _state_fault(edit: Callable[[str, Trigger], str]) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.core.subscription_state
        h.core.subscription_state = lambda value, trigger: edit(previous(value, trigger), trigger)

    return install


def _initial_notify_partial(h: Hooks) -> None:
    previous = h.core.document_state
    h.core.document_state = lambda value, trigger: (
        "partial" if trigger == "subscribe" else previous(value, trigger)
    )


def _refresh_notify_empty(h: Hooks) -> None:
    state, items = h.core.document_state, h.core.notify_items
    h.core.document_state = lambda value, trigger: (
        "partial" if trigger == "resubscribe" else state(value, trigger)
    )
    h.core.notify_items = lambda value, trigger: (
        () if trigger == "resubscribe" else items(value, trigger)
    )


def _unthrottled(triggers: frozenset[str], h: Hooks) -> None:
    """These triggers' NOTIFYs skip the A30 throttle, so a coalesced NOTIFY cannot hide the
    fault's own one."""
    previous = h.core.throttles
    h.core.throttles = lambda held, trigger: (
        False if trigger in triggers else previous(held, trigger)
    )


def _stale_notify(trigger: Trigger) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.core.notifies_before_change
        h.core.notifies_before_change = lambda stale, why: (
            True if why == trigger else previous(stale, why)
        )
        _unthrottled(frozenset({trigger}), h)

    return install


def _partial_per_publication(h: Hooks) -> None:
    h.core.partial_on_publish = lambda partial: True
    _unthrottled(frozenset({"publish"}), h)


def _all_terminated(body: bytes) -> bool:
    try:
        root = read_xml(body)
    except BodyError:
        return False
    states = [
        (d.findtext(f"{{{DIALOG_INFO_NS}}}state") or "").strip().lower() for d in root.iter(DIALOG)
    ]
    return bool(states) and all(s == "terminated" for s in states)


def _modify_of_terminated_skipped(h: Hooks) -> None:
    previous = h.core.modify_applies
    h.core.modify_applies = lambda applies, stored: (
        False if _all_terminated(bytes(stored.body)) else previous(applies, stored)
    )


def _refresh_of_terminated_skipped(h: Hooks) -> None:
    previous = h.core.refresh_applies
    h.core.refresh_applies = lambda applies, stored: (
        False if _all_terminated(bytes(stored.body)) else previous(applies, stored)
    )


def _out_of_order_modify(h: Hooks) -> None:
    waiting: dict[tuple[bytes, float], bytes] = {}
    previous = h.core.modified_body

    def one_behind(new: bytes, stored: Publication, now: float) -> bytes:
        kept = waiting.pop((bytes(stored.body), stored.stored_at), bytes(stored.body))
        waiting[(kept, now)] = previous(new, stored, now)
        return kept

    h.core.modified_body = one_behind


def _notify_after_unsubscribe_late(h: Hooks) -> None:
    h.core.late_notify_after_unsubscribe = lambda delay: 2.5


def _entity_rebuilt(h: Hooks) -> None:
    h.core.entity = lambda strict, rebuilt: rebuilt


def _cseq_gap(h: Hooks) -> None:
    h.core.next_cseq = lambda value, previous: previous + 2 if previous else value


def _kept_after(final: Callable[[int | None], bool]) -> Callable[[Hooks], None]:
    """The subscription survives the NOTIFY outcomes ``final`` selects."""

    def install(h: Hooks) -> None:
        previous = h.core.drops_subscription
        h.core.drops_subscription = lambda drops, status: (
            False if final(status) else previous(drops, status)
        )

    return install


def _expires_lengthened(h: Hooks) -> None:
    h.core.subscription_expires = lambda granted, refresh: granted + 60 if granted else granted


def _crash_after_two_dialogs(h: Hooks) -> None:
    h.core.halts = lambda halts, dialogs: halts or dialogs >= 2


def _headers(
    headers: tuple[tuple[str, str], ...], name: str, edit: Callable[[str], str | None]
) -> tuple[tuple[str, str], ...]:
    """``headers`` with every ``name`` field's value edited (``None`` removes the field)."""
    out: list[tuple[str, str]] = []
    for field, value in headers:
        if field == name:
            edited = edit(value)
            if edited is None:
                continue
            value = edited
        out.append((field, value))
    return tuple(out)


def _notify_header(
    name: str, edit: Callable[[str, tuple[str, ...]], str | None]
) -> Callable[[Hooks], None]:
    """A NOTIFY fault editing one header field, given the SUBSCRIBE's Accept values."""

    def install(h: Hooks) -> None:
        previous = h.core.notify_request

        def notify(request: Request, accept: tuple[str, ...]) -> Request:
            request = previous(request, accept)
            edited = _headers(request.headers, name, lambda value: edit(value, accept))
            return dataclasses.replace(request, headers=edited)

        h.core.notify_request = notify

    return install


def _response_header(
    method: str, status: int, name: str, edit: Callable[[str, Request], str | None]
) -> Callable[[Hooks], None]:
    """A fault editing one header field of the ``status`` responses to ``method``."""

    def rewrite(resp: Response, req: Request) -> Response:
        if req.method != method or resp.status != status:
            return resp
        edited = _headers(resp.headers, name, lambda value: edit(value, req))
        return dataclasses.replace(resp, headers=edited)

    return _rewrite_response(rewrite)


def _etag_twice(resp: Response, req: Request) -> Response:
    if req.method != "PUBLISH" or resp.status != 200:
        return resp
    etags = tuple((n, v) for n, v in resp.headers if n == "SIP-ETag")
    return dataclasses.replace(resp, headers=resp.headers + etags)


def _subscribe_423_no_min_expires(h: Hooks) -> None:
    previous = h.core.expires_minimum
    h.core.expires_minimum = lambda low, kind: 2 if kind == "subscribe" else previous(low, kind)
    _response_header("SUBSCRIBE", 423, "Min-Expires", lambda value, req: None)(h)


def _refresh_lengthened(h: Hooks) -> None:
    previous = h.core.subscription_expires

    def granted(value: int, refresh: bool) -> int:
        value = previous(value, refresh)
        return value + 60 if refresh and value else value

    h.core.subscription_expires = granted


def _granted(edit: Callable[[int], int]) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.core.publication_granted
        h.core.publication_granted = lambda value: edit(previous(value))

    return install


def _refresh_not_extended(h: Hooks) -> None:
    h.core.refreshed_expires = lambda new, old: old


def _modify_appends(h: Hooks) -> None:
    h.core.modify_replaces = lambda replaces: False


def _quick_modify_lost(h: Hooks) -> None:
    def body(new: bytes, stored: Publication, now: float) -> bytes:
        return stored.body if now - stored.stored_at < QUICK_MODIFY else new

    h.core.modified_body = body


QUICK_MODIFY = 0.5
"""Seconds within which the ``quick-modify-lost`` fault drops a modify's body."""


FAULTS = (
    Fault(
        "expired-publication-kept", "publications never expire", ("C17",), _expired_publication_kept
    ),
    Fault(
        "remove-ignored",
        "PUBLISH Expires: 0 answers 200 but keeps the state",
        ("C16",),
        _remove_ignored,
    ),
    Fault(
        "unknown-etag-accepted",
        "SIP-If-Match with an unknown entity-tag gets 200",
        ("C11",),
        _waive("etag_ok"),
    ),
    Fault(
        "etag-not-renewed",
        "a refresh answers with the entity-tag it was given",
        ("C14",),
        _etag_not_renewed,
    ),
    Fault(
        "content-type-ignored",
        "a PUBLISH body of the wrong Content-Type is stored (no 415)",
        ("C07",),
        _content_type_ignored,
    ),
    Fault(
        "unknown-event-accepted",
        "PUBLISH with an unknown Event gets 200",
        ("C01",),
        _waive("publish_event_ok"),
    ),
    Fault(
        "record-route-echoed",
        "responses copy the request's Record-Route",
        ("C19",),
        _rewrite_response(_echo_record_route),
    ),
    Fault(
        "version-repeats",
        "a NOTIFY after the first reuses the previous version",
        ("A08", "A09"),
        _version(lambda strict, index, v: v - 1 if index >= 1 and isinstance(v, int) else v),
    ),
    Fault(
        "version-shared",
        "one version counter per presentity, shared by all its subscriptions",
        ("A10",),
        _version_shared,
    ),
    Fault(
        "version-down",
        "the third NOTIFY of a subscription goes back to the start",
        ("A09",),
        _version(lambda strict, index, v: strict - index if index == 2 else v),
    ),
    Fault(
        "version-skips",
        "every NOTIFY after the first skips one version (0, 2, 4...), with no NOTIFY between",
        ("A08",),
        _version(lambda strict, index, v: v + index if isinstance(v, int) else v),
    ),
    Fault(
        "version-starts-at-5",
        "the first version of a subscription is 5",
        ("A07",),
        _version(lambda strict, index, v: 5 + index),
    ),
    Fault(
        "version-placeholder",
        "the version attribute is the unpatched placeholder 00000000000",
        ("A11",),
        _version(lambda strict, index, v: "00000000000"),
    ),
    Fault(
        "initial-notify-partial",
        "the NOTIFY answering a SUBSCRIBE says state=partial",
        ("A14",),
        _initial_notify_partial,
    ),
    Fault(
        "no-immediate-notify",
        "a new subscription gets no initial NOTIFY",
        ("B05",),
        _silence(frozenset({"subscribe"})),
    ),
    Fault(
        "subscription-state-no-expires",
        "Subscription-State: active carries no expires parameter",
        ("B09",),
        _state_fault(lambda value, trigger: "active" if value.startswith("active") else value),
    ),
    Fault(
        "subscribe-202",
        "SUBSCRIBE is answered with 202 Accepted",
        ("B02",),
        _rewrite_response(_subscribe_202),
    ),
    Fault(
        "expires-lengthened",
        "SUBSCRIBE 200 grants more time than requested",
        ("B03",),
        _expires_lengthened,
    ),
    Fault("cseq-gap", "NOTIFY CSeq numbers go up by two", ("B12",), _cseq_gap),
    Fault(
        "no-notify-on-change",
        "a PUBLISH change notifies no watcher",
        ("B24",),
        _silence(CHANGE_TRIGGERS),
    ),
    Fault(
        "unsubscribe-stays-active",
        "the NOTIFY answering Expires: 0 says active",
        ("B21",),
        _state_fault(
            lambda value, trigger: "active;expires=0" if trigger == "unsubscribe" else value
        ),
    ),
    Fault(
        "subscription-kept-after-481",
        "a NOTIFY answered with 481 leaves the subscription in place",
        ("B25",),
        _kept_after(lambda status: status is not None),
    ),
    Fault(
        "subscription-kept-after-timeout",
        "a NOTIFY that times out (Timer F) leaves the subscription in place",
        ("B26",),
        _kept_after(lambda status: status is None),
    ),
    Fault(
        "subscription-expiry-silent",
        "an expired subscription is dropped without a terminated NOTIFY",
        ("B23",),
        _silence(frozenset({"subscription-expiry"})),
    ),
    Fault(
        "accept-ignored",
        "SUBSCRIBE whose Accept lacks dialog-info gets 200 (no 406)",
        ("B15",),
        _waive("accept_ok"),
    ),
    Fault(
        "crash-after-two-dialogs",
        "the server stops answering after its first NOTIFY carrying two dialogs",
        ("B05", "B24"),
        _crash_after_two_dialogs,
    ),
    Fault(
        "notify-type-generic-xml",
        "NOTIFY bodies are labelled application/xml",
        ("A01",),
        _notify_header("Content-Type", lambda value, accept: "application/xml"),
    ),
    Fault(
        "notify-charset-latin1",
        "NOTIFY Content-Type declares charset=ISO-8859-1",
        ("A04",),
        _notify_header("Content-Type", lambda value, accept: f"{value};charset=ISO-8859-1"),
    ),
    Fault(
        "notify-from-tag-changed",
        "NOTIFY From-tag differs from the To-tag of the SUBSCRIBE 200",
        ("B06",),
        _notify_header("From", lambda value, accept: re.sub(r";tag=", ";tag=x", value)),
    ),
    Fault(
        "notify-event-wrong",
        "NOTIFY says Event: presence",
        ("B07",),
        _notify_header("Event", lambda value, accept: "presence"),
    ),
    Fault(
        "subscription-state-unknown",
        "Subscription-State says open instead of active",
        ("B08",),
        _state_fault(lambda value, trig: re.sub(r"^active", "open", value)),
    ),
    Fault(
        "notify-contact-two-uris",
        "NOTIFY Contact lists two URIs",
        ("B11",),
        _notify_header("Contact", lambda value, accept: f"{value}, <sip:backup@invalid>"),
    ),
    Fault(
        "notify-content-type-missing",
        "NOTIFYs with a body carry no Content-Type",
        ("B13",),
        _notify_header("Content-Type", lambda value, accept: None),
    ),
    Fault(
        "notify-type-ignores-accept",
        "with an Accept header, NOTIFY bodies are labelled application/pidf+xml",
        ("B14",),
        _notify_header(
            "Content-Type", lambda value, accept: "application/pidf+xml" if accept else value
        ),
    ),
    Fault(
        "subscribe-423-no-min-expires",
        "SUBSCRIBE Expires: 1 gets a 423 without Min-Expires",
        ("B18",),
        _subscribe_423_no_min_expires,
    ),
    Fault(
        "refresh-lengthened",
        "a refresh SUBSCRIBE is granted 60 s more than requested",
        ("B19",),
        _refresh_lengthened,
    ),
    Fault(
        "no-notify-on-refresh",
        "a refresh SUBSCRIBE gets no NOTIFY",
        ("B20",),
        _silence(frozenset({"resubscribe"})),
    ),
    Fault(
        "refresh-notify-empty",
        "the NOTIFY answering a refresh SUBSCRIBE is state=partial with no dialogs",
        ("B20", "A14"),
        _refresh_notify_empty,
    ),
    Fault(
        "fetch-no-notify",
        "a fetch (SUBSCRIBE Expires: 0) gets no NOTIFY",
        ("B22",),
        _silence(frozenset({"fetch"})),
    ),
    Fault(
        "initial-publish-no-etag",
        "the 200 to an initial PUBLISH carries no SIP-ETag",
        ("C03",),
        _response_header(
            "PUBLISH",
            200,
            "SIP-ETag",
            lambda value, req: value if req.header("SIP-If-Match") else None,
        ),
    ),
    Fault(
        "publish-etag-twice",
        "the 200 to a PUBLISH carries its SIP-ETag twice",
        ("C04",),
        _rewrite_response(_etag_twice),
    ),
    Fault(
        "publish-expires-grace",
        "PUBLISH is granted 10% more than the Expires it asked for",
        ("C05",),
        _granted(lambda value: value + value // 10),
    ),
    Fault(
        "publish-minimum-silent",
        "PUBLISH Expires: 1 is granted 2 s (a minimum without 423)",
        ("C06",),
        _granted(lambda value: max(value, 2)),
    ),
    Fault(
        "415-without-accept",
        "the 415 to a PUBLISH of the wrong type carries no Accept",
        ("C08",),
        _response_header("PUBLISH", 415, "Accept", lambda value, req: None),
    ),
    Fault(
        "multiple-etags-accepted",
        "a PUBLISH with two SIP-If-Match entity-tags uses the first (no 400)",
        ("C12",),
        _waive("etag_count_ok"),
    ),
    Fault(
        "refresh-not-extended",
        "a refresh PUBLISH answers 200 but keeps the old expiry",
        ("C13",),
        _refresh_not_extended,
    ),
    Fault(
        "modify-appends",
        "a modify PUBLISH adds the new body beside the old one",
        ("C15",),
        _modify_appends,
    ),
    Fault(
        "quick-modify-lost",
        "a modify within 0.5 s of the previous store keeps the old body (answered 200)",
        # The lost modify is the symptom the history check sees at its moment and blames on
        # the contradicted stimulus (C15); the case's own C18 then reads "judged under C15".
        ("C18", "C15"),
        _quick_modify_lost,
    ),
    Fault(
        "notify-unthrottled",
        "state changes are notified at once, several per second to one watcher",
        ("A30",),
        _waive_throttle,
    ),
    Fault(
        "modify-of-terminated-skipped",
        "a modify of an all-terminated publication answers 200 with a new ETag but keeps the "
        "old body and the old ETag (Kamailio)",
        ("C15", "C14"),
        _modify_of_terminated_skipped,
    ),
    Fault(
        "refresh-of-terminated-skipped",
        "a refresh of an all-terminated publication answers 200 with a new ETag and Expires "
        "but keeps the old expiry and the old ETag (Kamailio, seen by the explorer)",
        ("C14", "C13"),
        _refresh_of_terminated_skipped,
    ),
    Fault(
        "stale-removal-notify",
        "a remove notifies from the store before deleting (the removed dialogs still listed), "
        "with no corrective NOTIFY",
        ("C16",),
        _stale_notify("remove"),
    ),
    Fault(
        "stale-expiry-notify",
        "an expiring publication is notified before it is dropped (its dialogs still listed)",
        ("C17",),
        _stale_notify("publication-expiry"),
    ),
    Fault(
        "partial-notify-per-publication",
        "a NOTIFY caused by a PUBLISH with a body is state=partial with only that body's dialogs",
        ("A17",),
        _partial_per_publication,
    ),
    Fault(
        "out-of-order-modify",
        "a modify answers 200 but its body is stored only when the next modify arrives",
        ("C15",),
        _out_of_order_modify,
    ),
    Fault(
        "notify-after-unsubscribe-late",
        "after an unsubscribe, the next change sends one NOTIFY on the ended dialog 2.5 s later",
        ("B21",),
        _notify_after_unsubscribe_late,
    ),
    Fault(
        "entity-rebuilt",
        "the root's entity is rebuilt as sip:user@host (scheme and port of the Request-URI "
        "lost, as the modules do); only a presentity URI with a port or sips: shows it",
        ("A12",),
        _entity_rebuilt,
    ),
    Fault(
        "auth-not-required",
        "with digest auth on, a PUBLISH or SUBSCRIBE without credentials is processed (no 401)",
        ("A31",),
        _auth_not_required,
    ),
    Fault(
        "auth-wrong-credentials-accepted",
        "with digest auth on, any well-formed answer to a challenge is taken, right or not",
        ("A31",),
        _waive("credentials_ok"),
    ),
    Fault(
        "auth-stale-not-flagged",
        "with digest auth on, an answer with an expired nonce is challenged without stale=true",
        ("A31",),
        _stale_nonce_refused,
    ),
)
"""Protocol-core faults, in catalogue order."""
