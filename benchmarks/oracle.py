"""How fast the oracle is: body validation and aggregation.

Targets (not asserted; the figures are printed for the lead and the CI log):
  * ``schema.check`` on a three-dialog body: >= 5,000 bodies/s;
  * ``aggregator.aggregate`` over 1000 publications: < 50 ms.

Aggregation is timed three ways: "cold" parses every body (distinct bodies, a cleared cache:
the worst case, never met by a server, which aggregates after each PUBLISH); "new1" adds one
new publication to n-1 already-parsed ones (what a PUBLISH-triggered NOTIFY costs); "warm"
re-aggregates stored bodies (refresh or SUBSCRIBE NOTIFYs), since parsed bodies are cached by
their bytes. "single" is warm single-dialog mode with Kamailio's rules.

Run: ``python benchmarks/oracle.py`` from the checkout.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from conformance.oracle import aggregator, schema
from conformance.oracle import dialoginfo as di
from conformance.oracle.aggregator import Publication

ENTITY = "sip:alice@example.com"


def three_dialog_body() -> bytes:
    dialogs = [
        di.dialog(
            f"d{n}",
            state,
            direction="initiator",
            call_id=f"call-{n}@example.com",
            local_tag=f"lt{n}",
            remote_tag=f"rt{n}",
            extra=(
                "<local><identity display='Alice'>sip:alice@example.com</identity>"
                "<target uri='sip:alice@192.0.2.1'/></local>"
                f"<remote><identity>sip:bob{n}@example.com</identity></remote>"
            ),
        )
        for n, state in enumerate(("early", "confirmed", "terminated"))
    ]
    return di.document(ENTITY, dialogs, version=3)


def publications(count: int, tag: str) -> list[Publication]:
    states = ("trying", "proceeding", "early", "confirmed", "terminated")
    return [
        Publication(
            body=di.document(
                f"sip:epa{n}@example.com",
                [di.dialog(f"{tag}-{n}", states[n % len(states)], direction="recipient")],
                version=n,
            ),
            etag=f"etag-{n}",
            received=float(n),
            expires=1e9,
            seq=n,
        )
        for n in range(count)
    ]


def best_of(runs: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_validation() -> None:
    body = three_dialog_body()
    findings = schema.check(body)  # warm the compiled schemas; also a sanity look
    failed = [f for f in findings if not f.passed]
    rounds = 2000
    elapsed = best_of(3, lambda: [schema.check(body) for _ in range(rounds)])
    print(f"schema.check, 3-dialog body ({len(body)} bytes): {rounds / elapsed:,.0f} bodies/s")
    if failed:
        print(f"  note: the sample body drew {len(failed)} failed findings: {failed[0]}")


def bench_aggregation() -> None:
    print("aggregate (default mode / single-dialog kamailio), milliseconds:")
    print(f"  {'publications':>12} {'cold':>9} {'new1':>9} {'warm':>9} {'single':>9}")
    for count in (1, 10, 100, 1000):
        cold_times = []
        for attempt in range(3):
            items = publications(count, f"c{attempt}")
            aggregator._parse.cache_clear()
            start = time.perf_counter()
            aggregator.aggregate(items, presentity=ENTITY, now=0.0)
            cold_times.append(time.perf_counter() - start)
        items = publications(count, "w")
        aggregator.aggregate(items, presentity=ENTITY, now=0.0)
        new1_times = []
        for attempt in range(5):
            fresh = publications(1, f"n{attempt}")[0]
            latest = Publication(fresh.body, "new", float(count), 1e9, count)
            start = time.perf_counter()
            aggregator.aggregate([*items[1:], latest], presentity=ENTITY, now=0.0)
            new1_times.append(time.perf_counter() - start)
        warm = best_of(
            5, lambda items=items: aggregator.aggregate(items, presentity=ENTITY, now=0.0)
        )
        single = best_of(
            5,
            lambda items=items: aggregator.aggregate(
                items, presentity=ENTITY, now=0.0, single_dialog=True, flavour="kamailio"
            ),
        )
        print(
            f"  {count:>12} {statistics.median(cold_times) * 1e3:>9.2f}"
            f" {statistics.median(new1_times) * 1e3:>9.2f} {warm * 1e3:>9.2f} {single * 1e3:>9.2f}"
        )


def main() -> None:
    bench_validation()
    bench_aggregation()


if __name__ == "__main__":
    main()
