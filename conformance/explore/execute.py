"""Run an operation sequence against a live server through real SIPp peers (a first executor).

Groundwork for the explorer's runner (issue 13), kept apart from judging: it maps each
``ops.Op`` to SIP traffic (PUBLISH and fetch through ``LivePeer``s, subscriptions through
``Watcher``s), awaits what the step owes (its final response; after a PUBLISH, one NOTIFY per
active watcher of that presentity, bounded), and records per step what happened. The checks it
makes are only the ones that need no model: every NOTIFY body through the schema oracle
(binding failures), and liveness (an OPTIONS answered after every step). The history checker
of the "every NOTIFY judged at its moment" issue is meant to replace the per-NOTIFY check.

At the end every publication it made is removed and every subscription ended (``close``), so
a shared server keeps nothing from it; every SIPp it started is reaped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conformance.errors import HarnessError, NotReceivedError
from conformance.explore import bodies
from conformance.explore.ops import (
    BodySpec,
    Expire,
    ExpireSub,
    Fetch,
    Modify,
    Nemesis,
    Op,
    Publish,
    Refresh,
    RefreshSub,
    Remove,
    Subscribe,
    Unsubscribe,
)
from conformance.harness.live_publisher import LivePeer
from conformance.harness.peers import PublishResult, Watcher
from conformance.harness.ports import PortBlock
from conformance.oracle import checks, schema
from conformance.oracle.dialoginfo import CONTENT_TYPE
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.history import Kind, Stimulus
from conformance.sip.message import Response, Stamped

NOTIFY_WAIT = 0.5
"""Seconds a PUBLISH step waits for each active watcher of its presentity to be notified."""


@dataclass
class StepRecord:
    """What one step did on the wire and what the model-free checks saw."""

    index: int
    op: Op
    seconds: float = 0.0
    statuses: list[int] = field(default_factory=list)
    notifies: int = 0
    findings: list[str] = field(default_factory=list)
    """Binding schema failures of NOTIFYs that arrived during the step, and liveness."""
    skipped: str | None = None
    """Why the step sent nothing (its publication was never created, for instance)."""
    started_at: float = 0.0
    """Wall-clock time the step started (the SIPp traces' clock)."""
    status_findings: list[tuple[str, str]] = field(default_factory=list)
    """(requirement, message) of response rules the step broke (a valid initial PUBLISH not
    accepted: C03; no answer, or no answer to the liveness OPTIONS after it)."""
    response_findings: list[Finding] = field(default_factory=list)
    """The suite's own response checks where a step has one (``check_subscribe_response``)."""


@dataclass
class _Publication:
    presentity: int
    publisher: int
    etag: str
    lives_until: float = math.inf
    """When the Expires of its last 2xx runs out (wall clock): before then, that 2xx's
    SIP-ETag must still name it (C14)."""


@dataclass
class Taint:
    """An invalid body the server accepted (2xx) for a presentity: from when it was sent until
    the publication carrying it was replaced by a modify, removed or expired (``until``), the
    presentity's NOTIFYs may relay the publisher's garbage (issue 13: accepting invalid input
    is allowed if it corrupts no other publication's state). Outside that window they must
    keep every body rule: a taint for the whole run hid every body failure after it (the
    benchmark missed ``dialog-duplicated`` on a lane whose step 16 was accepted garbage)."""

    step: int
    since: float
    handle: str | None
    """The publication carrying it; None for a foreign-type PUBLISH (never ended)."""
    until: float = math.inf

    def covers(self, at: float) -> bool:
        return self.since <= at <= self.until


@dataclass
class Subscribed:
    """One subscription the sequence opened, with what its judgement needs."""

    handle: str
    presentity: int
    watcher: Watcher
    ctx: checks.Subscription
    paused: list[tuple[float, float]] = field(default_factory=list)
    unsubscribed: float | None = None
    """Trace time of the unsubscribe the server answered 2xx (B21 judges what follows)."""
    expires_at: float | None = None
    """When the short grant of an ``expire-sub`` step ran out (B23 judges what follows)."""


MAX_SUBSCRIPTION_WAIT = 10
"""Longest grant, in seconds, an ``expire-sub`` step waits out (the suite's B23 case skips
past the same bound)."""

ETAG_MARGIN = 2.0
"""Seconds of Expires that must be left for a 412 to the last 2xx's entity-tag to be a C14
failure (nearer the end, the publication may just have expired)."""


def _sent_at(watcher: Watcher, default: float, *, last: bool = False) -> float:
    """Trace time of the watcher's first (or latest) SUBSCRIBE: where the server's grant
    starts counting, rather than the step's start (SIPp's own start-up lies between, seconds
    on a loaded host, and B09 bounds every NOTIFY's expires= by the time since)."""
    times = [
        m.timestamp
        for m in watcher.messages
        if m.direction == "out" and getattr(m.message, "method", None) == "SUBSCRIBE"
    ]
    if not times:
        return default
    return times[-1] if last else times[0]


def status_rules(
    body: bodies.Body, status: int, *, initial: bool, response: Response | None = None
) -> list[tuple[str, str]]:
    """(requirement, message) of the PUBLISH rules its status broke: a valid initial
    PUBLISH not accepted (C03; 423 asks for a longer Expires), or accepted without the
    entity-tag it creates (C03), a body of a foreign Content-Type accepted (C07: RFC 3903 §6
    step 3 rejects it, "such as 415"), a 415 without an Accept naming dialog-info (C08, RFC
    3261 §8.2.3). Accepting any other invalid body is allowed (it only taints the presentity,
    ``Executor._taint``)."""
    out: list[tuple[str, str]] = []
    accepted = 200 <= status < 300
    if body.content_type != CONTENT_TYPE:
        if accepted:  # the suite's C07 observation, so one profile entry excuses both
            what = "initial PUBLISH" if initial else "modify"
            seen = f"PUBLISH with Content-Type {body.content_type} answered {status}"
            out.append(("C07", f"{what}: {seen}"))
    elif initial and body.valid and not (accepted or status == 423):
        out.append(("C03", f"initial PUBLISH of a valid body answered {status}"))
    if response is None:
        return out
    if initial and body.valid and accepted and not response.header("SIP-ETag"):
        out.append(("C03", f"initial PUBLISH of a valid body answered {status} without SIP-ETag"))
    if status == 415:
        accept = response.header("Accept") or ""
        if CONTENT_TYPE not in accept.lower():
            out.append(("C08", f"415 carries Accept {accept!r}"))  # the suite's observation
    return out


ROUTE = "<sip:127.0.0.9;lr>"
"""The Record-Route the record-route nemesis sends (the suite's C19 case sends the same)."""


def route_rules(status: int, routes: Sequence[str]) -> list[tuple[str, str]]:
    """C19: no response to a PUBLISH carries a Record-Route (RFC 3903 §6: the ESC ignores the
    request's). The observation is the suite's, so one profile entry names both."""
    if not routes:
        return []
    return [("C19", f"record-route: PUBLISH with Record-Route answered {status}, "
                    f"Record-Route {list(routes)!r}")]  # fmt: skip


def make_body(spec: BodySpec, entity: str) -> bodies.Body:
    """The bytes a BodySpec stands for (deterministic from its seed)."""
    rng = random.Random(spec.seed)
    if spec.invalid is not None:
        return bodies.invalid(rng, entity=entity, kind=spec.invalid)
    return bodies.valid(rng, entity=entity, dialogs=list(spec.dialogs), drop=spec.drop)


class Executor:
    """Runs steps against ``server``; a context manager that cleans up after itself."""

    def __init__(
        self,
        *,
        server: tuple[str, int],
        domain: str,
        block: PortBlock,
        workdir: Path,
        run_id: str,
        publishers: int = 2,
        expiry_wait: float = 2.5,
        timeout: float = 5.0,
        rfc: int = 6665,
        entity_rebuilt: bool = False,
    ) -> None:
        self.server = server
        self.domain = domain
        self.block = block
        self.workdir = Path(workdir)
        self.run_id = run_id
        self.expiry_wait = expiry_wait
        """Seconds past a short Expires before the server's expiry timer has surely acted."""
        self.expiries_due = 0.0
        """Wall time by which every expiry an ``expire`` or ``expire-sub`` step set in motion
        is over (``_expiry_due``)."""
        self.timeout = timeout
        self.liveness = True
        self.rfc = rfc
        self.entity_rebuilt = entity_rebuilt
        """Probe with an OPTIONS after every step (issue 13: liveness)."""
        self.peers = [self._peer(f"pub{i}") for i in range(publishers)]
        self.probe = self._peer("probe")
        self.publications: dict[str, _Publication] = {}
        self.watchers: dict[str, tuple[int, Watcher]] = {}
        self.subscriptions: list[Subscribed] = []
        """Every subscription opened, ended ones too: each is judged at the end."""
        self.stimuli: dict[int, list[Stimulus]] = {}
        """Every PUBLISH sent per presentity, as the history check reads it."""
        self.tainted: dict[int, list[Taint]] = {}
        """Presentity -> every invalid body the server accepted (2xx) for it, with its window."""
        self.retired: set[int] = set()
        """Presentities a declared deviation corrupted: later steps on them are skipped."""
        self._seen: dict[str, int] = {}
        self.records: list[StepRecord] = []
        self.exchanges: list[tuple[str, tuple[Stamped, ...]]] = []
        """(party, traced messages) of every PUBLISH transaction, for a reproducer's ladder."""

    def _peer(self, name: str) -> LivePeer:
        return LivePeer(
            server=self.server,
            block=self.block,
            workdir=self.workdir,
            domain=self.domain,
            timeout=self.timeout,
            name=name,
        )

    def user(self, presentity: int) -> str:
        return f"x{self.run_id}-{presentity}"

    def entity(self, presentity: int) -> str:
        return f"sip:{self.user(presentity)}@{self.domain}"

    # -- life cycle -------------------------------------------------------------------------
    def __enter__(self) -> Executor:
        try:
            for peer in (*self.peers, self.probe):
                peer.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for_expiries(self) -> None:
        """Sleep until every publication or subscription an ``expire`` or ``expire-sub`` step
        shortened has run out, with the target's expiry timer: the lane's last NOTIFYs then
        show the expiries."""
        time.sleep(max(0.0, self.expiries_due - time.time()))

    def _expiry_due(self, ends: float) -> float:
        """A grant ending at ``ends`` (wall clock): the lane's end waits past it plus the
        target's expiry timer. Returns when that grant is surely over."""
        over = ends + self.expiry_wait
        self.expiries_due = max(self.expiries_due, over)
        return over

    def close(self) -> None:
        """Remove every publication, end every subscription, reap every SIPp. Best effort."""
        for handle, pub in list(self.publications.items()):
            with contextlib.suppress(HarnessError):
                self.peers[pub.publisher].remove(self.user(pub.presentity), pub.etag)
            self.publications.pop(handle, None)
        for _, watcher in self.watchers.values():
            watcher.close()
        for sub in self.subscriptions:
            sub.watcher.close()  # idempotent: unsubscribes if still active, reaps SIPp
        self.watchers.clear()
        for peer in (*self.peers, self.probe):
            peer.close()

    # -- running ----------------------------------------------------------------------------
    def run(self, ops: Iterable[Op]) -> list[StepRecord]:
        for op in ops:
            self.step(op)
        return self.records

    def step(self, op: Op) -> StepRecord:
        record = StepRecord(len(self.records) + 1, op)
        self.records.append(record)
        presentity = self.presentity_of(op)
        if presentity is not None and presentity in self.retired:
            record.skipped = f"presentity {presentity} retired (a declared deviation corrupted it)"
            return record
        if op.gap:
            time.sleep(op.gap)
        started = time.monotonic()
        record.started_at = time.time()
        try:
            self._do(op, record)
        except NotReceivedError as exc:
            record.findings.append(f"no answer: {exc}")
            record.status_findings.append(("C03", f"step {record.index} {op.kind}: no answer"))
        record.notifies, failures = self._check_notifies()
        record.findings.extend(failures)
        if self.liveness:
            try:
                status = self.probe.options("liveness").status
                if not 200 <= status < 300:
                    record.findings.append(f"liveness: OPTIONS answered {status}")
            except (NotReceivedError, HarnessError):
                record.findings.append(f"liveness: no answer to OPTIONS after step {record.index}")
                record.status_findings.append(
                    (
                        "C03",
                        f"the server stopped answering (no answer to OPTIONS within "
                        f"{self.timeout} s) after step {record.index} {op.kind}",
                    )
                )
        record.seconds = time.monotonic() - started
        return record

    def _taint(
        self,
        presentity: int,
        body: bodies.Body,
        result: PublishResult,
        record: StepRecord,
        *,
        handle: str | None,
        sent: float,
    ) -> None:
        """A 2xx to a PUBLISH of ``handle`` (None: a foreign-type one) ends the window of the
        garbage it replaced and opens one for its own body if that is garbage. An empty body
        is neither: with SIP-If-Match it makes the PUBLISH a refresh (RFC 3903 §4.3)."""
        if not body.data or not 200 <= result.status < 300:
            return
        if handle is not None:
            self._untaint(handle, time.time())
        if not body.valid:
            taint = Taint(record.index, sent, handle)
            self.tainted.setdefault(presentity, []).append(taint)

    def _untaint(self, handle: str, at: float) -> None:
        """The publication ``handle`` stops carrying its garbage at ``at`` (wall clock)."""
        for taints in self.tainted.values():
            for t in taints:
                if t.handle == handle and t.until == math.inf:
                    t.until = at

    def presentity_of(self, op: Op) -> int | None:
        """The presentity a step acts on (None: unknown, e.g. its handle is gone)."""
        if isinstance(op, Publish | Subscribe | Fetch | Nemesis):
            return op.presentity
        if isinstance(op, RefreshSub | ExpireSub | Unsubscribe):
            entry = self.watchers.get(op.handle)
            return entry[0] if entry else None
        pub = self.publications.get(op.handle)  # type: ignore[attr-defined]
        return pub.presentity if pub else None

    def _stimulus(
        self,
        presentity: int,
        kind: Kind,
        record: StepRecord,
        result: PublishResult | None,
        sent: float,
        body: bytes | None = None,
        replaces: str | None = None,
    ) -> None:
        """Record one PUBLISH for the history check: trace times, status, granted Expires."""
        label = f"{kind} at step {record.index} ({record.op.kind})"
        if result is None:  # no answer: may or may not have taken effect
            stim = Stimulus(kind, label, sent, None, None, body, replaces=replaces)
        else:
            stim = Stimulus(
                kind,
                label,
                result.sent_at if result.sent_at is not None else sent,
                result.answered_at,
                result.status if result.answered_at is not None else None,
                body,
                etag=result.etag,
                replaces=replaces,
                expires=0 if kind == "remove" else result.expires,
            )
        self.stimuli.setdefault(presentity, []).append(stim)

    def _do(self, op: Op, record: StepRecord) -> None:
        if isinstance(op, Publish):
            body = make_body(op.body, self.entity(op.presentity))
            sent = time.time()
            try:
                result = self.peers[op.publisher].publish(
                    self.user(op.presentity), body.data, expires=op.expires,
                    content_type=body.content_type,
                )  # fmt: skip
            except NotReceivedError:
                self._stimulus(op.presentity, "publish", record, None, sent, body.data)
                raise
            self._stimulus(op.presentity, "publish", record, result, sent, body.data)
            self._taint(op.presentity, body, result, record, handle=op.handle, sent=sent)
            record.response_findings += _stepped(
                checks.check_publish_response(result.response, requested=op.expires), record
            )
            self._note(record, result, op.handle, op.presentity, op.publisher)
            record.status_findings += status_rules(
                body, result.status, initial=True, response=result.response
            )
            if 200 <= result.status < 300:
                self._await_notify(op.presentity, record)
        elif isinstance(op, Modify | Refresh | Remove | Expire):
            self._on_publication(op, record)
        elif isinstance(op, Subscribe):
            watcher = Watcher(
                server=self.server,
                block=self.block,
                workdir=self.workdir,
                domain=self.domain,
                user=self.user(op.presentity),
                expires=op.expires,
                timeout=self.timeout,
            )
            started = time.time()
            self.watchers[op.handle] = (op.presentity, watcher)
            self._seen[op.handle] = 0
            response = watcher.start()
            record.statuses.append(response.status)
            started = _sent_at(watcher, started)
            record.response_findings += checks.check_subscribe_response(
                response, requested=op.expires, rfc=self.rfc
            )
            granted = response.header("Expires")
            ctx = checks.Subscription(
                presentity=self.entity(op.presentity),
                call_id=watcher.call_id,
                subscriber_tag=watcher.from_tag or "",
                notifier_tag=response.to_tag,
                event="dialog",
                accept=(CONTENT_TYPE,),
                granted=int(granted) if granted and granted.isdigit() else None,
                granted_at=started,
                rfc=self.rfc,
                entity_rebuilt=self.entity_rebuilt,
            )
            self.subscriptions.append(Subscribed(op.handle, op.presentity, watcher, ctx))
            if 200 <= response.status < 300:
                try:
                    watcher.wait_notifies(1, timeout=self.timeout)
                except NotReceivedError:
                    record.response_findings.append(
                        _missing("B05", "no NOTIFY followed the 2xx to SUBSCRIBE", record)
                    )
                else:  # the subscription's first NOTIFY is this SUBSCRIBE's (a refresh's
                    # may follow a NOTIFY a PUBLISH triggered: not judged here)
                    first = watcher.notifies[0].body
                    found = checks.check_subscribe_notify(first, "the SUBSCRIBE's NOTIFY")
                    record.response_findings += _stepped(found, record)
        elif isinstance(op, RefreshSub | ExpireSub | Unsubscribe):
            entry = self.watchers.get(op.handle)
            if entry is None:
                record.skipped = f"no watcher {op.handle}"
                return
            watcher = entry[1]
            before = len(watcher.notifies)
            sent = time.time()
            asked = op.expires if isinstance(op, RefreshSub | ExpireSub) else None
            response = watcher.refresh(asked) if asked is not None else watcher.unsubscribe()
            record.statuses.append(response.status)
            sent = _sent_at(watcher, sent, last=True)
            granted = response.header("Expires")
            if asked is not None:
                found = checks.check_refresh_response(response, requested=asked)
                record.response_findings += _stepped(found, record)
            if isinstance(op, ExpireSub) and 200 <= response.status < 300:
                self._let_expire(op, record, sent, granted)
            if asked is not None and 200 <= response.status < 300 and granted:
                # B09 bounds a NOTIFY's expires by the time left: after a refresh, by the end
                # of the newest grant (one ctx for the whole subscription, so the bound is the
                # latest end, loose for the NOTIFYs before the refresh, never too tight).
                for sub in self.subscriptions:
                    if sub.handle == op.handle and granted.isdigit():
                        start = sub.ctx.granted_at or sent
                        end = max(start + (sub.ctx.granted or 0), sent + int(granted))
                        sub.ctx = dataclasses.replace(sub.ctx, granted=int(end - start) + 1)
            if isinstance(op, Unsubscribe) and 200 <= response.status < 300:
                for sub in self.subscriptions:
                    if sub.handle == op.handle:
                        sub.unsubscribed = sent
            if 200 <= response.status < 300:
                try:
                    watcher.wait_notifies(before + 1, timeout=self.timeout)
                except NotReceivedError:
                    rid = "B20" if asked is not None else "B21"
                    what = "refresh" if asked is not None else "unsubscribe"
                    record.response_findings.append(
                        _missing(rid, f"no NOTIFY followed the 2xx to the {what}", record)
                    )
                else:
                    if asked is not None:  # RFC 6665 §4.2.1.2: the refresh's NOTIFY is full
                        notified = watcher.notifies[before].body
                        found = checks.check_subscribe_notify(notified, "the refresh's NOTIFY")
                        record.response_findings += _stepped(found, record)
        elif isinstance(op, Fetch):
            try:
                response, fetched = self.probe.fetch(self.user(op.presentity))
            except NotReceivedError:
                record.response_findings.append(
                    _missing("B22", "no NOTIFY followed the 2xx to a fetch", record)
                )
                return
            record.statuses.append(response.status)
            states = [n.subscription_state for n in fetched]
            if fetched and states[0] != "terminated":
                record.response_findings.append(
                    _missing("B22", f"the fetch NOTIFY says Subscription-State {states}", record)
                )
        elif isinstance(op, Nemesis):
            self._nemesis(op, record)

    def _on_publication(self, op: Modify | Refresh | Remove | Expire, record: StepRecord) -> None:
        pub = self.publications.get(op.handle)
        if pub is None:
            record.skipped = f"publication {op.handle} does not exist"
            return
        peer, user = self.peers[pub.publisher], self.user(pub.presentity)
        sent = time.time()
        data: bytes | None = None
        kind: Kind = "refresh"
        try:
            if isinstance(op, Modify):
                kind = "modify"
                body = make_body(op.body, self.entity(pub.presentity))
                data = body.data
                result = peer.publish(
                    user, body.data, expires=op.expires, etag=pub.etag,
                    content_type=body.content_type,
                )  # fmt: skip
            elif isinstance(op, Remove):
                kind = "remove"
                result = peer.remove(user, pub.etag)
            else:
                result = peer.refresh(user, pub.etag, expires=op.expires)
        except NotReceivedError:
            self._stimulus(pub.presentity, kind, record, None, sent, data, pub.etag)
            raise
        self._stimulus(pub.presentity, kind, record, result, sent, data, pub.etag)
        if result.status == 412 and pub.lives_until - sent > ETAG_MARGIN:
            # The entity-tag the server's own last 2xx gave, well before its Expires ran out:
            # a server that answered 200 but stored nothing (Kamailio's skipped update of an
            # all-terminated publication) shows here, whatever the NOTIFYs say.
            record.status_findings.append(
                ("C14", f"step {record.index} {op.kind}: the SIP-ETag of the publication's "
                 "last 2xx answered 412 before its Expires ran out")
            )  # fmt: skip
        requested = 0 if isinstance(op, Remove) else op.expires
        record.response_findings += _stepped(
            checks.check_publish_response(result.response, requested=requested, if_match=pub.etag),
            record,
        )
        if isinstance(op, Modify):
            self._taint(pub.presentity, body, result, record, handle=op.handle, sent=sent)
            record.status_findings += status_rules(
                body, result.status, initial=False, response=result.response
            )
        self._note(record, result, op.handle, pub.presentity, pub.publisher)
        if isinstance(op, Remove | Expire):
            self.publications.pop(op.handle, None)
        if isinstance(op, Remove) and 200 <= result.status < 300:
            self._untaint(op.handle, time.time())
        if isinstance(op, Expire):
            # The lane goes on while the publication runs out (the history models the expiry
            # as a window); the lane's end waits for it, so its NOTIFY is still observed.
            over = self._expiry_due(time.time() + op.expires)
            if 200 <= result.status < 300:
                self._untaint(op.handle, over)
        # A refresh changes no state: whether it notifies is the profile's business, not awaited.
        if 200 <= result.status < 300 and not isinstance(op, Refresh | Expire):
            self._await_notify(pub.presentity, record)

    def _let_expire(
        self, op: ExpireSub, record: StepRecord, sent: float, granted: str | None
    ) -> None:
        """Note when the subscription's short grant runs out, for B23 and the lane's end. A
        grant far longer than asked (a server's minimum) is not waited for: the step then
        judges nothing about expiry."""
        seconds = int(granted) if granted and granted.isdigit() else None
        if seconds is None or seconds > MAX_SUBSCRIPTION_WAIT:
            record.skipped = f"granted {granted} s for Expires {op.expires}: not waited for"
            return
        for sub in self.subscriptions:
            if sub.handle == op.handle:
                sub.expires_at = sent + seconds
        self._expiry_due(sent + seconds)

    def _nemesis(self, op: Nemesis, record: StepRecord) -> None:
        user = self.user(op.presentity)
        if op.what in ("answer-481", "answer-489", "stop-answering"):
            entry = self.watchers.get(op.target or "")
            if entry is None:
                record.skipped = f"no watcher {op.target}"
                return
            if op.what == "stop-answering":
                entry[1].pause()
                for sub in self.subscriptions:
                    if sub.handle == op.target:
                        sub.paused.append((time.time(), float("inf")))
            else:
                entry[1].set_answer(int(op.what.split("-")[1]))
            return
        body = make_body(BodySpec(record.index, (("n1", "trying"),)), self.entity(op.presentity))
        peer = self.peers[0]
        sent = time.time()
        if op.what == "unknown-etag":
            bogus = f"a.{record.index}.0.0.0"
            result = peer.refresh(user, bogus)
            self._stimulus(op.presentity, "refresh", record, result, sent, None, bogus)
        elif op.what == "wrong-event":
            result = peer.publish(user, body.data, event="presence")
        elif op.what == "wrong-content-type":
            # A valid dialog-info body under a foreign Content-Type (C07): one accepted is
            # stored like any PUBLISH, so the history models it as one.
            foreign = make_body(BodySpec(record.index, invalid=op.what), self.entity(op.presentity))
            result = peer.publish(user, foreign.data, content_type=foreign.content_type)
            self._stimulus(op.presentity, "publish", record, result, sent, foreign.data)
            self._taint(op.presentity, foreign, result, record, handle=None, sent=sent)
            record.status_findings += status_rules(
                foreign, result.status, initial=True, response=result.response
            )
        elif op.what == "record-route":
            # An initial PUBLISH like any other, with a Record-Route the ESC must ignore.
            result = peer.publish(user, body.data, extra_headers=[f"Record-Route: {ROUTE}"])
            self._stimulus(op.presentity, "publish", record, result, sent, body.data)
            routes = result.response.header_all("Record-Route")
            record.status_findings += route_rules(result.status, routes)
        elif op.what == "two-if-match":
            pub = self.publications.get(op.target or "")
            first = pub.etag if pub else "a.1.1.1.1"
            result = peer.publish(user, None, etag=first, extra_headers=[f"SIP-If-Match: {first}x"])
            # A server that reads only the first SIP-If-Match treats it as a refresh of it.
            self._stimulus(op.presentity, "refresh", record, result, sent, None, first)
            if result.status != 400:
                record.status_findings.append(
                    ("C12", f"PUBLISH with two SIP-If-Match answered {result.status}")
                )
            if pub is not None and 200 <= result.status < 300 and result.etag:
                pub.etag = result.etag
                record.statuses.append(result.status)
                return
        else:  # accept-without-dialog-info
            response, _ = self.probe.fetch(user, accept="application/pidf+xml")
            record.statuses.append(response.status)
            if response.status != 406:  # the suite's B15 row: the proper error response
                record.response_findings.append(
                    _missing(
                        "B15",
                        f"SUBSCRIBE Accept: application/pidf+xml answered {response.status}",
                        record,
                    )
                )
            return
        # What RFC 3903 §6 requires of each hostile PUBLISH (the suite's C11, C01, C12 rows).
        required = {"unknown-etag": ("C11", 412), "wrong-event": ("C01", 489)}
        rid, status = required.get(op.what, ("", result.status))
        if rid and result.status != status:
            record.status_findings.append(
                (rid, f"PUBLISH with {op.what.replace('-', ' ')} answered {result.status}")
            )
        record.statuses.append(result.status)
        self.exchanges.append(("publisher-0", result.exchange))
        if 200 <= result.status < 300 and result.etag:
            # A hostile PUBLISH the server accepted made a publication: remember to remove it.
            self.publications[f"nemesis{record.index}"] = _Publication(
                op.presentity, 0, result.etag
            )

    def _note(
        self,
        record: StepRecord,
        result: PublishResult,
        handle: str,
        presentity: int,
        publisher: int,
    ) -> None:
        record.statuses.append(result.status)
        self.exchanges.append((f"publisher-{publisher}", result.exchange))
        if 200 <= result.status < 300 and result.etag:
            lives = time.time() + result.expires if result.expires is not None else math.inf
            self.publications[handle] = _Publication(presentity, publisher, result.etag, lives)
        elif result.status == 412:
            self.publications.pop(handle, None)

    def _await_notify(self, presentity: int, record: StepRecord) -> None:
        for handle, (p, watcher) in self.watchers.items():
            if p == presentity and watcher.active:
                with contextlib.suppress(NotReceivedError):  # judged by the checks, not here
                    watcher.wait_notifies(self._seen.get(handle, 0) + 1, timeout=NOTIFY_WAIT)

    def _check_notifies(self) -> tuple[int, list[str]]:
        count, failures = 0, []
        for handle, (presentity, watcher) in self.watchers.items():
            found = watcher.notifies
            new = found[self._seen.get(handle, 0) :]
            self._seen[handle] = len(found)
            count += len(new)
            for notify in new:
                if not notify.body:
                    continue
                for f in schema.iter_findings(notify.body, subscribe_uri=self.entity(presentity)):
                    if f.verdict() is Verdict.FAIL:
                        failures.append(f"{f.requirement} {notify.summary()}: {f.message}")
        return count, failures


def summary(records: Sequence[StepRecord], wall: float) -> dict[str, float]:
    """Steps, steps/s, steps with findings, skipped steps."""
    return {
        "steps": len(records),
        "steps_per_second": len(records) / wall if wall > 0 else 0.0,
        "with_findings": sum(1 for r in records if r.findings),
        "skipped": sum(1 for r in records if r.skipped),
        "notifies": sum(r.notifies for r in records),
    }


__all__ = ["Executor", "StepRecord", "make_body", "status_rules", "summary"]


def _stepped(findings: list[Finding], record: StepRecord) -> list[Finding]:
    """Response findings tagged with their step, as the shrinker and the report read them."""
    return [
        dataclasses.replace(
            f, evidence={**f.evidence, "step": record.index, "step_kind": record.op.kind}
        )
        for f in findings
    ]


def _missing(rid: str, message: str, record: StepRecord) -> Finding:
    """A failure of ``rid`` by what a step's exchange lacked, tagged with the step."""
    return Finding(
        rid,
        False,
        f"step {record.index} {record.op.kind}: {message}",
        observed=message,
        evidence={"step": record.index, "step_kind": record.op.kind},
    )
