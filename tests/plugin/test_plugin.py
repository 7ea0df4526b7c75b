"""The pytest plugin's own behaviour: inert outside the suite, options checked, verdict rules.

The verdict rules are pure (``judge``) and tested directly; the hooks are tested through
``pytester`` with a stand-in case object, since what is under test is the plugin's plumbing,
not a server (the integration tests run the real suite against real servers)."""

from __future__ import annotations

import pytest

from conformance.oracle.findings import Finding
from conformance.oracle.verdicts import Deviation, judge
from conformance.targets.profile import Profile
from tests.plugin.standin import CASES, DEVIATIONS, standin_conftest

pytest_plugins = ["pytester"]

PROFILE = Profile(
    name="t",
    deviations={
        "test_x": (Deviation("C07", "ignores Content-Type", observed="200 to text/plain"),),
        "*": (Deviation("A07", "starts at 1", observed="first version 1"),),
    },
)


def test_violated_must_fails():
    j = judge([Finding("A19", False, "dup")], profile=Profile(), case_id="test_y", strict=False)
    assert j.failures and not j.known


def test_should_warns_unless_strict():
    f = [Finding("A03", False, "schema")]
    assert judge(f, profile=Profile(), case_id="c", strict=False).warnings
    assert not judge(f, profile=Profile(), case_id="c", strict=False).failures
    assert judge(f, profile=Profile(), case_id="c", strict=True).failures


def test_declared_deviation_is_known_and_wildcard_applies():
    f = [Finding("C07", False, "200 to text/plain"), Finding("A07", False, "first version 1")]
    j = judge(f, profile=PROFILE, case_id="test_x", strict=True)
    assert not j.failures
    assert [f.requirement for f, _ in j.known] == ["C07", "A07"]
    assert [str(v) for _, v, _ in j.findings] == ["known deviation", "known deviation"]
    assert j.outcome == "known deviation"


def test_declared_deviation_that_did_not_happen_fails():
    j = judge([Finding("C07", True, "415")], profile=PROFILE, case_id="test_x", strict=False)
    assert any("declared deviation did not happen" in line for line in j.failures)


def test_named_requirement_without_finding_fails():
    j = judge(
        [Finding("C07", True, "415")],
        profile=Profile(),
        case_id="c",
        strict=False,
        declared=("C07", "C08"),
    )
    assert j.failures == ["C08: the case names it but emitted no finding for it"]


def test_plugin_is_inert_outside_the_suite(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "dialog-info conformance" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()


def test_results_are_written_on_the_controller(pytester):
    pytester.makeconftest(standin_conftest())
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest("-n", "2", "--dialoginfo-report", "out")
    result.stdout.fnmatch_lines(["report: out/*standin*/report.html"])
    (run,) = (pytester.path / "out").iterdir()
    import json

    data = json.loads((run / "results.json").read_text())
    assert len(data["cases"]) == 4
    assert {c["case"] for c in data["cases"]} == {
        "test_fails",
        "test_warns",
        "test_known",
        "test_passes",
    }


def test_bad_option_values_are_usage_errors(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest("--dialoginfo-sip-timeout", "abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dialoginfo-sip-timeout takes seconds, not 'abc'*"])
    result = pytester.runpytest("--dialoginfo-rfc", "2543")
    assert result.ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]])
def test_verdicts_reach_the_summary(pytester, xdist):
    pytester.makeconftest(standin_conftest())
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest("-rA", *xdist)
    result.assert_outcomes(passed=2, failed=1, xfailed=1)
    out = result.stdout.str()
    assert "A19 VIOLATED" in out and "duplicate id 1" in out
    assert "dialog-info conformance" in out
    assert "WARN test_warns: A03 VIOLATED" in out
    assert "KNOWN test_known: C07 declared" in out
    result.stdout.fnmatch_lines(["A RFC 4235 body: 2/35 requirements covered*"])


def test_strict_turns_warnings_red(pytester):
    pytester.makeconftest(standin_conftest())
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest("--dialoginfo-strict")
    result.assert_outcomes(passed=1, failed=2, xfailed=1)


def test_wildcard_deviation_never_seen_fails_the_run(pytester):
    pytester.makeconftest(
        standin_conftest(
            DEVIATIONS[:-1] + ', "*": (Deviation("C01", "says 400", observed="400"),)}'
        )
    )
    pytester.makepyfile(test_cases=CASES)
    result = pytester.runpytest("-k", "passes or known")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*declared deviation for every case did not happen: C01*"])
