"""Verdicts that hide nothing (issue 10): observations, exact excuses, facts that predict, the
module rows binding where claimed, findings never lost, one verdict table everywhere.

Each test here fails on the kit before this change: findings had no ``observed``, a deviation
excused every failure with its id (``"*"`` even MUSTs), facts were plain declarations, a skip
or an error after observations dropped the findings, and the D rows only warned."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conformance.oracle import checks
from conformance.oracle.dialoginfo import CONTENT_TYPE, dialog, document
from conformance.oracle.findings import Finding
from conformance.oracle.verdicts import MODULE_ROWS, Deviation, Outcome, judge
from conformance.sip.message import Request, Response
from conformance.targets.profile import Profile, load_profile
from tests.plugin.standin import CASES, standin_conftest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def _judge(findings, profile=None, case="test_x", **kw):
    profile = profile if profile is not None else Profile()
    return judge(findings, profile=profile, case_id=case, strict=kw.pop("strict", False), **kw)


# -- 1. observations --------------------------------------------------------------------------

TIMING = re.compile(r"\d+(\.\d+)?\s?s\b")


def _notify(cseq: int, version: int, expires: int) -> checks.Captured:
    body = document("sip:alice@example.com", [dialog("d1", "confirmed")], version=version)
    headers = (
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{cseq}"),
        ("From", "<sip:alice@example.com>;tag=srv-tag-8f3a"),
        ("To", "<sip:w@example.com>;tag=wrong-tag-77"),
        ("Call-ID", "call-91be"),
        ("CSeq", f"{cseq} NOTIFY"),
        ("Event", "dialog"),
        ("Subscription-State", f"active;expires={expires}"),
        ("Contact", "<sip:alice@127.0.0.1:5060>"),
        ("Content-Type", CONTENT_TYPE + ";charset=latin1"),
    )
    req = Request(headers=headers, body=body, method="NOTIFY", uri="sip:w@127.0.0.1")
    return checks.Captured(req, timestamp=time.time())


def test_every_finding_the_checks_emit_has_a_stable_observation():
    """Two runs of the same behaviour with other tags, CSeqs and times: same observations."""

    def run(tag: str, cseq: int, expires: int) -> list[Finding]:
        sub = checks.Subscription(
            presentity="sip:alice@example.com",
            call_id=f"call-{tag}",
            subscriber_tag=f"sub-{tag}",
            notifier_tag=f"srv-{tag}",
            granted=600,
            granted_at=time.time() - 30,
            accept=("application/pidf+xml",),
        )
        captured = [_notify(cseq, 1, expires), _notify(cseq + 2, 3, expires)]
        response = Response(status=202, reason="Accepted", headers=(("Expires", "7200"),))
        out = checks.check_subscribe_response(response, requested=3600)
        for c in captured:
            out += checks.check_notify(c, sub)
        return out + checks.check_sequence(captured)

    first, second = run("a1", 5, 9999), run("b2", 40, 9000)
    assert [f.requirement for f in first] == [f.requirement for f in second]
    assert all(f.observed for f in first)
    assert [f.observed for f in first] == [f.observed for f in second]
    for f in first:
        assert not TIMING.search(f.observed), f
        assert "a1" not in f.observed and "NOTIFY CSeq" not in f.observed, f
    assert any(not f.passed for f in first)


def test_a_body_the_oracle_cannot_read_is_an_a02_finding_not_an_error():
    from conformance.oracle.aggregator import aggregate

    expected = aggregate([], presentity="sip:a@x", now=0.0)
    (f,) = checks.check_body(b"<dialog-info", expected, ["D08"])
    assert (f.requirement, f.passed) == ("A02", False)


# -- 1. a deviation excuses one observation ---------------------------------------------------


def _profile(**deviations: tuple[Deviation, ...]) -> Profile:
    return Profile(name="t", deviations=deviations)


def test_a_deviation_excuses_only_its_observation():
    profile = _profile(
        test_remove=(Deviation("C16", "stale removal NOTIFY", observed="view still lists r1"),)
    )
    findings = [
        Finding("C16", False, "removal NOTIFY", observed="view still lists r1"),
        Finding("C16", False, "refresh with the removed ETag answered 200"),
    ]
    j = _judge(findings, profile, case="test_remove")
    assert [str(v) for _, v, _ in j.findings] == ["known deviation", "fail"]
    assert j.outcome == Outcome.FAIL
    assert j.failures == ["C16 VIOLATED: refresh with the removed ETag answered 200"]


def test_a_pattern_matches_the_whole_observation():
    profile = _profile(test_x=(Deviation("A03", "schema", observed_re="not valid: .*"),))
    ok = _judge([Finding("A03", False, "m", observed="not valid: x")], profile, strict=True)
    assert ok.outcome == Outcome.KNOWN
    bad = _judge([Finding("A03", False, "m", observed="so not valid: x")], profile, strict=True)
    assert bad.outcome == Outcome.FAIL


def test_a_wildcard_follows_the_same_rules():
    profile = _profile(**{"*": (Deviation("A19", "dups", observed="id '1' repeats"),)})
    j = _judge([Finding("A19", False, "m", observed="id '2' repeats")], profile)
    assert j.outcome == Outcome.FAIL  # on main, "*" silenced any A19, even under --strict
    j = _judge([Finding("A19", False, "m", observed="id '1' repeats")], profile)
    assert j.outcome == Outcome.KNOWN


def test_a_declared_deviation_that_did_not_happen_fails():
    profile = _profile(test_x=(Deviation("C07", "200 to text/plain", observed="200"),))
    j = _judge([Finding("C07", False, "m", observed="415")], profile)
    assert any("declared deviation did not happen" in line for line in j.failures)
    assert any(line.startswith("C07 VIOLATED") for line in j.failures)


def test_an_old_format_profile_is_refused_by_run_before_any_case(tmp_path, capsys):
    from conformance.cli import main

    old = tmp_path / "old.toml"
    old.write_text('[deviations."test_x"]\nC07 = "ignores Content-Type"\n')
    assert main(["run", "--profile", str(old), "--target", "sip:127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "old format" in err and "observed" in err


# -- profile facts predict ------------------------------------------------------------------


def test_first_version_fact_predicts_and_reports_a07_as_known():
    kamailio_like = Profile(first_version=1)
    j = _judge([Finding("A07", False, "m", observed="first version 1")], kamailio_like)
    ((_, verdict, excuse),) = j.findings
    assert str(verdict) == "known deviation" and excuse.fact == "first_version"
    assert j.outcome == Outcome.WARN  # DEF: a pass with a mark
    # A server that starts at 1000 is not what the fact predicts: it fails, even though A07
    # (DEF) alone would only warn; without the fact it warns.
    thousand = [Finding("A07", False, "m", observed="first version 1000")]
    j = _judge(thousand, kamailio_like)
    assert str(j.findings[0][1]) == "fail" and j.outcome == Outcome.FAIL
    assert "first_version predicts 'first version 1'" in j.failures[0]
    assert _judge(thousand, Profile()).outcome == Outcome.WARN


PROFILE_TEXT = {"name", "description", "source"}
READERS = ("oracle", "case.py", "suite", "pytest_plugin")
TIMING_FIELDS = {"settle_time", "expiry_timer", "expiry_slack", "timestamp_resolution"}


def _source(*parts: str) -> str:
    base = ROOT / "conformance"
    files = [
        p
        for part in parts
        for p in ([base / part] if part.endswith(".py") else (base / part).rglob("*.py"))
    ]
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def test_every_profile_field_is_read_by_the_oracle_the_suite_or_a_wait():
    import dataclasses

    readers = _source(*READERS)
    profile_module = (ROOT / "conformance/targets/profile.py").read_text(encoding="utf-8")
    facts = profile_module.split("def fact_deviations", 1)[1].split("\ndef ", 1)[0]
    unread = []
    for field in dataclasses.fields(Profile):
        name = field.name
        if name in PROFILE_TEXT or name == "deviations":
            continue
        pattern = re.compile(rf"\.{name}\b")
        where = _source("case.py") if name in TIMING_FIELDS else readers
        if not pattern.search(where) and not pattern.search(facts):
            unread.append(name)
    assert not unread, f"profile fields nobody reads: {unread}"
    assert "tie_break" not in {f.name for f in dataclasses.fields(Profile)}


# -- 4. the module rows where the server claims the module ------------------------------------


@pytest.mark.parametrize("rid", sorted(MODULE_ROWS))
def test_module_rows_fail_like_musts_where_claimed(rid):
    finding = [Finding(rid, False, "wrong winner")]
    assert _judge(finding, Profile(claims_presence_dialoginfo=True)).outcome == Outcome.FAIL
    assert _judge(finding, Profile()).outcome != Outcome.FAIL


def test_shipped_profiles_claim_the_module_except_generic():
    claims = {n: load_profile(n).claims_presence_dialoginfo for n in ("kamailio", "opensips")}
    assert claims == {"kamailio": True, "opensips": True}
    assert load_profile("reference").claims_presence_dialoginfo
    assert not load_profile("generic").claims_presence_dialoginfo


# -- OpenSIPS: observed elsewhere, judged here on synthetic findings --------------------------

OPENSIPS_SEEN = {
    "test_publish_wrong_content_type_is_rejected[text/plain]": [
        ("C07", "PUBLISH with Content-Type text/plain answered 200"),
    ],
    "test_publish_malformed_body_keeps_aggregate": [
        ("C10", "PUBLISH with a body that is not well-formed answered 200"),
    ],
    "test_two_if_match_headers_is_400": [("C12", "PUBLISH with two SIP-If-Match answered 200")],
    "test_accept_without_dialog_info_is_406": [
        ("B14", "Content-Type 'application/dialog-info+xml', Accept application/pidf+xml"),
    ],
    "test_notify_rejected_removes_subscription[489]": [
        ("B25", "NOTIFYs after a NOTIFY was answered 489: 1 NOTIFY(s) within <t>"),
    ],
    "test_duplicate_ids_across_publications": [("A19", "id '1' repeats the dialog on line 6")],
}


def test_opensips_profile_is_labelled_and_excuses_exactly_what_was_seen():
    text = (ROOT / "conformance/targets/profiles/opensips.toml").read_text(encoding="utf-8")
    assert "observed elsewhere, not verified in CI" in text
    profile = load_profile("opensips")
    for variant, seen in OPENSIPS_SEEN.items():
        case = variant.split("[", 1)[0]
        declared = profile.deviations_for(case, variant)
        for rid, observed in seen:
            hit = [d for d in declared if d.matches(Finding(rid, False, "m", observed=observed))]
            assert hit, (variant, rid)
            other = Finding(rid, False, "m", observed=observed + " and more")
            assert not any(d.matches(other) for d in declared), (variant, rid)


# -- 2. findings are never lost; 3. one verdict table ------------------------------------------

LOST = """
import pytest
from conformance.errors import BodyError, HarnessError
from conformance.oracle.findings import Finding

@pytest.mark.dialoginfo_requirement("B03", "B08")
def test_skip_after_failure(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("B03", False, "granted 7200 for 3600"))
    pytest.skip("the watcher saw no terminated NOTIFY")

@pytest.mark.dialoginfo_requirement("C03", "C04")
def test_skip_after_pass(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("C03", True, "200 with SIP-ETag"))
    pytest.skip("cannot go on")

@pytest.mark.dialoginfo_requirement("C01")
def test_error_after_failure(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("C01", False, "answered 400"))
    raise HarnessError("the watcher died")

@pytest.mark.dialoginfo_requirement("D08")
def test_body_error(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("B01", True, "200"))
    raise BodyError("not well-formed XML: junk after document element")
"""


def _results(path: Path) -> dict:
    (results,) = path.glob("*/results.json")
    return json.loads(results.read_text())


def test_findings_are_never_lost(pytester):
    pytester.makeconftest(standin_conftest())
    pytester.makepyfile(test_lost=LOST)
    result = pytester.runpytest("-p", "no:cacheprovider", "--dialoginfo-report", "out")
    result.assert_outcomes(failed=3, skipped=1)
    out = result.stdout.str()
    assert "B03 VIOLATED: granted 7200 for 3600" in out
    assert "A02 VIOLATED" in out and "junk after document element" in out
    assert "C01 VIOLATED: answered 400" in out and "the watcher died" in out
    assert "conformance/pytest_plugin" not in out  # the findings, not the plugin's traceback
    cases = {c["case"]: c for c in _results(pytester.path / "out")["cases"]}
    assert cases["test_skip_after_failure"]["verdict"] == "fail"
    skipped = [f for f in cases["test_skip_after_failure"]["findings"] if f["skipped"]]
    assert [(f["requirement"], f["verdict"]) for f in skipped] == [("B08", "skipped")]
    assert cases["test_skip_after_pass"]["verdict"] == "skipped"
    data = _results(pytester.path / "out")
    c04 = next(r for r in data["requirements"] if r["id"] == "C04")
    assert c04["verdict"] == "not covered"  # a skipped finding never counts as a pass
    result.stdout.fnmatch_lines(["C RFC 3903 PUBLISH: 2/21 requirements covered*"])  # C01, C03


TABLE = {
    "test_fails": "fail",
    "test_warns": "warn",
    "test_known": "known deviation",
    "test_passes": "pass",
}


@pytest.mark.parametrize("strict", [False, True])
def test_one_verdict_table_everywhere(pytester, strict):
    pytester.makeconftest(standin_conftest())
    pytester.makepyfile(test_cases=CASES)
    args = ["-p", "no:cacheprovider", "--dialoginfo-report", "out", "--junitxml", "j.xml", "-rA"]
    result = pytester.runpytest(*args, *(["--dialoginfo-strict"] if strict else []))
    expected = dict(TABLE, test_warns="fail") if strict else TABLE
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    pytest_outcome = {
        "fail": "failed",
        "known deviation": "xfailed",
        "warn": "passed",
        "pass": "passed",
    }
    counts: dict[str, int] = {}
    for verdict in expected.values():
        counts[pytest_outcome[verdict]] = counts.get(pytest_outcome[verdict], 0) + 1
    result.assert_outcomes(**counts)
    data = _results(pytester.path / "out")
    assert data["format_version"] == 2
    assert {c["case"]: c["verdict"] for c in data["cases"]} == expected
    junit = ElementTree.parse(pytester.path / "j.xml")
    in_junit = {
        tc.get("name"): prop.get("value")
        for tc in junit.iter("testcase")
        for prop in tc.iter("property")
        if prop.get("name") == "verdict"
    }
    assert in_junit == expected
    html = next((pytester.path / "out").glob("*/report.html")).read_text()
    for case, verdict in expected.items():
        assert re.search(rf"{case}.{{0,400}}{verdict}|{verdict}.{{0,400}}{case}", html, re.S)
    out = result.stdout.str()
    if not strict:
        assert "WARN test_warns: A03 VIOLATED" in out
    assert "KNOWN test_known: C07" in out


def test_results_format_and_new_fields_are_documented():
    text = (ROOT / "reports/README.md").read_text(encoding="utf-8")
    assert "`format_version` is `2`" in text
    for key in ("observed", "skipped", "excused_by", "judged"):
        assert f"`{key}`" in text, key
    verdicts = (ROOT / "docs/VERDICTS.md").read_text(encoding="utf-8")
    for row in ("any fail-level finding not excused", "fail-level findings, all excused"):
        assert row in verdicts
    assert "observed_re" in verdicts and "re.fullmatch" in verdicts
