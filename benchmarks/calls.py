"""Call to BLF: how long after a call event a party's watcher is told (group E, issue 15).

For each target, N calls are placed through its call proxy with one watcher per party. Two
latencies are measured per call and watcher, each from the *sending* side's own SIPp trace to
the watcher's SIPp trace of the first NOTIFY that shows the new state (the load command's
method: trace times of real processes on one host, no clock of the kit in between):

    ringing  the callee's 180 sent  ->  first NOTIFY showing the call ``early``
    hang-up  the caller's BYE sent  ->  first NOTIFY showing the call ``terminated``

The 180 and the BYE each come 1.2 s after the NOTIFY of the state before them, past a
throttling server's one NOTIFY per second (the strict reference server rate-limits; RFC 4235
§3.10), so the figures are the server's reaction, not its throttle. p50 and p99 come from
the load code's histogram (``conformance/load/histogram``); with 2 x N samples per figure,
p99 is the worst but one or two.

    .venv/bin/python benchmarks/calls.py                         reference, kamailio, kamailio-two
    .venv/bin/python benchmarks/calls.py --targets kamailio --calls 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conformance.harness.calls import Callee, Caller, place_call
from conformance.harness.peers import Watcher
from conformance.harness.ports import reserve_block
from conformance.load.histogram import Histogram
from conformance.oracle.calls import CallProfile, Party, expect, observe
from conformance.sip.message import Request, Response
from conformance.sip.trace import Traced
from conformance.targets import make_target

HOLD = 1.2


def sent_at(party: Caller | Callee, cid: str, what: str) -> float:
    """Trace time of the first ``what`` (a method, or a status) the party sent in the call."""

    def match(m: Traced) -> bool:
        msg = m.message
        if m.direction != "out":
            return False
        if isinstance(msg, Request):
            return msg.method == what
        return isinstance(msg, Response) and str(msg.status) == what

    return party.wait_for(cid, match, f"{what} sent").timestamp


def shown_at(
    watcher: Watcher, party: Caller | Callee, role: Party, cid: str, state: str, after: float
) -> float | None:
    """Trace time of the watcher's first NOTIFY after ``after`` that shows ``state``."""
    exp = expect(role, party.messages(cid), cid, CallProfile.kamailio())
    for o in observe(((n.timestamp, n.body) for n in watcher.notifies), exp):
        if o.at >= after and o.dialog is not None and (o.dialog.state or "").lower() == state:
            return o.at
    return None


def wait_all(
    watchers: dict[Party, tuple[Watcher, Caller | Callee]],
    cid: str,
    state: str,
    after: float,
    timeout: float = 2.5,
) -> dict[Party, float | None]:
    """When each watcher first showed ``state`` after ``after`` (None: not within ``timeout``,
    one deadline for all, so a call's steps stay inside the proxy's 5 s Timer C)."""
    found: dict[Party, float | None] = dict.fromkeys(watchers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and None in found.values():
        for role, (w, party) in watchers.items():
            if found[role] is None:
                found[role] = shown_at(w, party, role, cid, state, after)
        time.sleep(0.02)
    return found


def record(into: Histogram, shown: dict[Party, float | None], since: float) -> int:
    """Each watcher's latency since ``since`` into ``into`` (µs); how many showed nothing."""
    for at in shown.values():
        if at is not None:
            into.record(max(0, int((at - since) * 1e6)))
    return sum(at is None for at in shown.values())


def bench(spec: str, calls: int, work: Path) -> dict[str, Histogram | int]:
    ring, bye, lost = Histogram(), Histogram(), 0
    with reserve_block(31) as block:
        target = make_target(spec, block=block, workdir=work / "target")
        target.start()
        try:
            proxy = target.call_proxy  # type: ignore[attr-defined]
            presence = (target.host, target.port)
            common = {"block": block, "domain": target.domain}
            for n in range(calls):
                here = work / f"call-{n}"
                caller = Caller(user=f"alice{n}", server=proxy, workdir=here, **common)  # type: ignore[arg-type]
                callee = Callee(user=f"bob{n}", server=proxy, workdir=here, **common)  # type: ignore[arg-type]
                watchers = {
                    Party.CALLER: (
                        Watcher(user=f"alice{n}", server=presence, workdir=here, **common),
                        caller,
                    ),  # type: ignore[arg-type]
                    Party.CALLEE: (
                        Watcher(user=f"bob{n}", server=presence, workdir=here, **common),
                        callee,
                    ),  # type: ignore[arg-type]
                }
                try:
                    callee.start()
                    caller.start()
                    for w, _ in watchers.values():
                        w.start()
                        w.wait_notifies(1)
                    time.sleep(HOLD)
                    cid = place_call(caller, callee)
                    time.sleep(HOLD)
                    callee.ring(cid)
                    t180 = sent_at(callee, cid, "180")
                    lost += record(ring, wait_all(watchers, cid, "early", t180), t180)
                    callee.answer(cid)  # at once: Timer C (5 s from the INVITE) is running
                    wait_all(watchers, cid, "confirmed", t180)
                    time.sleep(HOLD)
                    caller.bye(cid)
                    tbye = sent_at(caller, cid, "BYE")
                    lost += record(bye, wait_all(watchers, cid, "terminated", tbye), tbye)
                finally:
                    for w, _ in watchers.values():
                        w.close()
                    caller.close()
                    callee.close()
        finally:
            target.stop()
    return {"ring": ring, "bye": bye, "lost": lost}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="reference,kamailio,kamailio-two")
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    if not 1 <= args.calls <= 200:
        parser.error("--calls is 1..200 (each call takes about 6 s)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-calls-") as tmp:
        for spec in args.targets.split(","):
            started = time.monotonic()
            got = bench(spec, args.calls, Path(tmp) / spec)
            rows.append((spec, got, time.monotonic() - started))
    print(f"\ncall event -> watcher NOTIFY, {args.calls} calls x 2 watchers per target (ms)")
    print(f"{'target':<14} {'180 p50':>9} {'180 p99':>9} {'BYE p50':>9} {'BYE p99':>9} lost  wall")
    for spec, got, wall in rows:
        ring, bye = got["ring"].summary(), got["bye"].summary()  # type: ignore[union-attr]
        print(
            f"{spec:<14} {ring['p50']!s:>9} {ring['p99']!s:>9} {bye['p50']!s:>9} "
            f"{bye['p99']!s:>9} {got['lost']:>4} {wall:5.0f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
