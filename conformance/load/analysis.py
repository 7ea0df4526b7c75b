"""From the load generators' log lines to latency, loss and counts: pure, no I/O.

The SIPp scenarios (sipp_scenarios/load_publish.xml, load_watch.xml) write one line per event
with the host's wall clock (``gettimeofday``), so the publisher's send time and each watcher's
receive time are on one clock. Every PUBLISH body carries a marker (its dialog's call-id,
``load-RUN-STEP-N``) that a NOTIFY body repeats, which ties each NOTIFY to the PUBLISH that
caused it.

Judgement, per watcher (RFC 6665 section 4.2.2 lets a notifier coalesce state changes):
- **latency**: for each marker a watcher sees for the first time, from the PUBLISH being sent
  to the NOTIFY arriving; the watcher's first NOTIFY (the state at subscription) is not timed;
- **skipped** (info): an accepted PUBLISH the watcher never saw although a later one reached it;
- **lost**: a version missing from the watcher's sequence (RFC 4235 versions go up by one per
  NOTIFY of a subscription), or a final view (the last NOTIFY before the unsubscribe) that is
  not the last accepted publication of its presentity;
- **repeats**: a version the watcher already had, in a new NOTIFY (another CSeq): a
  retransmission of the same NOTIFY is counted apart, it is the transport's doing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.load.histogram import Histogram

ALWAYS_COUNTED = (
    "notifies",
    "versions_missing",
    "final_view_wrong",
    "skipped_intermediate",
    "version_repeats",
    "notify_retransmissions",
    "publish_5xx",
    "publish_timeout",
    "subscribe_2xx",
    "subscribe_5xx",
)
"""Counts present in every result (0 when nothing happened), so readers need no defaults."""

KNEE_P99_MS = 1000.0
KNEE_LOSS = 0.001


@dataclass(frozen=True, slots=True)
class Publication:
    presentity: str
    step: int
    n: int
    state: str
    sent: float

    def marker(self, run: str) -> str:
        return f"load-{run}-{self.step}-{self.n}"


@dataclass(frozen=True, slots=True)
class Notification:
    watcher: str
    presentity: str
    cseq: int | None
    version: int | None
    marker: str | None
    state: str | None
    substate: str | None
    received: float


@dataclass
class Logs:
    """What the log lines say, grouped; ``malformed`` counts lines that could not be read."""

    publications: list[Publication] = field(default_factory=list)
    responses: dict[tuple[str, int, int], str] = field(default_factory=dict)
    notifications: dict[str, list[Notification]] = field(default_factory=lambda: defaultdict(list))
    watched: dict[str, str] = field(default_factory=dict)
    """watcher -> presentity, for every watcher that left any trace."""
    subscribe_status: dict[str, str] = field(default_factory=dict)
    unsubscribed: dict[str, float] = field(default_factory=dict)
    etags: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    """presentity -> (step, n, ETag) from each publisher's E line: where the next step goes on."""
    malformed: int = 0


def _num(text: str) -> int:
    return int(float(text))


def _clock(seconds: str, micro: str) -> float:
    return _num(seconds) + _num(micro) / 1e6


def _opt_int(text: str) -> int | None:
    return _num(text) if text and text != "-" else None


def read_logs(lines: Iterable[str], logs: Logs | None = None) -> Logs:
    """Fold publisher and watcher log lines (any order of files, file order kept) into ``logs``.

    A watcher's NOTIFY line has empty fields where its regex found nothing; SIPp then prints
    nothing between the spaces, so fields are split on single spaces, not on runs of them.
    """
    out = logs if logs is not None else Logs()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            continue
        parts = line.split(" ")
        kind = parts[0]
        try:
            if kind == "P" and len(parts) == 7:
                out.publications.append(
                    Publication(
                        parts[1], _num(parts[2]), _num(parts[3]), parts[4], _clock(*parts[5:7])
                    )
                )
            elif kind == "R" and len(parts) == 5:
                out.responses[(parts[1], _num(parts[2]), _num(parts[3]))] = parts[4]
            elif kind == "E" and len(parts) == 5:
                out.etags[parts[1]] = (_num(parts[2]), _num(parts[3]), parts[4])
            elif kind == "S" and len(parts) == 4:
                out.watched[parts[1]] = parts[2]
                out.subscribe_status[parts[1]] = parts[3]
            elif kind == "N" and len(parts) == 10:
                out.watched[parts[1]] = parts[2]
                out.notifications[parts[1]].append(
                    Notification(
                        watcher=parts[1],
                        presentity=parts[2],
                        cseq=_opt_int(parts[3]),
                        version=_opt_int(parts[4]),
                        marker=parts[5] or None,
                        state=parts[6] or None,
                        substate=parts[7] or None,
                        received=_clock(*parts[8:10]),
                    )
                )
            elif kind == "U" and len(parts) == 5:
                out.unsubscribed[parts[1]] = _clock(*parts[3:5])
            else:
                out.malformed += 1
        except ValueError:
            out.malformed += 1
    return out


@dataclass
class StepStats:
    """One rate step: its latencies (by the step of the PUBLISH) and its losses."""

    index: int
    rate: float
    start: float
    seconds: float
    latency: Histogram = field(default_factory=Histogram)
    publications: int = 0
    lost: int = 0
    delivered: int = 0

    @property
    def achieved_rate(self) -> float:
        return self.publications / self.seconds if self.seconds > 0 else 0.0

    @property
    def loss_ratio(self) -> float:
        total = self.delivered + self.lost
        return self.lost / total if total else 0.0

    def knee_reason(self) -> str | None:
        """Why this step is past the knee (p99 over 1 s, loss over 0.1 %), or None."""
        p99 = self.latency.quantile(0.99)
        if p99 is not None and p99 / 1000.0 > KNEE_P99_MS:
            return f"p99 {p99 / 1000.0:.0f} ms > {KNEE_P99_MS:.0f} ms"
        if self.loss_ratio > KNEE_LOSS:
            return f"loss {self.loss_ratio:.2%} > {KNEE_LOSS:.1%}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.index,
            "rate": self.rate,
            "start": round(self.start, 6),
            "seconds": round(self.seconds, 3),
            "publications": self.publications,
            "achieved_rate": round(self.achieved_rate, 2),
            "delivered": self.delivered,
            "lost": self.lost,
            "loss_ratio": round(self.loss_ratio, 6),
            "latency": self.latency.to_json(),
            "latency_ms": self.latency.summary(),
            "knee": self.knee_reason(),
        }


@dataclass(frozen=True, slots=True)
class Step:
    """A planned step: rate R from wall-clock ``start`` for ``seconds``."""

    index: int
    rate: float
    start: float
    seconds: float


@dataclass
class Analysis:
    steps: list[StepStats]
    totals: Counter[str]
    latency: Histogram
    wrong_views: list[dict[str, Any]]

    @property
    def loss_ratio(self) -> float:
        return loss_ratio(self.totals)

    def knee(self) -> dict[str, Any] | None:
        return first_knee(self.steps)


def loss_ratio(totals: Mapping[str, int]) -> float:
    """Lost (versions missing + final views wrong) over what should have arrived."""
    lost = totals.get("versions_missing", 0) + totals.get("final_view_wrong", 0)
    total = totals.get("notifies", 0) + totals.get("versions_missing", 0)
    return lost / total if total else 0.0


def first_knee(steps: Sequence[StepStats]) -> dict[str, Any] | None:
    """The first step past the knee, with the last rate before it (None: no knee)."""
    for i, step in enumerate(steps):
        reason = step.knee_reason()
        if reason is not None:
            return {
                "step": step.index,
                "rate": step.rate,
                "reason": reason,
                "last_good_rate": steps[i - 1].rate if i else None,
            }
    return None


_FAILED = {"412"}  # the publication is gone: the state stays what it was


def analyse(logs: Logs, run: str, steps: Sequence[Step]) -> Analysis:
    """Judge every watcher's NOTIFY sequence against the publications (see the module doc)."""
    # A marker names the step and the count within one presentity's publications, so the same
    # marker text recurs across presentities: the key is the pair.
    by_marker: dict[tuple[str, str], Publication] = {}
    per_presentity: dict[str, list[Publication]] = defaultdict(list)
    for pub in sorted(logs.publications, key=lambda p: p.sent):
        by_marker[(pub.presentity, pub.marker(run))] = pub
        per_presentity[pub.presentity].append(pub)
    stats = [StepStats(s.index, s.rate, s.start, s.seconds) for s in steps]
    index_of = {s.index: i for i, s in enumerate(stats)}
    for pub in logs.publications:
        if pub.step in index_of:
            stats[index_of[pub.step]].publications += 1

    totals: Counter[str] = Counter(dict.fromkeys(ALWAYS_COUNTED, 0))
    for status in logs.responses.values():
        totals[f"publish_{_status_class(status)}"] += 1
    totals["publish_sent"] = len(logs.publications)
    totals["publish_unanswered"] = sum(
        1 for p in logs.publications if (p.presentity, p.step, p.n) not in logs.responses
    )
    totals["watchers"] = len(logs.watched)
    totals["malformed_log_lines"] = logs.malformed
    for status in logs.subscribe_status.values():
        totals[f"subscribe_{_status_class(status)}"] += 1

    latency = Histogram()
    wrong: list[dict[str, Any]] = []
    for watcher, presentity in sorted(logs.watched.items()):
        if logs.subscribe_status.get(watcher, "2xx")[:1] not in ("2",):
            continue
        end = logs.unsubscribed.get(watcher)
        seq = []
        cseqs: set[int] = set()
        for n in logs.notifications.get(watcher, []):
            if end is not None and n.received >= end:
                continue
            if n.cseq is not None and n.cseq in cseqs:
                # The same NOTIFY again: the server retransmitted it (our 200 was late or lost
                # on its socket). SIPp runs the recv's actions again, so it is logged twice.
                totals["notify_retransmissions"] += 1
                continue
            if n.cseq is not None:
                cseqs.add(n.cseq)
            seq.append(n)
        if not seq:
            totals["watchers_without_notify"] += 1
            continue
        totals["notifies"] += len(seq)
        seen: set[str] = set()
        versions: set[int] = set()
        last_version: int | None = None
        for i, note in enumerate(seq):
            step_i = _step_of(presentity, note.marker, by_marker, index_of)
            if note.version is not None:
                if note.version in versions:
                    totals["version_repeats"] += 1
                elif last_version is not None and note.version > last_version + 1:
                    gap = note.version - last_version - 1
                    totals["versions_missing"] += gap
                    if step_i is not None:
                        stats[step_i].lost += gap
                versions.add(note.version)
                last_version = (
                    note.version if last_version is None else max(last_version, note.version)
                )
            else:
                totals["notifies_without_version"] += 1
            if step_i is not None:
                stats[step_i].delivered += 1
            if note.marker is None or note.marker in seen:
                continue
            seen.add(note.marker)
            cause = by_marker.get((presentity, note.marker))
            if i == 0 or cause is None:
                continue  # the state at subscription time, or another run's publication
            delay = max(0, round((note.received - cause.sent) * 1e6))
            latency.record(delay)
            if step_i is not None:
                stats[step_i].latency.record(delay)
        first_seen = seq[0].received
        last = seq[-1]
        accepted = [
            p
            for p in per_presentity.get(presentity, [])
            if logs.responses.get((p.presentity, p.step, p.n), "200") not in _FAILED
            and not logs.responses.get((p.presentity, p.step, p.n), "200").startswith("5")
        ]
        after = [p for p in accepted if p.sent >= first_seen and (end is None or p.sent < end)]
        for pub in after:
            if pub.marker(run) not in seen and pub is not after[-1]:
                totals["skipped_intermediate"] += 1
        if accepted:
            expected = accepted[-1]
            if last.marker != expected.marker(run) or last.state != expected.state:
                totals["final_view_wrong"] += 1
                if len(wrong) < 20:
                    wrong.append(
                        {
                            "watcher": watcher,
                            "presentity": presentity,
                            "expected": f"{expected.marker(run)} {expected.state}",
                            "seen": f"{last.marker or '-'} {last.state or '-'}",
                            "version": last.version,
                        }
                    )
    return Analysis(steps=stats, totals=totals, latency=latency, wrong_views=wrong)


def _status_class(status: str) -> str:
    if status == "timeout":
        return "timeout"
    if status.isdigit() and len(status) == 3:
        return f"{status[0]}xx"
    return "other"


def _step_of(
    presentity: str,
    marker: str | None,
    by_marker: dict[tuple[str, str], Publication],
    index_of: dict[int, int],
) -> int | None:
    pub = by_marker.get((presentity, marker)) if marker else None
    return index_of.get(pub.step) if pub is not None else None


def plan_steps(
    *,
    start: float,
    rate_start: float,
    rate_step: float,
    step_seconds: float,
    rate_max: float,
    max_seconds: float,
) -> list[Step]:
    """The rates ``--step`` will try: from ``rate_start`` up by ``rate_step`` every
    ``step_seconds``, never above ``rate_max``, the whole within ``max_seconds``."""
    steps: list[Step] = []
    rate = rate_start
    t = 0.0
    while rate <= rate_max + 1e-9 and t + step_seconds <= max_seconds + 1e-9:
        steps.append(Step(len(steps), rate, start + t, step_seconds))
        rate += rate_step
        t += step_seconds
        if rate_step <= 0:
            break
    return steps
