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

pytestmark = pytest.mark.dialoginfo


def _body_dialogs(notify):
    try:
        return parse(notify.body).dialogs
    except BodyError:  # A02 is judged by the per-NOTIFY checks
        return None


@pytest.mark.dialoginfo_requirement("D01", "D02")
def test_one_root_with_rebuilt_entity(dialoginfo_case):
    user = dialoginfo_case.user("root")
    for i in range(3):
        dialoginfo_case.publish(user, [dialog(f"r{i}", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    if not sub.notifies:
        return
    body = sub.notifies[0].body
    dialoginfo_case.finding(
        "D01",
        body.count(b"<dialog-info") + body.count(b":dialog-info ") == 1,
        f"initial NOTIFY body has {body.count(b'dialog-info ')} dialog-info roots",
    )
    try:
        doc = parse(body)
    except BodyError as exc:
        dialoginfo_case.finding("D02", False, f"body does not parse: {exc.message}")
        return
    default_ns = f'<dialog-info xmlns="{NS}"'.encode() in body
    dialoginfo_case.finding(
        "D02",
        default_ns and doc.state == "full" and doc.entity == dialoginfo_case.uri(user),
        f"root in default namespace: {default_ns}, state {doc.state!r}, "
        f"entity {doc.entity!r} for {dialoginfo_case.uri(user)!r}",
    )


@pytest.mark.dialoginfo_requirement("D03")
@pytest.mark.dialoginfo_mode("aggregate")
def test_every_publication_is_aggregated(dialoginfo_case):
    user = dialoginfo_case.user("agg")
    dialoginfo_case.publish(user, [dialog("a1", "confirmed"), dialog("a2", "early")])
    dialoginfo_case.publish(user, [dialog("b1", "trying")])
    dialoginfo_case.publish(user, [])
    sub = dialoginfo_case.subscribe(user)
    if sub.notifies:
        dialoginfo_case.expect_body(sub.notifies[0], user, ["D03"])
    dialoginfo_case.expect_view(sub, user, ["D03"])


@pytest.mark.dialoginfo_requirement("D06")
def test_only_same_presentity_and_event(dialoginfo_case):
    alice, bob = dialoginfo_case.user("alice"), dialoginfo_case.user("bob")
    dialoginfo_case.publish(alice, [dialog("al", "confirmed")])
    dialoginfo_case.publish(bob, [dialog("bo", "early")])
    dialoginfo_case.publish(alice, [dialog("pr", "early")], event="presence")
    sub = dialoginfo_case.subscribe(alice)
    dialoginfo_case.expect_view(sub, alice, ["D06"])


@pytest.mark.dialoginfo_requirement("D07", "A19")
@pytest.mark.dialoginfo_mode("aggregate")
def test_duplicate_ids_across_publications(dialoginfo_case):
    user = dialoginfo_case.user("dup")
    dialoginfo_case.publish(user, [dialog("x", "confirmed"), dialog("1", "early")])
    dialoginfo_case.space_for_order()
    dialoginfo_case.publish(user, [dialog("y", "confirmed"), dialog("1", "trying")])
    sub = dialoginfo_case.subscribe(user)
    if sub.notifies:
        dialoginfo_case.expect_body(sub.notifies[0], user, ["D07"])


@pytest.mark.dialoginfo_requirement("D08")
@pytest.mark.dialoginfo_mode("single")
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
def test_single_dialog_priority(dialoginfo_case, states):
    user = dialoginfo_case.user("prio")
    for i, state in enumerate(states):
        dialoginfo_case.publish(user, [dialog(f"s{i}", state)])
    sub = dialoginfo_case.subscribe(user)
    if sub.notifies:
        dialogs = _body_dialogs(sub.notifies[0])
        dialoginfo_case.finding(
            "D08",
            dialogs is not None and len(dialogs) == 1,
            f"single-dialog NOTIFY carries {len(dialogs or ())} dialogs",
        )
        dialoginfo_case.expect_body(sub.notifies[0], user, ["D08"])


@pytest.mark.dialoginfo_requirement("D09")
@pytest.mark.dialoginfo_mode("single")
@pytest.mark.parametrize("shape", ["tie", "latest-state"])
def test_single_dialog_ties_and_stale_states(dialoginfo_case, shape):
    user = dialoginfo_case.user("tie")
    if shape == "tie":
        dialoginfo_case.publish(user, [dialog("first", "early")])
        dialoginfo_case.space_for_order()
        dialoginfo_case.publish(user, [dialog("second", "early")])
    else:
        dialoginfo_case.publish(user, [dialog("D", "early")])
        dialoginfo_case.space_for_order()
        dialoginfo_case.publish(user, [dialog("X", "terminated"), dialog("D", "confirmed")])
    sub = dialoginfo_case.subscribe(user)
    if sub.notifies:
        dialogs = _body_dialogs(sub.notifies[0]) or ()
        dialoginfo_case.finding(
            "D09", len(dialogs) == 1, f"{len(dialogs)} dialogs in a single-dialog body"
        )
        if shape == "tie" and not dialoginfo_case.profile.claims_presence_dialoginfo:
            # D09 names a tie's winner only for a server that claims a module's rules; any
            # other server may pick either tied publication.
            ids = [d.id for d in dialogs]
            dialoginfo_case.finding(
                "D09", ids in (["first"], ["second"]), f"tie of two early dialogs won by {ids}"
            )
        else:
            dialoginfo_case.expect_body(sub.notifies[0], user, ["D09"])


@pytest.mark.dialoginfo_requirement("D09")
@pytest.mark.dialoginfo_mode("single")
def test_single_dialog_tie_after_refresh(dialoginfo_case):
    """A body-less refresh may move a publication in the aggregation order (Kamailio 5.6.3 sets
    received_time on every update): the oracle's flavour says where it goes, and so who wins
    a tie between two early dialogs."""
    user = dialoginfo_case.user("tieref")
    first = dialoginfo_case.publish(user, [dialog("first", "early")])
    dialoginfo_case.space_for_order()
    dialoginfo_case.publish(user, [dialog("second", "early")])
    dialoginfo_case.space_for_order()
    dialoginfo_case.refresh(user, first)
    sub = dialoginfo_case.subscribe(user)
    if sub.notifies:
        dialoginfo_case.expect_body(sub.notifies[0], user, ["D09"])


@pytest.mark.dialoginfo_requirement("D10")
@pytest.mark.dialoginfo_mode("single")
def test_single_dialog_mode_passes_one_publication_whole(dialoginfo_case):
    user = dialoginfo_case.user("one")
    dialoginfo_case.publish(user, [dialog("o1", "confirmed"), dialog("o2", "early")])
    sub = dialoginfo_case.subscribe(user)
    if sub.notifies:
        dialoginfo_case.expect_body(sub.notifies[0], user, ["D10"])


@pytest.mark.dialoginfo_requirement("D11", "B27")
def test_idle_presentity_form(dialoginfo_case):
    user = dialoginfo_case.user("idle")
    sub = dialoginfo_case.subscribe(user)
    if not sub.notifies:
        return  # B05 reported the missing NOTIFY
    body = sub.notifies[0].body
    form = checks.idle_form(body)
    dialoginfo_case.record(
        [checks.check_idle_notify(body, dialoginfo_case.expectation(user).aggregate())]
    )
    dialoginfo_case.finding(
        "D11",
        form == dialoginfo_case.profile.empty_form,
        f"idle form {form!r}, the profile declares {dialoginfo_case.profile.empty_form!r}",
    )


@pytest.mark.dialoginfo_requirement("D15", "C05")
def test_publish_expires_capped(dialoginfo_case):
    result = dialoginfo_case.publish(
        dialoginfo_case.user("cap"), [dialog("c", "trying")], expires=100000
    )
    cap = dialoginfo_case.profile.publish_expires_cap
    dialoginfo_case.finding(
        "C05",
        result.expires is not None and result.expires <= 100000,
        f"requested 100000, granted {result.expires}",
    )
    dialoginfo_case.finding(
        "D15",
        result.expires is not None and result.expires <= cap,
        f"requested 100000, granted {result.expires}, profile cap {cap}",
    )
