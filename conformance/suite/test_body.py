"""RFC 4235 body rules that need a particular publication (REQUIREMENTS.md group A).

The structural rules (A02-A06, A11, A13, A18, A19, A21-A24, A28, A34) are checked on every NOTIFY
body by ``Case.finish``; these cases publish the input that makes a rule observable.
"""

from __future__ import annotations

import pytest

from conformance.errors import BodyError
from conformance.oracle import checks
from conformance.oracle.dialoginfo import SA_NS, dialog, parse
from conformance.oracle.requirements import Level

pytestmark = pytest.mark.dialoginfo

SA_APPEARANCE = f'<sa:appearance xmlns:sa="{SA_NS}">1</sa:appearance>'


def _published_then_seen(dialoginfo_case, dialogs, hint):
    user = dialoginfo_case.user(hint)
    dialoginfo_case.publish(user, dialogs)
    sub = dialoginfo_case.subscribe(user)
    return user, sub


def _last_dialog(sub, dialog_id):
    for notify in reversed(sub.notifies):
        if notify.body.strip():
            try:
                doc = parse(notify.body)
            except BodyError:  # A02 is judged by the per-NOTIFY checks
                return None
            return next((d for d in doc.dialogs if d.id == dialog_id), None)
    return None


@pytest.mark.dialoginfo_requirement("A04")
def test_utf8_display_name_survives(dialoginfo_case):
    extra = '<local><identity display="Jürgen Ωmega">sip:j@example.com</identity></local>'
    _, sub = _published_then_seen(dialoginfo_case, [dialog("u8", "confirmed", extra=extra)], "utf8")
    seen = _last_dialog(sub, "u8")
    display = seen.local.display if seen and seen.local else None
    dialoginfo_case.finding(
        "A04", display == "Jürgen Ωmega", f"display name came back as {display!r}"
    )


@pytest.mark.dialoginfo_requirement("A12")
def test_entity_is_the_presentity(dialoginfo_case):
    # An escaped unreserved character in the user part: the entity may keep or decode it, the
    # AOR is the same (RFC 3261 §19.1.4). Every body's entity is also judged by finish().
    user = dialoginfo_case.user("entity") + "%41"
    dialoginfo_case.publish(user, [dialog("e1", "early")])
    sub = dialoginfo_case.subscribe(user)
    bodies = [n.body for n in sub.notifies if n.body.strip()]
    try:
        entity = parse(bodies[0]).entity if bodies else None
    except BodyError:  # A02 is judged by the per-NOTIFY checks
        entity = None
    if entity is None:
        dialoginfo_case.finding(
            "A12", False, f"no NOTIFY body with an entity ({len(bodies)} bodies)"
        )
        return
    dialoginfo_case.record(
        checks.check_entity(
            entity, dialoginfo_case.uri(user), rebuilt=dialoginfo_case.profile.entity_rebuilt
        )
    )


@pytest.mark.dialoginfo_requirement("A20")
def test_dialog_id_kept_across_state_changes(dialoginfo_case):
    user = dialoginfo_case.user("idkeep")
    result = dialoginfo_case.publish(user, [dialog("keep", "trying")])
    sub = dialoginfo_case.subscribe(user)
    for state in ("early", "confirmed"):
        result = dialoginfo_case.modify(user, result, [dialog("keep", state)])
        dialoginfo_case.expect_view(sub, user, ["A20"])
    ids = {d.id for n in sub.notifies if n.body.strip() for d in _dialogs(n.body)}
    dialoginfo_case.finding(
        "A20", ids <= {"keep"}, f"dialog ids seen over the changes: {sorted(ids)}", level=Level.DEF
    )


@pytest.mark.dialoginfo_requirement("A23")
@pytest.mark.parametrize(
    "event", ["cancelled", "rejected", "replaced", "local-bye", "remote-bye", "error", "timeout"]
)
def test_terminated_event_passes_through(dialoginfo_case, event):
    user = dialoginfo_case.user("ev")
    doc = dialoginfo_case.body(user, [dialog("t", "terminated")]).replace(
        b"<state>terminated</state>",
        f'<state event="{event}" code="486">terminated</state>'.encode(),
    )
    dialoginfo_case.publish(user, doc)
    sub = dialoginfo_case.subscribe(
        user, expires=0
    )  # a fetch: its one NOTIFY is here when this returns
    # Judged on the bodies: the §4.3 view drops terminated dialogs, so it cannot tell.
    bodies = [n.body for n in sub.notifies]
    dialoginfo_case.record([checks.check_passthrough(bodies, "t", event=event, code="486")])


@pytest.mark.dialoginfo_requirement("A24")
@pytest.mark.parametrize("direction", ["initiator", "recipient"])
def test_direction_kept(dialoginfo_case, direction):
    _, sub = _published_then_seen(
        dialoginfo_case, [dialog("d", "confirmed", direction=direction)], "dir"
    )
    seen = _last_dialog(sub, "d")
    dialoginfo_case.finding(
        "A24",
        seen is not None and seen.direction == direction,
        f"direction came back as {seen.direction if seen else None!r}",
    )


@pytest.mark.dialoginfo_requirement("A25")
def test_half_dialog_gets_no_remote_tag(dialoginfo_case):
    _, sub = _published_then_seen(
        dialoginfo_case, [dialog("half", "trying", call_id="c1@x", local_tag="lt1")], "half"
    )
    seen = _last_dialog(sub, "half")
    dialoginfo_case.finding(
        "A25",
        seen is not None and seen.remote_tag is None,
        f"remote-tag came back as {seen.remote_tag if seen else None!r}",
    )


@pytest.mark.dialoginfo_requirement("A26")
def test_quotes_in_call_id_are_escaped(dialoginfo_case):
    call_id = "a\"b'c@host"
    _, sub = _published_then_seen(
        dialoginfo_case,
        [dialog("q", "confirmed", call_id=call_id, local_tag="l", remote_tag="r")],
        "quote",
    )
    seen = _last_dialog(sub, "q")
    dialoginfo_case.finding(
        "A26",
        seen is not None and seen.call_id == call_id,
        f"call-id came back as {seen.call_id if seen else None!r}",
    )


@pytest.mark.dialoginfo_requirement("A27")
def test_pval_escaping(dialoginfo_case):
    extra = (
        '<local><target uri="sip:x@example.com">'
        '<param pname="description" pval="A &amp; B&apos;s &quot;desk&quot;"/>'
        "</target></local>"
    )
    _, sub = _published_then_seen(dialoginfo_case, [dialog("pv", "confirmed", extra=extra)], "pval")
    seen = _last_dialog(sub, "pv")
    params = seen.local.params if seen and seen.local else ()
    dialoginfo_case.finding(
        "A27", params == (("description", 'A & B\'s "desk"'),), f"param came back as {params!r}"
    )


@pytest.mark.dialoginfo_requirement("A34", "D14")
def test_extension_after_remote_survives_with_namespace(dialoginfo_case):
    extra = "<remote><identity>sip:bob@example.com</identity></remote>" + SA_APPEARANCE
    user, sub = _published_then_seen(
        dialoginfo_case, [dialog("sa", "confirmed", extra=extra)], "sa"
    )
    seen = _last_dialog(sub, "sa")
    dialoginfo_case.finding(
        "D14",
        seen is not None and f"{{{SA_NS}}}appearance" in seen.extensions,
        f"extension children came back as {seen.extensions if seen else None!r}",
    )
    dialoginfo_case.expect_view(sub, user, ["A34"])


@pytest.mark.dialoginfo_requirement("A29")
def test_session_description_not_sent_unrequested(dialoginfo_case):
    extra = (
        "<local><identity>sip:a@example.com</identity>"
        '<session-description type="application/sdp">v=0</session-description></local>'
    )
    _, sub = _published_then_seen(dialoginfo_case, [dialog("sd", "confirmed", extra=extra)], "sdp")
    seen = _last_dialog(sub, "sd")
    leaked = bool(seen and seen.local and seen.local.session_description)
    dialoginfo_case.finding(
        "A29",
        not leaked,
        "session-description sent to a watcher that did not ask"
        if leaked
        else "no session-description sent unrequested",
    )


@pytest.mark.dialoginfo_requirement("A30")
def test_notify_rate(dialoginfo_case):
    user = dialoginfo_case.user("rate")
    result = dialoginfo_case.publish(user, [dialog("r", "trying")])
    sub = dialoginfo_case.subscribe(user)
    start = len(sub.notifies)
    for k, state in enumerate(("proceeding", "early", "confirmed", "early", "confirmed"), 1):
        result = dialoginfo_case.modify(user, result, [dialog(f"r{k}", state)])
    dialoginfo_case.expect_view(sub, user, [])  # wait for the final state; C18 is judged elsewhere
    dialoginfo_case.record([checks.check_rate([n.timestamp for n in sub.notifies[start:]])])


def _dialogs(body):
    try:
        return parse(body).dialogs
    except BodyError:  # A02 is judged by the per-NOTIFY checks
        return ()
