"""``dialoginfo-conformance validate``: verdicts, exit codes, JSON, stdin, I/O errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from conformance import cli

DATA = Path(__file__).resolve().parents[1] / "data"
GOOD = str(DATA / "rfc4235/s6.1-1-trying.xml")
BAD = str(DATA / "invalid/state-ringing.xml")
WARN = str(DATA / "rfc4235/s6.2-05-answered-by-voicemail.xml")
BROKEN = str(DATA / "rfc4235/s6.2-08-hold.xml")


def test_all_valid_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", GOOD, WARN]) == 0
    out = capsys.readouterr().out
    assert f"{GOOD}: VALID\n" in out
    assert "VALID (1 warning(s))" in out and "WARN A03 [SHOULD]" in out


def test_any_invalid_exit_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", GOOD, BAD]) == 1
    out = capsys.readouterr().out
    assert f"{BAD}: INVALID" in out and "FAIL A22 [MUST*]" in out and "'ringing'" in out


def test_not_well_formed_is_invalid_not_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", BROKEN]) == 1
    assert "FAIL A02" in capsys.readouterr().out


def test_missing_file_one_line_exit_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", GOOD, "/nonexistent/x.xml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "/nonexistent/x.xml" in captured.err
    assert "Traceback" not in captured.err


def test_json_and_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(Path(BAD).read_bytes())))
    assert cli.main(["validate", "--json", "-", GOOD]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == ["-", GOOD]
    assert [r["valid"] for r in results] == [False, True]
    assert results[0]["failures"][0]["requirement"] == "A22"
    assert "A19" in results[1]["checked"]


def test_no_files_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["validate"])
    assert info.value.code == 2
