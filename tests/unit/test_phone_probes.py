"""The probe plan: every body is what its probe says, and only that."""

from __future__ import annotations

import pytest

from conformance.errors import UsageError
from conformance.oracle import aggregator
from conformance.oracle import dialoginfo as di
from conformance.phone import probes
from conformance.phone.probes import DEFAULT_PLAN, body_for

ENTITY = "sip:bob@example.com"


SEARCH_PROBES = (
    *(probes.count_probe(n) for n in (2, 5, 20)),
    *(probes.size_probe(n) for n in probes.SIZE_LADDER),
)
ALL = (*DEFAULT_PLAN, *SEARCH_PROBES)


def test_plan_names_are_unique_and_cover_the_issue() -> None:
    names = [p.name for p in DEFAULT_PLAN]
    assert len(names) == len(set(names))
    for needed in (
        *(f"state-{s}" for s in di.STATES),
        "empty",
        "no-body",
        "dummy",
        "partial",
        "version-jump",
        "version-repeat",
        "extension",
        "sa",
        "utf8",
    ):
        assert needed in names
    assert names[0] == "state-confirmed"  # the plain body the searches extend


def test_no_fixed_probe_varies_count_or_size() -> None:
    # Those come from the searches (planner), before the fixed probes.
    assert {p.group for p in DEFAULT_PLAN}.isdisjoint({"count", "size"})


@pytest.mark.parametrize("probe", ALL, ids=lambda p: p.name)
def test_every_body_parses_with_the_announced_shape(probe: probes.Probe) -> None:
    body = body_for(probe, ENTITY, 7)
    if probe.form == "no-body":
        assert body is None
        return
    assert body is not None
    info = di.parse(body)
    assert info.root_tag == di.ROOT_TAG
    assert info.entity == ENTITY
    assert info.version == "7"
    assert info.state == probe.doc_state
    assert len(info.dialogs) == probe.dialogs
    ids = [d.id for d in info.dialogs]
    assert len(ids) == len(set(ids))


def test_state_probes_carry_their_state() -> None:
    for probe in DEFAULT_PLAN:
        if probe.group == "state":
            info = di.parse(body_for(probe, ENTITY, 0) or b"")
            assert [d.state for d in info.dialogs] == [probe.state]


def test_count_probes_vary_only_the_count() -> None:
    for n in (2, 7, 20):
        info = di.parse(body_for(probes.count_probe(n), ENTITY, 0) or b"")
        assert [d.state for d in info.dialogs] == ["confirmed"] * n


def test_size_probes_reach_their_size_with_one_dialog() -> None:
    for size in (1000, 4096, 9999, 16384):
        probe = probes.size_probe(size)
        body = body_for(probe, ENTITY, 0) or b""
        assert size - 100 <= len(body) <= size + 100
        assert len(di.parse(body).dialogs) == 1


def test_special_bodies() -> None:
    by = {p.name: p for p in DEFAULT_PLAN}
    dummy = di.parse(body_for(by["dummy"], ENTITY, 0) or b"")
    assert dummy.dialogs[0].id == aggregator.DUMMY_DIALOG_ID
    assert dummy.dialogs[0].state == "terminated"
    sa = di.parse(body_for(by["sa"], ENTITY, 0) or b"")
    assert any(t.startswith(f"{{{di.SA_NS}}}") for t in sa.dialogs[0].extensions)
    ext = di.parse(body_for(by["extension"], ENTITY, 0) or b"")
    assert any(isinstance(i, di.Element) for i in ext.items)  # a root-level extension too
    assert ext.dialogs[0].extensions
    utf8 = di.parse(body_for(by["utf8"], ENTITY, 0) or b"")
    display = utf8.dialogs[0].remote.display if utf8.dialogs[0].remote else ""
    assert display and not display.isascii()
    assert di.parse(body_for(by["empty"], ENTITY, 0) or b"").items == ()


def test_baseline_is_one_terminated_dialog() -> None:
    info = di.parse(probes.baseline(ENTITY, 3))
    assert [d.state for d in info.dialogs] == ["terminated"]
    assert info.version == "3"


def test_unknown_plan_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown probe plan 'nope'"):
        probes.plan("nope")
    assert probes.plan("quick")
