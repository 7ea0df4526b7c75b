"""The oracle's body checks: manifest-driven corpora plus one case per requirement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conformance.oracle import schema
from conformance.oracle.findings import Verdict

DATA = Path(__file__).resolve().parents[1] / "data"


def _manifest(folder: str) -> list[tuple[str, str, str]]:
    rows = []
    for line in (DATA / folder / "MANIFEST").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, verdict, ids = line.split()[:3]
            rows.append((f"{folder}/{name}", verdict, ids))
    return rows


CASES = _manifest("rfc4235") + _manifest("valid") + _manifest("invalid") + _manifest("kamailio")


@pytest.mark.parametrize(("name", "verdict", "ids"), CASES, ids=[c[0] for c in CASES])
def test_manifest(name: str, verdict: str, ids: str) -> None:
    body = (DATA / name).read_bytes()
    findings = schema.check(body)
    failed = ",".join(sorted({f.requirement for f in findings if not f.passed})) or "-"
    assert failed == ids, [str(f) for f in findings if not f.passed]
    assert schema.is_conformant(body) is (verdict == "valid")


def test_rfc4235_examples_counts() -> None:
    """Trap T3: 7 examples fail the errata XSD, 1 is not well-formed, 1 repeats an id."""
    rows = _manifest("rfc4235")
    assert len(rows) == 22
    assert sum("A03" in ids.split(",") for _, _, ids in rows) == 7
    assert sum("A02" in ids.split(",") for _, _, ids in rows) == 1
    assert sum("A19" in ids.split(",") for _, _, ids in rows) == 1


def test_verbatim_schema_verdict_is_evidence_only() -> None:
    body = (DATA / "rfc4235/s6.2-03-dialing.xml").read_bytes()
    (a03,) = [f for f in schema.check(body) if f.requirement == "A03"]
    assert a03.passed
    assert a03.evidence["verbatim_schema_valid"] is False


def _doc(
    dialogs: str = "",
    attrs: str = 'version="1" state="full" entity="sip:a@example.com"',
    extra: str = "",
) -> bytes:
    return (
        f'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info"{extra} {attrs}>'
        f"{dialogs}</dialog-info>"
    ).encode()


def _by(body: bytes, rid: str) -> list:
    return [f for f in schema.check(body) if f.requirement == rid]


def test_passed_findings_cover_checked_requirements() -> None:
    body = _doc(
        '<dialog id="a" direction="initiator"><state event="rejected" code="486">'
        "terminated</state><local><identity>sip:a@example.com</identity></local></dialog>"
    )
    passed = {f.requirement for f in schema.check(body) if f.passed}
    assert {
        "A02",
        "A03",
        "A04",
        "A05",
        "A06",
        "A11",
        "A13",
        "A18",
        "A19",
        "A21",
        "A22",
        "A23",
        "A24",
        "A28",
        "A34",
    } - {"A04"} <= passed


def test_each_missing_root_attribute_has_its_own_message() -> None:
    findings = _by(_doc(attrs=""), "A06")
    assert [f.passed for f in findings] == [False, False, False]
    assert [f.path for f in findings] == [
        f"/dialog-info/@{n}" for n in ("version", "state", "entity")
    ]


@pytest.mark.parametrize(
    ("version", "ok", "word"),
    [
        ("0", True, "fits"),
        ("4294967295", True, "fits"),
        ("4294967296", False, "2^32-1"),
        ("-1", False, "negative"),
        ("00000000000", False, "placeholder"),
        ("1.5", False, "decimal"),
    ],
)
def test_version_a11(version: str, ok: bool, word: str) -> None:
    (f,) = _by(_doc(attrs=f'version="{version}" state="full" entity="sip:a@example.com"'), "A11")
    assert f.passed is ok and word in f.message


def test_state_ringing_passes_xsd_but_fails_a22() -> None:
    body = _doc('<dialog id="a"><state>ringing</state></dialog>')
    assert _by(body, "A03")[0].passed
    (f,) = _by(body, "A22")
    assert not f.passed and "ringing" in f.message and f.sourceline == 1


def test_event_on_non_terminated_warns() -> None:
    (f,) = _by(_doc('<dialog id="a"><state event="replaced">confirmed</state></dialog>'), "A23")
    assert not f.passed and f.verdict() is Verdict.WARN


def test_duplicate_id_names_the_id_and_line() -> None:
    body = (
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"'
        b' entity="sip:a@example.com">\n<dialog id="x"><state>trying</state></dialog>\n'
        b'<dialog id="x"><state>early</state></dialog></dialog-info>'
    )
    (f,) = [f for f in _by(body, "A19") if not f.passed]
    assert "'x'" in f.message and "line 2" in f.message and f.sourceline == 3


def test_rfc7463_extension_placement() -> None:
    sa = ' xmlns:sa="urn:ietf:params:xml:ns:sa-dialog-info"'
    after = _doc(
        '<dialog id="a"><state>confirmed</state><remote/><sa:appearance>1</sa:appearance></dialog>',
        extra=sa,
    )
    before = _doc(
        '<dialog id="a"><sa:appearance>1</sa:appearance><state>confirmed</state></dialog>', extra=sa
    )
    assert schema.is_conformant(after)
    assert not schema.is_conformant(before)
    assert any(not f.passed and f.path.endswith("/state") for f in _by(before, "A34"))


def test_entity_against_subscribe_uri() -> None:
    body = _doc(attrs='version="1" state="full" entity="sip:Alice@EXAMPLE.com"')
    (same,) = [
        f
        for f in schema.check(body, subscribe_uri="sip:Alice@example.com")
        if f.requirement == "A12"
    ]
    (other,) = [
        f
        for f in schema.check(body, subscribe_uri="sips:alice@example.com")
        if f.requirement == "A12"
    ]
    assert same.passed and not other.passed


def test_cross_check_agrees_with_lxml_on_the_corpus() -> None:
    for name, _, _ in CASES:
        body = (DATA / name).read_bytes()
        for f in schema.iter_findings(body, cross_check=True):
            if f.requirement == "A03":
                assert "disagreement" not in f.evidence, (name, f.evidence)


@pytest.mark.parametrize(
    ("subscribe_uri", "same"),
    [
        ("<sip:alice@example.com;transport=udp>", True),
        ("Alice <sip:al%69ce@Example.COM?subject=x>;tag=1", True),
        ("sip:alice@example.com:5060", False),  # a port is part of the key
        ("sip:alice@example.com>", False),  # a stray '>' is no URI
        ("< sip:alice@example.com>", False),  # nor are blanks inside <...>
        ("alice", False),
    ],
)
def test_entity_key_reads_the_subscribe_uri_as_sip_does(subscribe_uri: str, same: bool) -> None:
    """A12's comparison goes through sip.message.split_uri, the kit's one URI splitter."""
    body = _doc(attrs='version="1" state="full" entity="sip:alice@example.com"')
    (finding,) = [
        f for f in schema.check(body, subscribe_uri=subscribe_uri) if f.requirement == "A12"
    ]
    assert finding.passed is same


def test_schemas_are_compiled_at_import_before_any_thread() -> None:
    # libxml2 may fail a schema compile that runs while another thread parses XML (an explorer
    # lane): the module compiles every schema when imported, in a fresh interpreter too.
    probe = (
        "from conformance.oracle import schema; "
        "print(schema._lxml_schema.cache_info().currsize, schema._sa_schema.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["2", "1"]
