"""Hostile bodies through dialoginfo.parse and schema.check; round trips; canonical equality."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from conformance.errors import BodyError
from conformance.oracle import dialoginfo, schema

NS = dialoginfo.NS

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"
 entity="sip:a@example.com"><dialog id="&lol4;"><state>trying</state></dialog></dialog-info>"""


def _xxe(path: Path) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file://{path}">]>\n'
        f'<dialog-info xmlns="{NS}" version="1" state="full" entity="sip:a@example.com">'
        '<dialog id="a"><state>&x;</state></dialog></dialog-info>'
    ).encode()


def _refused(body: bytes, word: str, requirement: str = "A02") -> None:
    with pytest.raises(BodyError) as info:
        dialoginfo.parse(body)
    assert word in info.value.message and info.value.requirement == requirement
    failed = [f for f in schema.check(body) if not f.passed]
    assert failed and failed[0].requirement == requirement and word in failed[0].message
    assert not schema.is_conformant(body)


def _bounded(fn: Callable[[], Any], seconds: float = 5.0) -> Any:
    """Run ``fn`` in a thread: a regression that blocks fails the test instead of hanging it."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return "TIMEOUT"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _raises(kind: type[BaseException], fn: Callable[..., Any], *args: Any) -> bool:
    try:
        fn(*args)
    except kind:
        return True
    return False


def test_billion_laughs_is_refused_unexpanded() -> None:
    _refused(BILLION_LAUGHS, "DOCTYPE")


def test_external_entity_on_a_local_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = _xxe(secret)
    _refused(body, "DOCTYPE")
    # Even past the pre-check, the parser itself does not expand the entity.
    root = etree.fromstring(body, dialoginfo._parser())
    assert b"TOP-SECRET" not in etree.tostring(root)


def test_external_entity_on_a_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    body = _xxe(fifo)
    try:
        refused = _bounded(lambda: _raises(BodyError, dialoginfo.parse, body))
        assert refused is True, refused
        assert _bounded(lambda: schema.check(body)) != "TIMEOUT"
        outcome = _bounded(lambda: etree.tostring(etree.fromstring(body, dialoginfo._parser())))
        assert outcome != "TIMEOUT", "the parser opened the FIFO named by an external entity"
    finally:
        # Unblock a reader left behind by a regression, so the test process can exit.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_ten_megabyte_body_is_refused_by_size() -> None:
    body = (
        b'<dialog-info xmlns="'
        + NS.encode()
        + b'">'
        + b" " * (10 * 1024 * 1024)
        + b"</dialog-info>"
    )
    _refused(body, "exceeds")


def test_non_utf8_bytes_fail_a04_with_the_offset() -> None:
    body = (
        f'<dialog-info xmlns="{NS}" version="1" state="full" entity="sip:j'.encode()
        + b"\xfc"
        + (b'rgen@example.com"/>')
    )
    _refused(body, "not UTF-8", requirement="A04")


def test_truncated_body_fails_a02() -> None:
    _refused(b"<dialog-info", "not well-formed")


def test_roundtrip_keeps_dialogs_and_extensions() -> None:
    sa = dialoginfo.SA_NS
    d = dialoginfo.dialog(
        'a"b',
        "confirmed",
        direction="initiator",
        call_id="c'1&2",
        local_tag="l",
        remote_tag="r",
        extra=f'<remote><identity display="Jürgen">sip:j@example.com</identity></remote>'
        f'<appearance xmlns="{sa}">2</appearance>',
    )
    body = dialoginfo.document("sip:alice@example.com", [d], version=3)
    info = dialoginfo.parse(body)
    assert info.dialogs == (d,)
    (back,) = info.dialogs
    assert (back.id, back.call_id, back.remote.display) == ('a"b', "c'1&2", "Jürgen")
    assert back.extensions == (f"{{{sa}}}appearance",)
    assert (
        dialoginfo.parse(
            dialoginfo.serialize(entity="sip:alice@example.com", version=3, items=info.items)
        )
        == info
    )
    assert schema.is_conformant(body)


def test_canonical_equality_ignores_prefixes_and_whitespace() -> None:
    plain = (
        f'<dialog-info xmlns="{NS}" version="1" state="full" entity="sip:a@example.com">'
        '<dialog id="x"><state>early</state></dialog></dialog-info>'
    )
    prefixed = (
        f'<d:dialog-info xmlns:d="{NS}" version="1" state="full" entity="sip:a@example.com">'
        '\n  <d:dialog id="x">\n    <d:state> early </d:state>\n  </d:dialog>\n</d:dialog-info>'
    )
    a, b = dialoginfo.parse(plain.encode()), dialoginfo.parse(prefixed.encode())
    assert a.dialogs == b.dialogs
    changed = dialoginfo.parse(plain.replace("early", "confirmed").encode())
    assert changed.dialogs != a.dialogs


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<?xml version="1.0" encoding="UTF-8"?>', ("1.0", "UTF-8")),
        (b"<?xml version='1.1'?>", ("1.1", None)),
        (b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>', ("1.0", "utf-8")),
        (b'  <?xml version="1.0"?>', None),  # not at the start: no declaration, not well-formed
        (b"", None),
    ],
)
def test_xml_declaration_is_read_from_the_start_only(
    head: bytes, expected: tuple[str, str | None] | None
) -> None:
    """One reader of the declaration serves parse() and schema's A04 check alike."""
    body = head + b'<dialog-info xmlns="%s" version="0" state="full" entity="sip:a@b"/>' % (
        NS.encode()
    )
    assert dialoginfo.xml_declaration(body) == expected
    if expected is not None:
        info = dialoginfo.parse(body)
        assert (info.xml_version, info.xml_encoding) == expected
