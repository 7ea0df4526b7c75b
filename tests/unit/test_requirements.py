"""The catalogue in code matches REQUIREMENTS.md, the source it was transcribed from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.oracle import requirements
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import Level

DOC = Path(__file__).resolve().parents[2] / "docs" / "REQUIREMENTS.md"
ROW = re.compile(r"^\| ([ABCDE]\d\d) \| (.*?) \| (.*?) \| (.*?) \| (.*?) \|\s*$")


def test_catalogue_matches_the_markdown_table():
    rows = [ROW.match(line) for line in DOC.read_text(encoding="utf-8").splitlines()]
    table = {m.group(1): m for m in rows if m}
    assert set(table) == set(requirements.CATALOGUE)
    for rid, m in table.items():
        req = requirements.get(rid)
        assert req.ref == m.group(2).replace("\\*", "*"), rid
        assert m.group(3).replace("\\*", "*").startswith(req.level_text.split(" ")[0]), rid


def test_counts_per_group_match_the_document():
    by_group = {g: [r for r in requirements.CATALOGUE.values() if r.group == g] for g in "ABCDE"}
    assert {g: len(rs) for g, rs in by_group.items()} == {
        "A": 35,
        "B": 28,
        "C": 21,
        "D": 15,
        "E": 14,
    }
    must = [r for r in by_group["A"] if r.level in (Level.MUST, Level.MUST_STAR)]
    assert len(must) == 20


def test_unknown_id_is_refused():
    with pytest.raises(KeyError, match="Z99"):
        requirements.get("Z99")
    with pytest.raises(KeyError):
        Finding("Z99", True, "x")


@pytest.mark.parametrize(
    ("rid", "strict", "known", "verdict"),
    [
        ("A19", False, False, Verdict.FAIL),  # MUST
        ("A22", False, False, Verdict.FAIL),  # MUST*
        ("A03", False, False, Verdict.WARN),  # SHOULD
        ("A03", True, False, Verdict.FAIL),
        ("A07", False, False, Verdict.WARN),  # DEF
        ("D07", False, False, Verdict.WARN),  # IMPL
        ("C21", False, False, Verdict.INFO),
        ("A19", False, True, Verdict.KNOWN),
    ],
)
def test_verdict_follows_level(rid, strict, known, verdict):
    assert Finding(rid, False, "x").verdict(strict=strict, known=known) is verdict
    assert Finding(rid, True, "x").verdict(strict=strict, known=known) is Verdict.PASS


def test_level_override_splits_a_row():
    assert Finding("A08", False, "gap", level=Level.DEF).verdict() is Verdict.WARN
    assert Finding("B21", False, "no reason", level=Level.DEF).verdict() is Verdict.WARN
    assert Finding("B21", False, "no NOTIFY").verdict() is Verdict.FAIL


def test_a_toml_catalogue_extension_gives_own_rows_without_adding_them():
    text = '["X-acme-1"]\nref = "ACME 3.2"\nlevel = "SHOULD"\ntitle = "lights up"\n'
    (row,) = requirements.parse_catalogue(text, "acme.toml")
    assert (row.id, row.ref, row.level, row.title) == (
        "X-acme-1",
        "ACME 3.2",
        Level.SHOULD,
        "lights up",
    )
    assert "X-acme-1" not in requirements.CATALOGUE


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('["A01"]\nref = "x"\nlevel = "MUST"\ntitle = "t"\n', "start with 'X', not 'A01'"),
        ('["X1"]\nref = "x"\nlevel = "OFTEN"\ntitle = "t"\n', "level 'OFTEN'"),
        ('["X1"]\nref = "x"\n', "needs exactly the strings ref, level and title (has ref)"),
        ('["X1"]\nref = 1\nlevel = "MUST"\ntitle = "t"\n', "needs exactly the strings"),
        ('X1 = "MUST"\n', "must be a table"),
        ("not toml [", "not TOML"),
    ],
)
def test_a_bad_catalogue_names_the_file_and_the_fault(text, why):
    with pytest.raises(ValueError, match=re.escape(why)) as err:
        requirements.parse_catalogue(text, "acme.toml")
    assert str(err.value).startswith("acme.toml: ") and "\n" not in str(err.value)


def test_an_info_finding_is_never_promoted_for_a_module_claim():
    """A module row (D09) is MUST for a server that claims presence_dialoginfo, but a finding
    marked INFO (a table within the clock allowance) proves nothing and stays INFO, strict
    or not (the explorer failed Kamailio's single mode on such a D09)."""
    from conformance.oracle.verdicts import unexcused_verdict

    info = Finding("D09", False, "within the clock allowance", level=Level.INFO)
    plain = Finding("D09", False, "wrong choice")
    for strict in (False, True):
        assert unexcused_verdict(info, strict=strict, claims_module=True) is Verdict.INFO
        assert unexcused_verdict(plain, strict=strict, claims_module=True) is Verdict.FAIL
