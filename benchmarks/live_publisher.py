"""Requests per second through one live 3PCC peer vs one-shot SIPp processes, and reliability.

For each target (a launched Kamailio, the reference server) this prints:

* live: N requests through one ``LivePeer`` (publish new / modify / refresh / remove cycles over
  a few presentities, bodies of 0.1 to 7 kB with Unicode and CRLF/LF lines): requests/s, p50
  and p90 latency, and reliability: lost (no final response), misordered (a response matched to
  another request's CSeq, i.e. an ack triggered by a stray), body mismatches (the traced request
  body differs from the one meant), unexpected statuses (not 2xx for a valid operation), and how
  much of each request's time the server took (request to response in SIPp's own trace);
* one-shot: M PUBLISHes through ``Publisher`` (one SIPp process each), sequential, and through a
  pool of 2 concurrent one-shot processes (the fallback the issue names).

    python benchmarks/live_publisher.py [--n 500] [--oneshot 100] [--target kamailio,reference]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.errors import NotReceivedError
from conformance.harness.live_publisher import LivePeer
from conformance.harness.peers import Publisher
from conformance.harness.ports import PortBlock, reserve_block
from conformance.oracle.dialoginfo import dialog, document
from conformance.targets.base import Target
from conformance.targets.kamailio import KamailioTarget
from conformance.targets.reference import ReferenceTarget


def _body(rng: random.Random, user: str, domain: str) -> bytes:
    """A valid dialog-info body: 1-20 dialogs, Unicode display names, CRLF or LF line ends."""
    dialogs = [
        dialog(
            f"d{i}-{rng.randrange(10**6)}",
            rng.choice(["trying", "early", "confirmed", "terminated"]),
        )
        for i in range(rng.randint(1, 20))
    ]
    text = document(f"sip:{user}@{domain}", dialogs, version=0)
    text = text.replace(b"<dialog-info", "<!-- é€ ünï ☎ -->\n<dialog-info".encode(), 1)
    if rng.random() < 0.5:
        text = text.replace(b"\n", b"\r\n")
    return text


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def run_live(target: Target, block: PortBlock, work: Path, n: int, seed: int) -> dict[str, float]:
    rng = random.Random(seed)
    users = [f"live{i}-{seed}" for i in range(5)]
    etags: dict[str, str | None] = dict.fromkeys(users)
    lost = misordered = mismatched = unexpected = 0
    latencies: list[float] = []
    on_wire: list[float] = []
    with LivePeer(
        server=(target.host, target.port), block=block, workdir=work, domain=target.host
    ) as peer:
        started = time.perf_counter()
        for i in range(n):
            user = users[i % len(users)]
            etag = etags[user]
            kind = "publish" if etag is None else rng.choice(["modify", "refresh", "remove"])
            body = _body(rng, user, target.host) if kind in ("publish", "modify") else None
            t0 = time.perf_counter()
            try:
                if kind == "publish":
                    result = peer.publish(user, body, expires=120)
                elif kind == "modify":
                    assert etag is not None and body is not None
                    result = peer.modify(user, etag, body, expires=120)
                elif kind == "refresh":
                    assert etag is not None
                    result = peer.refresh(user, etag, expires=120)
                else:
                    assert etag is not None
                    result = peer.remove(user, etag)
            except NotReceivedError:
                lost += 1
                etags[user] = None
                continue
            latencies.append(time.perf_counter() - t0)
            sent = next(m.timestamp for m in result.exchange if m.direction == "out")
            answered = next(m.timestamp for m in result.exchange if m.direction == "in")
            on_wire.append(answered - sent)
            if result.request.cseq != result.response.cseq:
                misordered += 1
            if result.request.body != (body or b""):
                mismatched += 1
            if not 200 <= result.status < 300:
                unexpected += 1
                etags[user] = None
            else:
                etags[user] = None if kind == "remove" else result.etag
        elapsed = time.perf_counter() - started
        stray = peer.stray
    return {
        "requests": n,
        "per_second": n / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p90_ms": _pct(latencies, 0.9),
        "wire_p50_ms": statistics.median(on_wire) * 1000,
        "lost": lost,
        "misordered": misordered + stray,
        "body_mismatch": mismatched,
        "unexpected_status": unexpected,
    }


def run_oneshot(target: Target, work: Path, m: int, workers: int) -> float:
    """Requests/s of ``m`` new PUBLISHes through one-shot processes, ``workers`` at a time.

    Each worker has its own PortBlock: SIPp binds the video RTP port (media + 2) as well, which
    lies in the next 4-port window, so two processes started at once from one block can collide.
    """
    rng = random.Random(1)
    bodies = [(f"os{i}-{workers}", _body(rng, f"os{i}", target.host)) for i in range(m)]
    with ExitStack() as stack:
        publishers = [
            Publisher(
                server=(target.host, target.port),
                block=stack.enter_context(reserve_block(32 + k)),
                workdir=work / str(k),
                domain=target.host,
            )
            for k in range(workers)
        ]

        def one(i: int) -> int:
            user, body = bodies[i]
            return publishers[i % workers].publish(user, body, expires=60).status

        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            statuses = list(pool.map(one, range(m)))
        elapsed = time.perf_counter() - started
    bad = sum(1 for s in statuses if not 200 <= s < 300)
    if bad:
        print(f"    ({bad} one-shot PUBLISHes not answered 2xx)")
    return m / elapsed


def make_target(name: str, block: PortBlock, workdir: Path) -> Target:
    """A launched-to-be Kamailio (aggregate mode) or reference server, by name."""
    if name == "kamailio":
        return KamailioTarget("aggregate", block=block, workdir=workdir)
    if name == "reference":
        return ReferenceTarget(block=block, workdir=workdir)
    raise SystemExit(f"unknown target {name!r}: kamailio or reference")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="requests through the live peer")
    parser.add_argument("--oneshot", type=int, default=100, help="one-shot PUBLISHes")
    parser.add_argument("--target", default="kamailio,reference")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with reserve_block(31) as block, tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        for name in args.target.split(","):
            target = make_target(name, block, Path(tmp))
            target.start()
            try:
                live = run_live(target, block, Path(tmp) / name, args.n, args.seed)
                seq = run_oneshot(target, Path(tmp) / f"{name}-os", args.oneshot, 1)
                pool = run_oneshot(target, Path(tmp) / f"{name}-pool", args.oneshot, 2)
            finally:
                target.stop()
            print(f"{name}:")
            print(
                f"  live peer   {live['per_second']:7.1f} req/s   p50 {live['p50_ms']:.2f} ms"
                f"   p90 {live['p90_ms']:.2f} ms   over {live['requests']} requests"
            )
            print(
                f"              of which request->response on the wire (SIPp's trace): "
                f"p50 {live['wire_p50_ms']:.2f} ms"
            )
            print(
                f"  reliability lost {live['lost']}   misordered {live['misordered']}"
                f"   body mismatch {live['body_mismatch']}"
                f"   unexpected status {live['unexpected_status']}"
            )
            print(f"  one-shot    {seq:7.1f} req/s   sequential, {args.oneshot} PUBLISHes")
            print(f"  one-shot    {pool:7.1f} req/s   pool of 2, {args.oneshot} PUBLISHes")
            print(f"  speed-up    {live['per_second'] / seq:7.1f}x live over sequential one-shot")


if __name__ == "__main__":
    main()
