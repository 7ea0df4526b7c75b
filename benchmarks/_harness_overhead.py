"""What the harness costs on top of SIPp: ``suite_speed.py --harness``.

One worker against one Kamailio shared by the run: the cases' own time minus the waits their
rules impose (``waited``) and the bounds a deviating server let run out (``timed_out``), divided
by the same SIPp invocations run bare from a script (benchmarks/sipp_bare.py's measurements).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from _kamailio import kamailio, run_suite
from sipp_bare import bare_publish, bare_watch

from conformance.oracle.dialoginfo import dialog, document


def invocations(results: dict) -> tuple[int, int]:
    """SIPp processes the run started: one per PUBLISH/raw request, one per watcher."""
    publishes = watchers = 0
    for case in results["cases"]:
        sent = [m for m in case.get("messages", []) if m["direction"] == "sent"]
        publishes += sum(1 for m in sent if m["party"] == "publisher")
        watchers += len({m["party"] for m in sent if m["party"].startswith("watcher")})
    return publishes, watchers


def harness_overhead(mode: str, samples: int = 20) -> int:
    with tempfile.TemporaryDirectory() as tmp, kamailio(mode) as target:
        work = Path(tmp)
        wall1, res1 = run_suite(target, "1", work / "n1")
        cases = [c for c in res1["cases"] if c.get("outcome") != "skipped"]
        own = sum(c.get("duration") or 0 for c in cases)
        waited = sum(c.get("waited") or 0 for c in cases)
        timed_out = sum(c.get("timed_out") or 0 for c in cases)
        busy = own - waited - timed_out
        pubs, watchers = invocations(res1)
        from conformance.harness.ports import reserve_block

        server = (target.host, target.port)
        body = document("sip:bare@127.0.0.1", [dialog("b", "confirmed")])
        with reserve_block(31) as block:
            pub = statistics.median(
                bare_publish(server, block, work / "bare", body, i) for i in range(samples)
            )
            watch = statistics.median(
                bare_watch(server, block, work / f"w{i}", f"bw{i}") for i in range(samples)
            )
        bare = pubs * pub + watchers * watch
        print(f"target: Kamailio 5.6.3, {mode} mode (external, shared by one worker)")
        print(f"cases run: {len(cases)} ({len(res1['cases'])} collected)")
        print(f"wall time -n 1:    {wall1:6.1f} s")
        print(
            f"case time {own:.1f} s, of which waits the rules impose {waited:.1f} s and "
            f"bounds run out on deviations {timed_out:.1f} s"
        )
        print(
            f"SIPp invocations: {pubs} one-shot requests, {watchers} watchers; bare: "
            f"{pub * 1000:.1f} ms per request, {watch * 1000:.1f} ms per watcher start"
        )
        print(
            f"harness overhead: {busy / bare:.2f}x the bare SIPp invocations "
            f"({busy:.1f} s vs {bare:.1f} s)"
        )
    return 0
