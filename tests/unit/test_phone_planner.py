"""The planner: the first probe, then the count and size searches, then the fixed probes."""

from __future__ import annotations

from conformance.phone import probes
from conformance.phone.planner import Planner
from conformance.phone.probes import DEFAULT_PLAN


def walk(planner: Planner, ok: int, outcome: str = "rejected") -> list[str]:
    """Every probe handed out when the phone takes up to ``ok`` dialogs (sizes all fine)."""
    names = []
    while (probe := planner.next()) is not None:
        names.append(probe.name)
        good = probe.group != "count" or probe.dialogs <= ok
        planner.record(probe, "accepted" if good else outcome)
    return names


def test_order_first_searches_then_fixed() -> None:
    names = walk(Planner(DEFAULT_PLAN), ok=100)
    assert names[:6] == [
        "state-confirmed",
        "dialogs-2",
        "dialogs-5",
        "dialogs-20",
        "size-4096",
        "size-16384",
    ]
    assert names[6:] == [p.name for p in DEFAULT_PLAN[1:]]


def test_bisection_between_last_accepted_and_first_failed() -> None:
    names = walk(Planner(DEFAULT_PLAN, max_body=0), ok=11)
    counts = [n for n in names if n.startswith("dialogs-")]
    assert counts == ["dialogs-2", "dialogs-5", "dialogs-20", "dialogs-12", "dialogs-8",
                      "dialogs-10", "dialogs-11"]  # fmt: skip


def test_max_dialogs_caps_the_ladder_and_is_tried() -> None:
    names = walk(Planner(DEFAULT_PLAN, max_dialogs=9, max_body=0), ok=100)
    assert [n for n in names if n.startswith("dialogs-")] == ["dialogs-2", "dialogs-5", "dialogs-9"]
    assert not [n for n in walk(Planner(DEFAULT_PLAN, max_dialogs=1), ok=100) if "dialogs-" in n]


def test_no_size_search_with_max_body_0() -> None:
    assert not [n for n in walk(Planner(DEFAULT_PLAN, max_body=0), ok=3) if n.startswith("size-")]


def test_a_crash_is_retried_only_on_request() -> None:
    plain = walk(Planner(DEFAULT_PLAN, max_body=0), ok=3, outcome="crashed")
    assert plain.count("dialogs-5") == 1
    retried = walk(Planner(DEFAULT_PLAN, max_body=0, retry_crashes=True), ok=3, outcome="crashed")
    assert retried.count("dialogs-5") == 2 and retried.count("dialogs-4") == 2


def test_remaining_names_the_unfinished_search_and_the_fixed_probes() -> None:
    planner = Planner(DEFAULT_PLAN)
    first = planner.next()
    assert first == probes.FIRST
    planner.record(first, "accepted")
    two = planner.next()
    assert two is not None and two.name == "dialogs-2"
    planner.record(two, "crashed")
    left = [p.name for p in planner.drain()]
    assert left[0] == "size-4096"  # the count search is over: 1 accepted, 2 failed
    assert left[-1] == DEFAULT_PLAN[-1].name
    assert planner.next() is None


def test_asking_what_remains_changes_nothing() -> None:
    planner = Planner(DEFAULT_PLAN)
    first = planner.next()
    assert first is not None
    planner.record(first, "accepted")
    for _ in range(3):
        planner.remaining()
    names = []
    while (probe := planner.next()) is not None:
        names.append(probe.name)
        planner.record(probe, "accepted")
        planner.remaining()
    assert names[:5] == ["dialogs-2", "dialogs-5", "dialogs-20", "size-4096", "size-16384"]


def test_size_search_never_bisects_below_the_first_body() -> None:
    planner = Planner(DEFAULT_PLAN, max_dialogs=1)
    first = planner.next()
    assert first is not None
    planner.record(first, "accepted", body_bytes=490)
    sizes = []
    while (probe := planner.next()) is not None and probe.group == "size":
        sizes.append(probe.size)
        planner.record(probe, "rejected")
    assert sizes and min(sizes) > 490
    assert sizes[-1] - 490 <= 2 * probes.SIZE_PRECISION
