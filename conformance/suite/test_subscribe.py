"""RFC 6665 SUBSCRIBE/NOTIFY for Event: dialog (REQUIREMENTS.md group B).

Every NOTIFY a case captures is also checked for B06-B14 and the body rules by ``Case.finish``;
the cases here add the rules that need a particular exchange.
"""

from __future__ import annotations

import pytest

from conformance.errors import HarnessError
from conformance.oracle import checks
from conformance.oracle.dialoginfo import dialog

pytestmark = pytest.mark.conformance


@pytest.mark.requirement("B01", "B02", "B03", "B05", "B06", "B08", "B09", "B11", "A14")
def test_initial_notify_carries_full_state(case):
    user = case.user("full")
    case.publish(user, [dialog("a1", "confirmed"), dialog("a2", "early")])
    sub = case.subscribe(user, expires=600)
    if sub.notifies:
        first = sub.notifies[0]
        case.expect_full(first, "A14")
        case.expect_body(first, user, ["A14"])


@pytest.mark.requirement("B03", "B04")
def test_subscribe_expires_granted_no_longer_than_requested(case):
    user = case.user("exp")
    case.subscribe(user, expires=60)
    case.subscribe(user, expires=7200)
    case.subscribe(user, expires=None)


@pytest.mark.requirement("B19", "B20", "A14", "A08", "A09", "D12")
def test_refresh_sends_full_notify_with_next_version(case):
    user = case.user("refresh")
    case.publish(user, [dialog("r1", "confirmed")])
    sub = case.subscribe(user)
    for n in (2, 3):
        response = sub.watcher.refresh(300)
        case.finding(
            "B19",
            200 <= response.status < 300 and _expires(response) <= 300,
            f"in-dialog refresh Expires 300 answered {response.status} "
            f"with Expires {response.header('Expires')!r}",
        )
        got = case.await_notifies(
            sub, n, requirement="B20", what=f"the NOTIFY after refresh {n - 1}"
        )
        if len(got) >= n:
            # The refresh NOTIFY itself carries the current state, as a full document: a view
            # comparison could not tell, since an empty partial leaves the view unchanged.
            expected = case.expectation(user).aggregate()
            case.record(checks.check_refresh_notify(got[n - 1].body, expected))
    versions = sub.versions()
    case.finding(
        "D12",
        len(versions) == 3
        and None not in versions
        and versions == list(range(versions[0], versions[0] + 3)),
        f"versions over two refreshes with unchanged state: {versions}",
    )


@pytest.mark.requirement("B21", "B10")
def test_unsubscribe_gets_terminated_notify_and_silence(case):
    user = case.user("unsub")
    first = case.publish(user, [dialog("u1", "confirmed")])
    sub = case.subscribe(user)
    response = sub.watcher.unsubscribe()
    case.finding("B21", 200 <= response.status < 300, f"unsubscribe answered {response.status}")
    notifies = case.await_notifies(sub, 2, requirement="B21", what="the final NOTIFY")
    if len(notifies) >= 2:
        final = notifies[-1]
        state = (final.request.header("Subscription-State") or "").lower()
        case.finding(
            "B21", state.startswith("terminated"), f"final NOTIFY Subscription-State {state!r}"
        )
        case.finding(
            "B21",
            "reason=timeout" in state.replace(" ", ""),
            f"final NOTIFY reason in {state!r} (RFC 6665 §4.1.2.3: timeout)",
            level=_def(),
        )
    seen = len(sub.notifies)
    case.modify(user, first, [dialog("u1", "terminated")])
    case.expect_no_notify(
        sub, checks.SILENCE_SECONDS, "B21", "NOTIFYs after the subscription ended", since=seen
    )


@pytest.mark.requirement("B22")
def test_fetch_gets_exactly_one_terminated_notify_with_state(case):
    user = case.user("fetch")
    case.publish(user, [dialog("f1", "confirmed")])
    case.publish(user, [dialog("f2", "early")])
    sub = case.subscribe(user, expires=0)
    case.expect_view(sub, user, ["B22"])
    notifies = sub.notifies
    state = (notifies[0].request.header("Subscription-State") or "").lower() if notifies else ""
    case.finding(
        "B22", state.startswith("terminated"), f"fetch NOTIFY Subscription-State {state!r}"
    )
    case.expect_no_notify(sub, 1.0, "B22", "NOTIFYs after the fetch NOTIFY", since=1)
    case.finding("B22", len(sub.notifies) == 1, f"a fetch produced {len(sub.notifies)} NOTIFY(s)")


@pytest.mark.requirement("B23")
def test_subscription_expiry_sends_terminated(case):
    user = case.user("subexp")
    case.publish(user, [dialog("x1", "confirmed")])
    sub = case.subscribe(user, expires=2)
    granted = sub.ctx.granted
    if granted is None or granted > 10:
        pytest.skip(f"the server granted {granted} s for Expires 2; waiting that long is slow")
    case.wait(granted + case.profile.expiry_timer + case.profile.expiry_slack)
    notifies = case.await_notifies(
        sub, 2, requirement="B23", what="the NOTIFY ending the expired subscription"
    )
    state = (notifies[-1].request.header("Subscription-State") or "") if notifies else ""
    ok = state.lower().startswith("terminated") and "reason=timeout" in state.replace(" ", "")
    case.finding("B23", ok, f"last NOTIFY after expiry: Subscription-State {state!r}")


@pytest.mark.slow
@pytest.mark.requirement("B26")
def test_unanswered_notify_removes_subscription(case):
    user = case.user("timerf")
    first = case.publish(user, [dialog("f1", "trying")])
    sub = case.subscribe(user)
    sub.pause()  # the watcher hangs: the next NOTIFY is never answered
    try:
        second = case.modify(user, first, [dialog("f1", "early")])
        case.wait(32 + 3)  # Timer F = 64*T1 = 32 s, plus a margin
    finally:
        sub.resume()
    case.wait(1.0)  # the watcher answers the queued retransmissions, too late
    seen = len(sub.notifies)
    case.modify(user, second, [dialog("f1", "confirmed")])
    case.expect_no_notify(
        sub, checks.SILENCE_SECONDS, "B26", "NOTIFYs after an earlier NOTIFY timed out", since=seen
    )


@pytest.mark.requirement("B16")
def test_unknown_event_package_is_489(case):
    sub = case.subscribe(case.user("badev"), event="x-nonexistent", wait=False)
    case.finding(
        "B16",
        sub.response.status == 489,
        f"SUBSCRIBE Event: x-nonexistent answered {sub.response.status}",
    )


@pytest.mark.requirement("B17")
def test_missing_event_is_489(case):
    sub = case.subscribe(case.user("noev"), event=None, wait=False)
    case.finding(
        "B17", sub.response.status == 489, f"SUBSCRIBE without Event answered {sub.response.status}"
    )


@pytest.mark.requirement("B15")
def test_accept_without_dialog_info_is_406(case):
    user = case.user("acc")
    case.publish(user, [dialog("x1", "confirmed")])
    sub = case.subscribe(user, accept="application/pidf+xml", wait=False)
    status = sub.response.status
    case.finding("B15", status == 406, f"SUBSCRIBE Accept: application/pidf+xml answered {status}")
    if 200 <= status < 300:
        case.await_notifies(sub, 1, requirement="B05", what="the initial NOTIFY")


@pytest.mark.requirement("B14", "A01")
def test_accept_list_with_dialog_info(case):
    user = case.user("acc2")
    case.publish(user, [dialog("y1", "confirmed")])
    case.subscribe(user, accept="application/dialog-info+xml, application/xml")


@pytest.mark.requirement("B25")
@pytest.mark.parametrize("code", [481, 489])
def test_notify_rejected_removes_subscription(case, code):
    user = case.user(f"rej{code}")
    first = case.publish(user, [dialog("z1", "trying")])
    sub = case.subscribe(user)
    sub.watcher.set_answer(code)
    second = case.modify(user, first, [dialog("z1", "early")])
    notifies = case.await_notifies(sub, 2, requirement="B24", what="the NOTIFY to reject")
    answered = notifies[1].answered if len(notifies) > 1 else None
    if answered != code:
        raise HarnessError(f"the watcher answered {answered}, not {code}: the case proves nothing")
    seen = len(sub.notifies)
    case.modify(user, second, [dialog("z1", "confirmed")])
    case.expect_no_notify(
        sub,
        checks.SILENCE_SECONDS,
        "B25",
        f"NOTIFYs after a NOTIFY was answered {code}",
        since=seen,
    )


@pytest.mark.requirement("B18")
def test_short_subscription_expires(case):
    sub = case.subscribe(case.user("short"), expires=1, wait=False)
    status = sub.response.status
    if status == 423:
        minimum = sub.response.header("Min-Expires") or ""
        case.finding(
            "B18",
            minimum.isdigit() and int(minimum) > 1,
            f"423 to Expires 1 carries Min-Expires {minimum!r}",
        )
    else:
        case.finding(
            "B18",
            200 <= status < 300 and _expires(sub.response) <= 1,
            f"Expires 1 answered {status} with Expires {sub.response.header('Expires')!r}",
        )


@pytest.mark.requirement("B24", "A10")
def test_two_watchers_each_notified_with_own_versions(case):
    user = case.user("two")
    first = case.publish(user, [dialog("t1", "trying")])
    one = case.subscribe(user)
    for _ in range(2):
        one.watcher.refresh(600)
    case.await_notifies(one, 3, requirement="B20", what="NOTIFYs after two refreshes")
    two = case.subscribe(user)
    v1, v2 = one.versions(), two.versions()
    case.finding(
        "A10",
        bool(v2) and v2[0] is not None and bool(v1) and v2[0] == v1[0],
        f"second watcher starts at {v2[:1]}, first watcher started at {v1[:1]} "
        f"and is now at {v1[-1:]}",
    )
    case.modify(user, first, [dialog("t1", "confirmed")])
    case.await_notifies(one, 4, requirement="B24", what="watcher 1's NOTIFY after the change")
    case.await_notifies(two, 2, requirement="B24", what="watcher 2's NOTIFY after the change")
    case.expect_view(one, user, ["B24"])
    case.expect_view(two, user, ["B24"])


def _expires(response) -> int:
    value = (response.header("Expires") or "").strip()
    return int(value) if value.isdigit() else 10**9


def _def():
    from conformance.oracle.requirements import Level

    return Level.DEF
