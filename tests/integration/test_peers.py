"""Publisher, Watcher and fetch against a real Kamailio: the harness must be deterministic.

Every step waits for an event (a response, an ack, a NOTIFY), never for a fixed time, except
``expect_silence`` whose whole point is a window. Run repeatedly under ``-n 2`` to prove it.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.errors import NotReceivedError, UsageError
from conformance.harness.peers import Publisher, Watcher, fetch
from conformance.harness.ports import PortBlock
from conformance.oracle import dialoginfo
from conformance.oracle.dialoginfo import dialog, document

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kamailio,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

TIMEOUT = 5.0


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


DOMAIN = "127.0.0.1"


@pytest.fixture
def publisher(server: tuple[str, int], block: PortBlock, tmp_path: Path) -> Publisher:
    return Publisher(server=server, block=block, workdir=tmp_path, domain=DOMAIN, timeout=TIMEOUT)


@pytest.fixture
def watch(server: tuple[str, int], block: PortBlock, tmp_path: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    made: list[Watcher] = []

    def make(user: str, **kw: object) -> Watcher:
        w = Watcher(
            server=server,
            block=block,
            workdir=tmp_path,
            domain=DOMAIN,
            user=user,
            expires=60,
            timeout=TIMEOUT,
            **kw,  # type: ignore[arg-type]
        )
        made.append(w)
        return w

    yield make
    for w in made:
        pid = w._proc.pid if w._proc else None
        w.close()
        if pid is not None:
            assert not _alive(pid), f"SIPp {pid} survived Watcher.close()"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has been reaped when /proc has no entry.
    return Path(f"/proc/{pid}").exists()


def _doc(user: str, *dialogs: tuple[str, str]) -> bytes:
    return document(f"sip:{user}@{DOMAIN}", [dialog(i, s) for i, s in dialogs])


def _ids(body: bytes) -> set[tuple[str | None, str | None]]:
    return {(d.id, d.state) for d in dialoginfo.parse(body).dialogs}


def _version(body: bytes) -> int | None:
    return dialoginfo.parse(body).version_number()


def test_two_publications_aggregate_into_one_notify(publisher: Publisher, watch, user) -> None:
    a = publisher.publish(user, _doc(user, ("a1", "early")))
    b = publisher.publish(user, _doc(user, ("b1", "confirmed")))
    assert (a.status, b.status) == (200, 200)
    assert a.etag and b.etag and a.etag != b.etag
    assert a.expires == 3600
    w = watch(user)
    response = w.start()
    assert response.status == 200
    [first] = w.wait_notifies(1)
    assert first.answered == 200
    assert first.subscription_state == "active"
    assert _ids(first.body) == {("a1", "early"), ("b1", "confirmed")}


def test_modify_refresh_unsubscribe(publisher: Publisher, watch, user) -> None:
    pub = publisher.publish(user, _doc(user, ("d1", "trying")))
    w = watch(user)
    assert w.start().status == 200
    [first] = w.wait_notifies(1)
    assert _ids(first.body) == {("d1", "trying")}

    mod = publisher.modify(user, pub.etag, _doc(user, ("d1", "confirmed")))
    assert mod.status == 200 and mod.etag != pub.etag
    second = w.wait_notifies(2)[1]
    assert _ids(second.body) == {("d1", "confirmed")}
    assert _version(second.body) == _version(first.body) + 1

    refreshed = w.refresh(120)
    assert refreshed.status == 200
    third = w.wait_notifies(3)[2]
    assert _version(third.body) == _version(second.body) + 1
    assert third.expires is not None and third.expires > 60

    assert w.unsubscribe().status == 200
    fourth = w.wait_notifies(4)[3]
    assert fourth.subscription_state == "terminated"
    assert not w.active
    assert w.expect_silence(0.3) == []
    assert [n.retransmissions for n in w.notifies] == [0, 0, 0, 0]


def test_notify_answered_481_removes_the_subscription(publisher: Publisher, watch, user) -> None:
    pub = publisher.publish(user, _doc(user, ("x", "early")))
    w = watch(user)
    w.start()
    w.wait_notifies(1)
    w.set_answer(481)
    mod = publisher.modify(user, pub.etag, _doc(user, ("x", "confirmed")))
    second = w.wait_notifies(2)[1]
    assert second.answered == 481
    assert not w.active
    publisher.modify(user, mod.etag, _doc(user, ("x", "terminated")))
    assert w.expect_silence(0.5) == []
    assert w.refresh(60).status == 481


def test_a_watcher_can_start_in_481_mode(publisher: Publisher, watch, user) -> None:
    publisher.publish(user, _doc(user, ("y", "early")))
    w = watch(user, answer=481)
    assert w.start().status == 200
    [first] = w.wait_notifies(1)
    assert first.answered == 481


def test_two_watchers_of_one_presentity_count_versions_independently(
    publisher: Publisher, watch, user
) -> None:
    pub = publisher.publish(user, _doc(user, ("z", "early")))
    w1, w2 = watch(user), watch(user)
    w1.start()
    w1.wait_notifies(1)
    w1.refresh(60)
    w1.wait_notifies(2)
    w2.start()
    w2.wait_notifies(1)
    publisher.modify(user, pub.etag, _doc(user, ("z", "confirmed")))
    v1 = _version(w1.wait_notifies(3)[2].body)
    v2 = _version(w2.wait_notifies(2)[1].body)
    assert v1 == v2 + 1


def test_fetch_returns_the_state_once(publisher: Publisher, server, block, tmp_path, user) -> None:
    publisher.publish(user, _doc(user, ("f", "confirmed")))
    response, notifies = fetch(
        server=server, block=block, workdir=tmp_path, domain=DOMAIN, user=user, timeout=TIMEOUT
    )
    assert response.status == 200
    [only] = notifies
    assert only.subscription_state == "terminated"
    assert _ids(only.body) == {("f", "confirmed")}
    assert only.answered == 200


def test_publish_error_statuses_are_results_not_exceptions(publisher: Publisher, user) -> None:
    # Kamailio answers 412 to an unknown ETag of its own form, 500 to any other string.
    assert publisher.refresh(user, "a.1700000000.1.1.0").status == 412
    assert publisher.publish(user, _doc(user, ("e", "early")), event=None).status == 489
    assert publisher.publish(user, None, expires=60).status == 400
    first = publisher.publish(user, _doc(user, ("e", "early")))
    assert publisher.remove(user, first.etag).status == 200
    assert publisher.refresh(user, first.etag).status == 412


def test_publish_sends_the_body_and_headers_exactly(publisher: Publisher, user) -> None:
    body = _doc(user, ("exact", "early")) + b"\n  "
    result = publisher.publish(user, body, expires=77, extra_headers=["X-Case: exact"])
    assert result.request.body == body
    assert result.request.header("Expires") == "77"
    assert result.request.header("X-Case") == "exact"
    assert result.request.header("Content-Type") == dialoginfo.CONTENT_TYPE
    assert result.request.header("SIP-If-Match") is None
    assert result.expires == 77
    assert [m.direction for m in result.exchange if not m.retransmission] == ["out", "in"]


def test_raw_requests_for_negative_cases(publisher: Publisher, user) -> None:
    raw = (
        f"PUBLISH sip:{user}@[domain] SIP/2.0\n"
        "Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]\n"
        "Max-Forwards: 70\n"
        f"From: <sip:{user}@[domain]>;tag=raw1\n"
        f"To: <sip:{user}@[domain]>\n"
        "Call-ID: [call_id]\n"
        "CSeq: 7 PUBLISH\n"
        "Expires: 60\n"
        "Content-Length: 0\n\n"
    )
    assert publisher.request(raw).status == 489  # no Event header
    sub = raw.replace("PUBLISH", "SUBSCRIBE").replace(
        "Expires: 60", "Event: dialog\nContact: <sip:w@[local_ip]:[local_port]>\nExpires: 0"
    )
    assert publisher.request(sub).status == 200
    with pytest.raises(UsageError, match="raw request starts with"):
        publisher.request("INVITE sip:x@y SIP/2.0\n\n")


def test_silence_is_reported_not_hung(server, block: PortBlock, tmp_path: Path, user) -> None:
    # A UDP socket that never answers: no ICMP error, just silence.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", block.take_one()))
        dead = hole.getsockname()
        pub = Publisher(server=dead, block=block, workdir=tmp_path, domain=DOMAIN, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(NotReceivedError, match=r"PUBLISH for .*no final response within 0.5"):
            pub.publish(user, _doc(user, ("s", "early")))
        w = Watcher(
            server=dead, block=block, workdir=tmp_path, domain=DOMAIN, user=user, timeout=0.5
        )
        with pytest.raises(NotReceivedError, match=r"watcher of .*response to SUBSCRIBE"):
            w.start()
        assert w._proc is not None and not _alive(w._proc.pid)
        assert time.monotonic() - started < 4.0


def test_wait_notifies_names_what_did_not_arrive(publisher: Publisher, watch, user) -> None:
    publisher.publish(user, _doc(user, ("n", "early")))
    w = watch(user)
    w.start()
    with pytest.raises(NotReceivedError, match=r"expected 2 NOTIFYs within 0.3 s, got 1 \(last:"):
        w.wait_notifies(2, timeout=0.3)


@pytest.mark.parametrize(
    "body", [b"\xff\xfe not UTF-8 \x80", b"", b"[len] [call_id]", b"a\r\n\r\nb\n"]
)
def test_any_body_bytes_go_out_unchanged(publisher: Publisher, user, body: bytes) -> None:
    result = publisher.publish(user, body, content_type="application/octet-stream")
    assert result.request.body == body
    assert result.request.header("Content-Length") == str(len(body))


def test_a_nul_byte_is_refused_before_sipp_runs(publisher: Publisher, user) -> None:
    with pytest.raises(UsageError, match="NUL"):
        publisher.publish(user, b"a\x00b")
