"""Faults of the protocol core: PUBLISH (group C), SUBSCRIBE/NOTIFY (group B), versions."""

from __future__ import annotations

import math
from collections.abc import Callable

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
    h.core.subscription_expires = lambda granted: granted + 60 if granted else granted


def _crash_after_two_dialogs(h: Hooks) -> None:
    h.core.halts = lambda halts, dialogs: halts or dialogs >= 2


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
)
"""Protocol-core faults, in catalogue order."""
