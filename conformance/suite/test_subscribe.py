"""RFC 6665 SUBSCRIBE/NOTIFY for Event: dialog (REQUIREMENTS.md group B).

Every NOTIFY a case captures is also checked for B06-B14 and the body rules by ``Case.finish``;
the cases here add the rules that need a particular exchange.
"""

from __future__ import annotations

import pytest

from conformance.errors import HarnessError
from conformance.oracle import checks
from conformance.oracle.dialoginfo import dialog

pytestmark = pytest.mark.dialoginfo


@pytest.mark.dialoginfo_requirement("B01", "B02", "B03", "B05", "B06", "B08", "B09", "B11", "A14")
def test_initial_notify_carries_full_state(dialoginfo_case):
    user = dialoginfo_case.user("full")
    dialoginfo_case.publish(user, [dialog("a1", "confirmed"), dialog("a2", "early")])
    sub = dialoginfo_case.subscribe(user, expires=600)
    if sub.notifies:
        first = sub.notifies[0]
        dialoginfo_case.expect_full(first, "A14")
        dialoginfo_case.expect_body(first, user, ["A14"])


@pytest.mark.dialoginfo_requirement("B03", "B04")
def test_subscribe_expires_granted_no_longer_than_requested(dialoginfo_case):
    user = dialoginfo_case.user("exp")
    dialoginfo_case.subscribe(user, expires=60)
    dialoginfo_case.subscribe(user, expires=7200)
    dialoginfo_case.subscribe(user, expires=None)


@pytest.mark.dialoginfo_requirement("B19", "B20", "A14", "A08", "A09", "D12")
def test_refresh_sends_full_notify_with_next_version(dialoginfo_case):
    user = dialoginfo_case.user("refresh")
    dialoginfo_case.publish(user, [dialog("r1", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    for n in (2, 3):
        response = sub.watcher.refresh(300)
        dialoginfo_case.finding(
            "B19",
            200 <= response.status < 300 and _expires(response) <= 300,
            f"in-dialog refresh Expires 300 answered {response.status} "
            f"with Expires {response.header('Expires')!r}",
        )
        got = dialoginfo_case.await_notifies(
            sub, n, requirement="B20", what=f"the NOTIFY after refresh {n - 1}"
        )
        if len(got) >= n:
            # The refresh NOTIFY itself carries the current state, as a full document: a view
            # comparison could not tell, since an empty partial leaves the view unchanged.
            expected = dialoginfo_case.expectation(user).aggregate()
            dialoginfo_case.record(checks.check_refresh_notify(got[n - 1].body, expected))
    versions = sub.versions()
    dialoginfo_case.finding(
        "D12",
        len(versions) == 3
        and None not in versions
        and versions == list(range(versions[0], versions[0] + 3)),
        f"versions over two refreshes with unchanged state: {versions}",
    )


@pytest.mark.dialoginfo_requirement("B21", "B10")
def test_unsubscribe_gets_terminated_notify_and_silence(dialoginfo_case):
    user = dialoginfo_case.user("unsub")
    first = dialoginfo_case.publish(user, [dialog("u1", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    response = sub.watcher.unsubscribe()
    dialoginfo_case.finding(
        "B21", 200 <= response.status < 300, f"unsubscribe answered {response.status}"
    )
    notifies = dialoginfo_case.await_notifies(sub, 2, requirement="B21", what="the final NOTIFY")
    if len(notifies) >= 2:
        final = notifies[-1]
        state = (final.request.header("Subscription-State") or "").lower()
        dialoginfo_case.finding(
            "B21", state.startswith("terminated"), f"final NOTIFY Subscription-State {state!r}"
        )
        dialoginfo_case.finding(
            "B21",
            "reason=timeout" in state.replace(" ", ""),
            f"final NOTIFY reason in {state!r} (RFC 6665 §4.1.2.3: timeout)",
            level=_def(),
        )
    seen = len(sub.notifies)
    dialoginfo_case.modify(user, first, [dialog("u1", "terminated")])
    dialoginfo_case.expect_no_notify(
        sub, checks.SILENCE_SECONDS, "B21", "NOTIFYs after the subscription ended", since=seen
    )


@pytest.mark.dialoginfo_requirement("B22")
def test_fetch_gets_exactly_one_terminated_notify_with_state(dialoginfo_case):
    user = dialoginfo_case.user("fetch")
    dialoginfo_case.publish(user, [dialog("f1", "confirmed")])
    dialoginfo_case.publish(user, [dialog("f2", "early")])
    sub = dialoginfo_case.subscribe(user, expires=0)
    dialoginfo_case.expect_view(sub, user, ["B22"])
    notifies = sub.notifies
    state = (notifies[0].request.header("Subscription-State") or "").lower() if notifies else ""
    dialoginfo_case.finding(
        "B22", state.startswith("terminated"), f"fetch NOTIFY Subscription-State {state!r}"
    )
    dialoginfo_case.expect_no_notify(sub, 1.0, "B22", "NOTIFYs after the fetch NOTIFY", since=1)
    dialoginfo_case.finding(
        "B22", len(sub.notifies) == 1, f"a fetch produced {len(sub.notifies)} NOTIFY(s)"
    )


@pytest.mark.dialoginfo_requirement("B23")
def test_subscription_expiry_sends_terminated(dialoginfo_case):
    user = dialoginfo_case.user("subexp")
    dialoginfo_case.publish(user, [dialog("x1", "confirmed")])
    sub = dialoginfo_case.subscribe(user, expires=2)
    granted = sub.ctx.granted
    if granted is None or granted > 10:
        pytest.skip(f"the server granted {granted} s for Expires 2; waiting that long is slow")
    dialoginfo_case.wait(
        granted + dialoginfo_case.profile.expiry_timer + dialoginfo_case.profile.expiry_slack
    )
    notifies = dialoginfo_case.await_notifies(
        sub, 2, requirement="B23", what="the NOTIFY ending the expired subscription"
    )
    state = (notifies[-1].request.header("Subscription-State") or "") if notifies else ""
    ok = state.lower().startswith("terminated") and "reason=timeout" in state.replace(" ", "")
    dialoginfo_case.finding("B23", ok, f"last NOTIFY after expiry: Subscription-State {state!r}")


@pytest.mark.dialoginfo_slow
@pytest.mark.dialoginfo_requirement("B26")
def test_unanswered_notify_removes_subscription(dialoginfo_case):
    user = dialoginfo_case.user("timerf")
    first = dialoginfo_case.publish(user, [dialog("f1", "trying")])
    sub = dialoginfo_case.subscribe(user)
    sub.pause()  # the watcher hangs: the next NOTIFY is never answered
    try:
        second = dialoginfo_case.modify(user, first, [dialog("f1", "early")])
        dialoginfo_case.wait(32 + 3)  # Timer F = 64*T1 = 32 s, plus a margin
    finally:
        sub.resume()
    dialoginfo_case.wait(1.0)  # the watcher answers the queued retransmissions, too late
    seen = len(sub.notifies)
    dialoginfo_case.modify(user, second, [dialog("f1", "confirmed")])
    dialoginfo_case.expect_no_notify(
        sub, checks.SILENCE_SECONDS, "B26", "NOTIFYs after an earlier NOTIFY timed out", since=seen
    )


@pytest.mark.dialoginfo_requirement("B16")
def test_unknown_event_package_is_489(dialoginfo_case):
    sub = dialoginfo_case.subscribe(
        dialoginfo_case.user("badev"), event="x-nonexistent", wait=False
    )
    dialoginfo_case.finding(
        "B16",
        sub.response.status == 489,
        f"SUBSCRIBE Event: x-nonexistent answered {sub.response.status}",
    )


@pytest.mark.dialoginfo_requirement("B17")
def test_missing_event_is_489(dialoginfo_case):
    sub = dialoginfo_case.subscribe(dialoginfo_case.user("noev"), event=None, wait=False)
    dialoginfo_case.finding(
        "B17", sub.response.status == 489, f"SUBSCRIBE without Event answered {sub.response.status}"
    )


@pytest.mark.dialoginfo_requirement("B15")
def test_accept_without_dialog_info_is_406(dialoginfo_case):
    user = dialoginfo_case.user("acc")
    dialoginfo_case.publish(user, [dialog("x1", "confirmed")])
    sub = dialoginfo_case.subscribe(user, accept="application/pidf+xml", wait=False)
    status = sub.response.status
    dialoginfo_case.finding(
        "B15", status == 406, f"SUBSCRIBE Accept: application/pidf+xml answered {status}"
    )
    if 200 <= status < 300:
        dialoginfo_case.await_notifies(sub, 1, requirement="B05", what="the initial NOTIFY")


@pytest.mark.dialoginfo_requirement("B14", "A01")
def test_accept_list_with_dialog_info(dialoginfo_case):
    user = dialoginfo_case.user("acc2")
    dialoginfo_case.publish(user, [dialog("y1", "confirmed")])
    dialoginfo_case.subscribe(user, accept="application/dialog-info+xml, application/xml")


@pytest.mark.dialoginfo_requirement("B25")
@pytest.mark.parametrize("code", [481, 489])
def test_notify_rejected_removes_subscription(dialoginfo_case, code):
    user = dialoginfo_case.user(f"rej{code}")
    first = dialoginfo_case.publish(user, [dialog("z1", "trying")])
    sub = dialoginfo_case.subscribe(user)
    sub.watcher.set_answer(code)
    second = dialoginfo_case.modify(user, first, [dialog("z1", "early")])
    notifies = dialoginfo_case.await_notifies(
        sub, 2, requirement="B24", what="the NOTIFY to reject"
    )
    answered = notifies[1].answered if len(notifies) > 1 else None
    if answered != code:
        raise HarnessError(f"the watcher answered {answered}, not {code}: the case proves nothing")
    seen = len(sub.notifies)
    dialoginfo_case.modify(user, second, [dialog("z1", "confirmed")])
    dialoginfo_case.expect_no_notify(
        sub,
        checks.SILENCE_SECONDS,
        "B25",
        f"NOTIFYs after a NOTIFY was answered {code}",
        since=seen,
    )


@pytest.mark.dialoginfo_requirement("B18")
def test_short_subscription_expires(dialoginfo_case):
    sub = dialoginfo_case.subscribe(dialoginfo_case.user("short"), expires=1, wait=False)
    status = sub.response.status
    if status == 423:
        minimum = sub.response.header("Min-Expires") or ""
        dialoginfo_case.finding(
            "B18",
            minimum.isdigit() and int(minimum) > 1,
            f"423 to Expires 1 carries Min-Expires {minimum!r}",
        )
    else:
        dialoginfo_case.finding(
            "B18",
            200 <= status < 300 and _expires(sub.response) <= 1,
            f"Expires 1 answered {status} with Expires {sub.response.header('Expires')!r}",
        )


@pytest.mark.dialoginfo_requirement("B24", "A10")
def test_two_watchers_each_notified_with_own_versions(dialoginfo_case):
    user = dialoginfo_case.user("two")
    first = dialoginfo_case.publish(user, [dialog("t1", "trying")])
    one = dialoginfo_case.subscribe(user)
    for _ in range(2):
        one.watcher.refresh(600)
    dialoginfo_case.await_notifies(one, 3, requirement="B20", what="NOTIFYs after two refreshes")
    two = dialoginfo_case.subscribe(user)
    v1, v2 = one.versions(), two.versions()
    dialoginfo_case.finding(
        "A10",
        bool(v2) and v2[0] is not None and bool(v1) and v2[0] == v1[0],
        f"second watcher starts at {v2[:1]}, first watcher started at {v1[:1]} "
        f"and is now at {v1[-1:]}",
    )
    dialoginfo_case.modify(user, first, [dialog("t1", "confirmed")])
    dialoginfo_case.await_notifies(
        one, 4, requirement="B24", what="watcher 1's NOTIFY after the change"
    )
    dialoginfo_case.await_notifies(
        two, 2, requirement="B24", what="watcher 2's NOTIFY after the change"
    )
    dialoginfo_case.expect_view(one, user, ["B24"])
    dialoginfo_case.expect_view(two, user, ["B24"])


def _expires(response) -> int:
    value = (response.header("Expires") or "").strip()
    return int(value) if value.isdigit() else 10**9


def _def():
    from conformance.oracle.requirements import Level

    return Level.DEF
