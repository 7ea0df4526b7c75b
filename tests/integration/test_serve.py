"""``dialoginfo-conformance serve`` as a real process: robustness, clean exit, the target wrapper.

The client here is a plain UDP socket on purpose: this is a robustness test of the server, not
a conformance case, and SIPp cannot send garbage.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conformance.commands.load import socket_drops
from conformance.oracle import dialoginfo as di
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response

pytestmark = pytest.mark.integration

START_TIMEOUT = 10.0


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purpose once reaped.
    return False


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:  # type: ignore[no-untyped-def]
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "conformance.cli", "serve", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = _readline(proc, START_TIMEOUT)
        assert line.startswith("listening on 127.0.0.1:"), line
        yield proc, int(line.rsplit(":", 1)[1])
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()
        log.close()


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> str:
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline().decode().strip()


class Client:
    """A bare UDP peer with a receive deadline on every read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.port = self.sock.getsockname()[1]
        self.server = ("127.0.0.1", port)
        self.n = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = 2.0) -> sipmsg.Message | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None
            try:
                return sipmsg.parse(data)
            except Exception:
                continue
        return None

    def drain(self, quiet: float = 0.3) -> list[sipmsg.Message]:
        out = []
        while (msg := self.recv(quiet)) is not None:
            out.append(msg)
        return out

    def request(self, method: str, headers: list[tuple[str, str]], body: bytes = b"") -> Request:
        self.n += 1
        base = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKt{self.n}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:test@127.0.0.1:{self.port}>;tag=t{self.n}"),
            ("To", "<sip:alice@127.0.0.1>"),
            ("Call-ID", f"call-{self.n}"),
            ("CSeq", f"1 {method}"),
            ("Contact", f"<sip:test@127.0.0.1:{self.port}>"),
        ]
        return Request(
            method=method, uri="sip:alice@127.0.0.1", headers=(*base, *headers), body=body
        )

    def transact(self, req: Request) -> tuple[Response, list[Request]]:
        """Send, return the final response and any NOTIFY that came (answered with 200)."""
        self.send(bytes(req))
        response: Response | None = None
        notifies: list[Request] = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            msg = self.recv(0.5 if response is None else 0.3)
            if msg is None:
                if response is not None:
                    break
                continue
            if isinstance(msg, Response) and msg.call_id == req.call_id and msg.status >= 200:
                response = msg
            elif isinstance(msg, Request) and msg.method == "NOTIFY":
                notifies.append(msg)
                ok = [
                    (n, v) for n, v in msg.headers if n in ("Via", "From", "To", "Call-ID", "CSeq")
                ]
                self.send(bytes(Response(status=200, reason="OK", headers=tuple(ok))))
        assert response is not None, f"no answer to {req.method}"
        return response, notifies


def malformed(rng: random.Random, i: int, port: int) -> bytes:
    kind = i % 5
    if kind == 0:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    if kind == 1:  # oversized, but still one datagram
        return b"PUBLISH sip:a@h SIP/2.0\r\nVia: " + b"x" * 65000 + b"\r\n\r\n"
    if kind == 2:  # a request missing the headers a response needs
        return f"SUBSCRIBE sip:a@h SIP/2.0\r\nCall-ID: m{i}\r\nEvent: dialog\r\n\r\n".encode()
    if kind == 3:  # salvageable: the five headers are there, one line is broken -> 400
        return (
            f"PUBLISH sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKm{i}\r\n"
            f"From: <sip:x@h>;tag={i}\r\nTo: <sip:a@h>\r\nCall-ID: m{i}\r\nCSeq: 1 PUBLISH\r\n"
            "broken line without colon\r\n\r\n"
        ).encode()
    # a bad Content-Length, a bad CSeq, binary header soup
    return rng.choice(
        [
            b"OPTIONS sip:a@h SIP/2.0\r\nContent-Length: 999\r\n\r\nshort",
            b"SIP/2.0 999\r\n\r\n",
            b"NOTIFY sip:a@h SIP/2.0\r\nVia: \xff\xfe\r\n\r\n",
            b"\r\n\r\n",
        ]
    )


def test_thousand_malformed_datagrams_then_normal_service(server) -> None:  # type: ignore[no-untyped-def]
    proc, port = server
    client = Client(port)
    try:
        rng = random.Random(1)
        answers = []
        ports = (port, client.port)
        dropped_before = sum(socket_drops(ports).values())
        for i in range(1000):
            client.send(malformed(rng, i, port))
            if i % 10 == 9:
                # 200 of these are 65 kB: pace them so no socket buffer overflows (UDP drops
                # silently), which keeps the count below exact even on a loaded machine.
                time.sleep(0.005)
                answers += client.drain(0.001)
        answers += client.drain()
        assert proc.poll() is None, "server died on malformed input"
        statuses = [m.status for m in answers if isinstance(m, Response)]
        assert statuses and set(statuses) == {400}
        # Every salvageable request (200) gets its 400, less what the kernel itself dropped on
        # the two sockets of this exchange (a loaded machine overflows UDP buffers silently).
        dropped = sum(socket_drops(ports).values()) - dropped_before
        assert len(statuses) >= 195 - dropped, f"{len(statuses)} answers, {dropped} dropped"

        body = di.document("sip:alice@127.0.0.1", [di.dialog("d1", "early")])
        pub, _ = client.transact(
            client.request(
                "PUBLISH",
                [("Event", "dialog"), ("Expires", "60"), ("Content-Type", di.CONTENT_TYPE)],
                body,
            )
        )
        assert pub.status == 200 and pub.header("SIP-ETag")
        sub, notifies = client.transact(
            client.request("SUBSCRIBE", [("Event", "dialog"), ("Expires", "60")])
        )
        assert sub.status == 200
        assert notifies and di.parse(notifies[0].body).dialog_ids == ("d1",)
    finally:
        client.close()


def test_sigterm_exits_cleanly(server) -> None:  # type: ignore[no-untyped-def]
    proc, _port = server
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(5) == 0
    assert _gone(proc.pid)


def test_bad_options_exit_2_with_one_line() -> None:
    for argv in (["--fault", "no-such-fault"], ["--listen", "10.1.2.3:5060"], ["--listen", "x"]):
        done = subprocess.run(
            [sys.executable, "-m", "conformance.cli", "serve", *argv],
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 2, argv
        assert len(done.stderr.decode().strip().splitlines()) == 1, done.stderr


def test_reference_target_starts_serves_and_stops() -> None:
    from conformance.targets.reference import ReferenceTarget

    target = ReferenceTarget(faults=["subscribe-202"], single_dialog=True)
    target.start()
    try:
        pid = target.pid
        assert pid is not None and target.alive()
        assert target.describe()["faults"] == ["subscribe-202"]
        assert target.profile.single_dialog
        client = Client(target.port)
        try:
            sub, _ = client.transact(
                client.request("SUBSCRIBE", [("Event", "dialog"), ("Expires", "60")])
            )
            assert sub.status == 202  # the fault reached the server process
        finally:
            client.close()
    finally:
        target.stop()
    assert _gone(pid)
    assert not target.alive()
    target.stop()  # twice is fine
