"""The reference server over TCP and TLS (issue 14, point 2): real SIPp peers, the kit's TLS
relay, and a raw socket watcher for the connection the server must open itself.

The whole suite over TCP and TLS runs as a CI step (`.ci/run`); these tests are the lean proofs:
which way each NOTIFY travelled, that a TLS server faces the kit with no plain listener, and
that a watcher whose connection is gone still gets its NOTIFY on a new connection to its
Contact.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.commands.run import suite_argv
from conformance.harness import relay
from conformance.harness.live_publisher import LivePeer
from conformance.harness.peers import Publisher, Watcher
from conformance.harness.ports import PortBlock
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response
from conformance.sip.stream import StreamFramer
from conformance.sip.trace import Traced
from conformance.targets.probe import probe
from conformance.targets.reference import ReferenceTarget

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

SERVER = "127.0.0.2"
LOCAL = "127.0.0.3"
BODY = (
    b'<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
    b'version="0" state="full" entity="sip:x@example.org">'
    b'<dialog id="d1"><state>confirmed</state></dialog></dialog-info>\n'
)


@pytest.fixture(scope="module", params=["tcp", "tls"])
def reference(
    request: pytest.FixtureRequest, block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReferenceTarget]:
    """The reference server on 127.0.0.2, serving one stream transport, shared by the module's
    tests (each uses its own presentity); the relay trusts the CA made for it at start."""
    target = ReferenceTarget(
        host=SERVER,
        block=block,
        workdir=tmp_path_factory.mktemp(f"ref-{request.param}"),
        transport=request.param,
    )
    with target:
        yield target


@pytest.fixture(autouse=True)
def _trust(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test trusts the CA of the server it uses (another module may configure the relay
    between two tests of this one in the same worker)."""
    if "reference" in request.fixturenames:
        target = request.getfixturevalue("reference")
        relay.configure(str(target.ca_path) if target.ca_path else None)
    yield
    relay.configure()


def _common(ref: ReferenceTarget, block: PortBlock) -> dict[str, object]:
    return {
        "server": (ref.host, ref.port),
        "block": block,
        "domain": ref.domain,
        "local": LOCAL,
        "transport": ref.transport,
    }


def _received(messages: list[Traced], method: str) -> list[Request]:
    return [
        m.message
        for m in messages
        if m.direction == "in" and isinstance(m.message, Request) and m.message.method == method
    ]


def test_every_notify_travels_the_servers_transport(
    reference: ReferenceTarget, block: PortBlock, tmp_path: Path
) -> None:
    """SIPp peers over TCP, or TCP into the relay and TLS to the server: the NOTIFYs name the
    transport, and over TLS the relay's counted TLS connections carried every one of them."""
    common = _common(reference, block)
    user = f"t-{uuid.uuid4().hex[:8]}"
    with Watcher(user=user, workdir=tmp_path / "w", **common) as watcher:  # type: ignore[arg-type]
        tls_relay = watcher.relay
        publisher = Publisher(workdir=tmp_path / "p", **common)  # type: ignore[arg-type]
        assert publisher.publish(user, BODY).response.status == 200
        watcher.wait_notifies(2)
    notifies = _received(watcher.messages, "NOTIFY")
    assert len(notifies) == 3  # initial, the publication, the unsubscribe
    name = reference.transport.upper()
    for notify in notifies:
        assert (notify.header("Via") or "").startswith(f"SIP/2.0/{name} ")
        assert f";transport={reference.transport}" in (notify.header("Contact") or "")
    if reference.transport == "tls":
        assert tls_relay is not None and tls_relay.errors == []
        assert tls_relay.connections >= 1
        assert tls_relay.to_sipp["NOTIFY"] == len(notifies)


@pytest.mark.parametrize("reference", ["tls"], indirect=True)
def test_a_tls_server_has_no_plain_listener(reference: ReferenceTarget) -> None:
    """Over TLS the server process holds one listening TCP socket, its TLS port, and no UDP
    socket; plain SIP over TCP to that port gets no answer, SIP inside TLS does."""
    assert reference.pid is not None
    sockets = _sockets_of(reference.pid)
    assert [s for s in sockets if s[0].startswith("udp")] == []
    assert [s[1] for s in sockets if s[2] == "listen"] == [reference.port]
    assert probe(SERVER, reference.port, transport="tcp", timeout=1.0).response is None
    context = reference.tls_context()
    assert probe(SERVER, reference.port, transport="tls", tls=context, timeout=2.0).ok


def test_the_server_opens_a_connection_to_the_contact(
    reference: ReferenceTarget, block: PortBlock, tmp_path: Path
) -> None:
    """A watcher (a raw socket bound to the port its Contact names) subscribes, then closes its
    connection: the next NOTIFY comes on a connection the server opens to that Contact
    (RFC 3261 §18.1.1), over TLS with a TLS handshake."""
    port = block.take_one(host=LOCAL)
    listener = _bound(port)
    listener.listen(4)
    listener.settimeout(5)
    tls = reference.transport == "tls"
    own = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls:
        cert, key = relay.make_certificate(tmp_path, "watcher", [f"IP:{LOCAL}"])
        own.load_cert_chain(cert, key)
    user = f"o-{uuid.uuid4().hex[:8]}"
    with listener:
        conn = _bound(port)
        conn.settimeout(5)
        conn.connect((SERVER, reference.port))
        if tls:
            conn = reference.tls_context().wrap_socket(conn, server_hostname=SERVER)  # type: ignore[union-attr]
        framer = StreamFramer()
        with conn:
            conn.sendall(bytes(_subscribe(reference, user, port)))
            got = _read(conn, framer, 2)
            assert isinstance(got[0], Response) and got[0].status == 200
            assert isinstance(got[1], Request) and got[1].method == "NOTIFY"
            conn.sendall(bytes(sipmsg.response_to(got[1], 200, "OK")))
        # The watcher's connection is gone: a change must reach it on a new one.
        publisher = Publisher(workdir=tmp_path / "p", **_common(reference, block))  # type: ignore[arg-type]
        assert publisher.publish(user, BODY).response.status == 200
        accepted, peer = listener.accept()
        if tls:
            accepted.settimeout(5)
            accepted = own.wrap_socket(accepted, server_side=True)
        with accepted:
            (notify,) = _read(accepted, StreamFramer(), 1)
            assert isinstance(notify, Request) and notify.method == "NOTIFY"
            assert b"confirmed" in notify.body
            assert peer[0] == SERVER
            accepted.sendall(bytes(sipmsg.response_to(notify, 200, "OK")))


def test_the_live_peer_takes_the_local_address_and_transport(
    reference: ReferenceTarget, block: PortBlock, tmp_path: Path
) -> None:
    """The long-lived SIPp peer (live_publisher.py) binds ``local`` and speaks the server's
    transport like every other peer: PUBLISH, OPTIONS and a fetch, each naming it in Via."""
    peer = LivePeer(workdir=tmp_path / "live", **_common(reference, block))  # type: ignore[arg-type]
    user = f"l-{uuid.uuid4().hex[:8]}"
    with peer:
        assert peer.publish(user, BODY).response.status == 200
        assert peer.options(user).status == 200
        response, notifies = peer.fetch(user)
        assert response.status == 200 and b"confirmed" in notifies[0].body
        relay_of_peer = peer.relay
    sent = [m.message for m in peer.messages if m.direction == "out"]
    requests = [m for m in sent if isinstance(m, Request)]
    assert [r.method for r in requests] == ["PUBLISH", "OPTIONS", "SUBSCRIBE"]
    name = reference.transport.upper()
    assert all((r.header("Via") or "").startswith(f"SIP/2.0/{name} {LOCAL}:") for r in requests)
    assert f";transport={reference.transport}>" in (requests[-1].header("Contact") or "")
    if reference.transport == "tls":
        assert relay_of_peer is not None and relay_of_peer.to_sipp["NOTIFY"] == 1


def test_reports_name_the_transport(tmp_path: Path) -> None:
    """One suite case against ``reference;transport=tls`` (the server launched by the plugin,
    its CA trusted without options): results.json and the run's directory name TLS."""
    reports = tmp_path / "reports"
    cmd = suite_argv(
        "--dialoginfo-target", "reference;transport=tls",
        "-q", "-n", "0", "-k", "test_initial_publish_gets_etag_and_expires",
        "--dialoginfo-report", str(reports),
    )  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
    (results,) = reports.glob("*/results.json")
    doc = json.loads(results.read_text())
    assert doc["target"]["transport"] == "tls"
    assert results.parent.name.endswith("-reference-tls")


# ---- helpers -------------------------------------------------------------------------------------


def _bound(port: int) -> socket.socket:
    """A TCP socket on LOCAL:port that may share it with a listener (as the relay does)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((LOCAL, port))
    return sock


def _subscribe(ref: ReferenceTarget, user: str, port: int) -> Request:
    uri = ref.presentity_uri(user)
    name = ref.transport.upper()
    return Request(
        method="SUBSCRIBE",
        uri=uri,
        headers=(
            ("Via", f"SIP/2.0/{name} {LOCAL}:{port};branch=z9hG4bK{uuid.uuid4().hex[:10]}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:raw@{LOCAL}>;tag={uuid.uuid4().hex[:6]}"),
            ("To", f"<{uri}>"),
            ("Call-ID", f"raw-{uuid.uuid4().hex}"),
            ("CSeq", "1 SUBSCRIBE"),
            ("Contact", f"<sip:raw@{LOCAL}:{port};transport={ref.transport}>"),
            ("Event", "dialog"),
            ("Expires", "60"),
            ("Content-Length", "0"),
        ),
    )


def _read(conn: socket.socket, framer: StreamFramer, count: int) -> list[Request | Response]:
    """``count`` messages off a stream (each recv bounded by the socket's timeout)."""
    out: list[Request | Response] = []
    while len(out) < count:
        data = conn.recv(65536)
        assert data, f"connection closed after {len(out)} of {count} messages"
        out += [sipmsg.parse(raw) for raw in framer.feed(data)]
    return out


def _sockets_of(pid: int) -> list[tuple[str, int, str]]:
    """(table, local port, state) of every socket process ``pid`` holds, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                port = int(fields[1].rsplit(":", 1)[1], 16)
                found.append((table, port, "listen" if fields[3] == "0A" else fields[3]))
    return found
