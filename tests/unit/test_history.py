"""The history checker on synthetic histories: every NOTIFY judged in its time window.

No sockets: each history is written by hand, shaped like what the SIPp traces record, and each
fault-shaped history is the exact behaviour a reference-server fault produces (the spec of
those faults is in the issue-11 note; the suite kills them through the same ids).
"""

from __future__ import annotations

from conformance.oracle import history as h
from conformance.oracle.dialoginfo import Item, dialog, document
from conformance.oracle.history import Checkpoint, History, Observation, Rules, Stimulus
from conformance.oracle.requirements import Level

URI = "sip:alice@example.com"
RULES = Rules()


def body(*dialogs: Item) -> bytes:
    return document(URI, dialogs)


def notify(
    version: int, *dialogs: Item, at: float, state: str = "full", cseq: int = 0
) -> Observation:
    return Observation(
        f"NOTIFY v{version}",
        at,
        document(URI, dialogs, version=version, state=state),
        "active",
        key=("z9hG4bK-n", cseq or version),
    )


def publish(label: str, etag: str, dialogs, sent: float, answered: float, **kw) -> Stimulus:
    return Stimulus(
        "publish", label, sent, answered, 200, body(*dialogs), etag=etag, expires=3600, **kw
    )


def modify(label: str, old: str, etag: str, dialogs, sent: float, answered: float) -> Stimulus:
    return Stimulus(
        "modify", label, sent, answered, 200, body(*dialogs), etag=etag, replaces=old, expires=3600
    )


def remove(label: str, old: str, sent: float, answered: float, status: int = 200) -> Stimulus:
    return Stimulus("remove", label, sent, answered, status, None, replaces=old, expires=0)


def run(stimuli, notifies, *, end: float = 100.0, rules: Rules = RULES, checkpoints=(), **kw):
    hist = History(URI, tuple(stimuli), tuple(notifies), end=end)
    return h.check(hist, rules, checkpoints=checkpoints, **kw)


def failed(result, level: Level | None = None) -> list[tuple[str, Level | None]]:
    return [(f.requirement, f.level) for f in result.findings if not f.passed]


R1 = dialog("r1", "confirmed")
R2 = dialog("r2", "early")

# -- the six bullets of the Tests section -------------------------------------------------


def test_stale_notify_after_the_removes_200_fails_c16():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    result = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, at=3.5), notify(2, at=3.6)])
    assert failed(result) == [("C16", None)]
    message = result.findings[0].message
    assert "remove r1" in message and "NOTIFY v1" in message
    assert "watcher table: r1:confirmed" in message and "oracle: none" in message


def test_the_same_notify_received_before_the_remove_was_sent_passes():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    result = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, at=2.9), notify(2, at=3.02)])
    assert failed(result) == []
    assert [j.verdict for j in result.judgements] == ["pass", "pass", "pass", "pass"]


def test_a_state_only_a_later_stimulus_could_produce_fails():
    stimuli = [
        publish("publish r1", "e1", [R1], 1.0, 1.01),
        publish("publish r2", "e2", [R2], 5.0, 5.01),
    ]
    result = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, R2, at=4.0)], end=4.5)
    assert [f.requirement for f in result.findings] == ["B24"]
    assert "publish r2 (sent after it)" in result.findings[0].message


def test_a_notify_traced_just_before_its_stimulus_was_sent_is_info():
    """SIPp stamps a sent PUBLISH after sending it: a fast server's NOTIFY can be traced first."""
    stimuli = [
        publish("publish r1", "e1", [R1], 1.0, 1.01),
        publish("publish r2", "e2", [R2], 3.0, 3.01),
    ]
    result = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, R2, at=2.9993)], end=3.05)
    assert failed(result) == [("B24", Level.INFO)]
    # Beyond the allowance it is a failure.
    assert failed(run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, R2, at=2.98)], end=3.05)) == [
        ("B24", None)
    ]


def test_a_notify_within_epsilon_of_the_200_is_info():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.010)]
    # Stale by 4 ms after the 200: only the clock allowance explains it.
    result = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, at=3.014), notify(2, at=3.02)])
    assert failed(result) == [("C16", Level.INFO)]
    assert result.findings[0].verdict() == "info"


def test_an_expiry_window_with_and_without_the_expired_dialog_both_pass():
    rules = Rules(expiry_timer=2.0, expiry_slack=1.0, timestamp_resolution=1.0)
    short = Stimulus("publish", "publish r1", 1.0, 1.01, 200, body(R1), etag="e1", expires=3)
    stays = publish("publish r2", "e2", [R2], 1.1, 1.11)
    # The expiry window is [1.0 + 3 - 1, 1.01 + 3 + 3] = [3.0, 7.01].
    for shown in ((R1, R2), (R2,)):
        result = run(
            [short, stays],
            [notify(0, R1, R2, at=1.5), notify(1, *shown, at=5.0)],
            end=5.5,
            rules=rules,
        )
        assert failed(result) == [], shown
    # After the window the expired dialog is stale: C17.
    late = run([short, stays], [notify(0, R1, R2, at=1.5), notify(1, R1, R2, at=7.5)], rules=rules)
    assert failed(late) == [("C17", None)]


def test_a_partial_body_that_leaves_the_table_wrong_fails_a17():
    """Fault "partial NOTIFY per publication": after a modify the server sends state=partial
    with only the new body, so the modified-away dialog stays in the watcher's table."""
    a1, a2 = dialog("a1", "trying"), dialog("a2", "trying")
    stimuli = [
        publish("publish a", "ea", [a1, a2], 1.0, 1.01),
        modify("modify a", "ea", "ea2", [dialog("a2", "early")], 3.0, 3.01),
    ]
    notifies = [
        notify(0, a1, a2, at=2.0),
        notify(1, dialog("a2", "early"), at=3.005, state="partial"),
    ]
    result = run(stimuli, notifies, end=4.0, checkpoints=[Checkpoint(3.9, ("C15", "D04"))])
    assert ("A17", None) in failed(result)
    assert "contradicted stimulus: modify a" in result.findings[0].message
    assert ("C15", None) not in failed(result)  # named, but not the rule this fault breaks
    assert {(f.requirement, f.level) for f in result.findings if f.requirement == "C15"} == {
        ("C15", Level.INFO)
    }


# -- fault-shaped histories: each rule fails through its own id -----------------------------------


def test_fault_stale_expiry_notify_fails_c17():
    """Fault "stale expiry NOTIFY": the NOTIFY the expiry timer sends is built from the store
    before the expired publication is dropped, and nothing follows it. Sent inside the expiry
    window it is indistinguishable from "not expired yet"; the table it leaves is C17 once the
    window is over (the suite's checkpoint comes after wait_past_expiry and the case timeout)."""
    rules = Rules(expiry_timer=0.0, expiry_slack=0.5)  # the reference profile
    gone = Stimulus("publish", "publish gone", 1.0, 1.01, 200, body(R1), etag="e1", expires=2)
    stays = publish("publish stays", "e2", [R2], 1.1, 1.11)
    notifies = [notify(0, R1, R2, at=1.5), notify(1, R1, R2, at=3.02)]  # window [3.0, 3.51]
    inside = run([gone, stays], notifies, end=3.4, rules=rules)
    assert failed(inside) == []
    checkpoint = Checkpoint(6.0, ("C17", "D05"))
    result = run([gone, stays], notifies, end=6.5, rules=rules, checkpoints=[checkpoint])
    assert {rid for rid, _ in failed(result)} == {"C17", "D05"}
    assert "expiry of publish gone" in result.findings[0].message
    # Sent after the window, the NOTIFY itself fails.
    late = [notify(0, R1, R2, at=1.5), notify(1, R1, R2, at=3.6)]
    judged = run([gone, stays], late, end=3.7, rules=rules)
    assert failed(judged) == [("C17", None)]
    assert [j.verdict for j in judged.judgements][1] == "fail"


def test_fault_out_of_order_modify_fails_c15():
    """Fault "out-of-order modify": the server applies each modify's NOTIFY from the state one
    modify behind, so the watcher sees v(k-1) after modify k was answered."""
    stimuli = [publish("publish v", "e0", [dialog("v", "trying")], 1.0, 1.01)]
    notifies = [notify(0, dialog("v", "trying"), at=1.5)]
    for k in range(1, 4):
        stimuli.append(
            modify(
                f"modify {k}", f"e{k - 1}", f"e{k}", [dialog(f"v{k}", "early")], 1.0 + k, 1.01 + k
            )
        )
        previous = dialog(f"v{k - 1}", "early") if k > 1 else dialog("v", "trying")
        notifies.append(notify(k, previous, at=1.03 + k))
    result = run(stimuli, notifies, end=5.0)
    assert {f.requirement for f in result.findings} == {"C15"}
    assert "modify 1" in result.findings[0].message
    # test_modifies_processed_in_order names C18: its checkpoint fails C15, C18 gets info.
    named = run(stimuli, notifies, end=9.0, checkpoints=[Checkpoint(8.0, ("C18",))])
    assert {(f.requirement, f.level) for f in named.findings} == {
        ("C15", None),
        ("C18", Level.INFO),
    }


def test_fault_partial_notify_per_publication_over_modifies_is_a17():
    """test_modifies_processed_in_order under fault "partial NOTIFY per publication": each
    modify's NOTIFY is partial with only the new dialog, so the old ids pile up in the table."""
    stimuli = [publish("publish v", "e0", [dialog("v", "trying")], 1.0, 1.01)]
    notifies = [notify(0, dialog("v", "trying"), at=1.5)]
    for k in range(1, 4):
        new = dialog(f"v{k}", "early")
        stimuli.append(modify(f"modify {k}", f"e{k - 1}", f"e{k}", [new], 1.0 + k, 1.01 + k))
        notifies.append(notify(k, new, at=1.02 + k, state="partial"))
    result = run(stimuli, notifies, end=9.0, checkpoints=[Checkpoint(8.0, ("C18",))])
    assert {(f.requirement, f.level) for f in result.findings} == {
        ("A17", None),
        ("C18", Level.INFO),
    }


def test_stale_removal_predicted_by_the_profile_then_never_corrected_is_c16():
    """Kamailio (profile ``stale_removal_notify``): the NOTIFY a remove triggers still lists the
    removed dialogs. The profile predicts that NOTIFY, so it passes; the table it leaves, never
    corrected, still fails C16 at the end (the declared deviation)."""
    rules = Rules(stale_removal_notify=True)
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    notifies = [notify(0, R1, at=2.0), notify(1, R1, at=3.5)]
    result = run(stimuli, notifies, end=8.0, rules=rules)
    assert [j.verdict for j in result.judgements] == ["pass", "pass", "fail"]
    assert failed(result) == [("C16", None)]
    assert "no later NOTIFY corrected it" in result.findings[0].message
    # Without the profile fact the stale NOTIFY itself fails, once (same fault at the end).
    plain = run(stimuli, notifies, end=8.0)
    assert [j.verdict for j in plain.judgements] == ["pass", "fail", "fail"]
    assert failed(plain) == [("C16", None)]
    # The prediction covers the NOTIFY the remove triggers, not a second stale one.
    again = run(stimuli, [*notifies, notify(2, R1, at=3.8)], end=8.0, rules=rules)
    assert [j.verdict for j in again.judgements] == ["pass", "pass", "fail", "fail"]


# -- the rest of the rule -------------------------------------------------------------------------


def test_error_answered_stimulus_has_no_effect():
    stimuli = [
        publish("publish r1", "e1", [R1], 1.0, 1.01),
        remove("bad remove", "e1", 2.0, 2.01, status=412),
    ]
    assert failed(run(stimuli, [notify(0, R1, at=1.5), notify(1, R1, at=2.5)], end=3)) == []
    # A table without r1 after a rejected remove contradicts the publish.
    wrong = run(stimuli, [notify(0, R1, at=1.5), notify(1, at=2.5)], end=3)
    assert [f.requirement for f in wrong.findings] == ["B24"]


def test_unanswered_stimulus_may_or_may_not_have_taken_effect():
    lost = Stimulus("remove", "remove r1", 2.0, None, None, None, replaces="e1", expires=0)
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), lost]
    for shown in ((R1,), ()):
        result = run(stimuli, [notify(0, R1, at=1.5), notify(1, *shown, at=5.0)], end=6)
        assert failed(result) == [], shown


def test_concurrent_stimuli_in_any_order():
    # Two publications in flight at once: the NOTIFY may show either, both or none.
    p1 = publish("publish r1", "e1", [R1], 1.0, 1.5)
    p2 = publish("publish r2", "e2", [R2], 1.1, 1.6)
    for shown in ((), (R1,), (R2,), (R1, R2)):
        assert failed(run([p1, p2], [notify(0, *shown, at=1.3)], end=1.35)) == [], shown


def test_a_failure_outranks_an_info_for_the_same_stimulus():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    # Stale 4 ms after the 200 (info), and the table never corrected (fail): one C16, failed.
    result = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, at=3.014)], end=8.0)
    assert failed(result) == [("C16", None)]


def test_retransmission_judged_once():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    stale = notify(1, R1, at=3.5)
    again = Observation(stale.label, 3.6, stale.body, "active", key=stale.key)
    result = run(stimuli, [notify(0, R1, at=2.0), stale, again, notify(2, at=3.7)])
    assert len([j for j in result.judgements if j.what == "NOTIFY v1"]) == 1


def test_convergence_without_any_notify_after_the_change_is_b24():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    # The server never tells the watcher about the remove (fault no-notify-on-change).
    result = run(stimuli, [notify(0, R1, at=2.0)], end=6.0)
    assert failed(result) == [("B24", None)]
    assert "end of the subscription" in result.findings[0].message
    assert "remove r1" in result.findings[0].message
    # Within the prompt bound it is not yet late.
    assert failed(run(stimuli, [notify(0, R1, at=2.0)], end=4.0)) == []
    # A NOTIFY traced within the clock allowance before the remove's "sent" entry was its
    # NOTIFY (Kamailio, seen): the table contradicts the remove, C16.
    early = run(stimuli, [notify(0, R1, at=2.0), notify(1, R1, at=2.9989)], end=8.0)
    assert failed(early) == [("C16", None)]


def test_publications_missing_from_the_first_notify_are_aggregation():
    """Fault no-aggregation: only the latest publication reaches the body. The publications
    were stored before the SUBSCRIBE, so this is D03 (D08 in single mode), not a missed NOTIFY."""
    a = publish("publish a", "e1", [R1], 1.0, 1.01)
    b = publish("publish b", "e2", [R2], 1.1, 1.11)
    hist = History(URI, (a, b), (notify(0, R2, at=2.0),), end=3.0, subscribed=1.9)
    assert failed(h.check(hist, RULES)) == [("D03", None)]


def test_unmatched_without_culprit_is_d03_or_d08_by_mode():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01)]
    odd = [notify(0, R1, dialog("zz", "early"), at=2.0)]
    assert [f.requirement for f in run(stimuli, odd, end=2.1).findings] == ["D03"]
    single = run(stimuli, odd, end=2.1, rules=Rules(single_dialog=True))
    assert [f.requirement for f in single.findings] == ["D08"]


def test_no_effect_checkpoint_fails_the_named_ids():
    """ "Nothing changes" (C07): a PUBLISH that must be rejected but was stored and notified."""
    good = publish("publish good", "e1", [dialog("good", "confirmed")], 1.0, 1.01)
    bad = publish("publish bad", "e2", [dialog("bad", "early")], 3.0, 3.01)
    notifies = [notify(0, dialog("good", "confirmed"), at=2.0)]
    shown = [*notifies, notify(1, dialog("good", "confirmed"), dialog("bad", "early"), at=3.02)]
    cp = Checkpoint(3.6, ("C07",), excluded=frozenset({"publish bad"}))
    result = run([good, bad], shown, end=3.6, checkpoints=[cp])
    assert failed(result) == [("C07", None)]
    assert "publish bad" in result.findings[0].message
    # A NOTIFY that showed the effect fails it even when a later one took it back.
    undone = [*shown, notify(2, dialog("good", "confirmed"), at=3.3)]
    took_back = run([good, bad], undone, end=3.6, checkpoints=[cp])
    assert ("C07", None) in failed(took_back)
    assert "NOTIFY v1" in next(f.message for f in took_back.findings if f.requirement == "C07")
    # The same check reads the same verdict however late it looks: NOTIFY v1 is in the history.
    quiet = run([good, bad], notifies, end=3.6, checkpoints=[cp])
    assert [(f.requirement, f.passed) for f in quiet.findings if f.requirement == "C07"] == [
        ("C07", True)
    ]


def test_kamailio_whole_second_order_allows_either_order():
    rules = Rules(single_dialog=True, flavour="kamailio", timestamp_resolution=1.0)
    first = publish("publish first", "e1", [dialog("first", "early")], 1.0, 1.01)
    second = publish("publish second", "e2", [dialog("second", "early")], 1.2, 1.21)
    for winner in ("first", "second"):
        shown = [notify(0, dialog(winner, "early"), at=1.5)]
        assert failed(run([first, second], shown, end=1.6, rules=rules)) == [], winner
    strict = Rules(single_dialog=True, flavour="kamailio")
    views = h.possible_views(History(URI, (first, second), (), 2.0), 1.5, 1.5, strict)
    assert len(views) == 1


def test_paused_watcher_judged_from_when_it_stopped_reading():
    stimuli = [publish("publish r1", "e1", [R1], 1.0, 1.01), remove("remove r1", "e1", 3.0, 3.01)]
    late = Observation(
        "NOTIFY v1", 6.0, document(URI, [R1], version=1), "active", ("b", 1), earliest=2.5
    )
    assert failed(run(stimuli, [notify(0, R1, at=2.0), late, notify(2, at=6.05)], end=6.1)) == []
    # Read as if it had arrived when read, it would be stale.
    exact = Observation(late.label, late.received, late.body, "active", ("b", 1))
    assert failed(run(stimuli, [notify(0, R1, at=2.0), exact, notify(2, at=6.05)], end=6.1)) == [
        ("C16", None)
    ]


def test_the_subset_search_is_bounded():
    many = [
        publish(f"p{i}", f"e{i}", [dialog(f"d{i}", "early")], 1.0 + i / 100, 9.0) for i in range(12)
    ]
    result = run(many, [notify(0, at=5.0)], end=5.0)
    # "Nothing applied" was cut by the bound: the verdict can only inform.
    assert failed(result) == [("B24", Level.INFO)]
    assert "search bound" in result.findings[0].message
    assert len(h.possible_views(History(URI, tuple(many), (), 6), 5.0, 5.0, RULES)) <= h.MAX_STATES


def test_fold_is_the_expectations_fold():
    first = publish("p", "e1", [R1], 1.0, 1.01)
    store = h.fold((), first, received=1.0, seq=0)
    refreshed = h.fold(
        store, Stimulus("refresh", "r", 2, 2.01, 200, None, "e2", "e1", 60), received=2, seq=1
    )
    assert [p.etag for p in refreshed] == ["e2"] and refreshed[0].body == store[0].body
    assert h.fold(refreshed, remove("x", "e2", 3, 3.01), received=3, seq=2) == ()


def test_convergence_is_judged_when_the_subscription_ended():
    """A watcher that rejected a NOTIFY (B25): the table it held then is what converged; a
    server that keeps notifying afterwards is judged NOTIFY by NOTIFY, not at that moment."""
    z1 = publish("publish z1", "e1", [dialog("z1", "trying")], 1.0, 1.01)
    m2 = modify("modify 2", "e1", "e2", [dialog("z1", "early")], 2.0, 2.01)
    m3 = modify("modify 3", "e2", "e3", [dialog("z1", "confirmed")], 3.0, 3.01)
    notifies = [
        notify(0, dialog("z1", "trying"), at=1.5),
        notify(1, dialog("z1", "early"), at=2.02),
        notify(2, dialog("z1", "confirmed"), at=3.02),
    ]
    hist = History(URI, (z1, m2, m3), tuple(notifies), end=2.02, ended=True)
    assert failed(h.check(hist, RULES)) == []


# -- wired into the Case: every NOTIFY of every subscription goes through the check ---------------


class _Target:
    def presentity_uri(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1"


class _Publisher:
    """Returns prepared PublishResults, as the SIPp publisher would after reading its trace."""

    def __init__(self, results) -> None:
        self.results = list(results)

    def publish(self, *args, **kw):
        return self.results.pop(0)

    remove = publish


class _Watcher:
    def __init__(self, notifies) -> None:
        self.notifies = notifies
        self.active = True
        self.messages = []


def _sip(text: str):
    from conformance.sip.message import parse

    head, _, body = text.partition("\n\n")
    data = head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body.encode()
    return parse(data)


def _result(kind: str, etag: str, sent: float, answered: float, expires: int):
    from conformance.harness.peers import PublishResult
    from conformance.sip.message import Stamped

    request = _sip(
        f"PUBLISH sip:u@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-{kind}\n"
        f"Call-ID: {kind}\nCSeq: 1 PUBLISH\nContent-Length: 0\n\n"
    )
    response = _sip(
        f"SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-{kind}\nCall-ID: {kind}\n"
        f"CSeq: 1 PUBLISH\nSIP-ETag: {etag}\nExpires: {expires}\nContent-Length: 0\n\n"
    )
    exchange = (Stamped(request, sent, "out"), Stamped(response, answered, "in"))
    return PublishResult(request, response, etag, expires, exchange)


def _notify_at(uri: str, version: int, dialogs, at: float, cseq: int):
    from conformance.harness.peers import Notify

    body = document(uri, dialogs, version=version).decode()
    request = _sip(
        f"NOTIFY sip:w@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-n{cseq}\n"
        f"Call-ID: w\nCSeq: {cseq} NOTIFY\nSubscription-State: active;expires=600\n"
        f"Content-Type: application/dialog-info+xml\nContent-Length: {len(body)}\n\n{body}"
    )
    return Notify(request, at, request.body, 200, "active", 600, None, None, cseq)


def test_case_finish_judges_every_notify_through_the_history():
    """A stale removal NOTIFY that is followed 3 ms later by a right one still fails C16: the
    Case judges each captured NOTIFY, not only the view the case waited for."""
    import time

    from conformance.case import Case, Subscription
    from conformance.oracle import checks
    from conformance.targets.profile import Profile

    now = time.time() - 5
    published = _result("pub", "e1", now, now + 0.01, 3600)
    removed = _result("rm", "e1", now + 2, now + 2.01, 0)
    case = Case(
        name="t",
        target=_Target(),
        profile=Profile(),
        publisher=_Publisher([published, removed]),
        new_watcher=None,
        worker="gw0",
        timeout=1.0,
    )
    user = "u"
    uri = case.uri(user)
    case.publish(user, [R1])
    case.remove(user, published)
    watcher = _Watcher(
        [
            _notify_at(uri, 0, [R1], now + 1, 1),
            _notify_at(uri, 1, [R1], now + 2.5, 2),  # stale: the remove was answered at +2.01
            _notify_at(uri, 2, [], now + 2.503, 3),
        ]
    )
    ctx = checks.Subscription(presentity=uri, call_id="w", subscriber_tag="x", granted_at=now + 0.5)
    case.subscriptions.append(Subscription(watcher, ctx, None, user))  # type: ignore[arg-type]
    case.last_stimulus = now + 2.01  # the quiet window is long over
    findings = case.finish()
    assert case.waited == 0.0
    stale = [f for f in findings if f.requirement == "C16" and not f.passed]
    assert len(stale) == 1 and "NOTIFY CSeq 2" in stale[0].message
    assert "remove #2" in stale[0].message


# -- single-dialog mode: a wrong choice is named by its rule, whatever stimulus came last --------

SINGLE = Rules(single_dialog=True, flavour="strict")


def test_single_mode_winner_of_another_priority_is_d08_even_after_a_modify():
    """Fault priority-wrong: confirmed kept over early. The last stimulus was a modify, but the
    shown dialog is in the aggregate: the choice is wrong (D08), not the modify (C15)."""
    a = publish("publish a", "e1", [dialog("a", "confirmed")], 1.0, 1.01)
    b = publish("publish b", "e2", [dialog("b", "trying")], 2.0, 2.01)
    m = modify("modify b", "e2", "e3", [dialog("b", "early")], 3.0, 3.01)
    kept = dialog("a", "confirmed")
    shown = [notify(0, kept, at=1.5), notify(1, kept, at=3.2)]
    assert failed(run([a, b, m], shown, end=3.5, rules=SINGLE)) == [("D08", None)]


def test_single_mode_tie_broken_the_other_way_is_d09():
    a = publish("publish a", "e1", [dialog("a", "early")], 1.0, 1.01)
    b = publish("publish b", "e2", [dialog("b", "early")], 2.0, 2.01)
    shown = [notify(0, dialog("a", "early"), at=1.5), notify(1, dialog("b", "early"), at=2.2)]
    assert failed(run([a, b], shown, end=2.5, rules=SINGLE)) == [("D09", None)]


def test_single_mode_trimming_a_lone_publication_is_d10():
    a = publish("publish a", "e1", [dialog("a", "early"), dialog("c", "confirmed")], 1.0, 1.01)
    shown = [notify(0, dialog("a", "early"), at=1.5)]
    result = run([a], shown, end=2.0, rules=Rules(single_dialog=True, flavour="strict"))
    hist = History(URI, (a,), tuple(shown), end=2.0, subscribed=1.2)
    assert failed(h.check(hist, SINGLE)) == [("D10", None)]
    assert failed(result) == [("D10", None)]


def test_a_dialog_changed_inside_is_its_pass_through_rule():
    """Faults extensions-dropped, pval-escaped-twice, target-uri-dropped: the same dialogs in
    the same states, something inside changed: the pass-through rule, not aggregation (D03)."""
    ext = '<x:n xmlns:x="urn:example:x"/>'
    target = '<local><target uri="sip:a@h"><param pname="p" pval="v"/></target></local>'
    cases = [
        ("A34", dialog("a", "early", extra=ext), dialog("a", "early")),
        ("A24", dialog("a", "early", direction="initiator"), dialog("a", "early")),
        ("A28", dialog("a", "early", extra=target), dialog("a", "early", extra="<local/>")),
        (
            "A27",
            dialog("a", "early", extra=target),
            dialog("a", "early", extra=target.replace('pval="v"', 'pval="w"')),
        ),
    ]
    for rid, published, shown in cases:
        a = publish("publish a", "e1", [published], 1.0, 1.01)
        assert failed(run([a], [notify(0, shown, at=1.5)], end=2.0)) == [(rid, None)], rid


def test_a_modify_without_a_body_is_a_refresh():
    """RFC 3903 §4.3/§6: a PUBLISH with SIP-If-Match and no body refreshes, whatever the
    publisher meant it as. The explorer's ``not-xml`` modify can draw an empty body; the
    reference server keeps the state (issue 13: the clean-seed C15 reproducer), and so must
    the model, in the fold and in the history."""
    first = publish("publish r1", "e1", [R1], 1.0, 1.01)
    empty = Stimulus("modify", "modify empty", 2.0, 2.01, 200, b"", "e2", "e1", 3600)
    store = h.fold(h.fold((), first, received=1.0, seq=0), empty, received=2.0, seq=1)
    assert [(p.etag, p.body) for p in store] == [("e2", first.body)]
    result = run([first, empty], [notify(0, R1, at=1.5), notify(1, R1, at=2.5)])
    assert failed(result) == []
    # A modify with a body still replaces the state: the same NOTIFY then contradicts it.
    real = modify("modify r2", "e1", "e2", [R2], 2.0, 2.01)
    assert failed(run([first, real], [notify(0, R1, at=1.5), notify(1, R1, at=2.5)])) == [
        ("C15", None)
    ]


def test_a_subscription_ended_by_a_notify_gets_that_notifys_clock_allowance():
    """Explorer seed 7 on the clean reference server (issue 13): a watcher answers 489 to the
    NOTIFY of a modify, and the trace stamps that NOTIFY 0.5 ms before the modify's "sent".
    The NOTIFY itself is judged with the EPSILON allowance (info); the table at the end of the
    subscription is the same table at the same watcher-trace moment, so it gets the same
    allowance instead of a C15 failure."""
    first = publish("publish r1", "e1", [R1], 1.0, 1.01)
    change = modify("modify r2", "e1", "e2", [R2], 2.0, 2.01)
    notifies = (notify(0, R1, at=1.5), notify(1, R2, at=1.9995))
    hist = History(URI, (first, change), notifies, end=1.9995, ended=True)
    result = h.check(hist, RULES)
    assert failed(result) == [("C15", Level.INFO)]
    assert [j.verdict for j in result.judgements] == ["pass", "info", "info"]
    # Beyond the allowance it still fails: a table ahead of its stimulus by 50 ms.
    early = (notify(0, R1, at=1.5), notify(1, R2, at=1.95))
    late = h.check(History(URI, (first, change), early, end=1.95, ended=True), RULES)
    assert ("C15", None) in failed(late)


def test_a_dialog_shown_while_nothing_can_be_stored_fails_b27_not_the_aggregation():
    """idle-body-busy: the NOTIFY answering a SUBSCRIBE of an idle presentity shows a
    confirmed dialog nobody published. No stimulus explains it and every possible state is
    empty: the idle body is wrong (B27), not the aggregation (D03, before issue 13's fix)."""
    idle = dialog("idle", "confirmed")
    result = run(
        [publish("publish r1", "e1", [R1], 2.0, 2.01)],
        [notify(0, idle, at=1.0), notify(1, R1, at=2.02)],
    )
    assert failed(result) == [("B27", None)]
    assert "idle:confirmed" in result.findings[0].message


def test_a_full_notify_without_a_stored_terminated_dialog_fails_a23():
    """terminated-dialogs-dropped: the body leaves out a terminated dialog that is stored. The
    §4.3 table drops terminated dialogs, so the table passes; the body is judged (A23). The
    same NOTIFY carrying it passes; the check is opt-in (the explorer asks for it)."""
    ended = dialog("r1", "terminated")
    stimuli = [
        publish("publish r1", "e1", [R1], 1.0, 1.01),
        modify("end r1", "e1", "e2", [ended], 2.0, 2.01),
    ]
    dropped = run(stimuli, [notify(0, R1, at=1.02), notify(1, at=2.02)], terminated=True)
    assert failed(dropped) == [("A23", None)]
    assert failed(run(stimuli, [notify(0, R1, at=1.02), notify(1, at=2.02)])) == []  # opt-in
    assert "r1" in dropped.findings[0].message and "end r1" in dropped.findings[0].message
    assert dropped.findings[0].evidence["stimulus"] == "end r1"
    kept = run(stimuli, [notify(0, R1, at=1.02), notify(1, ended, at=2.02)], terminated=True)
    assert failed(kept) == []
    partial = run(
        stimuli,
        [notify(0, R1, at=1.02), notify(1, ended, at=2.02, state="partial")],
        terminated=True,
    )
    assert failed(partial) == []


def test_a_kamailio_refresh_in_the_same_second_as_another_publish_may_keep_its_place():
    """Kamailio stamps every update, a refresh too, with a whole-second received_time and
    sorts ties by row (first insert first): A early, B early, refresh A, all in one second,
    leaves A first, so the single-dialog tie (the last candidate) goes to B. Seen on the
    launched Kamailio (explorer seed 1, single mode, shrunk to these 4 steps): the model
    moved A to the end and failed D09 on the server's legal choice."""
    rules = Rules(single_dialog=True, flavour="kamailio", timestamp_resolution=1.0)
    a, b = dialog("a", "early"), dialog("b", "early")
    stimuli = [
        publish("publish a", "e1", [a], 1.00, 1.01),
        publish("publish b", "e2", [b, dialog("c", "confirmed")], 1.02, 1.03),
        Stimulus("refresh", "refresh a", 1.04, 1.05, 200, None, "e3", "e1", 600),
    ]
    assert failed(run(stimuli, [notify(0, b, at=1.10)], end=1.2, rules=rules)) == []
    assert failed(run(stimuli, [notify(0, a, at=1.10)], end=1.2, rules=rules)) == []
    # A second later the refresh certainly sorts last: the tie goes to A only.
    later = [*stimuli[:2], Stimulus("refresh", "refresh a", 2.5, 2.51, 200, None, "e3", "e1", 600)]
    assert failed(run(later, [notify(0, a, at=2.6)], end=2.7, rules=rules)) == []
    assert [r for r, _ in failed(run(later, [notify(0, b, at=2.6)], end=2.7, rules=rules))] == [
        "D09"
    ]
