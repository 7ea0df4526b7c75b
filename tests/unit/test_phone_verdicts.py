"""Conclusions from probe outcomes alone."""

from __future__ import annotations

from conformance.phone import probes
from conformance.phone.probes import DEFAULT_PLAN, Probe
from conformance.phone.session import Outcome, ProbeResult
from conformance.phone.verdicts import conclude, restrictions_found, settings

PLAN = (
    DEFAULT_PLAN[0],
    *(probes.count_probe(n) for n in (2, 5, 20)),
    probes.size_probe(4096),
    probes.size_probe(16384),
    *DEFAULT_PLAN[1:],
)
"""What a run against a phone without limits sends: the searches' ladders, then the rest."""


def results(**overrides: tuple[Outcome, int | None]) -> list[ProbeResult]:
    """Every default probe accepted, except those named (name=(outcome, status))."""
    out = []
    for probe in PLAN:
        outcome, status = overrides.get(probe.name.replace("-", "_"), ("accepted", 200))
        out.append(_result(probe, outcome, status))
    return out


def _result(probe: Probe, outcome: Outcome, status: int | None) -> ProbeResult:
    size = probe.size or 500 * max(1, probe.dialogs)
    return ProbeResult(
        probe,
        outcome,
        status=status,
        reason="X" if status else "",
        body_bytes=None if probe.form == "no-body" else size,
        message_bytes=size + 400,
    )


def keys(found: list) -> dict:  # type: ignore[type-arg]
    return {c.key: c for c in found}


def test_all_accepted_means_no_restrictions() -> None:
    found = keys(conclude(results()))
    assert found["no-restrictions"].level == "ok"
    assert found["max-dialogs"].text.startswith("accepts up to 20 dialogs (the most tried")
    assert found["body-size"].level == "ok"
    assert settings(list(found.values())) == []
    assert not restrictions_found(results())


def test_ok_only_for_what_was_tested() -> None:
    found = keys(conclude(results(partial=("skipped", None), utf8=("skipped", None))))
    assert found["no-restrictions"].level == "info"
    assert "2 were not run" in found["no-restrictions"].text
    assert set(found["not-run"].probes) == {"utf8", "partial"}


def test_rejecting_two_dialogs_needs_force_single_dialog() -> None:
    found = keys(
        conclude(
            results(
                dialogs_2=("rejected", 400),
                dialogs_5=("rejected", 400),
                dialogs_20=("rejected", 400),
            )
        )
    )
    assert found["max-dialogs"].text.startswith(
        "accepts up to 1 dialogs, fails at 2 (rejected with 400"
    )
    assert found["force_single_dialog"].level == "fail"
    assert "no-restrictions" not in found
    assert settings(list(found.values())) == ["force_single_dialog=1"]


def test_crash_then_skipped_still_concludes_from_what_ran() -> None:
    found = keys(
        conclude(
            results(
                dialogs_2=("crashed", None),
                dialogs_5=("skipped", None),
                dialogs_20=("skipped", None),
            )
        )
    )
    assert "fails at 2 (crashed" in found["max-dialogs"].text
    assert found["crashed"].probes == ("dialogs-2",)
    assert "report the crash to the phone's vendor" in found["crashed"].text
    assert set(found["not-run"].probes) == {"dialogs-5", "dialogs-20"}
    assert "no-restrictions" not in found


def test_crash_and_silent_drop_are_different_conclusions() -> None:
    crash = keys(conclude(results(dialogs_5=("crashed", None), dialogs_20=("skipped", None))))
    drop = keys(conclude(results(dialogs_5=("dropped", None), dialogs_20=("dropped", None))))
    assert "crashes the phone" in crash["force_single_dialog"].text
    assert crash["force_single_dialog"].level == "fail"
    assert "stays alive" in drop["force_single_dialog"].text
    assert drop["force_single_dialog"].level == "warn"
    assert "dropped" in drop and "dropped" not in crash
    assert "crashed" in crash and "crashed" not in drop


def test_a_gap_in_the_search_is_said() -> None:
    found = keys(conclude(results(dialogs_20=("rejected", 400))))
    assert found["max-dialogs"].text.endswith("(between 6 and 19 not tested)")


def test_a_later_count_limit_is_a_warning() -> None:
    found = keys(conclude(results(dialogs_20=("rejected", 413))))
    assert "accepts up to 5 dialogs, fails at 20" in found["max-dialogs"].text
    assert found["force_single_dialog"].level == "warn"


def test_untested_counts_are_not_accepted() -> None:
    found = keys(
        conclude(
            results(
                state_confirmed=("skipped", None),
                dialogs_2=("skipped", None),
                dialogs_5=("skipped", None),
                dialogs_20=("skipped", None),
            )
        )
    )
    assert found["max-dialogs"].text == "dialog count not tested"


def test_force_dummy_dialog() -> None:
    found = keys(conclude(results(no_body=("rejected", 400), empty=("rejected", 400))))
    assert found["force_dummy_dialog"].level == "fail"
    assert "force_dummy_dialog=1 (Kamailio)" in settings(list(found.values()))


def test_only_no_body_rejected_is_a_warning_not_a_requirement() -> None:
    found = keys(conclude(results(no_body=("rejected", 400))))
    assert "force_dummy_dialog" not in found
    assert found["no-body"].level == "warn"


def test_every_idle_form_rejected() -> None:
    found = keys(
        conclude(
            results(no_body=("rejected", 400), empty=("rejected", 400), dummy=("rejected", 400))
        )
    )
    assert found["idle-forms"].level == "fail"


def test_partial_state() -> None:
    found = keys(conclude(results(partial=("rejected", 481))))
    assert found["partial-state"].text.startswith("rejects partial state (rejected with 481")
    assert found["max-dialogs"].level == "ok"


def test_body_size_limit_over_udp_mentions_fragmentation() -> None:
    found = keys(conclude(results(size_16384=("crashed", None)), transport="udp"))
    size = found["body-size"]
    assert size.level == "fail"
    assert "accepts 4096 bytes, fails at 16384 bytes" in size.text
    assert "--transport tcp" in size.text
    tcp = keys(conclude(results(size_16384=("rejected", 513)), transport="tcp"))["body-size"]
    assert "--transport tcp" not in tcp.text


def test_states_versions_and_extensions() -> None:
    found = keys(
        conclude(
            results(
                state_trying=("rejected", 400),
                version_jump=("rejected", 400),
                version_repeat=("rejected", 400),
                sa=("rejected", 400),
                utf8=("crashed", None),
            )
        )
    )
    assert "trying" in found["states"].text
    assert found["version-jump"].level == "warn"
    assert found["version-repeat"].level == "info"
    assert found["sa"].level == "warn"
    assert found["utf8"].level == "fail"


def test_one_dialog_rejected_is_not_a_force_single_dialog_case() -> None:
    found = keys(conclude(results(state_confirmed=("rejected", 415))))
    assert "does not take dialog-info bodies at all" in found["max-dialogs"].text
    assert "force_single_dialog" not in found


def test_a_search_cut_short_is_not_ok() -> None:
    found = keys(
        conclude(
            results(
                dialogs_5=("skipped", None),
                dialogs_20=("skipped", None),
                size_16384=("skipped", None),
            )
        )
    )
    assert found["max-dialogs"].level == "info"
    assert found["max-dialogs"].text == (
        "accepts at least 2 dialogs; the search stopped before dialogs-5, dialogs-20 ran"
    )
    assert found["body-size"].level == "info"
    assert found["no-restrictions"].level == "info"
