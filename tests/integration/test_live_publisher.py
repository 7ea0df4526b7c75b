"""LivePeer against a real Kamailio: any body and any headers through one long-lived SIPp.

What must hold for the explorer to trust it: the request on the wire is byte for byte the one
meant (bodies of many shapes, the nemesis headers), each response is the one of its request,
the server really stores what was published (a watcher sees it), and nothing is left running.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.errors import UsageError
from conformance.harness.live_publisher import LivePeer
from conformance.harness.peers import Watcher
from conformance.harness.ports import PortBlock, reserve_block
from conformance.oracle.dialoginfo import dialog, document
from conformance.oracle.dialoginfo import parse as parse_document

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kamailio,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


@pytest.fixture(scope="module")
def block() -> Iterator[PortBlock]:
    with reserve_block(os.getpid() % 40) as b:
        yield b


@pytest.fixture(scope="module")
def server(block: PortBlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    kamailio = pytest.importorskip("conformance.targets.kamailio")
    try:
        kamailio.check_installed()
    except Exception as exc:  # ToolMissingError
        pytest.skip(str(exc))
    target = kamailio.KamailioTarget(
        "aggregate", block=block, workdir=tmp_path_factory.mktemp("kamailio")
    )
    target.start()
    try:
        yield (target.host, target.port)
    finally:
        target.stop()


@pytest.fixture
def peer(server: tuple[str, int], block: PortBlock, tmp_path: Path) -> Iterator[LivePeer]:
    with LivePeer(server=server, block=block, workdir=tmp_path, domain=server[0]) as p:
        yield p


def _user() -> str:
    return f"lp-{uuid.uuid4().hex[:10]}"


def _valid(user: str, domain: str, ids: list[str], *, crlf: bool = False) -> bytes:
    body = document(f"sip:{user}@{domain}", [dialog(i, "confirmed") for i in ids])
    body = body.replace(b"<dialog-info", "<!-- é€ ☎ [call_id] [$req] -->\n<dialog-info".encode())
    return body.replace(b"\n", b"\r\n") if crlf else body


def test_publish_modify_refresh_remove_reach_the_server(
    peer: LivePeer, server: tuple[str, int], block: PortBlock, tmp_path: Path
) -> None:
    user, domain = _user(), server[0]
    with Watcher(server=server, block=block, workdir=tmp_path, domain=domain, user=user) as w:
        w.wait_notifies(1)
        first = peer.publish(user, _valid(user, domain, ["a1"]), expires=60)
        assert first.status == 200 and first.etag and first.expires == 60
        notified = parse_document(w.wait_notifies(2)[-1].body)
        assert [d.id for d in notified.dialogs] == ["a1"]

        modified = peer.modify(user, first.etag, _valid(user, domain, ["b1", "b2"], crlf=True))
        assert modified.status == 200 and modified.etag
        notified = parse_document(w.wait_notifies(3)[-1].body)
        assert sorted(d.id for d in notified.dialogs) == ["b1", "b2"]

        refreshed = peer.refresh(user, modified.etag, expires=30)
        assert refreshed.status == 200 and refreshed.expires == 30
        assert refreshed.request.body == b"" and refreshed.request.header("Content-Type") is None

        removed = peer.remove(user, refreshed.etag or modified.etag)
        assert removed.status == 200
    # Kamailio's removal NOTIFY is stale (BEHAVIOUR.md): a fetch through the same peer shows it.
    response, notifies = peer.fetch(user)
    assert 200 <= response.status < 300
    body = notifies[-1].body if notifies else None
    assert body is not None  # no dialogs left: Kamailio sends no body at all (empty form)
    assert not body.strip() or parse_document(body).dialogs == ()
    assert peer.stray == 0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"x",
        b"line1\r\nline2\nline3\r\n\r\n\r\nafter blank lines",
        "Unicode é€ ☎ 𝄞 and Latin-1 bytes: ".encode() + bytes([0xE9, 0xFF, 0x80]),
        b"<a>\x01\x02\x7f\t</a>   ",
        b"[call_id] [len] [$req] [last_Via:] %s %n",
        b"<x>" + b"y" * 7000 + b"</x>",
    ],
    ids=["empty", "one-byte", "line-ends", "unicode-latin1", "controls", "sipp-keywords", "7kB"],
)
def test_any_body_goes_out_byte_for_byte(
    peer: LivePeer, server: tuple[str, int], body: bytes
) -> None:
    result = peer.publish(_user(), body, content_type="text/plain", expires=5)
    assert result.request.body == body
    assert result.request.header("Content-Length") == str(len(body))
    assert result.response.cseq == result.request.cseq


def test_nemesis_headers_go_out_as_written(peer: LivePeer, server: tuple[str, int]) -> None:
    user, domain = _user(), server[0]
    body = _valid(user, domain, ["n1"])
    two = peer.publish(user, body, extra_headers=["SIP-If-Match: aaa", "SIP-If-Match: bbb"])
    assert two.request.header_all("SIP-If-Match") == ["aaa", "bbb"]
    assert not 200 <= two.status < 300  # Kamailio 5.6: 500, no publication made
    wrong_event = peer.publish(user, body, event="presence")
    assert wrong_event.request.header("Event") == "presence"
    assert wrong_event.status == 489
    no_event = peer.publish(user, body, event=None)
    assert no_event.request.header("Event") is None and not 200 <= no_event.status < 300
    unknown = peer.refresh(user, "no-such-etag-" + uuid.uuid4().hex[:6])
    assert (
        unknown.request.header(
            "SIP-If-Match",
        )
        is not None
    )
    assert not 200 <= unknown.status < 300  # 412 per RFC 3903; Kamailio 5.6 here: 412 or 500
    zero = peer.publish(user, body, expires=0)
    assert zero.request.header("Expires") == "0"


def test_options_and_fetch(peer: LivePeer, server: tuple[str, int]) -> None:
    user, domain = _user(), server[0]
    assert peer.options(user).status == 200
    published = peer.publish(user, _valid(user, domain, ["f1"]), expires=60)
    response, notifies = peer.fetch(user)
    assert 200 <= response.status < 300
    assert [n.subscription_state for n in notifies] == ["terminated"]
    assert [d.id for d in parse_document(notifies[0].body).dialogs] == ["f1"]
    assert notifies[0].answered == 200
    assert published.etag is not None
    assert peer.remove(user, published.etag).status == 200


def test_many_requests_each_answered_in_order(peer: LivePeer, server: tuple[str, int]) -> None:
    user, domain = _user(), server[0]
    results = []
    etag: str | None = None
    for i in range(120):
        if etag is None:
            result = peer.publish(user, _valid(user, domain, [f"m{i}"]), expires=60)
        else:
            result = peer.modify(user, etag, _valid(user, domain, [f"m{i}"]), expires=60)
        assert result.status == 200, result.response
        etag = result.etag
        results.append(result)
    cseqs = [r.request.cseq[0] for r in results if r.request.cseq]
    assert cseqs == sorted(cseqs) and len(set(cseqs)) == len(cseqs)
    assert all(r.response.cseq == r.request.cseq for r in results)
    assert peer.sent >= 120


def test_bad_input_is_refused_and_close_reaps(
    server: tuple[str, int], block: PortBlock, tmp_path: Path
) -> None:
    peer = LivePeer(server=server, block=block, workdir=tmp_path, domain=server[0]).start()
    pid = peer.pid
    assert pid is not None and peer.alive()
    with pytest.raises(UsageError, match="ESC"):
        peer.publish("u", b"a\x1bb")
    with pytest.raises(UsageError, match="NOTIFY"):
        peer.request("NOTIFY", "u", [])
    with pytest.raises(UsageError, match="Name: value"):
        peer.publish("u", b"", extra_headers=["no colon"])
    assert peer.options("u").status == 200  # still usable after refused input
    peer.close()
    peer.close()
    assert not peer.alive()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
