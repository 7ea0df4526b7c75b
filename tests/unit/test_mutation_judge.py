"""The mutation contract: one run's recorded findings judged as a default and a strict run."""

from __future__ import annotations

from conformance.commands.mutation import Kill, MutationResult, judge_case


def _case(*findings: tuple[str, bool, str], outcome: str = "passed") -> dict:
    return {
        "case": "test_x",
        "outcome": outcome,
        "findings": [
            {"requirement": r, "passed": ok, "message": f"{r} seen", "verdict": v}
            for r, ok, v in findings
        ],
    }


def test_a_warn_fails_only_the_strict_judgement() -> None:
    kills = judge_case(_case(("A30", False, "warn"), ("B20", True, "pass")))
    assert kills == [Kill("test_x", "A30", "A30 seen", strict_only=True)]


def test_a_binding_failure_fails_both_judgements_once() -> None:
    kills = judge_case(_case(("B20", False, "fail"), outcome="failed"))
    assert kills == [Kill("test_x", "B20", "B20 seen")]


def test_a_recorded_level_override_is_kept() -> None:
    # B21 findings may be judged at DEF (the reason); the recorded warn says so.
    kills = judge_case(_case(("B21", False, "warn")))
    assert [k.strict_only for k in kills] == [True]


def test_a_case_failed_without_a_failing_finding_is_an_error_kill() -> None:
    case = _case(("A30", False, "warn"), outcome="failed")
    case["longrepr"] = "Timeout\nno NOTIFY within 2 s"
    assert judge_case(case)[-1] == Kill("test_x", "", "no NOTIFY within 2 s")


def _result(broken: tuple[str, ...], *kills: Kill) -> MutationResult:
    return MutationResult("f", broken, "aggregate", 1, kills)


def test_binding_fault_needs_the_default_judgement() -> None:
    strict_only = Kill("c", "B20", "m", strict_only=True)
    assert not _result(("B20",), strict_only).own
    assert _result(("B20",), Kill("c", "B20", "m")).own


def test_should_fault_needs_its_warn_and_the_strict_failure() -> None:
    assert _result(("A30",), Kill("c", "A30", "m", strict_only=True)).own
    assert not _result(("A30",), Kill("c", "B20", "m")).own
