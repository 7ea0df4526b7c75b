"""What a SIPp-driven step costs, bare and through the harness (conformance/peers.py).

Prints milliseconds per one-shot PUBLISH process and per watcher start (SUBSCRIBE -> 200 ->
first NOTIFY), run both ways against the same server with the same SIPp arguments:

* bare: the argv from ``conformance.harness.sipp.command`` run with ``subprocess.run``
  (PUBLISH), or a
  Popen + 3PCC connect + one command (watcher), as a plain script would;
* harness: ``Publisher.publish`` and ``Watcher.start`` + ``wait_notifies(1)``.

The ratio harness/bare is the harness overhead the issue asks about. Also printed: the 3PCC
command -> SUBSCRIBE-on-the-wire latency read from SIPp's own trace timestamps.

    python benchmarks/sipp_bare.py [--runs 30] [--server 127.0.0.1:5060]

Without --server a Kamailio is started (conformance.targets.kamailio) and stopped afterwards.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.harness.peers import Publisher, Watcher
from conformance.harness.ports import PortBlock, reserve_block
from conformance.harness.sipp import Ports, command
from conformance.oracle.dialoginfo import dialog, document
from conformance.resources import scenario_path

DOMAIN = "127.0.0.1"


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
    return f"median {statistics.median(values) * 1000:7.2f} ms   p90 {p90 * 1000:7.2f} ms"


def bare_publish(
    server: tuple[str, int], block: PortBlock, work: Path, body: bytes, i: int
) -> float:
    """The argv Publisher.publish would build, run with subprocess.run."""
    work.mkdir(parents=True, exist_ok=True)
    argv, _ = command(
        scenario_path("publish.xml"),
        server=server,
        ports=Ports.take(block),
        workdir=work,
        keys={
            "user": "bare",
            "domain": DOMAIN,
            "headers": (
                "Event: dialog\r\nExpires: 3600\r\nContent-Type: application/dialog-info+xml\r\n"
            ),
            "body": body.decode(),
        },
        timeout=5,
        prefix=f"bare-{i}.",
    )
    started = time.perf_counter()
    subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def bare_watch(server: tuple[str, int], block: PortBlock, work: Path, user: str) -> float:
    """Start a watcher, SUBSCRIBE, wait for the first NOTIFY in the trace; kill it."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "sub.txt").write_bytes(
        b"Event: dialog\r\nAccept: application/dialog-info+xml\r\nExpires: 60\r\n"
    )
    ports = Ports.take(block)
    argv, logs = command(
        scenario_path("watch.xml"),
        server=server,
        ports=ports,
        workdir=work,
        keys={"user": user, "domain": DOMAIN, "watcher": "watcher"},
        calls=None,
        timeout=30,
        extra=("-3pcc", f"127.0.0.1:{ports.twin}", "-aa"),
    )
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(2000):
            try:
                sock = socket.create_connection(("127.0.0.1", ports.twin))
                break
            except OSError:
                time.sleep(0.001)
        cid = f"bare-{time.time_ns()}"
        sock.sendall(
            (
                f"Call-ID: {cid}\r\nX-Op: subscribe\r\nX-CSeq: 1\r\n"
                f"X-Target: sip:{user}@{DOMAIN}\r\nX-Headers: {work / 'sub.txt'}\r\n\r\n"
            ).encode()
            + b"\x1b"
        )
        data = b""
        while b"\x1b" not in data:
            data += sock.recv(4096)
        while b"NOTIFY sip:" not in logs["messages"].read_bytes():
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        # As Watcher.close does: reset the control connection (no TIME_WAIT), then SIGKILL.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        proc.kill()
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return elapsed


_ENTRY = re.compile(
    rb"-{20,} (\S+ \S+)\n(TCP control message received|UDP message sent)[^\n]*\n\n(\S+)"
)


def command_latency(trace: bytes) -> list[float]:
    """Seconds from each 3PCC command received to the next SUBSCRIBE sent, from the trace."""
    out, pending = [], None
    for stamp, kind, first in _ENTRY.findall(trace):
        t = datetime.strptime(stamp.decode(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if kind.startswith(b"TCP"):
            pending = t
        elif first == b"SUBSCRIBE" and pending is not None:
            out.append(t - pending)
            pending = None
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--server", help="HOST:PORT of a running presence server")
    args = parser.parse_args()
    with ExitStack() as stack:
        block = stack.enter_context(reserve_block(39))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sipp-bench-")))
        if args.server:
            host, _, port = args.server.rpartition(":")
            server = (host, int(port))
        else:
            from conformance.targets.kamailio import KamailioTarget

            target = KamailioTarget("aggregate", block=block, workdir=work / "kamailio")
            target.start()
            stack.callback(target.stop)
            server = (target.host, target.port)
        body = document(f"sip:bench@{DOMAIN}", [dialog("d1", "confirmed")])
        publisher = Publisher(server=server, block=block, workdir=work / "h", domain=DOMAIN)
        publisher.publish("bench", body)  # warm caches
        bare_p, harness_p, bare_w, harness_w, lat = [], [], [], [], []
        for i in range(args.runs):
            bare_p.append(bare_publish(server, block, work / "bp", body, i))
            started = time.perf_counter()
            publisher.publish("bench", body)
            harness_p.append(time.perf_counter() - started)
        for i in range(args.runs):
            bare_w.append(bare_watch(server, block, work / f"bw{i}", "bench"))
            w = Watcher(
                server=server,
                block=block,
                workdir=work / "hw",
                domain=DOMAIN,
                user="bench",
                expires=60,
            )
            started = time.perf_counter()
            w.start()
            w.wait_notifies(1)
            harness_w.append(time.perf_counter() - started)
            w.refresh(60)
            w.close()
            assert w._rundir is not None
            lat += command_latency((w._rundir / "messages.log").read_bytes())
        print(f"server {server[0]}:{server[1]}, {args.runs} runs each")
        print(f"PUBLISH process   bare    {_ms(bare_p)}")
        print(f"PUBLISH process   harness {_ms(harness_p)}")
        print(f"  overhead ratio  {statistics.median(harness_p) / statistics.median(bare_p):.2f}x")
        print(f"watcher start     bare    {_ms(bare_w)}")
        print(f"watcher start     harness {_ms(harness_w)}")
        print(f"  overhead ratio  {statistics.median(harness_w) / statistics.median(bare_w):.2f}x")
        print(f"3PCC command -> SUBSCRIBE on the wire ({len(lat)} samples): {_ms(lat)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
