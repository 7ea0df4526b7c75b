"""results.json: the documented format, the verdict rules, the run directory."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import UsageError
from conformance.oracle.requirements import CATALOGUE
from conformance.report import results as R
from conformance.report.run_dir import write_run
from tests.support import report_sample as sample

README = Path(__file__).resolve().parents[2] / "reports" / "README.md"


def _built() -> dict[str, Any]:
    run_info, cases = sample.sample_run()
    return R.build_results(run_info, cases)


def _by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in doc["requirements"]}


# -- the format as documented ---------------------------------------------------------------


def _documented_example() -> dict[str, Any]:
    """The JSON example of reports/README.md (the block after "## Example")."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"## Example.*?```json\n(.*?)\n```", text, re.S)
    assert m, "reports/README.md lost its JSON example"
    return json.loads(m.group(1))


def _documented_keys() -> dict[str, set[str]]:
    """Key tables of the README: '### <object>' headings followed by '| `key` |' rows."""
    text = README.read_text(encoding="utf-8")
    tables: dict[str, set[str]] = {}
    for section in re.split(r"\n### ", text)[1:]:
        name = section.split("\n", 1)[0].strip().strip("`")
        keys = set(re.findall(r"^\| `([a-z_]+)`", section, re.M))
        if keys:
            tables[name] = keys
    return tables


SHAPES: dict[str, tuple[str, ...]] = {
    "top level": ("",),
    "target": ("target",),
    "requirements[]": ("requirements", "*"),
    "cases[]": ("cases", "*"),
    "cases[].findings[]": ("cases", "*", "findings", "*"),
    "cases[].messages[]": ("cases", "*", "messages", "*"),
    "cases[].notifies[]": ("cases", "*", "notifies", "*"),
    "coverage.<group>": ("coverage", "+"),
}


def _objects(doc: Any, path: tuple[str, ...]) -> list[dict[str, Any]]:
    if path == ("",):
        return [doc]
    nodes = [doc]
    for step in path:
        nxt: list[Any] = []
        for n in nodes:
            if step == "*":
                nxt.extend(n)
            elif step == "+":
                nxt.extend(n.values())
            else:
                nxt.append(n[step])
        nodes = nxt
    return nodes


def test_readme_documents_every_key_the_builder_writes() -> None:
    doc = _built()
    tables = _documented_keys()
    assert set(SHAPES) <= set(tables), f"README lacks key tables: {set(SHAPES) - set(tables)}"
    for name, path in SHAPES.items():
        objects = _objects(doc, path)
        assert objects, name
        written = set().union(*(o.keys() for o in objects))
        assert written - tables[name] == set(), f"{name}: undocumented keys"
        required = {k for k in tables[name] if k not in _optional(name)}
        for o in objects:
            assert required <= set(o), f"{name}: missing {required - set(o)}"


def _optional(name: str) -> set[str]:
    """Keys the README marks optional ('(optional)' in their row)."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"### {name}", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|[^\n]*\(optional\)", section, re.M))


def test_readme_example_has_the_builders_shape() -> None:
    example, doc = _documented_example(), _built()
    assert example["format_version"] == R.FORMAT_VERSION
    assert set(example) == set(doc)
    assert set(example["summary"]) == set(doc["summary"])
    assert set(example["summary"]["requirements"]) == set(doc["summary"]["requirements"])
    assert set(example["summary"]["cases"]) == set(doc["summary"]["cases"])
    assert set(example["requirements"][0]) == set(doc["requirements"][0])
    assert set(example["cases"][0]) <= set(doc["cases"][0])


def test_json_round_trip_and_types() -> None:
    doc = _built()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["format_version"] == 2
    assert doc["label"] == "kamailio-single"
    assert doc["mode"] == "single"
    assert doc["target"]["name"] == "kamailio"
    assert doc["target"]["user_agent"].startswith("kamailio (5.6.3")
    for r in doc["requirements"]:
        assert r["verdict"] in R.REQUIREMENT_VERDICTS
    for c in doc["cases"]:
        assert c["verdict"] in R.CASE_VERDICTS
        assert c["outcome"] in R.OUTCOMES


# -- verdicts -------------------------------------------------------------------------------


def test_every_catalogue_id_once_in_catalogue_order() -> None:
    doc = _built()
    assert [r["id"] for r in doc["requirements"]] == list(CATALOGUE)
    assert doc["summary"]["requirements"]["total"] == len(CATALOGUE)
    counted = sum(doc["summary"]["requirements"][v] for v in R.REQUIREMENT_VERDICTS)
    assert counted == len(CATALOGUE)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["pass", "warn"], "warn"),
        (["pass", "known deviation", "warn"], "known deviation"),
        (["known deviation", "fail", "pass"], "fail"),
        (["pass", "info"], "info"),
        (["info", "warn"], "warn"),
        (["pass"], "pass"),
    ],
)
def test_requirement_verdict_is_the_worst_finding(verdicts: list[str], expected: str) -> None:
    cases = [
        sample.case(f"test_{i}", ["C07"], "passed", [sample.finding("C07", v, "m")], param=str(i))
        for i, v in enumerate(verdicts)
    ]
    doc = R.build_results(sample.run_info(), cases)
    c07 = _by_id(doc)["C07"]
    assert c07["verdict"] == expected
    assert len(c07["cases"]) == len(verdicts)
    assert sum(c07["findings"].values()) == len(verdicts)


def test_not_covered_when_no_finding_even_if_declared() -> None:
    skipped = sample.case("test_skip", ["D02"], "skipped", [])
    doc = R.build_results(sample.run_info(), [skipped])
    d02 = _by_id(doc)["D02"]
    assert d02["verdict"] == R.NOT_COVERED
    assert d02["cases"] == []
    assert d02["declared_by"] == [skipped["nodeid"]]
    assert doc["summary"]["cases"]["skipped"] == 1


def test_sample_run_verdicts() -> None:
    doc = _built()
    by = _by_id(doc)
    assert by["D01"]["verdict"] == "fail"
    assert by["A07"]["verdict"] == "fail"  # failed once, known deviation elsewhere: fail wins
    assert by["A08"]["verdict"] == "warn"
    assert by["C01"]["verdict"] == "pass"
    verdicts = {c["case"]: c["verdict"] for c in doc["cases"]}
    assert verdicts == {
        "test_publish_notifies_watcher": "pass",
        "test_two_publications_aggregate": "fail",
        "test_first_version_zero": "known deviation",
        "test_version_increments": "warn",
        "test_multiple_dialogs": "skipped",
        "test_hostile_server": "fail",
    }
    assert doc["summary"]["outcomes"] == {"passed": 2, "failed": 2, "skipped": 1, "xfailed": 1}


def test_failed_case_without_failing_finding_is_fail() -> None:
    """A harness error or a stale declared deviation fails the case, findings or not."""
    c = sample.case("test_x", ["C01"], "failed", [sample.finding("C01", "pass", "ok")])
    doc = R.build_results(sample.run_info(), [c])
    assert doc["cases"][0]["verdict"] == "fail"
    assert _by_id(doc)["C01"]["verdict"] == "pass"


def test_unjudged_finding_gets_its_catalogue_verdict() -> None:
    """The case died before judging: verdict null; a MUST violation still reads fail, a
    SHOULD one warn."""
    must = {"requirement": "A02", "passed": False, "message": "broken", "verdict": None}
    should = {"requirement": "A03", "passed": False, "message": "invalid", "verdict": None}
    c = {"nodeid": "s.py::test_y", "outcome": "failed", "findings": [must, should]}
    doc = R.build_results(sample.run_info(), [c])
    assert _by_id(doc)["A02"]["verdict"] == "fail"
    assert _by_id(doc)["A03"]["verdict"] == "warn"
    assert doc["cases"][0]["case"] == "test_y"


def test_coverage_per_group() -> None:
    doc = _built()
    cov = doc["coverage"]
    assert set(cov) == {"A", "B", "C", "D", "E"}
    assert sum(g["total"] for g in cov.values()) == len(CATALOGUE)
    covered = {r["id"] for r in doc["requirements"] if r["verdict"] != R.NOT_COVERED}
    assert sum(g["covered"] for g in cov.values()) == len(covered)
    assert cov["A"]["covered"] == len({"A07", "A08"})


def test_input_not_mutated_and_must_be_json() -> None:
    run_info, cases = sample.sample_run()
    before = json.dumps(cases, sort_keys=True)
    R.build_results(run_info, cases)
    assert json.dumps(cases, sort_keys=True) == before
    with pytest.raises(TypeError):
        R.build_results(run_info, [{"nodeid": "x", "outcome": "passed", "bad": object()}])


@pytest.mark.parametrize(
    ("target", "mode", "label"),
    [
        ({"kind": "reference", "single_dialog": False}, "aggregate", "reference"),
        ({"kind": "kamailio", "single_dialog": True}, "single", "kamailio-single"),
        ({"kind": "external", "name": "my server/1"}, "aggregate", "my-server-1"),
        ({}, None, "target"),
    ],
)
def test_labels(target: dict[str, Any], mode: str | None, label: str) -> None:
    assert R.run_label({"target": target, "mode": mode}) == label


# -- the run directory ----------------------------------------------------------------------


def test_write_run_names_and_uniqueness(tmp_path: Path) -> None:
    doc = _built()
    first = write_run(doc, tmp_path)
    second = write_run(doc, tmp_path)
    assert first.name == "20261127T095301Z-kamailio-single"
    assert second.name == "20261127T095301Z-kamailio-single-2"
    for d in (first, second):
        assert json.loads((d / "results.json").read_text(encoding="utf-8")) == doc
        assert (d / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert R.load_results(first / "results.json") == doc


def test_write_run_without_start_time_uses_now(tmp_path: Path) -> None:
    doc = dict(_built(), started=None)
    d = write_run(doc, tmp_path / "new" / "base")
    assert re.fullmatch(r"\d{8}T\d{6}Z-kamailio-single", d.name)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[]", "no format_version"),
        (b'{"format_version": 99}', "format 99"),
        (b'{"format_version": 2, "target": {}, "cases": []}', "'requirements'"),
        (b'{"format_version": 1, "target": {}, "cases": []}', "results format 1"),
    ],
)
def test_load_results_refuses_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=re.escape(message)):
        R.load_results(path)


def test_load_results_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        R.load_results(tmp_path / "nope.json")
