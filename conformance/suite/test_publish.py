"""RFC 3903 PUBLISH handling for Event: dialog (REQUIREMENTS.md group C)."""

from __future__ import annotations

import pytest

from conformance.oracle.dialoginfo import dialog
from conformance.oracle.requirements import Level

pytestmark = pytest.mark.dialoginfo


def _ok(result) -> bool:
    return 200 <= result.response.status < 300


def _refresh_status(dialoginfo_case, user, etag) -> int:
    """The status a refresh with ``etag`` gets, the exchange kept as evidence; the expectation
    is not updated (the callers judge the entity-tag, not the state)."""
    result = dialoginfo_case.publisher.refresh(user, etag or "", expires=60)
    dialoginfo_case.exchanges.append(result)
    return result.response.status


def _refresh_answered(dialoginfo_case, refreshed, what: str) -> None:
    """C13 on a refresh's answer: a 2xx that names a new entity-tag and the granted Expires."""
    dialoginfo_case.finding(
        "C13",
        _ok(refreshed) and bool(refreshed.etag) and refreshed.expires is not None,
        f"{what} answered {refreshed.response.status}, SIP-ETag {refreshed.etag!r}, "
        f"Expires {refreshed.expires}",
    )


def _etag_handed_over(dialoginfo_case, user, newer, replaced, what: str) -> None:
    """C14 as one finding for both entity-tags: the one the ``what``'s 200 gave must name the
    publication from then on, and the one it replaced must not."""
    new = _refresh_status(dialoginfo_case, user, newer.etag)
    old = _refresh_status(dialoginfo_case, user, replaced.etag)
    dialoginfo_case.finding(
        "C14",
        200 <= new < 300 and old == 412,
        f"refresh with the SIP-ETag of the {what}'s 200 answered {new}; "
        f"with the SIP-ETag it replaced, {old}",
    )


@pytest.mark.dialoginfo_requirement("C03", "C04", "C05")
def test_initial_publish_gets_etag_and_expires(dialoginfo_case):
    user = dialoginfo_case.user("pub")
    result = dialoginfo_case.publish(user, [dialog("p1", "trying")], expires=120)
    etags = result.response.header_all("SIP-ETag")
    dialoginfo_case.finding(
        "C03",
        _ok(result) and bool(result.etag),
        f"initial PUBLISH answered {result.response.status}, SIP-ETag {etags!r}",
    )
    dialoginfo_case.finding(
        "C04",
        len(etags) == 1 and "," not in etags[0] and result.expires is not None,
        f"200 carries SIP-ETag {etags!r} and Expires {result.response.header('Expires')!r}",
    )
    dialoginfo_case.finding(
        "C05",
        result.expires is not None and 0 < result.expires <= 120,
        f"requested Expires 120, granted {result.expires}",
    )


@pytest.mark.dialoginfo_requirement("C05")
def test_publish_without_expires_gets_local_default(dialoginfo_case):
    result = dialoginfo_case.publish(
        dialoginfo_case.user("noexp"), [dialog("p2", "trying")], expires=None
    )
    dialoginfo_case.finding(
        "C05",
        _ok(result) and result.expires is not None and result.expires > 0,
        f"PUBLISH without Expires answered {result.response.status}, "
        f"Expires {result.response.header('Expires')!r}",
    )


@pytest.mark.dialoginfo_requirement("C06")
def test_publish_expires_one_second(dialoginfo_case):
    result = dialoginfo_case.publish(
        dialoginfo_case.user("short"), [dialog("p3", "trying")], expires=1
    )
    status = result.response.status
    if status == 423:
        minimum = result.response.header("Min-Expires") or ""
        dialoginfo_case.finding("C06", minimum.isdigit(), f"423 carries Min-Expires {minimum!r}")
    else:
        dialoginfo_case.finding(
            "C06",
            _ok(result) and result.expires is not None and result.expires <= 1,
            f"Expires 1 answered {status} with Expires {result.expires}",
        )


@pytest.mark.dialoginfo_requirement("C01")
@pytest.mark.parametrize("event", ["x-nonexistent", None])
def test_publish_bad_event_is_489(dialoginfo_case, event):
    result = dialoginfo_case.publish(
        dialoginfo_case.user("pev"), [dialog("p4", "trying")], event=event
    )
    dialoginfo_case.finding(
        "C01",
        result.response.status == 489,
        f"PUBLISH with Event {event!r} answered {result.response.status}",
    )


@pytest.mark.dialoginfo_requirement("C07", "D13")
@pytest.mark.parametrize("content_type", ["application/pidf+xml", "text/plain"])
def test_publish_wrong_content_type_is_rejected(dialoginfo_case, content_type):
    user = dialoginfo_case.user("ctype")
    dialoginfo_case.publish(user, [dialog("good", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    body = dialoginfo_case.body(user, [dialog("bad", "early")])
    result = dialoginfo_case.publish(user, body, content_type=content_type)
    status = result.response.status
    dialoginfo_case.finding(
        "C07", 400 <= status < 500, f"PUBLISH with Content-Type {content_type} answered {status}"
    )
    if status != 415 and 400 <= status < 500:
        dialoginfo_case.finding(
            "C07", False, f"rejected with {status}, the RFC names 415", level=Level.SHOULD
        )
    if status == 415:
        accept = result.response.header("Accept") or ""
        dialoginfo_case.finding(
            "C08", "application/dialog-info+xml" in accept.lower(), f"415 carries Accept {accept!r}"
        )
    # The state must be what it was (C07): every NOTIFY up to the end of the quiet window is
    # judged as if the PUBLISH had been rejected. What a server that stored the body anyway
    # sends is the oracle's business (D13: the modules aggregate any well-formed XML they stored).
    dialoginfo_case.expect_no_effect(sub, user, result, ["C07"])
    fetch = dialoginfo_case.subscribe(user, expires=0)
    dialoginfo_case.expect_view(fetch, user, ["D13"])


@pytest.mark.dialoginfo_requirement("C09")
def test_publish_without_body_or_etag_is_400(dialoginfo_case):
    result = dialoginfo_case.publish(dialoginfo_case.user("nobody"), None)
    dialoginfo_case.finding(
        "C09",
        result.response.status == 400,
        f"PUBLISH with no body and no SIP-If-Match answered {result.response.status}",
    )


@pytest.mark.dialoginfo_requirement("C10", "D13")
def test_publish_malformed_body_keeps_aggregate(dialoginfo_case):
    user = dialoginfo_case.user("malf")
    dialoginfo_case.publish(user, [dialog("keep", "confirmed")])
    dialoginfo_case.subscribe(user)  # sees the NOTIFY the bad PUBLISH triggers (A02 on every body)
    result = dialoginfo_case.publish(
        user, b"<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info'"
    )
    dialoginfo_case.finding(
        "C10",
        result.response.status == 400,
        f"PUBLISH with a body that is not well-formed answered {result.response.status}",
    )
    fetch = dialoginfo_case.subscribe(user, expires=0)
    # C10's verdict note: one bad body must not break the aggregate for everyone (fail).
    dialoginfo_case.expect_no_effect(fetch, user, result, ["C10"], level=Level.MUST)
    dialoginfo_case.expect_view(fetch, user, ["D13"])


@pytest.mark.dialoginfo_requirement("C11")
def test_refresh_with_unknown_etag_is_412(dialoginfo_case):
    user = dialoginfo_case.user("etag")
    result = dialoginfo_case.publisher.refresh(user, "nonexistent123", expires=60)
    dialoginfo_case.exchanges.append(result)
    dialoginfo_case.finding(
        "C11",
        result.response.status == 412,
        f"refresh with SIP-If-Match: nonexistent123 answered {result.response.status}",
    )


@pytest.mark.dialoginfo_requirement("C12")
def test_two_if_match_headers_is_400(dialoginfo_case):
    user = dialoginfo_case.user("twoif")
    first = dialoginfo_case.publish(user, [dialog("q1", "trying")])
    result = dialoginfo_case.publisher.publish(
        user,
        None,
        etag=first.etag or "x",
        expires=60,
        extra_headers=[f"SIP-If-Match: {first.etag}x"],
    )
    dialoginfo_case.exchanges.append(result)
    dialoginfo_case.finding(
        "C12",
        result.response.status == 400,
        f"PUBLISH with two SIP-If-Match answered {result.response.status}",
    )


@pytest.mark.dialoginfo_requirement("C13", "C14", "D05")
def test_refresh_renews_etag_and_keeps_state(dialoginfo_case):
    user = dialoginfo_case.user("ref")
    first = dialoginfo_case.publish(user, [dialog("k1", "confirmed")], expires=4)
    refreshed = dialoginfo_case.refresh(user, first, expires=60)
    _refresh_answered(dialoginfo_case, refreshed, "refresh")
    dialoginfo_case.finding(
        "C14",
        bool(refreshed.etag) and refreshed.etag != first.etag,
        f"ETag before {first.etag!r}, after refresh {refreshed.etag!r}",
    )
    stale = _refresh_status(dialoginfo_case, user, first.etag)
    dialoginfo_case.finding("C14", stale == 412, f"refresh with the replaced ETag answered {stale}")
    dialoginfo_case.wait_past_expiry(first)
    sub = dialoginfo_case.subscribe(user, expires=0)
    dialoginfo_case.expect_view(sub, user, ["C13", "D05"])


@pytest.mark.dialoginfo_requirement("C13", "C14")
def test_refresh_of_terminated_publication(dialoginfo_case):
    """A refresh renews a publication whatever its dialogs' states (RFC 3903 §4.3): one whose
    dialogs all ended is still state the EPA keeps alive, and the new entity-tag of the 200
    is the one that names it from then on (§6 step 6). The explorer found a server that
    answers 200 but applies nothing (old ETag, old lifetime kept)."""
    user = dialoginfo_case.user("refend")
    ended = dialoginfo_case.publish(user, [dialog("over", "terminated")], expires=60)
    refreshed = dialoginfo_case.refresh(user, ended, expires=30)
    _refresh_answered(
        dialoginfo_case, refreshed, "refresh of a publication whose dialogs are all terminated"
    )
    if not _ok(refreshed):
        return
    _etag_handed_over(dialoginfo_case, user, refreshed, ended, "refresh")


@pytest.mark.dialoginfo_requirement("C15", "D04")
def test_modify_replaces_only_that_publication(dialoginfo_case):
    user = dialoginfo_case.user("mod")
    a = dialoginfo_case.publish(user, [dialog("a1", "trying"), dialog("a2", "trying")])
    dialoginfo_case.publish(user, [dialog("b1", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    dialoginfo_case.modify(
        user, a, dialoginfo_case.body(user, [dialog("a2", "early")], state="partial")
    )
    dialoginfo_case.expect_view(sub, user, ["C15", "D04"])


@pytest.mark.dialoginfo_requirement("C14", "C15")
def test_modify_of_terminated_publication(dialoginfo_case):
    """A modify replaces the publication whatever its dialogs' states: a publication whose
    dialogs all ended is still state the EPA may replace (RFC 3903 §4.4), and the 200 that
    accepts the modify names the new entity-tag (§6 step 6)."""
    user = dialoginfo_case.user("modend")
    ended = dialoginfo_case.publish(user, [dialog("gone", "terminated")])
    modified = dialoginfo_case.modify(user, ended, [dialog("next", "confirmed")])
    dialoginfo_case.finding(
        "C15",
        _ok(modified),
        f"modify of a publication whose dialogs are all terminated answered "
        f"{modified.response.status}",
    )
    if not _ok(modified):
        return
    fetch = dialoginfo_case.subscribe(
        user, expires=0
    )  # one NOTIFY, already here: nothing more to wait for
    seen = dialoginfo_case.expect_view(fetch, user, [], timeout=0.0)
    dialoginfo_case.finding(
        "C15",
        seen.equal,
        "after the modify, a fetch shows " + seen.describe(),
        evidence=seen.evidence(),
    )
    _etag_handed_over(dialoginfo_case, user, modified, ended, "modify")


@pytest.mark.dialoginfo_requirement("C16", "D05", "A15")
def test_remove_drops_state_and_etag(dialoginfo_case):
    user = dialoginfo_case.user("rm")
    only = dialoginfo_case.publish(user, [dialog("r1", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    removed = dialoginfo_case.remove(user, only)
    dialoginfo_case.finding("C16", _ok(removed), f"remove answered {removed.response.status}")
    dialoginfo_case.expect_view(sub, user, ["C16", "D05"])
    fetch = dialoginfo_case.subscribe(
        user, expires=0
    )  # the truth, for servers whose removal NOTIFY is stale
    dialoginfo_case.expect_view(fetch, user, ["C16", "D05"])
    again = dialoginfo_case.publisher.refresh(user, only.etag or "", expires=60)
    dialoginfo_case.exchanges.append(again)
    dialoginfo_case.finding(
        "C16",
        again.response.status == 412,
        f"refresh with the removed ETag answered {again.response.status}",
    )
    last = sub.notifies[-1] if sub.notifies else None
    if last is not None and last.body.strip():
        dialoginfo_case.expect_full(last, "A15")


@pytest.mark.dialoginfo_requirement("C17", "D05")
def test_unrefreshed_publication_expires(dialoginfo_case):
    user = dialoginfo_case.user("expire")
    dialoginfo_case.publish(user, [dialog("gone", "confirmed")], expires=2)
    dialoginfo_case.publish(user, [dialog("stays", "early")], expires=600)
    sub = dialoginfo_case.subscribe(user)
    pub = dialoginfo_case.expectation(user).publications[0]
    dialoginfo_case.wait_past_expiry(pub)
    dialoginfo_case.expect_view(sub, user, ["C17", "D05"])


@pytest.mark.dialoginfo_requirement("C18")
def test_modifies_processed_in_order(dialoginfo_case):
    user = dialoginfo_case.user("order")
    result = dialoginfo_case.publish(user, [dialog("v", "trying")])
    sub = dialoginfo_case.subscribe(user)
    for k, state in enumerate(("proceeding", "early", "confirmed", "early", "confirmed"), 1):
        result = dialoginfo_case.modify(user, result, [dialog(f"v{k}", state)])
    dialoginfo_case.expect_view(sub, user, ["C18"])


@pytest.mark.dialoginfo_requirement("C19")
def test_no_record_route_in_publish_response(dialoginfo_case):
    result = dialoginfo_case.publish(
        dialoginfo_case.user("rr"),
        [dialog("w1", "trying")],
        extra_headers=["Record-Route: <sip:127.0.0.9;lr>"],
    )
    dialoginfo_case.finding(
        "C19",
        _ok(result) and not result.response.header_all("Record-Route"),
        f"PUBLISH with Record-Route answered {result.response.status}, Record-Route "
        f"{result.response.header_all('Record-Route')!r}",
    )


@pytest.mark.dialoginfo_requirement("C20")
def test_options_lists_publish_and_dialog(dialoginfo_case):
    response = dialoginfo_case.options()
    allow = (response.header("Allow") or "").upper()
    events = (response.header("Allow-Events") or "").lower()
    dialoginfo_case.finding(
        "C20",
        response.status == 200 and "PUBLISH" in allow and "dialog" in events,
        f"OPTIONS answered {response.status}, Allow {allow!r}, Allow-Events {events!r}",
    )
