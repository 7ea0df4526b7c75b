"""``dialoginfo-conformance report``: re-render, the compatibility matrix, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lxml.html
import pytest

from conformance import cli
from conformance.oracle.requirements import CATALOGUE
from conformance.report import matrix, results, run_dir
from tests.support import report_sample as sample


def _run(base: Path, kind: str, single: bool, started: str | None = None) -> Path:
    info = sample.run_info(kind, single=single)
    if started:
        info["started"] = started
    _, cases = sample.sample_run(hostile=False)
    if kind == "reference":  # the reference passes what Kamailio fails
        for c in cases:
            for f in c["findings"]:
                f.update(verdict="pass", passed=True)
            c["outcome"] = "passed" if c["outcome"] != "skipped" else "skipped"
    return run_dir.write_run(results.build_results(info, cases), base) / "results.json"


@pytest.fixture
def three(tmp_path: Path) -> list[Path]:
    base = tmp_path / "reports"
    return [
        _run(base, "kamailio", True),
        _run(base, "kamailio", False),
        _run(base, "reference", False),
    ]


def test_rerender_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _run(tmp_path, "kamailio", True)
    (source.parent / "report.html").unlink()
    assert cli.main(["report", str(source)]) == 0
    out = capsys.readouterr().out
    assert (source.parent / "report.html").is_file()
    assert "failed requirements: A07 D01" in out
    assert "kamailio-single" in out


def test_rerender_html_only_to_other_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _run(tmp_path, "kamailio", True)
    assert cli.main(["report", "--html-only", "-o", str(tmp_path / "out"), str(source)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "report.html")
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE")


def test_matrix_matches_the_json(three: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", "--matrix", *map(str, three)]) == 0
    out_dir = three[0].parent.parent
    assert capsys.readouterr().out.split() == [
        str(out_dir / "matrix.html"),
        str(out_dir / "matrix.md"),
    ]
    docs = {d["label"]: d for d in (json.loads(p.read_text(encoding="utf-8")) for p in three)}
    page = lxml.html.document_fromstring((out_dir / "matrix.html").read_text(encoding="utf-8"))
    head = [th.text_content() for th in page.xpath('//table[@id="matrix"]/thead/tr/th')]
    labels = ["reference", "kamailio", "kamailio-single"]
    assert [h.split("127.0.0.1")[0] for h in head[3:6]] == labels
    rows = page.xpath('//table[@id="matrix"]/tbody/tr')
    assert len(rows) == len(CATALOGUE)
    for row in rows:
        cells = [td.text_content() for td in row.xpath("./td")]
        rid = cells[0]
        for label, cell in zip(labels, cells[3:6], strict=True):
            want = next(r["verdict"] for r in docs[label]["requirements"] if r["id"] == rid)
            assert cell == want, (rid, label)
    md = (out_dir / "matrix.md").read_text(encoding="utf-8")
    d01 = next(line for line in md.splitlines() if line.startswith("| D01 |"))
    assert d01.split(" | ")[3:6] == ["pass", "**FAIL**", "**FAIL**"]
    table_rows = [
        line for line in md.splitlines() if line.startswith("| ") and line[2:3] in "ABCDE"
    ]
    assert len([r for r in table_rows if r[2:5] in CATALOGUE]) == len(CATALOGUE)


def test_matrix_keeps_newest_run_per_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _run(tmp_path, "kamailio", True, "2026-01-01T00:00:00+00:00")
    new = _run(tmp_path, "kamailio", True, "2026-02-01T00:00:00+00:00")
    assert cli.main(["report", "--matrix", "-o", str(tmp_path / "m"), str(new), str(old)]) == 0
    assert str(old) in capsys.readouterr().err
    md = (tmp_path / "m" / "matrix.md").read_text(encoding="utf-8")
    assert "| kamailio-single | requirement |" in md
    assert (
        cli.main(
            ["report", "--matrix", "--all-runs", "-o", str(tmp_path / "m"), str(old), str(new)]
        )
        == 0
    )
    md = (tmp_path / "m" / "matrix.md").read_text(encoding="utf-8")
    assert "| kamailio-single | kamailio-single (2) | requirement |" in md


def test_matrix_markdown_escapes_pipes() -> None:
    doc: dict[str, Any] = {
        "label": "a|b",
        "requirements": [
            {"id": "X1", "level": "MUST", "ref": "1", "title": "x | y", "verdict": "pass"}
        ],
    }
    md = matrix.render_markdown(matrix.build_matrix([("src", doc)]))
    assert "| a\\|b |" in md and "x \\| y" in md


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["report", "/nonexistent/results.json"], "cannot read /nonexistent/results.json"),
        (["report", "--matrix", "/nonexistent/results.json"], "cannot read"),
        (["report", "a.json", "b.json"], "for several runs use --matrix"),
    ],
)
def test_bad_input_one_line_exit_two(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and needle in captured.err
    assert "Traceback" not in captured.err


def test_not_a_results_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "results.json"
    bad.write_text('{"hello": 1}', encoding="utf-8")
    good = _run(tmp_path, "reference", False)
    assert cli.main(["report", "--matrix", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a results.json" in err
    assert not (good.parent.parent / "matrix.html").exists()  # nothing written on error
