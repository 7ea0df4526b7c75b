"""The RFC 4235 §4.3 watcher model: table reconstruction and version judgements."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.oracle import dialoginfo as di
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import Level
from conformance.oracle.view import WatcherView

ENTITY = "sip:alice@example.com"


def doc(version: int | str, state: str, *dialogs: tuple[str, str]) -> bytes:
    items = [di.dialog(i, s) for i, s in dialogs]
    return di.serialize(entity=ENTITY, version=version, state=state, items=items)


def table(view: WatcherView) -> dict[str, str | None]:
    return {k: d.state for k, d in view.dialogs.items()}


def by_id(findings: list[Finding], rid: str) -> list[Finding]:
    return [f for f in findings if f.requirement == rid]


def test_first_full_document_is_accepted_at_any_version() -> None:
    view = WatcherView()
    found = view.apply(doc(7, "full", ("a", "early"), ("b", "confirmed")))
    assert table(view) == {"a": "early", "b": "confirmed"}
    assert view.version == 7
    assert [(f.requirement, f.passed) for f in found] == [("A14", True)]


def test_first_partial_document_is_an_a14_should_finding_but_is_applied() -> None:
    view = WatcherView()
    (finding,) = view.apply(doc(0, "partial", ("a", "early")), label="initial NOTIFY")
    assert (finding.requirement, finding.passed, finding.effective_level) == (
        "A14",
        False,
        Level.SHOULD,
    )
    assert "initial NOTIFY" in finding.message
    assert table(view) == {"a": "early"}


def test_full_replaces_partial_merges_terminated_leaves() -> None:
    view = WatcherView()
    view.apply(doc(0, "full", ("a", "early"), ("b", "confirmed")))
    found = view.apply(doc(1, "partial", ("a", "confirmed"), ("c", "trying"), ("b", "terminated")))
    assert table(view) == {"a": "confirmed", "c": "trying"}
    assert [(f.requirement, f.passed) for f in found] == [("A08", True), ("A09", True)]
    view.apply(doc(2, "full", ("z", "early"), ("y", "terminated")))
    assert table(view) == {"z": "early"}
    assert view.version == 2


@pytest.mark.parametrize(("second", "verb"), [(3, "repeats"), (2, "goes down from")])
def test_stale_version_is_discarded_and_fails_a09(second: int, verb: str) -> None:
    view = WatcherView()
    view.apply(doc(3, "full", ("a", "early")))
    (finding,) = view.apply(doc(second, "full", ("b", "early")))
    assert (finding.requirement, finding.passed) == ("A09", False)
    assert f"version {second} {verb} 3" in finding.message
    assert finding.verdict() is Verdict.FAIL
    assert table(view) == {"a": "early"} and view.version == 3


def test_gap_warns_a08_but_a_full_document_is_still_applied() -> None:
    view = WatcherView()
    view.apply(doc(1, "full", ("a", "early")))
    found = view.apply(doc(4, "full", ("b", "early")))
    gap = by_id(found, "A08")[0]
    assert not gap.passed and "from 1 to 4 (2 missing)" in gap.message
    assert gap.verdict() is Verdict.WARN
    assert by_id(found, "A09")[0].passed
    assert table(view) == {"b": "early"} and not view.desynchronised


def test_partial_after_a_gap_desynchronises_until_the_next_full() -> None:
    view = WatcherView()
    view.apply(doc(1, "full", ("a", "early")))
    view.apply(doc(3, "partial", ("b", "early")))
    assert view.desynchronised
    assert table(view) == {"a": "early", "b": "early"}  # best effort merge
    view.apply(doc(4, "partial", ("c", "early")))
    assert view.desynchronised
    view.apply(doc(5, "full", ("c", "early")))
    assert not view.desynchronised and table(view) == {"c": "early"}


@pytest.mark.parametrize("empty", [None, b"", b"\r\n"])
def test_empty_body_is_no_information(empty: bytes | None) -> None:
    view = WatcherView()
    view.apply(doc(0, "full", ("a", "early")))
    # No verdict: the view cannot know whether an empty body was allowed (B27 needs the state).
    assert view.apply(empty) == []
    assert view.version == 0 and table(view) == {"a": "early"}
    # The next document continues the sequence from the last real version.
    assert by_id(view.apply(doc(1, "full")), "A08")[0].passed


def test_unparsable_body_fails_a02_and_leaves_the_view_alone() -> None:
    view = WatcherView()
    view.apply(doc(0, "full", ("a", "early")))
    (finding,) = view.apply(b"<dialog-info", label="NOTIFY #2")
    assert (finding.requirement, finding.passed) == ("A02", False)
    assert finding.message.startswith("NOTIFY #2: ")
    assert table(view) == {"a": "early"} and view.version == 0


def test_non_utf8_body_is_an_a04_finding() -> None:
    (finding,) = WatcherView().apply(b"<dialog-info \xff/>")
    assert (finding.requirement, finding.passed) == ("A04", False)


@pytest.mark.parametrize(("version", "rid"), [("x1", "A11"), ("00000000000", None), ("-1", "A11")])
def test_unusable_version_is_discarded(version: str, rid: str | None) -> None:
    view = WatcherView()
    found = view.apply(doc(version, "full", ("a", "early")))
    if rid is None:  # the leaked placeholder still reads as 0 here; A11 flags it elsewhere
        assert view.version == 0
    else:
        assert [(f.requirement, f.passed) for f in found] == [(rid, False)]
        assert view.version is None and view.dialogs == {}


def test_bad_state_attribute_is_discarded() -> None:
    view = WatcherView()
    (finding,) = view.apply(doc(0, "complete", ("a", "early")))
    assert (finding.requirement, finding.passed) == ("A13", False)
    assert view.dialogs == {}


def test_findings_accumulate_and_dialogs_is_a_copy() -> None:
    view = WatcherView()
    view.apply(doc(0, "full", ("a", "early")))
    view.apply(doc(1, "full", ("a", "early")))
    assert [f.requirement for f in view.findings] == ["A14", "A08", "A09"]
    view.dialogs.clear()
    assert table(view) == {"a": "early"}


# --------------------------------------------------------------------------- properties

DIALOGS = st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from(di.STATES)), max_size=5)
STEP = st.tuples(st.sampled_from(["full", "partial"]), DIALOGS)


def expected_full(dialogs: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, s in dialogs:
        if s == "terminated":
            out.pop(i, None)
        else:
            out[i] = s
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(STEP, max_size=5), DIALOGS)
def test_property_a_full_body_resets_the_view(
    history: list[tuple[str, list[tuple[str, str]]]], final: list[tuple[str, str]]
) -> None:
    view = WatcherView()
    for n, (state, dialogs) in enumerate(history):
        view.apply(doc(n, state, *dialogs))
    view.apply(doc(len(history), "full", *final))
    assert table(view) == expected_full(final)
    assert not view.desynchronised


@settings(max_examples=50, deadline=None)
@given(DIALOGS, DIALOGS)
def test_property_applying_the_same_partial_twice_is_idempotent(
    base: list[tuple[str, str]], change: list[tuple[str, str]]
) -> None:
    once = WatcherView()
    once.apply(doc(0, "full", *base))
    once.apply(doc(1, "partial", *change))
    twice = WatcherView()
    twice.apply(doc(0, "full", *base))
    twice.apply(doc(1, "partial", *change))
    twice.apply(doc(2, "partial", *change))  # a new version carrying the same content
    assert table(twice) == table(once)
    twice.apply(doc(2, "partial", *change))  # a retransmission: stale, discarded
    assert table(twice) == table(once)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), STEP), min_size=1, max_size=8))
def test_property_increasing_versions_are_always_accepted(
    steps: list[tuple[int, tuple[str, list[tuple[str, str]]]]],
) -> None:
    view = WatcherView()
    version = 0
    for step, (state, dialogs) in steps:
        version += step
        view.apply(doc(version, state, *dialogs))
        assert view.version == version
    assert all(f.passed for f in view.findings if f.requirement == "A09")
    gaps = sum(1 for step, _ in steps[1:] if step > 1)
    assert sum(1 for f in view.findings if f.requirement == "A08" and not f.passed) == gaps


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 20), DIALOGS, STEP, st.integers(0, 20))
def test_property_stale_versions_never_change_the_table(
    current: int, base: list[tuple[str, str]], stale: tuple[str, list[tuple[str, str]]], back: int
) -> None:
    view = WatcherView()
    view.apply(doc(current, "full", *base))
    before = (table(view), view.version, view.desynchronised)
    state, dialogs = stale
    found = view.apply(doc(max(current - back, 0), state, *dialogs))
    assert (table(view), view.version, view.desynchronised) == before
    assert [(f.requirement, f.passed) for f in found] == [("A09", False)]
