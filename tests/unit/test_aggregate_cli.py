"""``dialoginfo-conformance aggregate``: files in, one document out, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main
from conformance.commands.aggregate import DEFAULT_ENTITY
from conformance.oracle import dialoginfo as di


def write(tmp_path: Path, name: str, *dialogs: tuple[str, str], raw: bytes | None = None) -> str:
    path = tmp_path / name
    if raw is None:
        raw = di.document("sip:epa@h", [di.dialog(i, s) for i, s in dialogs], version=9)
    path.write_bytes(raw)
    return str(path)


def run(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes, str]:
    code = main(["aggregate", *argv])
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


def test_prints_the_aggregate_in_file_order_with_version_0(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    a = write(tmp_path, "a.xml", ("a", "early"))
    b = write(tmp_path, "b.xml", ("b", "confirmed"), ("c", "trying"))
    code, out, err = run([b, a], capsysbinary)
    assert (code, err) == (0, "")
    doc = di.parse(out)
    assert (doc.version, doc.state, doc.entity) == ("0", "full", DEFAULT_ENTITY)
    assert doc.dialog_ids == ("b", "c", "a")
    assert out.endswith(b"\n")


@pytest.mark.parametrize(("flavour", "winner"), [("opensips", "first"), ("kamailio", "second")])
def test_single_dialog_and_flavour(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], flavour: str, winner: str
) -> None:
    files = [write(tmp_path, f"{n}.xml", (n, "early")) for n in ("first", "second")]
    code, out, _ = run(["--single-dialog", "--flavour", flavour, *files], capsysbinary)
    assert code == 0 and di.parse(out).dialog_ids == (winner,)


def test_entity_is_rebuilt_like_the_modules(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    a = write(tmp_path, "a.xml", ("a", "early"))
    code, out, _ = run(["--entity", "sips:bob@example.org:5061;transport=tls", a], capsysbinary)
    assert code == 0 and di.parse(out).entity == "sip:bob@example.org"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["{tmp}/missing.xml"], "missing.xml: no such file"),
        (["{tmp}"], "is a directory"),
        (["{good}", "{bad}"], "not well-formed"),
        (["--entity", "nonsense", "{good}"], "presentity 'nonsense'"),
    ],
)
def test_errors_are_one_line_exit_2(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], argv: list[str], message: str
) -> None:
    good = write(tmp_path, "good.xml", ("a", "early"))
    bad = write(tmp_path, "bad.txt", raw=b"hello, not XML")
    args = [a.format(tmp=tmp_path, good=good, bad=bad) for a in argv]
    code, out, err = run(args, capsysbinary)
    assert code == 2 and out == b""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("dialoginfo-conformance aggregate: ") and message in err
