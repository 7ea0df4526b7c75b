"""RFC 3903 PUBLISH handling for Event: dialog (REQUIREMENTS.md group C)."""

from __future__ import annotations

import pytest

from conformance.oracle.dialoginfo import dialog
from conformance.oracle.requirements import Level

pytestmark = pytest.mark.conformance


def _ok(result) -> bool:
    return 200 <= result.response.status < 300


@pytest.mark.requirement("C03", "C04", "C05")
def test_initial_publish_gets_etag_and_expires(case):
    user = case.user("pub")
    result = case.publish(user, [dialog("p1", "trying")], expires=120)
    etags = result.response.header_all("SIP-ETag")
    case.finding(
        "C03",
        _ok(result) and bool(result.etag),
        f"initial PUBLISH answered {result.response.status}, SIP-ETag {etags!r}",
    )
    case.finding(
        "C04",
        len(etags) == 1 and "," not in etags[0] and result.expires is not None,
        f"200 carries SIP-ETag {etags!r} and Expires {result.response.header('Expires')!r}",
    )
    case.finding(
        "C05",
        result.expires is not None and 0 < result.expires <= 120,
        f"requested Expires 120, granted {result.expires}",
    )


@pytest.mark.requirement("C05")
def test_publish_without_expires_gets_local_default(case):
    result = case.publish(case.user("noexp"), [dialog("p2", "trying")], expires=None)
    case.finding(
        "C05",
        _ok(result) and result.expires is not None and result.expires > 0,
        f"PUBLISH without Expires answered {result.response.status}, "
        f"Expires {result.response.header('Expires')!r}",
    )


@pytest.mark.requirement("C06")
def test_publish_expires_one_second(case):
    result = case.publish(case.user("short"), [dialog("p3", "trying")], expires=1)
    status = result.response.status
    if status == 423:
        minimum = result.response.header("Min-Expires") or ""
        case.finding("C06", minimum.isdigit(), f"423 carries Min-Expires {minimum!r}")
    else:
        case.finding(
            "C06",
            _ok(result) and result.expires is not None and result.expires <= 1,
            f"Expires 1 answered {status} with Expires {result.expires}",
        )


@pytest.mark.requirement("C01")
@pytest.mark.parametrize("event", ["x-nonexistent", None])
def test_publish_bad_event_is_489(case, event):
    result = case.publish(case.user("pev"), [dialog("p4", "trying")], event=event)
    case.finding(
        "C01",
        result.response.status == 489,
        f"PUBLISH with Event {event!r} answered {result.response.status}",
    )


@pytest.mark.requirement("C07", "D13")
@pytest.mark.parametrize("content_type", ["application/pidf+xml", "text/plain"])
def test_publish_wrong_content_type_is_rejected(case, content_type):
    user = case.user("ctype")
    case.publish(user, [dialog("good", "confirmed")])
    sub = case.subscribe(user)
    body = case.body(user, [dialog("bad", "early")])
    result = case.publish(user, body, content_type=content_type)
    status = result.response.status
    case.finding(
        "C07", 400 <= status < 500, f"PUBLISH with Content-Type {content_type} answered {status}"
    )
    if status != 415 and 400 <= status < 500:
        case.finding("C07", False, f"rejected with {status}, the RFC names 415", level=Level.SHOULD)
    if status == 415:
        accept = result.response.header("Accept") or ""
        case.finding(
            "C08", "application/dialog-info+xml" in accept.lower(), f"415 carries Accept {accept!r}"
        )
    # The state must be what it was (C07): every NOTIFY up to the end of the quiet window is
    # judged as if the PUBLISH had been rejected. What a server that stored the body anyway
    # sends is the oracle's business (D13: the modules aggregate any well-formed XML they stored).
    case.expect_no_effect(sub, user, result, ["C07"])
    fetch = case.subscribe(user, expires=0)
    case.expect_view(fetch, user, ["D13"])


@pytest.mark.requirement("C09")
def test_publish_without_body_or_etag_is_400(case):
    result = case.publish(case.user("nobody"), None)
    case.finding(
        "C09",
        result.response.status == 400,
        f"PUBLISH with no body and no SIP-If-Match answered {result.response.status}",
    )


@pytest.mark.requirement("C10", "D13")
def test_publish_malformed_body_keeps_aggregate(case):
    user = case.user("malf")
    case.publish(user, [dialog("keep", "confirmed")])
    case.subscribe(user)  # sees the NOTIFY the bad PUBLISH triggers (A02 on every body)
    result = case.publish(user, b"<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info'")
    case.finding(
        "C10",
        result.response.status == 400,
        f"PUBLISH with a body that is not well-formed answered {result.response.status}",
    )
    fetch = case.subscribe(user, expires=0)
    # C10's verdict note: one bad body must not break the aggregate for everyone (fail).
    case.expect_no_effect(fetch, user, result, ["C10"], level=Level.MUST)
    case.expect_view(fetch, user, ["D13"])


@pytest.mark.requirement("C11")
def test_refresh_with_unknown_etag_is_412(case):
    user = case.user("etag")
    result = case.publisher.refresh(user, "nonexistent123", expires=60)
    case.exchanges.append(result)
    case.finding(
        "C11",
        result.response.status == 412,
        f"refresh with SIP-If-Match: nonexistent123 answered {result.response.status}",
    )


@pytest.mark.requirement("C12")
def test_two_if_match_headers_is_400(case):
    user = case.user("twoif")
    first = case.publish(user, [dialog("q1", "trying")])
    result = case.publisher.publish(
        user,
        None,
        etag=first.etag or "x",
        expires=60,
        extra_headers=[f"SIP-If-Match: {first.etag}x"],
    )
    case.exchanges.append(result)
    case.finding(
        "C12",
        result.response.status == 400,
        f"PUBLISH with two SIP-If-Match answered {result.response.status}",
    )


@pytest.mark.requirement("C13", "C14", "D05")
def test_refresh_renews_etag_and_keeps_state(case):
    user = case.user("ref")
    first = case.publish(user, [dialog("k1", "confirmed")], expires=4)
    refreshed = case.refresh(user, first, expires=60)
    case.finding(
        "C13",
        _ok(refreshed) and bool(refreshed.etag) and refreshed.expires is not None,
        f"refresh answered {refreshed.response.status}, SIP-ETag {refreshed.etag!r}, "
        f"Expires {refreshed.expires}",
    )
    case.finding(
        "C14",
        bool(refreshed.etag) and refreshed.etag != first.etag,
        f"ETag before {first.etag!r}, after refresh {refreshed.etag!r}",
    )
    stale = case.publisher.refresh(user, first.etag or "", expires=60)
    case.exchanges.append(stale)
    case.finding(
        "C14",
        stale.response.status == 412,
        f"refresh with the replaced ETag answered {stale.response.status}",
    )
    case.wait_past_expiry(first)
    sub = case.subscribe(user, expires=0)
    case.expect_view(sub, user, ["C13", "D05"])


@pytest.mark.requirement("C15", "D04")
def test_modify_replaces_only_that_publication(case):
    user = case.user("mod")
    a = case.publish(user, [dialog("a1", "trying"), dialog("a2", "trying")])
    case.publish(user, [dialog("b1", "confirmed")])
    sub = case.subscribe(user)
    case.modify(user, a, case.body(user, [dialog("a2", "early")], state="partial"))
    case.expect_view(sub, user, ["C15", "D04"])


@pytest.mark.requirement("C16", "D05", "A15")
def test_remove_drops_state_and_etag(case):
    user = case.user("rm")
    only = case.publish(user, [dialog("r1", "confirmed")])
    sub = case.subscribe(user)
    removed = case.remove(user, only)
    case.finding("C16", _ok(removed), f"remove answered {removed.response.status}")
    case.expect_view(sub, user, ["C16", "D05"])
    fetch = case.subscribe(user, expires=0)  # the truth, for servers whose removal NOTIFY is stale
    case.expect_view(fetch, user, ["C16", "D05"])
    again = case.publisher.refresh(user, only.etag or "", expires=60)
    case.exchanges.append(again)
    case.finding(
        "C16",
        again.response.status == 412,
        f"refresh with the removed ETag answered {again.response.status}",
    )
    last = sub.notifies[-1] if sub.notifies else None
    if last is not None and last.body.strip():
        case.expect_full(last, "A15")


@pytest.mark.requirement("C17", "D05")
def test_unrefreshed_publication_expires(case):
    user = case.user("expire")
    case.publish(user, [dialog("gone", "confirmed")], expires=2)
    case.publish(user, [dialog("stays", "early")], expires=600)
    sub = case.subscribe(user)
    pub = case.expectation(user).publications[0]
    case.wait_past_expiry(pub)
    case.expect_view(sub, user, ["C17", "D05"])


@pytest.mark.requirement("C18")
def test_modifies_processed_in_order(case):
    user = case.user("order")
    result = case.publish(user, [dialog("v", "trying")])
    sub = case.subscribe(user)
    for k, state in enumerate(("proceeding", "early", "confirmed", "early", "confirmed"), 1):
        result = case.modify(user, result, [dialog(f"v{k}", state)])
    case.expect_view(sub, user, ["C18"])


@pytest.mark.requirement("C19")
def test_no_record_route_in_publish_response(case):
    result = case.publish(
        case.user("rr"),
        [dialog("w1", "trying")],
        extra_headers=["Record-Route: <sip:127.0.0.9;lr>"],
    )
    case.finding(
        "C19",
        _ok(result) and not result.response.header_all("Record-Route"),
        f"PUBLISH with Record-Route answered {result.response.status}, Record-Route "
        f"{result.response.header_all('Record-Route')!r}",
    )


@pytest.mark.requirement("C20")
def test_options_lists_publish_and_dialog(case):
    response = case.options()
    allow = (response.header("Allow") or "").upper()
    events = (response.header("Allow-Events") or "").lower()
    case.finding(
        "C20",
        response.status == 200 and "PUBLISH" in allow and "dialog" in events,
        f"OPTIONS answered {response.status}, Allow {allow!r}, Allow-Events {events!r}",
    )
