"""The explorer's runner (issue 13): generated sequences against a live server, every NOTIFY
judged, failures shrunk to a replayable reproducer.

A run is several *lanes* run concurrently, each an ``Executor`` of its own (own publishers,
watchers, presentities, and its own sequence drawn from ``lane_seed(seed, k)``). Lanes share
no presentity, so they cannot disturb each other's histories, and one lane waiting out an
expiry does not stall the others: that is how the explorer reaches its step rate against a
server with whole-second timers. A failure belongs to one lane and is shrunk on that lane's
sequence alone.

Judging reuses the suite's own functions: every subscription goes through
``case.judge_subscription`` (``checks.check_notify`` on every NOTIFY, ``checks.check_sequence``,
and ``oracle.history.check`` with the stimuli of its presentity), the steps' response rules
add C03 findings (a valid initial PUBLISH not accepted; no answer; a server that stopped
answering the liveness OPTIONS after a step), and ``verdicts.judge`` applies the profile's
declared deviations by observation (the ``explore`` case id and the wildcards, none of them
required to happen: a random run need not meet every declared behaviour). A presentity whose
findings a declared deviation excused is retired from the rest of its lane (checked every
``JUDGE_EVERY`` steps).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from conformance.case import QUIET_WINDOW, captured, evidence_json, judge_subscription
from conformance.errors import BodyError, HarnessError
from conformance.explore import ops as ops_mod
from conformance.explore.execute import Executor, StepRecord, Subscribed, Taint
from conformance.explore.ops import Limits, Op
from conformance.explore.shrink import shrink
from conformance.harness.ports import PortBlock
from conformance.oracle import aggregator, checks, dialoginfo, history
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import Level
from conformance.oracle.verdicts import Deviation, judge
from conformance.targets.base import Target
from conformance.targets.probe import probe
from conformance.targets.profile import Profile

CASE_ID = "explore"
"""The case id profiles declare the explorer's deviations under (``[deviations.explore]``)."""
JUDGE_EVERY = 50
"""Steps of a lane between two intermediate judgements (retiring corrupted presentities)."""


def lane_seed(seed: int, lane: int) -> int:
    """The seed of one lane's sequence: a function of the run's seed and the lane number."""
    return seed * 1009 + lane


def limits_for(profile: Profile, *, presentities: int = 2) -> Limits:
    """The generator's limits for a target: behaviour its profile declares is kept out.

    Kamailio (flavour ``kamailio``): prefixed-namespace bodies (it rewrites them into broken
    XML) and root extension elements are never generated (``drop``), invalid bodies neither
    (it stores non-XML bodies and sends them on, declared as C10/A02), no modify, refresh
    or expire of an all-terminated publication (it skips the update, declared as C15, C14
    and C13), no dialog id reused across publications (no de-duplication, declared A19; and
    a reused first id replaces the publication, the replaces_on_same_first_id fact), no
    second SIP-If-Match (declared C12), no Accept without dialog-info (declared B15/B14)."""
    if profile.flavour == "kamailio":
        return Limits(
            presentities=presentities,
            invalid_ratio=0.0,
            drop=("style", "root-extensions"),
            update_terminated=False,
            reuse_ids=0.0,
            nemeses=("answer-481", "answer-489", "stop-answering", "unknown-etag", "wrong-event"),
            short_expires=2,
        )
    return Limits(presentities=presentities)


class ExploreDeviations:
    """The profile as the judge reads it for the explorer: its ``explore`` deviations and
    wildcards excuse findings by observation; none is required to happen."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    @property
    def claims_presence_dialoginfo(self) -> bool:
        return self.profile.claims_presence_dialoginfo

    def deviations_for(self, case_id: str, variant: str | None) -> tuple[Deviation, ...]:
        return ()

    def wildcard_deviations(self) -> tuple[Deviation, ...]:
        return (*self.profile.deviations_for(CASE_ID), *self.profile.wildcard_deviations())


@dataclass
class Judged:
    """One lane's judged findings: each with its verdict, excuse and presentity."""

    rows: list[tuple[Finding, Verdict, Deviation | None, int | None]] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[Finding, int | None]]:
        return [(f, p) for f, v, _, p in self.rows if v is Verdict.FAIL]

    @property
    def known(self) -> list[tuple[Finding, Deviation, int | None]]:
        return [(f, d, p) for f, v, d, p in self.rows if v is Verdict.KNOWN and d is not None]


def shape(finding: Finding) -> str:
    """A failure's shape for de-duplication: the kind of step its contradicted stimulus came
    from (``history``), or the finding's source."""
    stimulus = finding.evidence.get("stimulus") if finding.evidence else None
    if isinstance(stimulus, str) and "(" in stimulus:
        return stimulus.rsplit("(", 1)[1].rstrip(")")
    if finding.evidence.get("step_kind"):
        return str(finding.evidence["step_kind"])
    return "notify"


def judge_executor(ex: Executor, profile: Profile, *, strict: bool, end: float) -> Judged:
    """Every subscription of ``ex`` and every step's response findings, judged."""
    rules = history.Rules.from_profile(profile)
    tagged: list[tuple[Finding, int | None]] = []
    for sub in ex.subscriptions:
        found = judge_subscription(
            sub.watcher.notifies,
            sub.ctx,
            ex.stimuli.get(sub.presentity, ()),
            rules,
            # A subscription let expire is over by then, with or without its NOTIFY (a silent
            # end is B23's failure alone, not a stale table as well).
            end=min(end, sub.expires_at or end),
            paused=sub.paused,
            terminated=True,
        )
        seen = captured(sub.watcher.notifies, sub.paused)
        found += checks.check_subscription_end(
            seen, unsubscribed=sub.unsubscribed, expired=sub.expires_at
        )
        found = [relayed(f, ex.tainted.get(sub.presentity, ())) for f in found]
        # A30 is the server's own pacing: no body the publisher sent excuses it.
        owed = checks.owed_notifies(m for m in sub.watcher.messages if not m.retransmission)
        changes = checks.state_change_times(seen, owed)
        found.append(checks.check_rate(changes, allowance=checks.RATE_ALLOWANCE))
        tagged += [(f, sub.presentity) for f in found]
    for pres, firsts in first_versions(ex.subscriptions).items():
        tagged += [(f, pres) for f in checks.check_scoped_versions(firsts)]
    for r in ex.records:
        for rid, message in r.status_findings:
            f = Finding(
                rid,
                False,
                message,
                observed=message.split(": ", 1)[-1],
                evidence={"step": r.index, "step_kind": r.op.kind},
            )
            tagged.append((f, ex.presentity_of(r.op)))
        tagged += [(f, ex.presentity_of(r.op)) for f in r.response_findings]
    verdicts = judge(
        [f for f, _ in tagged], profile=ExploreDeviations(profile), case_id=CASE_ID, strict=strict
    )
    out = Judged()
    for (f, verdict, excuse), (_, presentity) in zip(verdicts.findings, tagged, strict=True):
        out.rows.append((f, verdict, excuse, presentity))
    return out


def first_versions(subscriptions: Sequence[Subscribed]) -> dict[int, list[tuple[str, int]]]:
    """Per presentity, (handle, version) of each subscription whose first NOTIFY carried a
    document with a readable version (A10 compares them)."""
    out: dict[int, list[tuple[str, int]]] = {}
    for sub in subscriptions:
        if not sub.watcher.notifies or not sub.watcher.notifies[0].body.strip():
            continue
        try:
            version = dialoginfo.parse(sub.watcher.notifies[0].body).version_number()
        except BodyError:
            continue
        if version is not None:
            out.setdefault(sub.presentity, []).append((sub.handle, version))
    return out


def relayed(finding: Finding, taints: Sequence[Taint]) -> Finding:
    """A body rule (group A) broken by a NOTIFY that arrived while an invalid body the server
    accepted for its presentity was live (``Taint.covers`` its ``at``) informs only: the NOTIFY
    relays what the publisher sent. The history check's findings (the state, not the body)
    and a finding without its NOTIFY's time keep their level."""
    if finding.passed or not finding.requirement.startswith("A") or "stimulus" in finding.evidence:
        return finding
    at = finding.evidence.get("at")
    taint = next((t for t in taints if isinstance(at, float) and t.covers(at)), None)
    if taint is None:
        return finding
    return dataclasses.replace(
        finding,
        level=Level.INFO,
        message=f"{finding.message} (relays the invalid body accepted at step {taint.step})",
    )


@dataclass
class LaneResult:
    lane: int
    seed: int
    ops: list[Op]
    records: list[StepRecord]
    judged: Judged
    wall: float
    retired: set[int]
    evidence: dict[str, list[dict[str, Any]]] | None = None
    """Traced messages and NOTIFYs (``case.evidence_json``), the offending NOTIFYs marked;
    kept only when the run asked for it (a reproducer's confirming run)."""


_AT = re.compile(r"\(at (\d+\.\d+)\)")


def lane_evidence(
    ex: Executor, failures: Sequence[Finding], profile: Profile
) -> dict[str, list[dict[str, Any]]]:
    """What a reproducer's ladder shows: every PUBLISH transaction and every watcher's trace,
    each NOTIFY that ``failures`` blame marked ``offending``: the one a history finding names by
    its time, or one whose own checks (``checks.check_notify``) break the failed rule."""
    watched = [
        (f"watcher-{n}", sub.watcher.messages, sub.watcher.notifies)
        for n, sub in enumerate(ex.subscriptions, 1)
    ]
    out = evidence_json(ex.exchanges, watched)
    times = [float(m.group(1)) for f in failures if (m := _AT.search(f.message))]
    rids = {f.requirement for f in failures}
    blamed: set[tuple[str, float]] = set()
    for n, sub in enumerate(ex.subscriptions, 1):
        for c in captured(sub.watcher.notifies, sub.paused):
            if any(abs(c.timestamp - t) < 0.0015 for t in times) or any(
                not f.passed and f.requirement in rids for f in checks.check_notify(c, sub.ctx)
            ):
                blamed.add((f"watcher-{n}", c.timestamp))
    rules = history.Rules.from_profile(profile)
    for notify, sub in zip(
        out["notifies"],
        [s for s in ex.subscriptions for _ in s.watcher.notifies],
        strict=False,
    ):
        notify["offending"] = (notify["party"], notify["timestamp"]) in blamed
        if notify["offending"]:
            stimuli = ex.stimuli.get(sub.presentity, ())
            at, version = cast(float, notify["timestamp"]), str(notify["version"] or 0)
            notify["expected"] = expected_document(stimuli, sub.ctx.presentity, at, rules, version)
    return out


def expected_document(
    stimuli: Sequence[history.Stimulus],
    presentity: str,
    at: float,
    rules: history.Rules,
    version: int | str,
) -> str:
    """The oracle's document for a NOTIFY at ``at``: every PUBLISH answered by then folded
    into the store (``history.fold``, in the order sent) and aggregated for the profile's mode
    and flavour, with the NOTIFY's own version. What the report sets beside the offending one
    (the history check itself also weighs the stimuli still in flight)."""
    store: tuple[aggregator.Publication, ...] = ()
    done = sorted(
        (s for s in stimuli if s.answered is not None and s.answered <= at), key=lambda s: s.sent
    )
    for seq, stimulus in enumerate(done):
        store = history.fold(
            store,
            stimulus,
            received=float(seq),
            seq=seq,
            replaces_on_same_first_id=rules.replaces_on_same_first_id,
            flavour=rules.flavour,
        )
    agg = aggregator.aggregate(
        store, presentity=presentity, now=0.0, single_dialog=rules.single_dialog,
        flavour=rules.flavour,
    )  # fmt: skip
    return agg.body(version).decode("utf-8", "replace")


class LockedBlock:
    """A ``PortBlock`` shared by the lanes' threads: one port hand-out at a time."""

    def __init__(self, block: PortBlock) -> None:
        self._block = block
        self._lock = threading.Lock()

    def take(self, count: int = 1, *, host: str = "127.0.0.1") -> list[int]:
        with self._lock:
            return self._block.take(count, host=host)

    def take_one(self, *, host: str = "127.0.0.1") -> int:
        with self._lock:
            return self._block.take_one(host=host)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._block, name)


@dataclass
class Explorer:
    """Runs lanes against one started ``target``; ``restart`` brings it back after a crash."""

    target: Target
    profile: Profile
    block: PortBlock | LockedBlock
    workdir: Path
    timeout: float = 5.0
    strict: bool = False
    limits: Limits | None = None
    restart: Callable[[], None] | None = None
    log: Callable[[str], None] = lambda _line: None
    _runs: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not isinstance(self.block, LockedBlock):
            self.block = LockedBlock(self.block)
        if self.limits is None:
            self.limits = limits_for(self.profile)

    def _run_id(self) -> str:
        with self._lock:
            self._runs += 1
            return f"{int(time.time() * 1000) % 10**8:x}{self._runs}"

    def run_lane(
        self,
        ops: Iterable[Op],
        *,
        lane: int = 0,
        seed: int = 0,
        deadline: float | None = None,
        steps: int | None = None,
        capture: str | None = None,
    ) -> LaneResult:
        """Run one lane's operations (until ``steps`` ran or ``deadline`` passed), then judge
        every NOTIFY of every subscription, then clean up (remove every publication, end every
        subscription, reap every SIPp)."""
        self.ensure_alive()
        profile = self.profile
        started = time.monotonic()
        ex = Executor(
            server=(self.target.host, self.target.port),
            domain=self.target.domain,
            block=self.block,  # type: ignore[arg-type]
            workdir=self.workdir / f"lane{lane}-{self._run_id()}",
            run_id=self._run_id(),
            publishers=max(2, self.limits.publishers if self.limits else 2),
            expiry_wait=profile.expiry_timer + profile.expiry_slack + 0.5,
            timeout=self.timeout,
            rfc=profile.rfc,
            entity_rebuilt=profile.entity_rebuilt,
        )
        done: list[Op] = []
        with ex:
            for op in ops:
                if steps is not None and len(done) >= steps:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                done.append(op)
                try:
                    ex.step(op)
                except HarnessError as exc:  # a peer broke: the server's fault or ours
                    ex.records[-1].findings.append(f"harness: {exc.message}")
                    ex.records[-1].status_findings.append(
                        ("C03", f"step {len(done)} {op.kind}: the exchange broke: {exc.message}")
                    )
                    break
                if any("stopped answering" in m for _, m in ex.records[-1].status_findings):
                    ex.liveness = False  # the finding names the step; the lane ends here
                    break
                if len(done) % JUDGE_EVERY == 0:
                    self._retire(ex)
            ex.wait_for_expiries()
            time.sleep(max(QUIET_WINDOW, profile.settle_time))
            judged = judge_executor(ex, profile, strict=self.strict, end=time.time())
            retired = set(ex.retired)
            evidence = None
            if capture is not None:
                blamed = [f for f, _ in judged.failures if f.requirement == capture]
                evidence = lane_evidence(ex, blamed, profile)
        return LaneResult(
            lane, seed, done, ex.records, judged, time.monotonic() - started, retired, evidence
        )

    def _retire(self, ex: Executor) -> None:
        """Judge so far; a presentity with a finding a declared deviation excused is retired."""
        judged = judge_executor(ex, self.profile, strict=self.strict, end=time.time())
        for f, d, presentity in judged.known:
            # Only a deviation in the state (the history's findings) corrupts a presentity; a
            # cosmetic one (a version number, a header) leaves it usable.
            if presentity is not None and presentity not in ex.retired and "stimulus" in f.evidence:
                ex.retired.add(presentity)
                self.log(f"  presentity {presentity} retired: {d.requirement} {d.reason[:80]}")

    def ensure_alive(self) -> None:
        """Before a lane (a shrink candidate too): a server that died or stopped answering is
        restarted (when the explorer launched it), so every run starts from a live server and a
        shrunk crash reproducer is minimal for a fresh one."""
        if self.restart is None:
            return
        if self.target.alive() and probe(self.target.host, self.target.port).response:
            return
        with self._lock:
            self.target.stop()
            self.restart()

    def run(
        self,
        seed: int,
        *,
        lanes: int,
        steps: int | None = None,
        budget: float | None = None,
        concurrency: int | None = None,
    ) -> list[LaneResult]:
        """``lanes`` lanes, ``concurrency`` at a time (default: all at once): ``steps`` in all
        split over the lanes, or each lane until ``budget`` seconds have passed."""
        deadline = time.monotonic() + budget if budget is not None else None
        results: list[LaneResult | BaseException | None] = [None] * lanes
        todo = iter(range(lanes))
        pick = threading.Lock()

        def worker() -> None:
            while True:
                with pick:
                    k = next(todo, None)
                if k is None:
                    return
                share = None if steps is None else steps // lanes + (1 if k < steps % lanes else 0)
                s = lane_seed(seed, k)
                try:
                    results[k] = self.run_lane(
                        ops_mod.stream(s, self.limits),
                        lane=k,
                        seed=s,
                        deadline=deadline,
                        steps=share,
                    )
                except BaseException as exc:  # re-raised in the caller's thread
                    results[k] = exc

        threads = [
            threading.Thread(target=worker, daemon=True)
            for _ in range(min(lanes, concurrency or lanes))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out: list[LaneResult] = []
        for r in results:
            if isinstance(r, BaseException):
                raise r
            assert r is not None
            out.append(r)
        return out

    def fails(self, requirement: str) -> Callable[[Sequence[Op]], bool]:
        """The shrinker's predicate: the sequence, run alone, fails ``requirement``."""

        def predicate(candidate: Sequence[Op]) -> bool:
            result = self.run_lane(list(candidate))
            return any(f.requirement == requirement for f, _ in result.judged.failures)

        return predicate

    def shrink(
        self, lane: LaneResult, requirement: str, *, budget: float
    ) -> tuple[list[Op], bool, int]:
        """The lane's sequence shrunk to a small one that still fails ``requirement``, and
        whether a re-run of it confirmed the failure. Returns (ops, confirmed, runs)."""
        small, confirmed, runs, _ = self.shrink_confirmed(lane, requirement, budget=budget)
        return small, confirmed, runs

    def shrink_confirmed(
        self, lane: LaneResult, requirement: str, *, budget: float
    ) -> tuple[list[Op], bool, int, LaneResult | None]:
        """``shrink``, plus the confirming re-run (its evidence captured for the report's
        ladder; None when nothing confirmed)."""
        deadline = time.monotonic() + budget
        predicate = self.fails(requirement)
        ops = list(lane.ops)
        # The steps after a failure showed cannot have caused it: first try a prefix (a run
        # or two instead of ddmin's halvings over the whole lane): through the step the
        # earliest failure names (a stale table at the subscription's end shows there too),
        # else through the step whose NOTIFY showed it (a stimulus before the subscribe).
        hits = [f for f, _ in lane.judged.failures if f.requirement == requirement]
        cuts = {min((step_of(f, lane) for f in hits), default=len(ops))}
        cuts.add(min((shown_by(f, lane) for f in hits), default=len(ops)))
        seen = False
        for cut in sorted(c for c in cuts if c < len(ops)):
            if predicate(ops[:cut]):
                ops, seen = ops[:cut], True
                break
        try:
            shrunk = shrink(
                ops,
                predicate,
                max_tests=400,
                out_of_time=lambda: time.monotonic() > deadline,
                seen_failing=seen,
            )
        except ValueError:  # the failure did not show again on a lone re-run: timing
            return list(lane.ops), False, 1, None
        if not shrunk.ops:
            return [], False, shrunk.tests, None
        rerun = self.run_lane(list(shrunk.ops), capture=requirement)
        confirmed = any(f.requirement == requirement for f, _ in rerun.judged.failures)
        return list(shrunk.ops), confirmed, shrunk.tests + 1, rerun if confirmed else None


@dataclass(frozen=True)
class Reproducer:
    """One distinct failure, shrunk, re-run and written as a regression file."""

    requirement: str
    shape: str
    hits: int
    message: str
    lane: LaneResult
    ops: list[Op]
    confirmed: bool
    runs: int
    path: Path
    rerun: LaneResult | None = None
    """The confirming re-run of ``ops``, its messages captured (the report's ladder)."""


def reproduce(
    explorer: Explorer,
    results: Sequence[LaneResult],
    directory: Path,
    *,
    budget: float,
    meta: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda _line: None,
) -> list[Reproducer]:
    """Every distinct failure of ``results`` shrunk (sharing ``budget`` seconds), confirmed by
    a re-run, and written to ``directory`` as ``<id>-<shape>.json`` (``explore --replay``)."""
    from conformance.explore import replay

    deadline = time.monotonic() + budget
    out = []
    # The most frequent failure first (the one a fault shows most is its main symptom), each
    # with a fair share of what is left: the first no longer spends the whole budget while
    # the rest stay unshrunk and unconfirmed; time a quick one leaves goes to the next.
    # One reproducer per requirement, named after its most frequent shape: the shrinker's
    # predicate is "fails this requirement", so another shape of it would shrink to the same
    # kind of sequence for another share of the budget (the summary still counts each shape).
    by_rid: dict[str, tuple[str, list[tuple[int, Finding]]]] = {}
    for (rid, sh), hits in sorted(distinct(results).items(), key=lambda i: (-len(i[1]), i[0])):
        if rid in by_rid:
            log(f"explore: {rid} ({sh}): the {rid} ({by_rid[rid][0]}) reproducer covers it")
            by_rid[rid][1].extend(hits)
        else:
            by_rid[rid] = (sh, list(hits))
    found = sorted(
        (((rid, sh), hits) for rid, (sh, hits) in by_rid.items()),
        key=lambda item: (-len(item[1]), item[0]),
    )
    lanes = {r.lane: r for r in results}
    for n, ((rid, sh), hits) in enumerate(found):
        # The hit that showed at the earliest step: the shortest prefix to shrink from.
        first, _ = min(hits, key=lambda h: shown_by(h[1], lanes[h[0]]))
        lane = lanes[first]
        left = (deadline - time.monotonic()) / (len(found) - n)
        rerun: LaneResult | None = None
        if left > 0:
            small, confirmed, runs, rerun = explorer.shrink_confirmed(lane, rid, budget=left)
        else:
            log(f"explore: shrink budget spent; {rid}/{sh} kept unshrunk")
            small, confirmed, runs = list(lane.ops), False, 0
        info = {
            **(meta or {}),
            "requirement": rid,
            "shape": sh,
            "confirmed": confirmed,
            "finding": hits[0][1].message,
            "lane": lane.lane,
            "expect_failures": [rid],
        }
        path = replay.write(
            directory / f"{rid}-{sh}.json",
            replay.Replay(tuple(small), lane.seed, explorer.limits or Limits(), info),
        )
        log(
            f"explore: {rid} ({sh}) shrunk from {len(lane.ops)} to {len(small)} step(s) in "
            f"{runs} run(s), {'confirmed' if confirmed else 'NOT confirmed'}: {path}"
        )
        out.append(
            Reproducer(
                rid, sh, len(hits), hits[0][1].message, lane, small, confirmed, runs, path, rerun
            )
        )
    return out


def failure_step(finding: Finding, records: Sequence[StepRecord] = ()) -> int | None:
    """The lane step a failure names: its contradicted stimulus's (``... at step N``), or the
    step whose response broke the rule; else, with the lane's ``records``, the step during
    which the NOTIFY it judges arrived (``(at T)``: "no single stimulus" names none, and
    shrinking then started from the whole lane). None when it names none."""
    stimulus = str(finding.evidence.get("stimulus") or "")
    match = re.search(r"at step (\d+)", stimulus)
    if match:
        return int(match.group(1))
    step = finding.evidence.get("step")
    if isinstance(step, int):
        return step
    return _observed_in(finding, records)


def _observed_in(finding: Finding, records: Sequence[StepRecord]) -> int | None:
    """The step during which the NOTIFY a failure judges arrived (``(at T)`` in its message,
    or ``at`` in its evidence); None when it names no time."""
    at = _AT.search(finding.message)
    when = finding.evidence.get("at")
    if at is not None:
        when = float(at.group(1))
    if not isinstance(when, float) or not records:
        return None
    started = sum(1 for r in records if r.started_at and r.started_at <= when)
    return started or None


def step_of(finding: Finding, lane: LaneResult) -> int:
    """The lane step a failure names (``failure_step``); the lane's length when none."""
    step = failure_step(finding, lane.records)
    return len(lane.ops) if step is None else step


def shown_by(finding: Finding, lane: LaneResult) -> int:
    """The lane step by which a failure showed: its named step, or later the step of the
    NOTIFY that showed it (a stale table shows after the stimulus it contradicts). The
    shrinker's first cut: the steps after it cannot have caused the failure."""
    observed = _observed_in(finding, lane.records)
    return max(step_of(finding, lane), observed or 0)


def distinct(results: Sequence[LaneResult]) -> dict[tuple[str, str], list[tuple[int, Finding]]]:
    """Failures de-duplicated by requirement and shape: (rid, shape) -> (lane, finding)s."""
    out: dict[tuple[str, str], list[tuple[int, Finding]]] = {}
    for r in results:
        for f, _ in r.judged.failures:
            out.setdefault((f.requirement, shape(f)), []).append((r.lane, f))
    return out


def summary(results: Sequence[LaneResult], wall: float) -> dict[str, Any]:
    steps = sum(len(r.records) for r in results)
    return {
        "steps": steps,
        "steps_run": sum(1 for r in results for s in r.records if s.skipped is None),
        "wall_seconds": round(wall, 2),
        "steps_per_second": round(steps / wall, 2) if wall > 0 else 0.0,
        "notifies": sum(s.notifies for r in results for s in r.records),
        "failures": sum(len(r.judged.failures) for r in results),
        "known": sum(len(r.judged.known) for r in results),
        "distinct_failures": [
            {"requirement": rid, "shape": sh, "count": len(v)}
            for (rid, sh), v in sorted(distinct(results).items())
        ],
        "retired": sum(len(r.retired) for r in results),
    }


@contextlib.contextmanager
def started(target: Target) -> Iterator[Target]:
    target.start()
    try:
        yield target
    finally:
        target.stop()


__all__ = [
    "CASE_ID",
    "ExploreDeviations",
    "Explorer",
    "Judged",
    "LaneResult",
    "LockedBlock",
    "Reproducer",
    "distinct",
    "failure_step",
    "judge_executor",
    "lane_evidence",
    "lane_seed",
    "limits_for",
    "reproduce",
    "shape",
    "started",
    "step_of",
    "summary",
]
