"""Aggregation as presence_dialoginfo does it (REQUIREMENTS.md group D).

Expected output always comes from the reference aggregator under the target profile (mode,
flavour, tie-break), never from literals in the case: the case chooses the stimulus, the oracle
says what must follow.
"""

from __future__ import annotations

import pytest

from conformance.errors import BodyError
from conformance.oracle import checks
from conformance.oracle.dialoginfo import NS, dialog, parse

pytestmark = pytest.mark.conformance


def _body_dialogs(notify):
    try:
        return parse(notify.body).dialogs
    except BodyError:  # A02 is judged by the per-NOTIFY checks
        return None


@pytest.mark.requirement("D01", "D02")
def test_one_root_with_rebuilt_entity(case):
    user = case.user("root")
    for i in range(3):
        case.publish(user, [dialog(f"r{i}", "confirmed")])
    sub = case.subscribe(user)
    if not sub.notifies:
        return
    body = sub.notifies[0].body
    case.finding(
        "D01",
        body.count(b"<dialog-info") + body.count(b":dialog-info ") == 1,
        f"initial NOTIFY body has {body.count(b'dialog-info ')} dialog-info roots",
    )
    try:
        doc = parse(body)
    except BodyError as exc:
        case.finding("D02", False, f"body does not parse: {exc.message}")
        return
    default_ns = f'<dialog-info xmlns="{NS}"'.encode() in body
    case.finding(
        "D02",
        default_ns and doc.state == "full" and doc.entity == case.uri(user),
        f"root in default namespace: {default_ns}, state {doc.state!r}, "
        f"entity {doc.entity!r} for {case.uri(user)!r}",
    )


@pytest.mark.requirement("D03")
@pytest.mark.mode("aggregate")
def test_every_publication_is_aggregated(case):
    user = case.user("agg")
    case.publish(user, [dialog("a1", "confirmed"), dialog("a2", "early")])
    case.publish(user, [dialog("b1", "trying")])
    case.publish(user, [])
    sub = case.subscribe(user)
    if sub.notifies:
        case.expect_body(sub.notifies[0], user, ["D03"])
    case.expect_view(sub, user, ["D03"])


@pytest.mark.requirement("D06")
def test_only_same_presentity_and_event(case):
    alice, bob = case.user("alice"), case.user("bob")
    case.publish(alice, [dialog("al", "confirmed")])
    case.publish(bob, [dialog("bo", "early")])
    case.publish(alice, [dialog("pr", "early")], event="presence")
    sub = case.subscribe(alice)
    case.expect_view(sub, alice, ["D06"])


@pytest.mark.requirement("D07", "A19")
@pytest.mark.mode("aggregate")
def test_duplicate_ids_across_publications(case):
    user = case.user("dup")
    case.publish(user, [dialog("x", "confirmed"), dialog("1", "early")])
    case.space_for_order()
    case.publish(user, [dialog("y", "confirmed"), dialog("1", "trying")])
    sub = case.subscribe(user)
    if sub.notifies:
        case.expect_body(sub.notifies[0], user, ["D07"])


@pytest.mark.requirement("D08")
@pytest.mark.mode("single")
@pytest.mark.parametrize(
    "states",
    [
        ("confirmed", "early", "terminated"),
        ("confirmed", "trying"),
        ("terminated", "trying"),
        ("proceeding", "trying"),
        ("trying", "early", "proceeding", "confirmed"),
    ],
    ids=lambda s: "+".join(s),
)
def test_single_dialog_priority(case, states):
    user = case.user("prio")
    for i, state in enumerate(states):
        case.publish(user, [dialog(f"s{i}", state)])
    sub = case.subscribe(user)
    if sub.notifies:
        dialogs = _body_dialogs(sub.notifies[0])
        case.finding(
            "D08",
            dialogs is not None and len(dialogs) == 1,
            f"single-dialog NOTIFY carries {len(dialogs or ())} dialogs",
        )
        case.expect_body(sub.notifies[0], user, ["D08"])


@pytest.mark.requirement("D09")
@pytest.mark.mode("single")
@pytest.mark.parametrize("shape", ["tie", "latest-state"])
def test_single_dialog_ties_and_stale_states(case, shape):
    user = case.user("tie")
    if shape == "tie":
        case.publish(user, [dialog("first", "early")])
        case.space_for_order()
        case.publish(user, [dialog("second", "early")])
    else:
        case.publish(user, [dialog("D", "early")])
        case.space_for_order()
        case.publish(user, [dialog("X", "terminated"), dialog("D", "confirmed")])
    sub = case.subscribe(user)
    if sub.notifies:
        dialogs = _body_dialogs(sub.notifies[0]) or ()
        case.finding("D09", len(dialogs) == 1, f"{len(dialogs)} dialogs in a single-dialog body")
        case.expect_body(sub.notifies[0], user, ["D09"])


@pytest.mark.requirement("D09")
@pytest.mark.mode("single")
def test_single_dialog_tie_after_refresh(case):
    """A body-less refresh may move a publication in the aggregation order (Kamailio 5.6.3 sets
    received_time on every update): the oracle's flavour says where it goes, and so who wins
    a tie between two early dialogs."""
    user = case.user("tieref")
    first = case.publish(user, [dialog("first", "early")])
    case.space_for_order()
    case.publish(user, [dialog("second", "early")])
    case.space_for_order()
    case.refresh(user, first)
    sub = case.subscribe(user)
    if sub.notifies:
        case.expect_body(sub.notifies[0], user, ["D09"])


@pytest.mark.requirement("D10")
@pytest.mark.mode("single")
def test_single_dialog_mode_passes_one_publication_whole(case):
    user = case.user("one")
    case.publish(user, [dialog("o1", "confirmed"), dialog("o2", "early")])
    sub = case.subscribe(user)
    if sub.notifies:
        case.expect_body(sub.notifies[0], user, ["D10"])


@pytest.mark.requirement("D11", "B27")
def test_idle_presentity_form(case):
    user = case.user("idle")
    sub = case.subscribe(user)
    if not sub.notifies:
        return  # B05 reported the missing NOTIFY
    body = sub.notifies[0].body
    form = checks.idle_form(body)
    case.record([checks.check_idle_notify(body, case.expectation(user).aggregate())])
    case.finding(
        "D11",
        form == case.profile.empty_form,
        f"idle form {form!r}, the profile declares {case.profile.empty_form!r}",
    )


@pytest.mark.requirement("D15", "C05")
def test_publish_expires_capped(case):
    result = case.publish(case.user("cap"), [dialog("c", "trying")], expires=100000)
    cap = case.profile.publish_expires_cap
    case.finding(
        "C05",
        result.expires is not None and result.expires <= 100000,
        f"requested 100000, granted {result.expires}",
    )
    case.finding(
        "D15",
        result.expires is not None and result.expires <= cap,
        f"requested 100000, granted {result.expires}, profile cap {cap}",
    )
