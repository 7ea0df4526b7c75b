"""``report --compare OLD.json NEW.json`` on two crafted results documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.oracle.requirements import CATALOGUE
from conformance.report.compare import compare, render
from conformance.report.results import build_results

MUST = next(r.id for r in CATALOGUE.values() if r.level.binding)
SHOULD = next(r.id for r in CATALOGUE.values() if not r.level.binding)
OTHER_MUST = next(r.id for r in CATALOGUE.values() if r.level.binding and r.id != MUST)


def finding(rid: str, verdict: str, reason: str | None = None) -> dict[str, Any]:
    return {
        "requirement": rid,
        "passed": verdict == "pass",
        "message": f"{rid} {verdict}",
        "verdict": verdict,
        "reason": reason,
    }


def case(name: str, outcome: str, *findings: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeid": f"conformance/suite/test_x.py::{name}",
        "case": name,
        "outcome": outcome,
        "findings": list(findings),
    }


def results(label: str, *cases: dict[str, Any]) -> dict[str, Any]:
    info = {"target": {"kind": "external", "label": label}, "mode": "aggregate"}
    return build_results(info, list(cases))


OLD = results(
    "v1",
    case("test_stays_green", "passed", finding(MUST, "pass")),
    case("test_breaks", "passed", finding(OTHER_MUST, "pass")),
    case("test_gets_fixed", "failed", finding(SHOULD, "fail")),
    case("test_deviation_breaks", "xfailed", finding(SHOULD, "known deviation", "old bug")),
    case("test_deviation_reason", "xfailed", finding(MUST, "known deviation", "reason A")),
    case("test_warned", "passed", finding(SHOULD, "warn")),
)


def test_a_clean_comparison_has_no_regression() -> None:
    result = compare(OLD, OLD)
    assert (result.new_failures, result.fixed, result.changed_deviations) == ([], [], [])
    assert result.regressions == []
    assert render(result).endswith("no regression")


def test_lists_and_regressions() -> None:
    new = results(
        "v2",
        case("test_stays_green", "passed", finding(MUST, "pass")),
        case("test_breaks", "failed", finding(OTHER_MUST, "fail")),
        case("test_gets_fixed", "passed", finding(SHOULD, "pass")),
        case("test_deviation_breaks", "failed", finding(SHOULD, "fail")),
        case("test_deviation_reason", "xfailed", finding(MUST, "known deviation", "reason B")),
        case("test_warned", "failed", finding(SHOULD, "fail")),
    )
    result = compare(OLD, new)
    failing = {c.nodeid.rsplit("::", 1)[1]: c.old for c in result.new_failures}
    assert failing == {
        "test_breaks": "pass",
        "test_deviation_breaks": "known deviation",
        "test_warned": "warn",
    }
    assert [c.nodeid.rsplit("::", 1)[1] for c in result.fixed] == ["test_gets_fixed"]
    changed = {c.nodeid.rsplit("::", 1)[1]: c.detail for c in result.changed_deviations}
    assert changed["test_deviation_reason"] == f"~{MUST} (reason A -> reason B)"
    assert changed["test_deviation_breaks"] == f"-{SHOULD}"
    assert result.binding_failures == [OTHER_MUST]
    # warn -> fail is listed but is not a regression by itself
    assert len(result.regressions) == 3
    assert not any("test_warned" in line for line in result.regressions)


def test_a_binding_id_failing_in_a_new_case_is_a_regression() -> None:
    new = results(
        "v2",
        *[case(c["case"], c["outcome"], *c["findings"]) for c in OLD["cases"]],
        case("test_brand_new", "failed", finding(MUST, "fail")),
    )
    result = compare(OLD, new)
    assert [c.old for c in result.new_failures] == [None]
    assert result.binding_failures == [MUST]
    assert result.regressions


def test_a_new_failing_case_on_a_should_is_listed_only() -> None:
    new = results(
        "v2",
        *[case(c["case"], c["outcome"], *c["findings"]) for c in OLD["cases"]],
        case("test_brand_new", "failed", finding(SHOULD, "fail")),
    )
    result = compare(OLD, new)
    assert len(result.new_failures) == 1 and result.regressions == []


def _write(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _write(tmp_path / "old.json", OLD)
    broken = results("v2", case("test_breaks", "failed", finding(OTHER_MUST, "fail")))
    new = _write(tmp_path / "new.json", broken)
    assert main(["report", "--compare", old, old]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["report", "--compare", old, new]) == 1
    out = capsys.readouterr().out
    assert "compare v1 -> v2" in out and "test_breaks: pass -> fail" in out
    assert "REGRESSION" in out
    assert main(["report", "--compare", old]) == 2
    assert "takes two files" in capsys.readouterr().err
    assert main(["report", "--compare", old, str(tmp_path / "missing.json")]) == 2
