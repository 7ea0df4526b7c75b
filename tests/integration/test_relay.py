"""The TLS relay on its own (harness/relay.py): both directions, with a plain Python peer on
each side, so the path a server-opened connection takes is proven even when a real server
(Kamailio) always reuses the relay's own connection."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.harness import relay
from conformance.harness.ports import PortBlock, reserve_block

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

LOCAL = "127.0.0.3"
OK = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
NOTIFY = b"NOTIFY sip:w@127.0.0.3 SIP/2.0\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture(scope="module")
def block() -> Iterator[PortBlock]:
    with reserve_block((os.getpid() + 17) % 40) as b:
        yield b


def _accept_one(listener: socket.socket, got: list[object], reply: bytes = b"") -> None:
    conn, peer = listener.accept()
    with conn:
        got.append(peer)
        got.append(conn.recv(100))
        if reply:
            conn.sendall(reply)


def test_both_directions(block: PortBlock, tmp_path: Path) -> None:
    ca = relay.make_ca(tmp_path)
    cert, key = relay.make_certificate(tmp_path, "server", ["IP:127.0.0.2"], ca=ca)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_port, plain, advertised, sipp_port = block.take(4, host=LOCAL)
    upstream = server_ctx.wrap_socket(
        socket.create_server(("127.0.0.2", server_port)), server_side=True
    )
    sipp_side = socket.create_server((LOCAL, sipp_port))
    relay.configure(str(ca[0]))
    tls_relay = relay.TlsRelay(
        server=("127.0.0.2", server_port),
        local=LOCAL,
        plain_port=plain,
        advertised_port=advertised,
        sipp_port=sipp_port,
    ).start()
    try:
        # SIPp -> relay -> server: the server sees the advertised address as the source.
        got_up: list[object] = []
        t = threading.Thread(target=_accept_one, args=(upstream, got_up, OK))
        t.start()
        with socket.create_connection((LOCAL, plain), timeout=3) as sipp:
            sipp.sendall(b"SUBSCRIBE")
            sipp.settimeout(3)
            assert sipp.recv(100) == OK
        t.join(3)
        assert got_up == [(LOCAL, advertised), b"SUBSCRIBE"]
        # server -> relay's TLS listener at the advertised address -> SIPp's own listener.
        got_down: list[object] = []
        t = threading.Thread(target=_accept_one, args=(sipp_side, got_down))
        t.start()
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((LOCAL, advertised), timeout=3)
        with client.wrap_socket(raw) as notifier:
            notifier.sendall(NOTIFY)
            t.join(3)
        assert got_down[1:] == [NOTIFY]
        assert tls_relay.connections == 2 and tls_relay.errors == []
        # What reached SIPp through TLS, counted by kind; nothing SIPp sent is counted.
        assert tls_relay.to_sipp == {"response": 1, "NOTIFY": 1}
    finally:
        tls_relay.close()
        upstream.close()
        sipp_side.close()
        relay.configure()


def test_bad_settings_are_usage_errors(tmp_path: Path) -> None:
    from conformance.errors import UsageError

    with pytest.raises(UsageError, match="contradict"):
        relay.configure(str(tmp_path / "x.pem"), insecure=True)
    with pytest.raises(UsageError, match="no such file"):
        relay.configure(str(tmp_path / "missing.pem"))
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError, match="cannot load it"):
        relay.configure(str(bad))
    relay.configure()
