"""checks.py on hand-built NOTIFYs: each rule passes on a good message and fails on the bad one."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from unittest.mock import MagicMock

import pytest

from conformance import suite
from conformance.oracle import checks
from conformance.oracle.aggregator import Publication, aggregate
from conformance.oracle.dialoginfo import CONTENT_TYPE, dialog, document
from conformance.oracle.view import WatcherView
from conformance.sip.message import Request, Response, Stamped

PRESENTITY = "sip:alice@example.com"


def notify(
    *,
    version=0,
    cseq=1,
    state="active;expires=590",
    body=None,
    drop=(),
    extra=(),
    dialogs=None,
):
    if body is None:
        body = document(PRESENTITY, dialogs or [dialog("d1", "confirmed")], version=version)
    headers = [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{cseq}"),
        ("From", f"<{PRESENTITY}>;tag=srv"),
        ("To", "<sip:w@example.com>;tag=wat"),
        ("Call-ID", "call-1"),
        ("CSeq", f"{cseq} NOTIFY"),
        ("Event", "dialog"),
        ("Subscription-State", state),
        ("Contact", "<sip:alice@127.0.0.1:5060>"),
        ("Content-Type", CONTENT_TYPE),
    ]
    headers = [h for h in headers if h[0] not in drop] + list(extra)
    return checks.Captured(
        Request(headers=tuple(headers), body=body, method="NOTIFY", uri="sip:w@127.0.0.1"),
        timestamp=GRANTED_AT + 5.0,
    )


GRANTED_AT = 1_800_000_000.0
"""A fixed moment: the B09 check compares the NOTIFY's time with the grant's, so neither may
depend on when the module was imported (a loaded -n run took long enough to fail B09)."""

SUB = checks.Subscription(
    presentity=PRESENTITY,
    call_id="call-1",
    subscriber_tag="wat",
    notifier_tag="srv",
    granted=600,
    granted_at=GRANTED_AT,
)


def verdicts(findings, rid):
    return [f.passed for f in findings if f.requirement == rid]


def test_a_good_notify_passes_everything():
    found = checks.check_notify(notify(), SUB)
    assert [str(f) for f in found if not f.passed] == []
    for rid in ("B06", "B07", "B08", "B09", "B11", "B13", "A01", "A02", "A05", "A12", "A19"):
        assert verdicts(found, rid), f"no finding for {rid}"


@pytest.mark.parametrize(
    ("kwargs", "rid"),
    [
        ({"drop": ("Subscription-State",)}, "B08"),
        ({"state": "active"}, "B09"),
        ({"state": "active;expires=9999"}, "B09"),
        ({"state": "terminated"}, "B10"),
        ({"drop": ("Contact",)}, "B11"),
        ({"extra": (("Contact", "<sip:x@h>"),)}, "B11"),
        ({"drop": ("Content-Type",)}, "B13"),
        ({"drop": ("Event",)}, "B07"),
        ({"body": b"<dialog-info"}, "A02"),
        ({"dialogs": (dialog("x", "confirmed"), dialog("x", "early"))}, "A19"),
        ({"dialogs": (dialog("x", "ringing"),)}, "A22"),
    ],
)
def test_each_header_rule_can_fail(kwargs, rid):
    assert False in verdicts(checks.check_notify(notify(**kwargs), SUB), rid)


def test_dialog_mismatch_is_b06():
    other = checks.Subscription(presentity=PRESENTITY, call_id="call-2", subscriber_tag="x")
    assert verdicts(checks.check_notify(notify(), other), "B06") == [False]


def test_wrong_entity_is_a12():
    bad = notify(body=document("sip:bob@example.com", [dialog("d", "early")]))
    assert verdicts(checks.check_notify(bad, SUB), "A12") == [False]


def test_rfc3265_makes_missing_expires_a_should():
    sub = checks.Subscription(
        presentity=PRESENTITY, call_id="call-1", subscriber_tag="wat", rfc=3265
    )
    (finding,) = [
        f for f in checks.check_notify(notify(state="active"), sub) if f.requirement == "B09"
    ]
    assert finding.verdict().value == "warn"


def test_sequence_contiguous_versions_pass():
    seq = [notify(version=v, cseq=v + 1) for v in range(3)]
    found = checks.check_sequence(seq)
    assert all(f.passed for f in found)
    assert set(verdicts(found, "B12")) == {True}
    assert verdicts(found, "A07") == [True]


def test_sequence_repeated_version_and_cseq_gap_fail():
    seq = [notify(version=0, cseq=1), notify(version=0, cseq=3)]
    found = checks.check_sequence(seq)
    assert False in verdicts(found, "A09")
    assert False in verdicts(found, "B12")


def test_sequence_gap_says_how_many_bodyless_notifies_lay_between():
    # Kamailio counts its body-less NOTIFYs in the version: the gap says so, so a profile can
    # excuse exactly that gap; a gap with nothing between says nothing more.
    seq = [notify(version=0, cseq=1), notify(body=b"", cseq=2), notify(version=2, cseq=3)]
    (gap,) = [f for f in checks.check_sequence(seq) if f.requirement == "A08" and not f.passed]
    assert gap.message.endswith("(1 missing); 1 NOTIFY(s) without a body between")
    assert gap.observed == gap.message and gap.evidence["at"] == seq[2].timestamp
    seq = [notify(version=0, cseq=1), notify(version=2, cseq=2)]
    (gap,) = [f for f in checks.check_sequence(seq) if f.requirement == "A08" and not f.passed]
    assert gap.message.endswith("(1 missing)")


def test_sequence_first_version_one_is_a07_warning():
    found = checks.check_sequence([notify(version=1)])
    (a07,) = [f for f in found if f.requirement == "A07"]
    assert not a07.passed and a07.verdict().value == "warn"


def test_subscribe_response_rules():
    ok = Response(headers=(("Expires", "60"),), status=200, reason="OK")
    assert all(f.passed for f in checks.check_subscribe_response(ok, requested=60))
    longer = Response(headers=(("Expires", "120"),), status=200, reason="OK")
    assert verdicts(checks.check_subscribe_response(longer, requested=60), "B03") == [False]
    accepted = Response(headers=(("Expires", "60"),), status=202, reason="Accepted")
    assert verdicts(checks.check_subscribe_response(accepted, requested=60), "B02") == [False]
    none = Response(headers=(), status=200, reason="OK")
    assert verdicts(checks.check_subscribe_response(none, requested=60), "B03") == [False]


def test_view_and_body_against_the_oracle():
    pubs = [
        Publication(document(PRESENTITY, [dialog("a", "early")]), "e1", 1.0, 100.0, 0),
        Publication(document(PRESENTITY, [dialog("b", "confirmed")]), "e2", 2.0, 100.0, 1),
    ]
    expected = aggregate(pubs, presentity=PRESENTITY, now=10.0)
    view = WatcherView()
    view.apply(expected.body(0))
    assert all(f.passed for f in checks.check_view(view, expected, ["D03"]))
    partial = WatcherView()
    partial.apply(document(PRESENTITY, [dialog("a", "early")]))
    (bad,) = checks.check_view(partial, expected, ["D03"])
    assert not bad.passed and "missing b:confirmed" in bad.message
    single = aggregate(pubs, presentity=PRESENTITY, now=10.0, single_dialog=True)
    (d08,) = checks.check_body(expected.body(1), single, ["D08"])
    assert not d08.passed
    (d08,) = checks.check_body(single.body(1), single, ["D08"])
    assert d08.passed


# -- issue 10 point 5: checks that can fail, with the id of the rule they judge ------------------


def aggregate_of(*dialogs):
    pubs = (
        [Publication(document(PRESENTITY, list(dialogs)), "e1", 1.0, 100.0, 0)] if dialogs else []
    )
    return aggregate(pubs, presentity=PRESENTITY, now=10.0)


@pytest.mark.parametrize(
    ("entity", "presentity", "rebuilt", "a12", "d02"),
    [
        # The AOR: user unescaped (case-sensitive), host case-insensitive.
        ("sip:alice@example.com", "sip:alice@example.com", False, True, None),
        ("sip:al%69ce@EXAMPLE.com", "sip:alice@example.com", False, True, None),
        ("sip:Alice@example.com", "sip:alice@example.com", False, False, None),
        ("sip:bob@example.com", "sip:alice@example.com", True, False, None),
        ("sip:alice@example.org", "sip:alice@example.com", True, False, None),
        # Scheme and port: RFC 3261 equality, unless the profile declares the rebuilt entity.
        ("sip:alice@example.com", "sips:alice@example.com", False, False, None),
        ("sip:alice@example.com", "sip:alice@example.com:5070", False, False, None),
        ("sip:alice@example.com", "sips:alice@example.com", True, True, True),
        ("sip:alice@example.com", "sip:alice@example.com:5070", True, True, True),
        ("sip:alice@[::1]", "sip:alice@[::1]:5070", True, True, True),
        # Rebuilt, but not as the module writes it (the port kept, the scheme changed): D02.
        ("sip:alice@example.com:5070", "sips:alice@example.com:5070", True, True, False),
        ("nonsense", "sip:alice@example.com", True, False, None),
    ],
)
def test_entity_is_the_aor_and_a_rebuilt_one_is_d02(entity, presentity, rebuilt, a12, d02):
    found = checks.check_entity(entity, presentity, rebuilt=rebuilt)
    assert verdicts(found, "A12") == [a12]
    assert verdicts(found, "D02") == ([] if d02 is None else [d02])


def test_notify_entity_follows_the_profile_switch():
    sips = "sips:alice@example.com"
    rebuilt = notify(body=document(PRESENTITY, [dialog("d", "early")]))  # sip:alice@example.com
    strict = checks.Subscription(presentity=sips, call_id="call-1", subscriber_tag="wat")
    assert verdicts(checks.check_notify(rebuilt, strict), "A12") == [False]
    module = checks.Subscription(
        presentity=sips, call_id="call-1", subscriber_tag="wat", entity_rebuilt=True
    )
    found = checks.check_notify(rebuilt, module)
    assert verdicts(found, "A12") == [True] and verdicts(found, "D02") == [True]


def test_refresh_notify_must_be_full_and_current():
    expected = aggregate_of(dialog("a", "confirmed"), dialog("b", "terminated"))
    good = document(PRESENTITY, [dialog("a", "confirmed"), dialog("b", "terminated")], version=1)
    assert all(f.passed for f in checks.check_refresh_notify(good, expected))
    # Full state in a partial document: B20 holds, A14 (SHOULD) does not.
    partial = document(
        PRESENTITY,
        [dialog("a", "confirmed"), dialog("b", "terminated")],
        version=1,
        state="partial",
    )
    found = checks.check_refresh_notify(partial, expected)
    assert verdicts(found, "B20") == [True] and verdicts(found, "A14") == [False]
    # An empty partial document leaves a §4.3 view unchanged but carries no state: B20 fails.
    empty = document(PRESENTITY, [], version=1, state="partial")
    assert verdicts(checks.check_refresh_notify(empty, expected), "B20") == [False]
    assert verdicts(checks.check_refresh_notify(b"", expected), "B20") == [False]
    assert verdicts(checks.check_refresh_notify(b"", aggregate_of()), "B20") == [True]
    assert verdicts(checks.check_refresh_notify(b"<dialog-info", expected), "B20") == [False]


def terminated_body(event, code="486", dialog_id="t"):
    return document(PRESENTITY, [dialog(dialog_id, "terminated")]).replace(
        b"<state>terminated</state>",
        f'<state event="{event}" code="{code}">terminated</state>'.encode(),
    )


def test_passthrough_judges_bodies_and_fails_when_the_dialog_never_came():
    wanted = {"event": "rejected", "code": "486"}
    assert checks.check_passthrough([terminated_body("rejected")], "t", **wanted).passed
    assert not checks.check_passthrough([terminated_body("cancelled")], "t", **wanted).passed
    assert not checks.check_passthrough([terminated_body("rejected", "487")], "t", **wanted).passed
    # The dialog dropped (a §4.3 view would be empty either way), or no body at all: fail.
    dropped = document(PRESENTITY, [], version=0)
    assert not checks.check_passthrough([dropped, b""], "t", **wanted).passed
    assert not checks.check_passthrough([], "t", **wanted).passed


@pytest.mark.parametrize(
    ("body", "published", "passed"),
    [
        (b"", (), True),
        (document(PRESENTITY, []), (), True),
        (document(PRESENTITY, [dialog("x", "terminated")]), (), True),
        (document(PRESENTITY, [dialog("x", "confirmed")]), (), False),
        (document(PRESENTITY, [], state="partial"), (), True),
        (document(PRESENTITY, [dialog("x", "early")], state="partial"), (), False),
        (b"<dialog-info", (), False),
        # A neutral body while a live dialog is published is not "no meaningful state".
        (b"", (dialog("a", "early"),), False),
        (document(PRESENTITY, []), (dialog("a", "early"),), False),
    ],
)
def test_idle_notify_is_empty_or_neutral_only_when_nothing_is_published(body, published, passed):
    assert checks.check_idle_notify(body, aggregate_of(*published)).passed is passed


def test_rate_warns_on_a_burst():
    assert checks.check_rate([0.0, 1.2, 2.5]).passed
    burst = checks.check_rate([0.0, 0.1, 0.2, 3.0])
    assert not burst.passed and burst.message.startswith("3 NOTIFYs")
    # RECOMMENDED in the catalogue: a burst warns (fails under --strict), it is not INFO.
    assert burst.verdict().value == "warn" and burst.verdict(strict=True).value == "fail"
    # The burst is placed at its second NOTIFY (the explorer's step), not at the first.
    assert burst.evidence["at"] == 0.1 and burst.evidence["gap"] == 0.1


def test_rate_allowance_forgives_jitter_of_a_spaced_pair_only():
    # A server spacing two NOTIFYs by exactly 1 s: the watcher may read them 0.999 s apart.
    assert not checks.check_rate([5.0, 5.999]).passed
    assert checks.check_rate([5.0, 5.999], allowance=0.010).passed
    assert not checks.check_rate([5.0, 5.9], allowance=0.010).passed


def _subscribe(at: float) -> Stamped:
    request = Request(headers=(("CSeq", "1 SUBSCRIBE"),), method="SUBSCRIBE", uri="sip:p@x")
    return Stamped(request, at, "out")


def _in(c: checks.Captured) -> Stamped:
    return Stamped(c.request, c.timestamp, "in")


def test_the_notify_owed_to_a_subscribe_is_the_next_one_in_trace_order():
    first, change, answer = _captured(1, 10.00), _captured(2, 10.20), _captured(3, 11.55)
    # The refresh is stamped after its answer arrived (SIPp stamped it late): the order
    # decides, not the clock.
    trace = [_subscribe(9.99), _in(first), _in(change), _subscribe(11.56), _in(answer)]
    assert checks.owed_notifies(trace) == {"1 NOTIFY", "3 NOTIFY"}
    # A SUBSCRIBE no NOTIFY answered leaves its slot to the next NOTIFY, whatever it is.
    assert checks.owed_notifies([_subscribe(1.0), _subscribe(2.0), _in(first)]) == {"1 NOTIFY"}


def test_state_change_times_leave_out_what_is_owed_at_once():
    seen = [
        _captured(1, 10.00),  # answers the SUBSCRIBE
        _captured(2, 10.20),  # a change
        _captured(2, 10.70),  # its retransmission
        _captured(3, 11.30),  # a change
        _captured(4, 11.55),  # answers the refresh
        _captured(5, 11.60, state="terminated;reason=timeout"),
    ]
    assert checks.state_change_times(seen, {"1 NOTIFY", "4 NOTIFY"}) == [10.20, 11.30]
    late = checks.Captured(notify(cseq=6).request, 20.0, 200, late=True)
    assert checks.state_change_times([late], set()) == []


def test_leaving_owed_notifies_out_never_invents_a_burst():
    # A change NOTIFY 0.2 s after a refresh's NOTIFY is legal (the refresh's is owed at once);
    # counted together they would be a burst.
    seen = [_captured(1, 10.0), _captured(2, 12.0), _captured(3, 12.2)]
    assert not checks.check_rate([c.timestamp for c in seen]).passed
    assert checks.check_rate(checks.state_change_times(seen, {"1 NOTIFY", "2 NOTIFY"})).passed
    # A change slipping in before the refresh's answer takes its slot: the answer is counted
    # in its place, still a window after the change before it.
    seen = [_captured(1, 10.0), _captured(2, 11.0), _captured(3, 12.0), _captured(4, 12.05)]
    trace = [_subscribe(9.9), _in(seen[0]), _in(seen[1]), _subscribe(11.99), *map(_in, seen[2:])]
    changes = checks.state_change_times(seen, checks.owed_notifies(trace))
    assert changes == [11.0, 12.05] and checks.check_rate(changes).passed
    # Changes closer than a window, with no SUBSCRIBE between: a burst.
    seen = [_captured(1, 10.0), _captured(2, 10.3), _captured(3, 10.6)]
    assert not checks.check_rate(checks.state_change_times(seen, {"1 NOTIFY"})).passed


# -- the suite's cases on synthetic observations ------------------------------------------------
# A recording stand-in for the ``case`` fixture: the real case function runs, its findings are
# kept, and the NOTIFYs it reads are the synthetic ones given here.

REQUIREMENTS_MD = Path(__file__).resolve().parents[2] / "docs" / "REQUIREMENTS.md"
SUITE = Path(suite.__file__).resolve().parent


def fake_case(notifies=(), *, expected=None, per_modify=()):
    """``per_modify``: NOTIFYs that arrive one per ``case.modify`` call, in order."""
    from conformance.oracle.findings import Finding

    case = MagicMock()
    case.findings = []
    case.finding.side_effect = lambda rid, ok, msg, **kw: case.findings.append(
        Finding(rid, ok, msg, **kw)
    )
    case.record.side_effect = lambda found: case.findings.extend(found)
    sub = case.subscribe.return_value
    sub.notifies = list(notifies)
    sub.watcher.refresh.return_value = Response(headers=(("Expires", "300"),), status=200)
    sub.watcher.unsubscribe.return_value = Response(headers=(), status=200)
    case.await_notifies.side_effect = lambda s, count, **kw: list(sub.notifies)
    arriving = iter(per_modify)
    case.modify.side_effect = lambda *a, **kw: sub.notifies.extend(
        [n] if (n := next(arriving, None)) else []
    )
    case.expectation.return_value.aggregate.return_value = expected or aggregate_of()
    case.profile.entity_rebuilt = False
    return case


def test_a23_case_fails_when_the_terminated_dialog_never_arrives():
    from conformance.suite import test_body

    case = fake_case([checks.Captured(notify(body=document(PRESENTITY, [])).request, 1.0)])
    test_body.test_terminated_event_passes_through(case, "rejected")
    assert verdicts(case.findings, "A23") == [False]
    body = terminated_body("rejected")
    case = fake_case([checks.Captured(notify(body=body).request, 1.0)])
    test_body.test_terminated_event_passes_through(case, "rejected")
    assert verdicts(case.findings, "A23") == [True]


def test_a30_case_warns_as_the_catalogue_says():
    from conformance.suite import test_body

    burst = [checks.Captured(notify(cseq=k).request, 100.0 + k / 10) for k in range(2, 7)]
    case = fake_case([checks.Captured(notify().request, 90.0)], per_modify=burst)
    test_body.test_notify_rate(case)
    (a30,) = [f for f in case.findings if f.requirement == "A30"]
    assert not a30.passed and a30.verdict().value == "warn"


def test_b20_case_checks_the_refresh_notify_itself():
    from conformance.suite import test_subscribe

    expected = aggregate_of(dialog("r1", "confirmed"))
    full = document(PRESENTITY, [dialog("r1", "confirmed")], version=0)
    empty_partial = document(PRESENTITY, [], version=1, state="partial")
    seq = [notify(body=full, cseq=1), notify(body=empty_partial, cseq=2), notify(body=full, cseq=3)]
    case = fake_case(seq, expected=expected)
    test_subscribe.test_refresh_sends_full_notify_with_next_version(case)
    assert verdicts(case.findings, "B20") == [False, True]
    assert verdicts(case.findings, "A14") == [False, True]


def test_b21_silence_window_is_the_catalogue_s():
    from conformance.suite import test_subscribe

    row = next(
        line for line in REQUIREMENTS_MD.read_text().splitlines() if line.startswith("| B21 ")
    )
    window = float(re.search(r"within (\d+(?:\.\d+)?) s", row).group(1))
    case = fake_case()
    test_subscribe.test_unsubscribe_gets_terminated_notify_and_silence(case)
    (call,) = case.expect_no_notify.call_args_list
    assert call.args[1] >= window == checks.SILENCE_SECONDS


# Rules judged on something other than the watcher's dialog table: a view comparison can never
# be their evidence.
NOT_VIEW_RULES = {"A04", "A12", "A14", "A23", "A30", "B20", "B27"}


def _view_comparisons():
    for path in sorted(SUITE.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            marked = set()
            for deco in fn.decorator_list:
                if (
                    isinstance(deco, ast.Call)
                    and getattr(deco.func, "attr", "") == "dialoginfo_requirement"
                ):
                    marked |= {a.value for a in deco.args if isinstance(a, ast.Constant)}
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "expect_view":
                    ids = call.args[2] if len(call.args) > 2 else None
                    if isinstance(ids, ast.List):
                        yield fn.name, marked, {e.value for e in ids.elts}


def test_view_comparisons_carry_only_ids_of_rules_about_the_view():
    found = list(_view_comparisons())
    assert found, "no expect_view call found: the test would prove nothing"
    for name, marked, ids in found:
        assert not ids & NOT_VIEW_RULES, f"{name} tags a view comparison {sorted(ids)}"
        assert ids <= marked, (
            f"{name} tags a view comparison {sorted(ids - marked)} it does not mark"
        )


@pytest.mark.parametrize(
    ("stored", "statuses", "c15", "c14"),
    [
        # Kamailio 5.6.3: the update is skipped; the new ETag was never stored, the old one lives.
        ([dialog("gone", "terminated")], (412, 200), False, False),
        # A conforming server: the modify replaced the body; new ETag works, the old one is gone.
        ([dialog("next", "confirmed")], (200, 412), True, True),
    ],
)
def test_modify_of_terminated_publication_case(stored, statuses, c15, c14):
    from conformance.suite import test_publish

    case = fake_case()
    ok = MagicMock(etag="e2")
    ok.response.status = 200
    case.modify.side_effect = None
    case.modify.return_value = ok
    fetched = WatcherView()
    fetched.apply(document(PRESENTITY, stored))
    expected = aggregate_of(dialog("next", "confirmed"))
    case.expect_view.return_value = checks.compare(
        checks.expected_view(expected).values(), fetched.dialogs.values()
    )
    answers = iter(statuses)
    case.publisher.refresh.side_effect = lambda *a, **kw: MagicMock(
        response=Response(headers=(), status=next(answers))
    )
    test_publish.test_modify_of_terminated_publication(case)
    assert verdicts(case.findings, "C15") == [True, c15]
    assert verdicts(case.findings, "C14") == [c14]


# -- PUBLISH responses and the end of a subscription (the explorer's step rules) -----------------


def _publish_ok(*headers: tuple[str, str]) -> Response:
    return Response(headers=headers, status=200, reason="OK")


def _ids(findings) -> list[str]:
    return [f.requirement for f in findings if not f.passed]


def test_publish_response_rules() -> None:
    good = _publish_ok(("SIP-ETag", "e2"), ("Expires", "60"))
    assert _ids(checks.check_publish_response(good, requested=60, if_match="e1")) == []
    twice = _publish_ok(("SIP-ETag", "e2"), ("SIP-ETag", "e3"), ("Expires", "60"))
    assert _ids(checks.check_publish_response(twice, requested=60)) == ["C04"]
    longer = _publish_ok(("SIP-ETag", "e2"), ("Expires", "90"))
    assert _ids(checks.check_publish_response(longer, requested=60)) == ["C05"]
    same = _publish_ok(("SIP-ETag", "e1"), ("Expires", "60"))
    assert _ids(checks.check_publish_response(same, requested=60, if_match="e1")) == ["C14"]
    removed = _publish_ok(("SIP-ETag", "e1"))  # a remove: no Expires needed, no new ETag
    assert _ids(checks.check_publish_response(removed, requested=0, if_match="e1")) == []
    refused = Response(headers=(), status=412, reason="Conditional Request Failed")
    assert checks.check_publish_response(refused, requested=60, if_match="e1") == []


def _captured(cseq: int, at: float, *, state: str = "active;expires=60", answered: int = 200):
    return checks.Captured(notify(cseq=cseq, state=state).request, at, answered)


def test_subscription_end_after_a_rejected_notify() -> None:
    quiet = [_captured(1, 1.0), _captured(2, 2.0, answered=481)]
    assert _ids(checks.check_subscription_end(quiet)) == []
    kept = [*quiet, _captured(3, 4.0, answered=481)]
    found = checks.check_subscription_end(kept)
    assert _ids(found) == ["B25"] and found[0].observed == "NOTIFYs after a NOTIFY answered 481"


def test_subscription_end_after_an_unsubscribe() -> None:
    ended = [_captured(1, 1.0), _captured(2, 3.01, state="terminated;reason=timeout")]
    assert _ids(checks.check_subscription_end(ended, unsubscribed=3.0)) == []
    active = [_captured(1, 1.0), _captured(2, 3.01)]
    assert _ids(checks.check_subscription_end(active, unsubscribed=3.0)) == ["B21"]
    more = [*ended, _captured(3, 5.0)]
    assert _ids(checks.check_subscription_end(more, unsubscribed=3.0)) == ["B21"]


def test_subscription_end_after_its_expires_ran_out_b23() -> None:
    """subscription-expiry-silent drops an expired subscription without a NOTIFY: the
    explorer's expire-sub step then finds no terminated one (B23)."""
    ended = [_captured(1, 1.0), _captured(2, 3.5, state="terminated;reason=timeout")]
    assert _ids(checks.check_subscription_end(ended, expired=3.0)) == []
    silent = [_captured(1, 1.0)]
    [found] = checks.check_subscription_end(silent, expired=3.0)
    assert found.requirement == "B23" and found.evidence["at"] == 3.0
    wrong = [_captured(1, 1.0), _captured(2, 3.5, state="terminated;reason=noresource")]
    assert _ids(checks.check_subscription_end(wrong, expired=3.0)) == ["B23"]
    # An unsubscribe or a rejected NOTIFY ended it first: B21/B25 judge, not B23.
    assert _ids(checks.check_subscription_end(silent, expired=3.0, unsubscribed=2.0)) == ["B21"]


def test_a_notify_a_subscribe_triggered_is_a_full_document_a14():
    """initial-notify-partial: the SUBSCRIBE's NOTIFY says state=partial. The explorer's
    subscribe step judges it (A14, SHOULD); an empty or unparsable body is left to B27/A02."""
    c = checks
    uri = "sip:alice@example.com"
    partial = document(uri, [dialog("a", "early")], state="partial")
    full = document(uri, [dialog("a", "early")])
    [bad] = c.check_subscribe_notify(partial, "the SUBSCRIBE's NOTIFY")
    assert (bad.requirement, bad.passed) == ("A14", False) and "partial" in bad.message
    [good] = c.check_subscribe_notify(full, "the SUBSCRIBE's NOTIFY")
    assert (good.requirement, good.passed) == ("A14", True)
    assert c.check_subscribe_notify(b"", "x") == [] == c.check_subscribe_notify(b"<a", "x")


def test_subscriptions_of_one_presentity_start_at_the_same_version_a10():
    """version-shared: one counter per presentity, so a second subscription starts where the
    first stands (2, not 0): A10 (DEF), which nothing in the explorer judged before."""
    [bad] = checks.check_scoped_versions([("s1", 0), ("s2", 2)])
    assert (bad.requirement, bad.passed, bad.observed) == ("A10", False, "first versions differ")
    assert "s1 0, s2 2" in bad.message
    [good] = checks.check_scoped_versions([("s1", 1), ("s2", 1), ("s3", 1)])
    assert (good.requirement, good.passed) == ("A10", True)
    assert checks.check_scoped_versions([("s1", 5)]) == []
