"""One conformance case as an experiment: stimulus, observation, oracle, findings.

A suite case gets a ``Case`` (the ``case`` fixture) and talks in the language of the rules:
publish these dialogs, subscribe, expect the view to match the oracle. The Case keeps what was
published (the ``Expectation`` the oracle reads), every subscription it opened, and the findings.
When the case function returns, ``finish()`` keeps the watchers listening for a quiet window
after the last stimulus, then checks every NOTIFY each watcher captured (headers, schema, version
sequence) and judges each one at its moment against the stimuli around it (``oracle.history``),
whether or not the case looked at it, so no body goes unchecked and no stale NOTIFY slips by.

Waiting follows events: "expect the view" waits for the next NOTIFY until the view matches or
the bound runs out, and leaves a checkpoint the history judges; a fixed wait appears only where
a server's timer forces one, and its length comes from the target profile.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from conformance.errors import BodyError, HarnessError, NotReceivedError, UsageError
from conformance.harness.calls import Callee, Caller, place_call, register
from conformance.harness.credentials import Lease
from conformance.harness.peers import Notify, Publisher, PublishResult, Watcher
from conformance.harness.ports import PortBlock
from conformance.oracle import aggregator, call_history, checks, dialoginfo, history
from conformance.oracle import calls as call_oracle
from conformance.oracle.aggregator import Aggregate, Publication
from conformance.oracle.dialoginfo import CONTENT_TYPE, Item, document
from conformance.oracle.findings import Finding
from conformance.oracle.history import Checkpoint, Stimulus
from conformance.oracle.requirements import Level
from conformance.oracle.view import WatcherView
from conformance.sip.message import Request, Stamped, split_uri
from conformance.targets.profile import Profile

QUIET_WINDOW = 0.5
"""Seconds every case keeps its watchers listening after its last stimulus (at least the
profile's settle time): a NOTIFY the stimulus triggered is then read and judged, so a "nothing
changes" check cannot pass by reading before it arrived."""

_unique = itertools.count(1)


def _sent_at(messages: Iterable[Stamped], method: str, *, default: float) -> float:
    """The trace time of the first ``method`` request a peer sent, else ``default``."""
    for m in messages:
        if m.direction == "out" and isinstance(m.message, Request) and m.message.method == method:
            return m.timestamp
    return default


@dataclass(frozen=True)
class Clock:
    """The time a case's verdicts depend on (order of stimuli, quiet windows, expiry waits),
    passed in so unit tests can drive a case without waiting. Wall-clock seconds, because the
    history check compares them with SIPp's trace timestamps."""

    now: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


def unique_user(worker: str, hint: str = "p") -> str:
    """A user part no other case, worker or earlier run uses (runs may share an external
    server, and a stale subscription from an earlier run must never see this run's state)."""
    stamp = format(int(time.time() * 1000) % 10**9, "x")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in hint)
    return f"{safe}-{worker}-{stamp}-{next(_unique)}"


@dataclass
class Expectation:
    """What the test published for one presentity, and what the oracle says must follow."""

    presentity: str
    profile: Profile
    clock: Clock = SYSTEM_CLOCK
    publications: list[Publication] = field(default_factory=list)
    stimuli: list[Stimulus] = field(default_factory=list)
    """Every PUBLISH sent for this presentity through the case, with its trace times."""
    _seq: itertools.count = field(default_factory=itertools.count, repr=False)

    def record(self, stimulus: Stimulus) -> None:
        """Fold one stimulus into the stored state, as RFC 3903 §6 describes (the same fold the
        history check replays, with this host's clock for order and expiry)."""
        now = self.clock.now()
        granted = stimulus.expires if stimulus.expires is not None else history.DEFAULT_EXPIRES
        self.stimuli.append(stimulus)
        self.publications = list(
            history.fold(
                self.publications,
                stimulus,
                received=now,
                seq=next(self._seq),
                expires_at=now + granted,
                replaces_on_same_first_id=self.profile.replaces_on_same_first_id,
                flavour=self.profile.flavour,
            )
        )

    def aggregate(self, now: float | None = None) -> Aggregate:
        """The aggregate the oracle expects now, under the profile's mode and flavour."""
        return aggregator.aggregate(
            self.publications,
            presentity=self.presentity,
            now=self.clock.now() if now is None else now,
            single_dialog=self.profile.single_dialog,
            flavour=self.profile.flavour,
        )


class Subscription:
    """A watcher's subscription with the yardstick its NOTIFYs are checked against."""

    def __init__(
        self,
        watcher: Watcher,
        ctx: checks.Subscription,
        response,
        user: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.watcher = watcher
        self.ctx = ctx
        self.response = response
        self.user = user
        self.paused: list[tuple[float, float]] = []
        self.checkpoints: list[Checkpoint] = []
        """Moments the case asked about (``expect_view``); the history judges them."""
        self.call_party: tuple[call_oracle.Party, Caller | Callee, call_oracle.CallProfile] | None
        self.call_party = None
        """A watcher of a call's party (``Calls.watch``): its state comes from calls inside
        the target, so its history is judged against publications derived from the party's
        calls (``oracle.call_history``), not against stimuli the case sent."""

    @property
    def notifies(self) -> list[Notify]:
        return self.watcher.notifies

    def captured(self) -> list[checks.Captured]:
        return captured(self.notifies, self.paused)

    def pause(self) -> None:
        """The watcher stops answering (a hung phone) until ``resume``."""
        self.watcher.pause()
        self.paused.append((self.clock.now(), float("inf")))

    def resume(self) -> None:
        self.watcher.resume()
        if self.paused and self.paused[-1][1] == float("inf"):
            # What queued meanwhile is read within the next second.
            self.paused[-1] = (self.paused[-1][0], self.clock.now() + 1.0)

    def observations(self) -> list[history.Observation]:
        return observations(self.notifies, self.paused)

    def ended(self) -> float | None:
        return ended(self.notifies, self.paused)

    def view(self, notifies: Sequence[Notify] | None = None) -> WatcherView:
        """The §4.3 watcher table after ``notifies`` (default: every NOTIFY so far)."""
        view = WatcherView()
        for n in self.notifies if notifies is None else notifies:
            if n.body.strip():
                view.apply(n.body)
        return view

    def versions(self) -> list[int | None]:
        out: list[int | None] = []
        for n in self.notifies:
            if n.body.strip():
                try:
                    out.append(dialoginfo.parse(n.body).version_number())
                except BodyError:  # reported by the per-NOTIFY checks
                    out.append(None)
        return out


class Case:
    """The suite author's handle on one experiment (the ``case`` fixture)."""

    def __init__(
        self,
        *,
        name: str,
        target,
        profile: Profile,
        publisher: Publisher,
        new_watcher,
        worker: str,
        timeout: float,
        clock: Clock = SYSTEM_CLOCK,
        users: Lease | None = None,
    ) -> None:
        self.clock = clock
        self.users = users
        """User-pool mode: presentities are the pool's accounts (``harness.credentials``),
        lent for this case, so what it published is withdrawn when it closes."""
        self.waited = 0.0
        """Seconds spent in waits the rules impose (timers, silence windows, the holds of a
        call): every sleep goes through ``self.clock``, which counts it here, so benchmarks
        can give the floor of a run and subtract the waits to measure the harness itself."""
        self._sleep = clock.sleep
        self.clock = Clock(now=clock.now, sleep=self._counted_sleep)
        self.name = name
        self.target = target
        self.profile = profile
        self.publisher = publisher
        self._new_watcher = new_watcher
        self.worker = worker
        self.timeout = timeout
        self.findings: list[Finding] = []
        self.subscriptions: list[Subscription] = []
        self.expectations: dict[str, Expectation] = {}
        self.exchanges: list[object] = []
        self._finished = False
        self._sent: dict[int, Stimulus] = {}
        """Each PublishResult (by identity) -> the stimulus recorded for it."""
        self.last_stimulus: float | None = None
        """When the last PUBLISH's answer came: the quiet window counts from here."""
        self.timed_out = 0.0
        """Seconds spent waiting out a bound that a deviating server never met."""

    # -- naming --------------------------------------------------------------------------------

    def user(self, hint: str = "p") -> str:
        """A fresh presentity user part for this case (in user-pool mode: a pool account no
        other running case holds; ``PoolTooSmallError`` when none is left)."""
        if self.users is not None:
            return self.users.take()
        return unique_user(self.worker, hint)

    def uri(self, user: str) -> str:
        return self.target.presentity_uri(user)

    def expectation(self, user: str) -> Expectation:
        if user not in self.expectations:
            self.expectations[user] = Expectation(self.uri(user), self.profile, self.clock)
        return self.expectations[user]

    # -- findings ------------------------------------------------------------------------------

    def record(self, findings: Iterable[Finding]) -> list[Finding]:
        found = list(findings)
        self.findings.extend(found)
        return found

    def finding(self, requirement: str, passed: bool, message: str, **kw) -> Finding:
        f = Finding(requirement, passed, message, **kw)
        self.findings.append(f)
        return f

    # -- stimulus: PUBLISH ---------------------------------------------------------------------

    def body(self, user: str, dialogs: Sequence[Item], *, state: str = "full") -> bytes:
        """A publisher's document for ``user``: version 0, the presentity as entity."""
        return document(self.uri(user), dialogs, state=state)

    def publish(
        self,
        user: str,
        dialogs: Sequence[Item] | bytes | None,
        *,
        expires: int | None = 3600,
        content_type: str | None = CONTENT_TYPE,
        event: str | None = "dialog",
        extra_headers: Sequence[str] = (),
        settle: bool = True,
    ) -> PublishResult:
        """An initial PUBLISH; a 2xx is folded into the expectation."""
        body = self._as_body(user, dialogs)
        result = self.publisher.publish(
            user,
            body,
            expires=expires,
            content_type=content_type,
            event=event,
            extra_headers=extra_headers,
        )
        self.exchanges.append(result)
        status = result.response.status
        if event == "dialog" and body is not None:
            self._stimulus(user, "publish", result, body)
        valid = not isinstance(dialogs, bytes) and dialogs is not None and event == "dialog"
        if valid and content_type == CONTENT_TYPE and not (200 <= status < 300 or status == 423):
            # A well-formed initial PUBLISH may only be accepted (or asked for a longer
            # Expires): say so here, rather than let the case fail later for want of state.
            self.finding(
                "C03",
                False,
                f"initial PUBLISH of {len(dialogs or ())} dialog(s) answered "
                f"{status} {result.response.reason}",
            )
        if settle:
            self.settle()
        return result

    def modify(
        self,
        user: str,
        previous: PublishResult,
        dialogs: Sequence[Item] | bytes,
        *,
        expires: int = 3600,
    ) -> PublishResult:
        body = self._as_body(user, dialogs)
        assert body is not None
        result = self.publisher.modify(user, previous.etag or "", body, expires=expires)
        self.exchanges.append(result)
        self._stimulus(user, "modify", result, body, replaces=previous.etag)
        self.settle()
        return result

    def refresh(self, user: str, previous: PublishResult, *, expires: int = 3600) -> PublishResult:
        result = self.publisher.refresh(user, previous.etag or "", expires=expires)
        self.exchanges.append(result)
        self._stimulus(user, "refresh", result, None, replaces=previous.etag)
        self.settle()
        return result

    def remove(self, user: str, previous: PublishResult) -> PublishResult:
        result = self.publisher.remove(user, previous.etag or "")
        self.exchanges.append(result)
        self._stimulus(user, "remove", result, None, replaces=previous.etag)
        self.settle()
        return result

    def _stimulus(
        self,
        user: str,
        kind: history.Kind,
        result: PublishResult,
        body: bytes | None,
        *,
        replaces: str | None = None,
    ) -> Stimulus:
        """Record one PUBLISH with its trace times (request sent, final response received)."""
        sent = result.sent_at if result.sent_at is not None else self.clock.now()
        answered = result.answered_at
        expectation = self.expectation(user)
        stimulus = Stimulus(
            kind,
            f"{kind} #{len(expectation.stimuli) + 1}"
            + (f" (If-Match {replaces})" if replaces else ""),
            sent,
            answered,
            result.response.status if answered is not None else None,
            body,
            etag=result.etag,
            replaces=replaces,
            expires=0 if kind == "remove" else result.expires,
        )
        expectation.record(stimulus)
        self._sent[id(result)] = stimulus
        self.last_stimulus = self.clock.now()
        return stimulus

    def wait(self, seconds: float) -> None:
        """A wait a server's timer or a rule forces; counted in ``waited``."""
        self.clock.sleep(seconds)

    def _counted_sleep(self, seconds: float) -> None:
        self.waited += max(0.0, seconds)
        self._sleep(seconds)

    def settle(self) -> None:
        """The profile's settle time: some servers answer 200 before the state is stored."""
        if self.profile.settle_time:
            self.wait(self.profile.settle_time)

    def wait_past_expiry(self, publication: PublishResult | Publication) -> None:
        """Sleep until ``publication`` has expired and the server's expiry timer has had its
        chance to act (profile: ``expiry_timer`` period plus ``expiry_slack``)."""
        if isinstance(publication, Publication):
            expires_at = publication.expires
        else:
            stamp = publication.exchange[-1].timestamp if publication.exchange else self.clock.now()
            expires_at = stamp + (publication.expires or 0)
        delay = (
            expires_at - self.clock.now() + self.profile.expiry_timer + self.profile.expiry_slack
        )
        if delay > 0:
            self.wait(delay + 0.5)

    def options(self):
        """An OPTIONS to the server, sent by SIPp like every other request."""
        response = self.publisher.options(self.user("opt"))
        self.exchanges.append(response)
        return response

    def space_for_order(self) -> None:
        """Wait out the server's timestamp resolution, so the next publication sorts after the
        previous one (Kamailio orders by received_time in whole seconds)."""
        if self.profile.timestamp_resolution:
            self.wait(self.profile.timestamp_resolution + 0.05)

    def _as_body(self, user: str, dialogs: Sequence[Item] | bytes | None) -> bytes | None:
        if dialogs is None or isinstance(dialogs, bytes):
            return dialogs
        return self.body(user, dialogs)

    # -- observation: SUBSCRIBE ----------------------------------------------------------------

    def subscribe(
        self,
        user: str,
        *,
        expires: int | None = 600,
        accept: str | None = CONTENT_TYPE,
        event: str | None = "dialog",
        answer: int = 200,
        wait: bool = True,
    ) -> Subscription:
        """Subscribe to ``user``; with ``wait`` the initial NOTIFY is awaited and B05 judged."""
        watcher = self._new_watcher(
            user=user, expires=expires, accept=accept, event=event, answer=answer
        )
        started = self.clock.now()
        response = watcher.start()
        # The granted time counts from the SUBSCRIBE that was granted, as SIPp sent it (B09):
        # not from when the kit started SIPp (on a busy machine the start alone can take
        # seconds), nor from a challenged try before it.
        sent_at = getattr(watcher, "sent_at", None)
        granted_at = sent_at(response.cseq) if sent_at is not None else None
        started = granted_at or _sent_at(watcher.messages, "SUBSCRIBE", default=started)
        acceptable = event == "dialog" and (accept is None or CONTENT_TYPE in accept)
        self.record(
            checks.check_subscribe_response(
                response, requested=expires, rfc=self.profile.rfc, acceptable=acceptable
            )
        )
        granted = response.header("Expires")
        ctx = checks.Subscription(
            presentity=self.uri(user),
            call_id=watcher.call_id,
            subscriber_tag=watcher.from_tag,
            notifier_tag=response.to_tag,
            event=event or "",
            accept=tuple(a.strip().lower() for a in accept.split(",")) if accept else None,
            granted=int(granted) if granted and granted.isdigit() else None,
            granted_at=started,
            rfc=self.profile.rfc,
            entity_rebuilt=self.profile.entity_rebuilt,
        )
        sub = Subscription(watcher, ctx, response, user, self.clock)
        self.subscriptions.append(sub)
        if wait and 200 <= response.status < 300:
            self.await_notifies(sub, 1, requirement="B05", what="the initial NOTIFY")
        return sub

    def await_notifies(
        self,
        sub: Subscription,
        count: int,
        *,
        requirement: str,
        what: str,
        timeout: float | None = None,
    ) -> list[Notify]:
        """Wait for ``count`` NOTIFYs in all; a timeout becomes a failed finding naming ``what``."""
        bound = timeout if timeout is not None else self.timeout
        before = self.clock.now()
        try:
            got = sub.watcher.wait_notifies(count, timeout=bound)
        except NotReceivedError as exc:
            self.timed_out += self.clock.now() - before
            self.finding(requirement, False, f"{what} did not arrive: {exc.message}")
            return sub.notifies
        late = got[count - 1].timestamp - before if len(got) >= count else 0.0
        self.finding(
            requirement,
            late <= checks.PROMPT_SECONDS + self.profile.settle_time,
            f"{what} arrived after {late:.2f} s",
        )
        return got

    def expect_view(
        self,
        sub: Subscription,
        user: str,
        requirements: Sequence[str],
        *,
        timeout: float | None = None,
        level: Level | None = None,
    ) -> checks.Comparison:
        """Wait until the watcher's §4.3 view equals the oracle's (or the bound runs out), then
        leave a checkpoint naming ``requirements``.

        This only waits: the history check at ``finish`` judges the table at the checkpoint,
        and every NOTIFY before and after it, against the states possible at their moments.
        The bound is the case timeout plus the profile's settle time."""
        started = self.clock.now()
        deadline = started + (timeout if timeout is not None else self.timeout)
        deadline += self.profile.settle_time
        expectation = self.expectation(user)
        while True:
            # One snapshot per round: judging one list and waiting past another could wait
            # for a NOTIFY that already came.
            seen = sub.notifies
            target = expectation.aggregate()
            comparison = checks.compare(
                checks.expected_view(target).values(), sub.view(seen).dialogs.values()
            )
            remaining = deadline - self.clock.now()
            if comparison.equal or remaining <= 0:
                break
            try:
                sub.watcher.wait_notifies(len(seen) + 1, timeout=remaining)
            except NotReceivedError:
                continue  # one last comparison, then the loop ends on the deadline
        if not comparison.equal:
            self.timed_out += self.clock.now() - started
        # The checkpoint is the moment of the last NOTIFY looked at, or now if none came.
        sub.checkpoints.append(Checkpoint(self.clock.now(), tuple(requirements), level=level))
        return comparison

    def expect_no_effect(
        self,
        sub: Subscription,
        user: str,
        result: PublishResult,
        requirements: Sequence[str],
        *,
        level: Level | None = None,
    ) -> None:
        """A rule says ``result``'s PUBLISH must change nothing (a rejected request): keep
        listening for the quiet window, then leave a checkpoint at which the history judges the
        watcher's table as if the server had rejected it. Every NOTIFY in the history is judged
        the same way, so the verdict does not depend on whether its NOTIFY was read in time."""
        stimulus = self._sent.get(id(result))
        if stimulus is None or stimulus not in self.expectation(user).stimuli:
            raise UsageError(
                f"expect_no_effect: that PUBLISH was not sent for {user!r} through this case"
            )
        self.quiet()
        sub.checkpoints.append(
            Checkpoint(
                self.clock.now(),
                tuple(requirements),
                excluded=frozenset({stimulus.label}),
                level=level,
            )
        )

    def _listening(self, sub: Subscription) -> bool:
        """Whether a NOTIFY a stimulus triggered may still be on its way to ``sub``: it is still
        active and existed when the last stimulus could take effect. A subscription made later
        got that state in its initial NOTIFY; a fetch or an ended one gets nothing more."""
        if self.last_stimulus is None or not sub.watcher.active or not sub.notifies:
            return False
        started = sub.ctx.granted_at if sub.ctx.granted_at is not None else 0.0
        return started <= self.last_stimulus + self.profile.settle_time

    def quiet(self) -> None:
        """Wait out the quiet window after the last stimulus: ``max(settle_time, 0.5 s)``."""
        if self.last_stimulus is None:
            return
        left = self.last_stimulus + max(self.profile.settle_time, QUIET_WINDOW) - self.clock.now()
        if left > 0:
            self.wait(left)

    def expect_body(self, notify: Notify, user: str, requirements: Sequence[str]) -> None:
        """The dialogs one NOTIFY body carries against the expected aggregate (multiset)."""
        self.record(
            checks.check_body(notify.body, self.expectation(user).aggregate(), requirements)
        )

    def expect_full(self, notify: Notify, requirement: str) -> None:
        """The NOTIFY body is a full-state document (A14 after SUBSCRIBE, A15 when empty)."""
        try:
            state = dialoginfo.parse(notify.body).state if notify.body.strip() else None
        except BodyError as exc:
            state = f"unparsable ({exc.message})"
        self.finding(requirement, state == "full", f"NOTIFY body state {state!r}")

    def expect_no_notify(
        self, sub: Subscription, seconds: float, requirement: str, why: str, *, since: int
    ) -> None:
        """No NOTIFY beyond the first ``since`` of this subscription within ``seconds``.

        ``since`` is counted before the stimulus: the NOTIFY a PUBLISH triggers arrives within
        a millisecond, before a window opened after the PUBLISH could see it."""
        self.wait(seconds)
        extra = sub.notifies[since:]
        self.finding(
            requirement, not extra, f"{why}: {len(extra)} NOTIFY(s) within {seconds:.1f} s"
        )

    def server_agent(self) -> str | None:
        """The server's own name, from a NOTIFY's User-Agent or a response's Server header."""
        for sub in self.subscriptions:
            for n in sub.notifies:
                if agent := n.request.header("User-Agent"):
                    return agent
        for result in self.exchanges:
            response = getattr(result, "response", result)
            if agent := getattr(response, "header", lambda _: None)("Server"):
                return agent
        return None

    # -- evidence for the report ---------------------------------------------------------------

    def evidence(self) -> dict[str, list[dict[str, object]]]:
        """Every message the case's peers traced, as JSON for the report's ladder and bodies."""
        published = [("publisher", getattr(r, "exchange", ())) for r in self.exchanges]
        watched = [
            (f"watcher-{n}", sub.watcher.messages, sub.notifies)
            for n, sub in enumerate(self.subscriptions, 1)
        ]
        return evidence_json(published, watched)

    # -- the end -------------------------------------------------------------------------------

    def finish(self) -> list[Finding]:
        """After the quiet window, check every captured NOTIFY of every subscription: headers,
        sequence, and the history (each NOTIFY at its moment, convergence, checkpoints)."""
        if self._finished:
            return self.findings
        self._finished = True
        if any(self._listening(sub) for sub in self.subscriptions):
            self.quiet()
        end = self.clock.now()
        rules = history.Rules.from_profile(self.profile)
        for sub in self.subscriptions:
            stimuli: Sequence[Stimulus] = self.expectation(sub.user).stimuli if sub.user else ()
            project = None
            if sub.call_party is not None:
                exps = _party_calls(*sub.call_party)
                stimuli = call_history.stimuli(exps, sub.ctx.presentity)
                project = functools.partial(call_history.project, exps=exps)
            self.record(
                judge_subscription(
                    sub.notifies,
                    sub.ctx,
                    stimuli,
                    rules,
                    paused=sub.paused,
                    end=end,
                    checkpoints=sub.checkpoints,
                    project=project,
                )
            )
        return self.findings

    def close(self) -> None:
        for sub in self.subscriptions:
            sub.watcher.close()
        if self.users is not None:
            self._withdraw()

    def _withdraw(self) -> None:
        """Remove every publication this case left (user-pool mode): the next case that
        borrows the account must find it empty, as a fresh user would be."""
        replaced = {r.request.header("SIP-If-Match") for r in self._published()}
        for result in self._published():
            etag, user = result.etag, _user_of(result.request.uri)
            if etag and etag not in replaced and result.expires != 0 and user:
                with contextlib.suppress(HarnessError):
                    self.publisher.remove(user, etag)

    def _published(self) -> list[PublishResult]:
        return [
            r
            for r in self.exchanges
            if isinstance(r, PublishResult) and 200 <= r.response.status < 300
        ]


def _user_of(uri: str) -> str | None:
    """The user part of a presentity's Request-URI."""
    found = split_uri(uri)
    return found.user if found is not None else None


def captured(
    notifies: Sequence[Notify], paused: Sequence[tuple[float, float]] = ()
) -> list[checks.Captured]:
    """The NOTIFYs as the per-NOTIFY checks read them; one read by a watcher paused on purpose
    is ``late`` (its timestamp is when it was read)."""
    return [
        checks.Captured(
            n.request, n.timestamp, n.answered, late=any(a <= n.timestamp <= b for a, b in paused)
        )
        for n in notifies
    ]


def observations(
    notifies: Sequence[Notify],
    paused: Sequence[tuple[float, float]] = (),
    project: Callable[[bytes], bytes] | None = None,
) -> list[history.Observation]:
    """The NOTIFYs as the history check reads them: trace time, body (``project``ed when
    given), retransmission key; one read late by a paused watcher may have arrived as early
    as the pause began."""
    out = []
    for n in notifies:
        since = next((a for a, b in paused if a <= n.timestamp <= b), None)
        out.append(
            history.Observation(
                f"NOTIFY CSeq {n.cseq}",
                n.timestamp,
                project(n.body) if project is not None else n.body,
                n.subscription_state,
                key=(n.request.branch, n.cseq),
                earliest=since,
            )
        )
    return out


def ended(notifies: Sequence[Notify], paused: Sequence[tuple[float, float]] = ()) -> float | None:
    """When a subscription ended, as far as the watcher can tell: a terminated NOTIFY, a
    NOTIFY it rejected (B25), or a pause (a server may drop it after Timer F, B26)."""
    times = [a for a, _ in paused]
    for n in notifies:
        if n.subscription_state == "terminated" or (n.answered or 200) >= 300:
            times.append(n.timestamp)
            break
    return min(times) if times else None


def judge_subscription(
    notifies: Sequence[Notify],
    ctx: checks.Subscription,
    stimuli: Sequence[Stimulus],
    rules: history.Rules,
    *,
    end: float,
    paused: Sequence[tuple[float, float]] = (),
    checkpoints: Sequence[Checkpoint] = (),
    project: Callable[[bytes], bytes] | None = None,
    terminated: bool = False,
) -> list[Finding]:
    """Every NOTIFY of one subscription judged: headers and body (``checks.check_notify``), the
    CSeq and version sequence (``checks.check_sequence``), and the history (each NOTIFY at its
    moment against ``stimuli``, convergence at ``end`` or when the subscription ended, and the
    checkpoints). Shared by ``Case.finish`` and the explorer, so both judge alike.

    A call party's watcher passes the publications derived from its calls as ``stimuli`` and
    ``project`` (``oracle.call_history``): the history then sees bodies reduced to calls and
    states, and attributes a table no combination explains to E10. ``terminated``: the
    history's A23 body check (``history.check``), which the explorer asks for."""
    seen = captured(notifies, paused)
    findings: list[Finding] = []
    for c in seen:
        # A broken rule carries when its NOTIFY arrived: the explorer places it by that time
        # (``runner.failure_step``) instead of at its lane's end.
        findings += [checks.stamped(f, c.timestamp) for f in checks.check_notify(c, ctx)]
    findings += checks.check_sequence(seen)
    if not notifies:
        return findings
    stop = ended(notifies, paused)
    recorded = history.History(
        presentity=ctx.presentity,
        stimuli=tuple(stimuli),
        notifies=tuple(observations(notifies, paused, project)),
        end=stop if stop is not None else end,
        ended=stop is not None,
        subscribed=ctx.granted_at if ctx.granted_at is not None else -math.inf,
    )
    mode_id = call_history.FALLBACK if project is not None else None
    findings += history.check(
        recorded, rules, checkpoints=checkpoints, mode_id=mode_id, terminated=terminated
    ).findings
    return findings


def evidence_json(
    published: Iterable[tuple[str, Iterable[Any]]],
    watched: Iterable[tuple[str, Iterable[Any], Iterable[Notify]]],
) -> dict[str, list[dict[str, object]]]:
    """Traced messages and NOTIFYs as the report's ladder and bodies read them (results.json
    ``messages`` and ``notifies``): ``published`` is (party, traced messages) per exchange,
    ``watched`` (party, traced messages, NOTIFYs) per subscription. Shared by ``Case`` and the
    explorer's reproducers, so both draw alike."""
    messages: list[dict[str, object]] = []
    for party, exchange in published:
        messages += [_message_json(m, party) for m in exchange]
    notifies: list[dict[str, object]] = []
    for party, traced, captured_notifies in watched:
        messages += [_message_json(m, party) for m in traced]
        for notify in captured_notifies:
            version = state = None
            if notify.body.strip():
                try:
                    doc = dialoginfo.parse(notify.body)
                    version, state = doc.version, doc.state
                except BodyError:
                    pass
            notifies.append(
                {
                    "party": party,
                    "timestamp": notify.timestamp,
                    "version": version,
                    "state": state,
                    "body": notify.body.decode("utf-8", "replace"),
                }
            )
    messages.sort(key=lambda m: m["timestamp"])  # type: ignore[arg-type, return-value]
    return {"messages": messages, "notifies": notifies}


def _message_json(stamped, party: str) -> dict[str, object]:
    raw = bytes(stamped.message).decode("utf-8", "replace")
    return {
        "timestamp": stamped.timestamp,
        "party": party,
        "direction": "sent" if stamped.direction == "out" else "received",
        "first_line": raw.split("\r\n", 1)[0],
        "raw": raw,
        "retransmission": bool(getattr(stamped, "retransmission", False)),
    }


class Calls:
    """Calls for group E cases (the ``dialoginfo_calls`` fixture): callers and callees that
    place calls through ``proxy`` (where the target routes calls), watchers subscribed through
    the case, and the call oracle's verdict recorded as the case's findings.

    The watchers are the case's own subscriptions, so their NOTIFYs get the header and sequence
    checks of every case, and the history check, against publications derived from the
    party's calls (``Subscription.call_party``, ``oracle.call_history``).
    """

    def __init__(
        self,
        case: Case,
        *,
        proxy: tuple[str, int],
        block: PortBlock,
        workdir: Path,
        timeout: float,
        register: bool = False,
        auth: Any = None,
    ) -> None:
        self.case = case
        self.proxy = proxy
        self.registrar = (
            Publisher(
                server=proxy,
                block=block,
                workdir=workdir / "register",
                domain=case.target.domain,
                timeout=timeout,
                auth=auth,
            )
            if register
            else None
        )
        """With ``register``: callees REGISTER their Contact at the proxy through this peer,
        and calls go to the callee's AOR (``--dialoginfo-register``); with ``auth`` (a
        ``Credentials`` or ``Keyring``) a challenged REGISTER is answered as the callee's
        account."""
        self.block = block
        self.workdir = workdir
        self.timeout = timeout
        self.profile = call_oracle.CallProfile.from_profile(case.profile)
        self.parties: list[Caller | Callee] = []
        self._count = itertools.count(1)

    def _start(self, party: _P) -> _P:
        self.parties.append(party)
        party.start()
        return party

    def _where(self, hint: str) -> dict[str, object]:
        return {
            "server": self.proxy,
            "block": self.block,
            "workdir": self.workdir / f"{hint}-{next(self._count)}",
            "domain": self.case.target.domain,
            "timeout": self.timeout,
        }

    def caller(self, hint: str = "alice", display: str | None = "Alice") -> Caller:
        """A started caller (UAC) with a fresh user."""
        where = self._where(hint)
        return self._start(Caller(user=self.case.user(hint), display=display, **where))  # type: ignore[arg-type]

    def callee(self, hint: str = "bob", display: str | None = "Bob") -> Callee:
        """A started callee (UAS) with a fresh user."""
        where = self._where(hint)
        callee = self._start(Callee(user=self.case.user(hint), display=display, **where))  # type: ignore[arg-type]
        if self.registrar is not None:
            answer = register(self.registrar, callee)
            if not 200 <= answer.status < 300:
                raise HarnessError(
                    f"REGISTER of {callee.aor} at {self.proxy[0]}:{self.proxy[1]} answered "
                    f"{answer.status} {answer.reason}"
                )
        return callee

    def watch(self, party: Caller | Callee) -> Subscription:
        """Subscribe to ``party``'s AOR through the case (initial NOTIFY awaited, B05)."""
        sub = self.case.subscribe(party.user)
        role = call_oracle.Party.CALLER if isinstance(party, Caller) else call_oracle.Party.CALLEE
        sub.call_party = (role, party, self.profile)
        return sub

    def place(self, caller: Caller, callee: Callee) -> str:
        """Start a call; return its Call-ID once the INVITE reached the callee (sent to its
        AOR when callees register, else to its Contact)."""
        target = callee.aor if self.registrar is not None else None
        return place_call(caller, callee, target=target)

    def judge(
        self, call_id: str, party: Caller | Callee, sub: Subscription, *, settle: float = 1.0
    ) -> list[Finding]:
        """Wait ``settle`` s, then record the call oracle's findings for ``party``'s watcher
        (``oracle.calls.judge`` on raw NOTIFY bodies, terminated dialogs kept)."""
        self.case.clock.sleep(settle)
        role = call_oracle.Party.CALLER if isinstance(party, Caller) else call_oracle.Party.CALLEE
        exp = call_oracle.expect(role, party.messages(call_id), call_id, self.profile)
        seen = call_oracle.observe(((n.timestamp, n.body) for n in sub.notifies), exp)
        return self.case.record(call_oracle.judge(exp, seen))

    def close(self) -> None:
        for party in self.parties:
            party.close()


_P = TypeVar("_P", Caller, Callee)


def _party_calls(
    role: call_oracle.Party, party: Caller | Callee, profile: call_oracle.CallProfile
) -> list[call_oracle.Expectation]:
    """The expectation of every call ``party`` traced an INVITE of (by Call-ID, in order)."""
    traced = party.messages()
    call_ids = list(
        dict.fromkeys(
            m.message.call_id
            for m in traced
            if isinstance(m.message, Request)
            and m.message.method == "INVITE"
            and m.message.call_id is not None
        )
    )
    return [
        call_oracle.expect(role, [m for m in traced if m.message.call_id == c], c, profile)
        for c in call_ids
    ]
