"""Every NOTIFY judged at its moment: a Jepsen-style check of one subscription's history.

``expect_view`` alone only proves that the watcher's table ended right. A phone acts on every
NOTIFY it gets, so each one must show a state the server could really have held when it was
sent. The model is Jepsen's (STYLE.md §8): a stimulus takes effect at some moment between
sending its request and receiving its final response, and an observation is legal when some
order of the stimuli in flight around it explains it.

* **Effect intervals.** A PUBLISH (initial, modify, refresh, remove) takes effect in
  ``[sent, answered + settle_time]``; one answered with an error has no effect; one that got no
  answer may or may not have taken effect, at any time after it was sent. A publication expires
  somewhere in ``[expires - timestamp_resolution, expires + expiry_timer + expiry_slack]``
  (``expires`` counted from when it was sent or answered; Kamailio stamps whole seconds).
* **NOTIFY moment.** A NOTIFY received at r is legal when the §4.3 table after it (the view
  before it, plus its body, through ``view.WatcherView``) equals the oracle's table
  (``aggregator`` then ``checks.expected_view``) of some store state possible at t = r (from
  ``earliest`` for a NOTIFY read late): every stimulus whose interval ended before t applied,
  any subset of those in flight at t applied in any order the real-time order and the
  profile's timestamp resolution allow, nothing sent after t. A table that only some t in
  ``[r - EPSILON, r + EPSILON]`` explains is ``info``: the verdict depends on an ordering
  within ε.
  The slack is two-sided because both traces can be late: SIPp stamps a message after handling
  it, and on a loaded host a NOTIFY the reference server sent in answer to a PUBLISH was traced
  0.7 ms *before* that PUBLISH's "sent" entry.
* **Mismatch ids.** A NOTIFY that no possible state explains contradicts a stimulus, read off
  the timeline of states: the first due stimulus whose effect a stale table lacks, the first
  later one whose effect a premature table shows, or the one whose absence alone explains it.
  Remove C16, expiry C17, modify C15, refresh C13, publish B24; a ``partial`` document whose
  dialogs are all right but whose merge leaves the table wrong is A17 (the body is not the
  fault, the partial form is); with no single stimulus, or a publication stored before the
  subscription began (the first NOTIFY carries it: aggregation), D03 or D08 by mode. In
  single-dialog mode a table holding one dialog of the full aggregate, not the one the mode
  keeps, is a wrong choice whatever came last: D10 (a lone publication trimmed), D09 (a tie
  broken the other way) or D08 (another priority). A table with the dialogs and states of a
  possible state that differs only inside a dialog broke a pass-through rule (``content_rule``:
  A24, A34, A28, A27). A table whose dialogs no possible state has, while the presentity may hold
  nothing, and no stimulus explains it, is a non-neutral idle body (B27). A table
  that never caught up with a client's stimulus no NOTIFY followed at all is B24. The message
  names the stimulus, the NOTIFY and both tables.
* **Convergence.** The table at the end of a subscription (or at a case's checkpoint) must
  equal a state possible within the prompt bound before that moment; a subscription that
  ended (at a watcher-side moment) keeps the NOTIFYs' EPSILON allowance, as ``info``.

Retransmissions (same Via branch and CSeq) are judged once. Bodies the watcher cannot use
(empty, unparsable, an old version, a partial after a version gap) change nothing in its table
and are judged by their own rules (B27, A02, A09, A08), not here.

The search is exponential in the number of stimuli in flight at one moment, so it is bounded:
at most ``MAX_IN_FLIGHT`` in-flight stimuli are free (older ones beyond that count as applied),
at most ``MAX_ORDERS`` orders per subset, at most ``MAX_STATES`` states per moment. The suite
sends one stimulus at a time, so real histories stay far below the bounds; a history that hits
one gets no failure, only an info finding that says the bound was hit.

Pure: no clock, no I/O; times are the SIPp trace timestamps the caller passes in.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from conformance.errors import BodyError
from conformance.oracle import aggregator, checks, dialoginfo
from conformance.oracle.aggregator import Publication
from conformance.oracle.dialoginfo import Dialog
from conformance.oracle.findings import Finding
from conformance.oracle.requirements import Level
from conformance.oracle.view import WatcherView

__all__ = [
    "EPSILON",
    "MAX_IN_FLIGHT",
    "MAX_ORDERS",
    "MAX_STATES",
    "Checkpoint",
    "History",
    "Judgement",
    "Observation",
    "Result",
    "Rules",
    "Stimulus",
    "check",
    "fold",
    "possible_views",
]

EPSILON = 0.010
"""Seconds of clock difference allowed, either way, between the publisher's and the watcher's
SIPp traces (two processes stamping their own messages on one loaded host)."""
MAX_IN_FLIGHT = 6
"""At most this many in-flight stimuli are searched as a free subset (2**6 subsets); older ones
in flight at the same moment are taken as applied."""
MAX_ORDERS = 24
"""At most this many effect orders are tried per applied subset (4! concurrent stimuli)."""
MAX_STATES = 512
"""At most this many store states are built per judged moment."""
DEFAULT_EXPIRES = 3600
"""A 2xx without Expires: the RFC 3903 default lifetime."""

Kind = Literal["publish", "modify", "refresh", "remove"]
Verdict = Literal["pass", "info", "fail"]

_ID_BY_KIND = {
    "remove": "C16",
    "expiry": "C17",
    "modify": "C15",
    "refresh": "C13",
    "publish": "B24",
}


# -- the recorded history -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stimulus:
    """One PUBLISH transaction as the publisher's SIPp trace recorded it."""

    kind: Kind
    label: str
    """Names the stimulus in messages, e.g. ``remove #3 (ETag a1b2)``."""
    sent: float
    """Trace time of the request (the first copy, not a retransmission)."""
    answered: float | None
    """Trace time of the final response; None when none came."""
    status: int | None
    """Final response status; None when none came."""
    body: bytes | None = None
    """The published body (initial PUBLISH, modify); None for refresh and remove. An empty one
    counts as none: RFC 3903 §4.3 and §6 step 5 make a PUBLISH with SIP-If-Match and no body
    a refresh, whatever the publisher meant it as (``effective_kind``)."""
    etag: str | None = None
    """The SIP-ETag of the 2xx: the publication this stimulus leaves in the store."""
    replaces: str | None = None
    """The SIP-If-Match the request carried (modify, refresh, remove)."""
    expires: int | None = None
    """Expires granted by the 2xx (0 for a remove)."""
    requirement: str | None = None
    """The rule a contradiction of this stimulus is reported under; None: by its kind (C13,
    C15, C16, B24). A call's derived publications name their E rule (``call_history``)."""

    @property
    def effective_kind(self) -> Kind:
        """The kind the server must treat it as: a modify without a body is a refresh."""
        return "refresh" if self.kind == "modify" and not self.body else self.kind

    @property
    def error(self) -> bool:
        """Answered with a final non-2xx: RFC 3903 says the request changed nothing."""
        return self.status is not None and not 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class Observation:
    """One NOTIFY as the watcher's SIPp trace recorded it."""

    label: str
    received: float
    body: bytes
    subscription_state: str | None = None
    key: tuple[object, ...] = ()
    """(Via branch, CSeq): a retransmission repeats it and is judged once."""
    earliest: float | None = None
    """A lower bound of the real arrival when ``received`` is when it was read (a watcher that
    was paused on purpose); None means ``received`` is exact."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What of the target profile the history needs (a subset of ``targets.profile.Profile``;
    duck-typed by ``from_profile`` because the oracle does not import the targets layer)."""

    single_dialog: bool = False
    flavour: aggregator.Flavour = "kamailio"
    replaces_on_same_first_id: bool = False
    timestamp_resolution: float = 0.0
    settle_time: float = 0.0
    expiry_timer: float = 0.0
    expiry_slack: float = 0.0
    stale_removal_notify: bool = False

    @classmethod
    def from_profile(cls, profile: object) -> Rules:
        names = [f for f in cls.__dataclass_fields__ if hasattr(profile, f)]
        return cls(**{n: getattr(profile, n) for n in names})

    @property
    def bound(self) -> float:
        """The prompt bound: how long a change may take to reach a watcher."""
        return checks.PROMPT_SECONDS + self.settle_time


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A moment a case asked about: the table then must match a state possible within the
    prompt bound before it. ``excluded`` stimuli (by label) are judged as if the server had
    rejected them: a rule said they must change nothing."""

    at: float
    requirements: tuple[str, ...]
    excluded: frozenset[str] = frozenset()
    level: Level | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Everything one subscription's judgement needs."""

    presentity: str
    stimuli: tuple[Stimulus, ...]
    notifies: tuple[Observation, ...]
    end: float
    """When observation stopped (the watcher was still listening until then)."""
    ended: bool = False
    """The subscription ended within the history (a terminated NOTIFY)."""
    subscribed: float = -math.inf
    """When the SUBSCRIBE was sent: what was stored before belongs in the first NOTIFY."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on one NOTIFY (or one convergence moment)."""

    what: str
    at: float
    verdict: Verdict
    requirement: str | None = None
    stimulus: str | None = None
    """Label of the contradicted stimulus (None when the NOTIFY is legal or nothing fits)."""
    observed: str = ""
    """The table the watcher held: canonical ``id:state`` list, no timings (``Finding.observed``
    will carry it)."""
    expected: str = ""
    message: str = ""


@dataclass
class Result:
    judgements: list[Judgement] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


# -- the store: one fold shared with the live expectation --------------------------------------


def fold(
    store: Sequence[Publication],
    stimulus: Stimulus,
    *,
    received: float,
    seq: int,
    expires_at: float = math.inf,
    replaces_on_same_first_id: bool = False,
    flavour: aggregator.Flavour = "strict",
) -> tuple[Publication, ...]:
    """The store after ``stimulus`` took effect (RFC 3903 §6): a pure step of the model.

    ``received``/``seq`` order the new publication in the aggregate; ``expires_at`` is its
    absolute expiry (the history check models expiry as its own event and passes infinity).
    An error-answered stimulus changes nothing; a refresh or modify of an ETag that is not
    stored changes nothing either (a modify still adds its body: the server answered 2xx).
    """
    if stimulus.error:
        return tuple(store)
    pubs = list(store)
    old = (
        next((p for p in pubs if p.etag == stimulus.replaces), None) if stimulus.replaces else None
    )
    if old is not None:
        pubs.remove(old)
    granted = stimulus.expires if stimulus.expires is not None else DEFAULT_EXPIRES
    if stimulus.kind == "remove" or granted == 0:
        return tuple(pubs)
    if not stimulus.body:  # a refresh keeps the body; the flavour says whether its place too
        if old is None:
            return tuple(store)
        pubs.append(
            aggregator.refreshed(
                old,
                etag=stimulus.etag or old.etag,
                now=received,
                expires=expires_at,
                seq=seq,
                flavour=flavour,
            )
        )
        return tuple(pubs)
    if old is None and replaces_on_same_first_id:
        twin = aggregator.kamailio_replaces(pubs, stimulus.body)
        if twin is not None:
            pubs.remove(twin)
    pubs.append(Publication(stimulus.body, stimulus.etag or "", received, expires_at, seq))
    return tuple(pubs)


# -- events: stimuli and expiries with their effect intervals -----------------------------------


@dataclass(frozen=True, slots=True)
class _Event:
    index: int
    kind: str
    label: str
    start: float
    end: float
    stimulus: Stimulus | None
    """None for an expiry."""
    drops: str | None = None
    """The ETag an expiry removes."""


def _events(stimuli: Sequence[Stimulus], rules: Rules, excluded: frozenset[str]) -> list[_Event]:
    events: list[_Event] = []
    for s in sorted(stimuli, key=lambda s: s.sent):
        if s.error or s.label in excluded:
            continue
        end = math.inf if s.answered is None else s.answered + rules.settle_time
        events.append(_Event(len(events), s.effective_kind, s.label, s.sent, end, s))
    for e in list(events):
        made = e.stimulus
        if made is None:
            continue
        granted = made.expires if made.expires is not None else DEFAULT_EXPIRES
        if made.kind == "remove" or granted <= 0 or made.etag is None:
            continue
        late = rules.expiry_timer + rules.expiry_slack
        events.append(
            _Event(
                len(events),
                "expiry",
                f"expiry of {made.label} (Expires {granted})",
                made.sent + granted - rules.timestamp_resolution,
                e.end + granted + late,
                None,
                drops=made.etag,
            )
        )
    return events


def _precedes(a: _Event, b: _Event, rules: Rules) -> bool:
    """a certainly took effect before b: real time, widened by the server's timestamp
    resolution for two bodies whose aggregation order is that timestamp (Kamailio). A
    stimulus that replaces a's ETag comes after a whatever the times: a server cannot modify a
    publication before it made it (a call's derived publications overlap in time, and their
    chain of ETags is what orders them)."""
    sa, sb = a.stimulus, b.stimulus
    if sa is not None and sb is not None and sa.etag and sb.replaces == sa.etag:
        return True
    if a.end >= b.start:
        return False
    ordered_by_stamp = (
        rules.timestamp_resolution > 0
        and sa is not None
        and sb is not None
        and _stamped(sa, rules)
        and _stamped(sb, rules)
        and sb.replaces != sa.etag
    )
    return not (ordered_by_stamp and a.end + rules.timestamp_resolution > b.start)


def _stamped(s: Stimulus, rules: Rules) -> bool:
    """Whether the store writes ``s``'s arrival time, the aggregation order key: every body;
    on Kamailio a refresh too (``aggregator.refreshed``), so a refresh in the same second as
    another publication may sort before it (ties go by row, first insert first; seen live)."""
    return bool(s.body) or (rules.flavour == "kamailio" and s.effective_kind == "refresh")


def _orders(applied: Sequence[_Event], rules: Rules) -> Iterator[tuple[_Event, ...]]:
    """Linear extensions of the precedence order, base order (by start) first, bounded."""
    items = sorted(applied, key=lambda e: (e.start, e.index))
    before = {
        e.index: {a.index for a in items if a is not e and _precedes(a, e, rules)} for e in items
    }
    produced = 0

    def extend(placed: tuple[_Event, ...], rest: list[_Event]) -> Iterator[tuple[_Event, ...]]:
        nonlocal produced
        if not rest:
            produced += 1
            yield placed
            return
        done = {e.index for e in placed}
        for i, e in enumerate(rest):
            if produced >= MAX_ORDERS:
                return
            if before[e.index] <= done:
                yield from extend((*placed, e), rest[:i] + rest[i + 1 :])

    yield from extend((), items)


def _store(order: Sequence[_Event], rules: Rules) -> tuple[Publication, ...]:
    store: tuple[Publication, ...] = ()
    for rank, e in enumerate(order):
        if e.stimulus is None:
            store = tuple(p for p in store if p.etag != e.drops)
        else:
            store = fold(
                store,
                e.stimulus,
                received=float(rank),
                seq=rank,
                replaces_on_same_first_id=rules.replaces_on_same_first_id,
                flavour=rules.flavour,
            )
    return store


# -- views ---------------------------------------------------------------------------------------

ViewKey = tuple[tuple[str | None, str | None, str], ...]


def _key(dialogs: Iterable[Dialog]) -> ViewKey:
    return tuple(sorted(((d.id, d.state, d.canonical) for d in dialogs), key=repr))


def _describe(dialogs: Iterable[Dialog]) -> str:
    return (
        ", ".join(f"{d.id}:{d.state}" for d in sorted(dialogs, key=lambda d: str(d.id))) or "none"
    )


@functools.lru_cache(maxsize=4096)
def _aggregate(
    store: tuple[Publication, ...], presentity: str, single: bool, flavour: str
) -> aggregator.Aggregate:
    return aggregator.aggregate(
        store,
        presentity=presentity,
        now=0.0,
        single_dialog=single,
        flavour=flavour,  # type: ignore[arg-type]
    )


@functools.lru_cache(maxsize=4096)
def _expected(
    store: tuple[Publication, ...], presentity: str, single: bool, flavour: str
) -> tuple[Dialog, ...]:
    return tuple(checks.expected_view(_aggregate(store, presentity, single, flavour)).values())


@functools.lru_cache(maxsize=4096)
def _terminated(
    store: tuple[Publication, ...], presentity: str, single: bool, flavour: str
) -> frozenset[str | None]:
    """Ids of the terminated dialogs the aggregate of ``store`` carries (none when it is
    broken: no document)."""
    agg = _aggregate(store, presentity, single, flavour)
    if agg.broken:
        return frozenset()
    return frozenset(d.id for d in agg.dialogs if d.state_key == "terminated")


def _moments(events: Sequence[_Event], lo: float, hi: float) -> list[float]:
    """Sample times covering every distinct (applied, in flight) split of [lo, hi]."""
    points = {lo, hi}
    for e in events:
        for x in (e.start, e.end):
            if lo < x < hi:
                points.add(x)
    ordered = sorted(points)
    mids = [(a + b) / 2 for a, b in itertools.pairwise(ordered)]
    return sorted(ordered + mids)


class _Views(dict[ViewKey, tuple[Dialog, ...]]):
    """Possible tables, and whether a search bound cut the enumeration short; ``ended`` holds,
    per table, the sets of terminated dialog ids a full document of such a state carries (the
    table drops them, RFC 4235 §4.3, so only the body can show they were left out)."""

    bounded = False

    def __init__(self) -> None:
        super().__init__()
        self.ended: dict[ViewKey, set[frozenset[str | None]]] = {}


def _states(
    events: Sequence[_Event], t: float, rules: Rules, views: _Views
) -> Iterator[tuple[Publication, ...]]:
    done = [e for e in events if e.end < t]
    flying = sorted((e for e in events if e.start <= t <= e.end), key=lambda e: e.start)
    if len(flying) > MAX_IN_FLIGHT:
        views.bounded = True
        done += flying[:-MAX_IN_FLIGHT]
        flying = flying[-MAX_IN_FLIGHT:]
    for n in range(len(flying) + 1):
        for subset in itertools.combinations(flying, n):
            applied = [*done, *subset]
            orders = list(_orders(applied, rules))
            if len(orders) >= MAX_ORDERS:
                views.bounded = True
            for order in orders:
                yield _store(order, rules)


def possible_views(
    history: History, lo: float, hi: float, rules: Rules, *, excluded: frozenset[str] = frozenset()
) -> _Views:
    """Every oracle table of a store state possible at some t in [lo, hi], keyed canonically."""
    return _possible(_events(history.stimuli, rules, excluded), history.presentity, lo, hi, rules)


def _possible(
    events: Sequence[_Event], presentity: str, lo: float, hi: float, rules: Rules
) -> _Views:
    out = _Views()
    seen: set[tuple[Publication, ...]] = set()
    for t in _moments(events, lo, hi):
        for store in _states(events, t, rules, out):
            if store in seen:
                continue
            seen.add(store)
            dialogs = _expected(store, presentity, rules.single_dialog, rules.flavour)
            out.setdefault(_key(dialogs), dialogs)
            ended = _terminated(store, presentity, rules.single_dialog, rules.flavour)
            out.ended.setdefault(_key(dialogs), set()).add(ended)
            if len(seen) >= MAX_STATES:
                out.bounded = True
                return out
    return out


def _freshest(
    events: Sequence[_Event], presentity: str, t: float, rules: Rules
) -> tuple[Dialog, ...]:
    """The oracle's table with everything sent by t applied, in the base order."""
    applied = sorted((e for e in events if e.start <= t), key=lambda e: (e.start, e.index))
    return _expected(_store(applied, rules), presentity, rules.single_dialog, rules.flavour)


# -- attribution ----------------------------------------------------------------------------------


def _document(body: bytes | None) -> dialoginfo.DialogInfo | None:
    """The parsed body; None when there is none or it does not parse (its own rules judge it)."""
    if not body:
        return None
    try:
        return dialoginfo.parse(body)
    except BodyError:
        return None


def _ends(body: bytes | None, ids: frozenset[str | None]) -> bool:
    """The published body carries one of ``ids`` as a terminated dialog."""
    doc = _document(body)
    return doc is not None and any(d.id in ids and d.state_key == "terminated" for d in doc.dialogs)


def _partial_fragment_right(body: bytes, candidates: Iterable[Sequence[Dialog]]) -> bool:
    """A partial document whose every dialog agrees with some possible state: the body is a
    right delta, so a wrong table comes from what the partial form left out (A17)."""
    doc = _document(body)
    if doc is None or doc.state != "partial":
        return False
    for state in candidates:
        table = {d.id: d for d in state}
        if all(
            (d.id not in table) if d.state_key == "terminated" else table.get(d.id) == d
            for d in doc.dialogs
        ):
            return True
    return False


def _invented_while_idle(table: Sequence[Dialog], states: _Views) -> bool:
    """The presentity may hold nothing (some possible state is empty) and the table shows
    only dialogs no possible state has: the idle body was not neutral (B27), the aggregation
    of what was published is not in question."""
    known = {d.id for state in states.values() for d in state}
    return bool(table) and any(not s for s in states.values()) and not known & {d.id for d in table}


# -- the check ------------------------------------------------------------------------------------


def check(
    history: History,
    rules: Rules,
    *,
    checkpoints: Sequence[Checkpoint] = (),
    mode_id: str | None = None,
    terminated: bool = False,
) -> Result:
    """Judge every NOTIFY of ``history`` in its window, the convergence at its end and each
    checkpoint. Returns the judgements (for reports and tests) and the findings they earn.

    Failures are reported once per (requirement, contradicted stimulus): a stale NOTIFY and
    the table that then never converges are one fault, not two.

    ``terminated`` also judges each legal full NOTIFY's body for the terminated dialogs its
    table cannot show (A23, ``terminated_left_out``). Opt-in: the explorer asks for it; the
    suite's cases check A23 with their own pass-through case, and this body check has only
    been run against the reference server so far (issue 13)."""
    fallback = mode_id or ("D08" if rules.single_dialog else "D03")
    result = Result()
    ctx = _Context(history, rules, fallback)
    view = WatcherView()
    seen: set[tuple[object, ...]] = set()
    tables: list[tuple[float, tuple[Dialog, ...], Judgement | None]] = [(-math.inf, (), None)]
    judged: list[float] = []
    for obs in history.notifies:
        if obs.key and obs.key in seen:
            continue  # a retransmission: judged once
        if obs.key:
            seen.add(obs.key)
        if not obs.body.strip():
            continue  # tells the watcher nothing (B27); the table stands
        before = view.version
        view.apply(obs.body, label=obs.label)
        applied = view.version is not None and view.version != before
        table = tuple(view.dialogs.values())
        if not applied or view.desynchronised:
            # Unreadable, an old version or a partial after a gap: their own rules judge them.
            tables.append((obs.received, table, None))
            continue
        earliest = obs.earliest if obs.earliest is not None else obs.received
        late = ctx.predicted_stale(obs.received, judged)
        j = ctx.judge(table, earliest, obs.received, obs.label, body=obs.body, late=late)
        judged.append(obs.received)
        result.judgements.append(j)
        if terminated and j.verdict == "pass":
            left_out = ctx.terminated_left_out(obs.body, table, earliest, obs.received, obs.label)
            if left_out is not None:
                result.judgements.append(left_out)
        tables.append((obs.received, table, j))
    # Convergence: the table the watcher held when the subscription ended (or observation
    # stopped), unless the last body before then was one it could not use (own rules). A
    # subscription that ended (a terminated or rejected NOTIFY, a pause) ended at a moment
    # the watcher's side stamped, not the publisher's trace, so it keeps the NOTIFYs' clock
    # allowance: the NOTIFY that ended it was judged with EPSILON, and the same table at the
    # same moment must not fail without it (explorer seed 7, issue 13).
    _at, last, prior = next(row for row in reversed(tables) if row[0] <= history.end)
    if prior is not None:
        end = history.end
        what = "the table at the end of the subscription"
        slack = EPSILON if history.ended else 0.0
        j = ctx.judge(last, end - rules.bound, end, what, slack=slack, prior=prior)
        result.judgements.append(j)
    _findings(result, history)
    for cp in checkpoints:
        for f in _checkpoint(ctx, cp, tables):
            if not f.passed and "stimulus" in f.evidence:
                # The same fault a NOTIFY judgement already reported: keep the graver one.
                key = (f.requirement, f.evidence["stimulus"])
                same = [
                    i
                    for i, g in enumerate(result.findings)
                    if "stimulus" in g.evidence and (g.requirement, g.evidence["stimulus"]) == key
                ]
                if same:
                    if f.level is None and result.findings[same[0]].level is Level.INFO:
                        result.findings[same[0]] = f
                    continue
            result.findings.append(f)
    return result


_CONTENT_RULES = (
    ("A24", lambda d: d.direction),
    ("A34", lambda d: d.extensions),
    ("A28", lambda d: (d.local and d.local.target, d.remote and d.remote.target)),
    ("A27", lambda d: (d.local and d.local.params, d.remote and d.remote.params)),
)
"""Dialog parts a server must pass through unchanged, with the rule each belongs to."""


def content_rule(table: Sequence[Dialog], states: Iterable[Sequence[Dialog]]) -> str | None:
    """A table with the very dialogs and states of a possible state, differing only inside a
    dialog, broke a pass-through rule, not the aggregation: the rule of the first part that
    differs (direction A24, extension children A34, target URI A28, target params A27). None
    when no possible state has the same dialogs and states, or no such part differs."""
    shown = {(d.id, d.state): d for d in table}
    for state in states:
        expected = {(d.id, d.state): d for d in state}
        if expected.keys() != shown.keys() or len(state) != len(table):
            continue
        for key, want in expected.items():
            got = shown[key]
            for rid, part in _CONTENT_RULES:
                if part(got) != part(want):
                    return rid
    return None


class _Context:
    """One history's events and attribution data, built once per check."""

    def __init__(
        self, history: History, rules: Rules, fallback: str, excluded: frozenset[str] = frozenset()
    ) -> None:
        self.history = history
        self.rules = rules
        self.fallback = fallback
        self.events = _events(history.stimuli, rules, excluded)
        self.order = sorted(self.events, key=lambda e: (e.start, e.index))
        self.timeline = [self._view_key(self.order[:k]) for k in range(len(self.order) + 1)]
        self._possible: dict[tuple[float, float, frozenset[str]], _Views] = {}

    def _view_key(self, applied: Sequence[_Event]) -> ViewKey:
        store = _store(applied, self.rules)
        presentity, rules = self.history.presentity, self.rules
        return _key(_expected(store, presentity, rules.single_dialog, rules.flavour))

    def possible(self, lo: float, hi: float, late: frozenset[str] = frozenset()) -> _Views:
        cached = self._possible.get((lo, hi, late))
        if cached is not None:
            return cached
        events = self.events
        if late:
            events = [replace(e, end=max(e.end, hi)) if e.label in late else e for e in events]
        views = _possible(events, self.history.presentity, lo, hi, self.rules)
        self._possible[(lo, hi, late)] = views
        return views

    def terminated_left_out(
        self, body: bytes, table: tuple[Dialog, ...], lo: float, hi: float, what: str
    ) -> Judgement | None:
        """A23 on the body of a NOTIFY whose table was legal: a full document carries every
        terminated dialog of the state it shows (they pass through, and D03 moves every
        stored element into the aggregate); the §4.3 table drops them, so only the body can
        show one left out. None when some state its table fits has no terminated dialog the
        body lacks (a partial document, an unreadable one: not judged here)."""
        doc = _document(body)
        if doc is None or doc.state != "full":
            return None
        shown = frozenset(d.id for d in doc.dialogs if d.state_key == "terminated")
        key = _key(table)
        strict = self.possible(lo, hi)
        wanted = strict.ended.get(key, set())
        if not wanted or any(w <= shown for w in wanted):
            return None
        loose = self.possible(lo - EPSILON, hi + EPSILON)
        near = any(w <= shown for w in loose.ended.get(key, ()))
        verdict: Verdict = "info" if near or strict.bounded or loose.bounded else "fail"
        missing = min((w - shown for w in wanted), key=len)
        label = next(
            (
                e.label
                for e in reversed(self.order)
                if e.start <= hi and e.stimulus is not None and _ends(e.stimulus.body, missing)
            ),
            "no single stimulus",
        )
        names = ", ".join(sorted(str(i) for i in missing))
        observed = ", ".join(sorted(str(i) for i in shown)) or "none"
        message = (
            f"{what} (at {hi:.3f}) is a full document without the terminated dialog(s) {names} "
            f"that every state its table fits holds (published by: {label}); terminated "
            f"dialogs in the body: {observed}; watcher table: {_describe(table)}"
        )
        return Judgement(
            what, hi, verdict, "A23", label, f"terminated {observed}", f"terminated {names}",
            message,
        )  # fmt: skip

    def predicted_stale(self, r: float, judged: Sequence[float]) -> frozenset[str]:
        """Removes whose effect the profile says the NOTIFY they trigger does not show yet
        (``stale_removal_notify``): the first NOTIFY judged after each remove was sent."""
        if not self.rules.stale_removal_notify:
            return frozenset()
        return frozenset(
            e.label
            for e in self.events
            if e.kind == "remove" and e.start <= r and not any(e.start <= t < r for t in judged)
        )

    def culprit(self, table: Sequence[Dialog], at: float) -> _Event | None:
        """The stimulus the table contradicts, read off the timeline of states (every event in
        start order): a table some earlier state explains is stale, and the culprit is the
        first due event whose effect it lacks; one a later state explains shows the first
        effect it could not yet know. Else one event left out of everything sent explains it
        (a lost or reordered update). None: no single stimulus explains it (aggregation)."""
        key = _key(table)
        keys, order = self.timeline, self.order
        sent = sum(1 for e in order if e.start <= at)
        changes = [j for j in range(1, len(keys)) if keys[j] != keys[j - 1]]
        # Only states reached while the history was observed (not an expiry an hour away).
        horizon = max(at, self.history.end)
        reached = sum(1 for e in order if e.stimulus is not None or e.start <= horizon)
        matches = [k for k, v in enumerate(keys[: reached + 1]) if v == key]
        past = [k for k in matches if k <= sent]
        if past:
            k = max(past)
            due = [j for j in changes if j > k and order[j - 1].end < at]
            found = due or [j for j in changes if k < j <= sent]
            if found:
                return order[found[0] - 1]
        elif matches:
            found = [j for j in changes if sent < j <= min(matches)]
            if found:
                return order[found[0] - 1]
        applied = order[:sent]
        for e in reversed(applied):
            if self._view_key([x for x in applied if x is not e]) == key:
                return e
        return None

    def requirement(self, culprit: _Event | None, *, converged: bool) -> str:
        """The id a contradicted stimulus stands for. A publication the subscription's first
        NOTIFY should already carry is an aggregation failure (D03/D08), not a missed change;
        a table that stops short of a client's stimulus no NOTIFY followed is B24."""
        if culprit is None:
            return self.fallback
        if culprit.stimulus is not None and culprit.stimulus.requirement:
            return culprit.stimulus.requirement
        if culprit.kind == "publish" and culprit.end < self.history.subscribed:
            return self.fallback
        if (
            converged
            and culprit.stimulus is not None
            # Within the clock allowance: SIPp stamps a sent request late, and Kamailio's
            # stale removal NOTIFY was traced 1.1 ms before its remove's "sent" entry.
            and not any(o.received >= culprit.start - EPSILON for o in self.history.notifies)
        ):
            return "B24"
        return _ID_BY_KIND[culprit.kind]

    def selection(self, table: Sequence[Dialog], at: float) -> str | None:
        """Single-dialog mode: a table holding one dialog of the full aggregate (everything sent
        by ``at``) but not the one the mode keeps is a wrong choice, whatever stimulus came
        last: the mode trimmed a lone publication (D10), or kept a dialog of the winner's
        priority (a tie broken the other way, D09) or of another priority (D08). None when the
        table is not such a choice (a lost or stale update keeps its stimulus's id; the caller
        skips tables a remove or an expiry contradicts: those show a state from before it)."""
        if not self.rules.single_dialog or len(table) != 1:
            return None
        rules, presentity = self.rules, self.history.presentity
        applied = sorted(
            (e for e in self.events if e.start <= at), key=lambda e: (e.start, e.index)
        )
        store = _store(applied, rules)
        full = _expected(store, presentity, False, rules.flavour)
        if not set(_key(table)) <= set(_key(full)) or len(full) < 2:
            return None
        live = aggregator.aggregate(store, presentity=presentity, now=0.0, flavour=rules.flavour)
        if live.publications < 2:
            return "D10"
        chosen = _expected(store, presentity, True, rules.flavour)
        if len(chosen) != 1 or _key(chosen) == _key(table):
            return None
        same = aggregator.priority(chosen[0].state) == aggregator.priority(table[0].state)
        return "D09" if same else "D08"

    def judge(
        self,
        table: tuple[Dialog, ...],
        lo: float,
        hi: float,
        what: str,
        *,
        body: bytes | None = None,
        slack: float = EPSILON,
        prior: Judgement | None = None,
        late: frozenset[str] = frozenset(),
    ) -> Judgement:
        """One table against the states possible in [lo, hi], then in [lo - slack, hi + slack];
        ``late`` removes may still be in flight at ``hi`` (the profile predicts their stale
        NOTIFY)."""
        observed = _describe(table)
        key = _key(table)
        strict = self.possible(lo, hi)
        if key in strict:
            return Judgement(what, hi, "pass", observed=observed, expected=observed)
        if late and key in self.possible(lo, hi, late):
            note = f"predicted by the profile (stale_removal_notify): {', '.join(sorted(late))}"
            return Judgement(what, hi, "pass", observed=observed, expected=note)
        loose = self.possible(lo - slack, hi + slack) if slack else strict
        expected = _describe(_freshest(self.events, self.history.presentity, hi, self.rules))
        culprit = self.culprit(table, hi)
        label = culprit.label if culprit else "no single stimulus"
        if prior is not None and prior.verdict != "pass" and prior.observed == observed:
            # The table is what an earlier wrong NOTIFY left: the same fault, the same id.
            rid, label = prior.requirement, prior.stimulus or label
        elif body is not None and _partial_fragment_right(body, strict.values()):
            # The NOTIFY of the latest stimulus: its partial form left the rest out.
            rid = "A17"
            sent = [e for e in self.order if e.stimulus is not None and e.start <= hi]
            culprit = sent[-1] if sent else culprit
            label = culprit.label if culprit else label
        else:
            stale = culprit is not None and culprit.kind in ("remove", "expiry")
            choice = content_rule(table, strict.values())
            if choice is None and not stale:
                choice = self.selection(table, hi)
            if choice is None and culprit is None and _invented_while_idle(table, strict):
                choice = "B27"
            rid = choice or self.requirement(culprit, converged=body is None)
        # A search cut short by its bound cannot prove a NOTIFY wrong: it only informs.
        verdict: Verdict = "info" if key in loose or loose.bounded else "fail"
        when = "sent after it" if culprit and culprit.start > hi else "answered around it"
        if verdict == "info" and key not in loose:
            why = "matches none of the states enumerated before the search bound (MAX_*) hit"
        elif verdict == "info":
            why = f"matches a possible state only within the {slack * 1000:.0f} ms clock allowance"
        elif rid == "A17":
            why = "its partial body is right but the §4.3 table it leaves is wrong"
        else:
            why = "matches no store state possible in its window"
        message = (
            f"{what} (at {hi:.3f}) {why}; contradicted stimulus: {label} ({when}); "
            f"watcher table: {observed}; oracle: {expected}"
        )
        if self.rules.stale_removal_notify and culprit is not None and culprit.kind == "remove":
            message += (
                "; the profile predicts a stale removal NOTIFY (stale_removal_notify), "
                "and no later NOTIFY corrected it"
            )
        return Judgement(what, hi, verdict, rid, label, observed, expected, message)


def _findings(result: Result, history: History) -> None:
    """One finding per (requirement, contradicted stimulus), from its first failing judgement
    (or its first info one when none failed)."""
    worst: dict[tuple[str | None, str | None], Judgement] = {}
    for j in result.judgements:
        if j.verdict == "pass":
            continue
        key = (j.requirement, j.stimulus)
        if key not in worst or (worst[key].verdict == "info" and j.verdict == "fail"):
            worst[key] = j
    result.findings.extend(_failure(j, history) for j in worst.values())


def _observation(j: Judgement, *, without: bool = False) -> str:
    """A judgement's ``Finding.observed``: the tables only, never times, ETags or users, so a
    profile can declare it and a repeated run observes the same text."""
    other = "without it" if without else "oracle"
    return f"watcher table: {j.observed}; {other}: {j.expected}"


def _failure(j: Judgement, history: History, level: Level | None = None) -> Finding:
    return Finding(
        j.requirement or "D03",
        False,
        f"history of {history.presentity}: {j.message}",
        level=Level.INFO if j.verdict == "info" else level,
        evidence={"observed": j.observed, "expected": j.expected, "stimulus": j.stimulus},
        observed=_observation(j),
    )


def _passed(named: Sequence[str], what: str, j: Judgement, level: Level | None) -> list[Finding]:
    observed = j.observed
    return [
        Finding(
            rid,
            True,
            f"{what}: {observed}",
            level=level,
            evidence={"observed": observed},
            observed=f"watcher table: {observed}",
        )
        for rid in named
    ]


def _checkpoint(
    ctx: _Context,
    cp: Checkpoint,
    tables: Sequence[tuple[float, tuple[Dialog, ...], Judgement | None]],
) -> list[Finding]:
    """The case's named requirements at one moment: the table then against the states possible
    within the prompt bound before it.

    With ``excluded`` stimuli the states are those of a server that rejected them; a table only
    their effect explains fails the named ids. Otherwise a mismatch another rule explains (its
    own id, e.g. A17 for a partial NOTIFY) fails that id, and the named ids get an info finding
    pointing at it, so a fault is not reported under a name that is not its own."""
    history, rules = ctx.history, ctx.rules
    _at, table, prior = next((row for row in reversed(tables) if row[0] <= cp.at), tables[0])
    lo = cp.at - rules.bound
    named = list(cp.requirements)
    what = f"the table of {history.presentity} at the case's checkpoint"
    if cp.excluded:
        counter = _Context(history, rules, ctx.fallback, cp.excluded)
        since = min((s.sent for s in history.stimuli if s.label in cp.excluded), default=cp.at)
        # Every NOTIFY from the stimulus to the checkpoint, then the table at the checkpoint:
        # the first one that only the excluded stimulus explains fails the named ids.
        moments = [
            (at, t, f"{j.what} (the table it left)")
            for at, t, j in tables
            if j is not None and since - EPSILON <= at <= cp.at
        ]
        moments.append((cp.at, table, what))
        for at, shown, label in moments:
            first = at if label != what else lo
            j = counter.judge(shown, first, at, label)
            if j.verdict == "pass":
                continue
            real = ctx.judge(shown, first, at, label)
            if real.verdict != "pass":
                break  # wrong either way: judged by the real history's own ids
            labels = ", ".join(sorted(cp.excluded))
            text = (
                f"{label} shows the effect of {labels}, which must have had none; "
                f"watcher table: {j.observed}; without it: {j.expected}"
            )
            return [
                Finding(
                    rid,
                    False,
                    text,
                    level=Level.INFO if j.verdict == "info" else cp.level,
                    evidence={"observed": j.observed, "expected": j.expected},
                    observed=_observation(j, without=True),
                )
                for rid in named
            ]
        j = counter.judge(table, lo, cp.at, what)
        if j.verdict == "pass":
            return _passed(named, what, j, cp.level)
        j = ctx.judge(table, lo, cp.at, what, prior=prior)
        if j.verdict == "pass":  # wrong without the stimulus, right with it: caught above
            return [
                Finding(rid, False, j.message, level=cp.level, observed=_observation(j))
                for rid in named
            ]
    else:
        j = ctx.judge(table, lo, cp.at, what, prior=prior)
        if j.verdict == "pass":
            return _passed(named, what, j, cp.level)
    if j.requirement in named or j.requirement == ctx.fallback:
        level = Level.INFO if j.verdict == "info" else cp.level
        return [
            Finding(
                rid,
                False,
                f"{j.message}",
                level=level,
                evidence={"observed": j.observed, "expected": j.expected},
                observed=_observation(j),
            )
            for rid in named
        ]
    return [_failure(j, history)] + [
        Finding(
            rid,
            False,
            f"{what} is wrong, judged under {j.requirement}: {j.message}",
            level=Level.INFO,
            observed=f"judged under {j.requirement}: {_observation(j)}",
        )
        for rid in named
    ]
