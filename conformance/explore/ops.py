"""The explorer's operation model: what a step does, and a seeded generator of step sequences.

A step is one operation on the server, through its last awaited response or NOTIFY (the
runner's business). Operations are frozen dataclasses so that a sequence is a value: it can be
hashed (the shrinker caches verdicts), compared, and written to a replay file (replay.py) and
read back equal.

Publications and subscriptions are named by handles (``p3``, ``w1``) that the generator hands
out: a modify names the publication it modifies, not an ETag, because the ETag only exists when
the sequence runs. A sequence is *well-formed* when every handle is introduced before it is used
and not used after it is gone; ``normalize`` drops the steps that break this, which lets the
shrinker delete any subset of steps and still run something meaningful.

Pure and deterministic: everything is drawn from the ``random.Random`` the caller passes.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from conformance.explore.bodies import INVALID_KINDS, PARTS
from conformance.oracle.dialoginfo import STATES

NEMESES = (
    "answer-481",
    "answer-489",
    "stop-answering",
    "unknown-etag",
    "wrong-event",
    "two-if-match",
    "accept-without-dialog-info",
    "wrong-content-type",
    "record-route",
)
"""Hostile steps (issue 13): a watcher that answers NOTIFYs with 481 or 489 or stops answering;
a PUBLISH with an unknown ETag, a wrong Event, two SIP-If-Match, a foreign Content-Type or a
Record-Route; a SUBSCRIBE whose Accept lacks application/dialog-info+xml."""


@dataclass(frozen=True)
class BodySpec:
    """What a PUBLISH carries: the dialogs the model tracks, and the seed that draws the rest.

    The bytes come from ``bodies.valid(random.Random(seed), dialogs=...)`` or, with
    ``invalid``, from ``bodies.invalid(..., kind=invalid)``: the spec stays small in a replay
    file and the shrinker can simplify it (fewer dialogs, valid instead of invalid).
    """

    seed: int
    dialogs: tuple[tuple[str, str], ...] = ()
    invalid: str | None = None
    drop: tuple[str, ...] = ()
    """Parts of a valid body left out (``bodies.PARTS``): how a body gets smaller."""

    def simpler(self) -> list[BodySpec]:
        """Candidate simplifications, most aggressive first."""
        out = []
        if self.invalid is not None:
            out.append(dataclasses.replace(self, invalid=None))
        left = [p for p in PARTS if p not in self.drop]
        if left:
            if len(left) > 1:
                out.append(dataclasses.replace(self, drop=PARTS))
            out.extend(dataclasses.replace(self, drop=(*self.drop, p)) for p in left)
        if len(self.dialogs) > 1:
            # Each dialog alone (the one the failure needs may be any of them), then one fewer.
            out.extend(dataclasses.replace(self, dialogs=(d,)) for d in self.dialogs)
            out.append(dataclasses.replace(self, dialogs=self.dialogs[:-1]))
            out.append(dataclasses.replace(self, dialogs=self.dialogs[1:]))
        if self.seed != 0:
            out.append(dataclasses.replace(self, seed=0))
        return out


@dataclass(frozen=True)
class Op:
    """Base of every operation. ``gap`` is the pause in seconds before the step starts."""

    kind: ClassVar[str] = ""
    gap: float = field(default=0.0, kw_only=True)

    def uses(self) -> tuple[str, ...]:
        """Handles this step needs to exist already."""
        return ()

    def introduces(self) -> tuple[str, ...]:
        """Handles that exist after this step."""
        return ()

    def ends(self) -> tuple[str, ...]:
        """Handles that no longer exist after this step."""
        return ()

    def simpler(self) -> list[Op]:
        """Candidate simplifications of this one step (the shrinker's second phase)."""
        return [dataclasses.replace(self, gap=0.0)] if self.gap else []


@dataclass(frozen=True)
class Publish(Op):
    """An initial PUBLISH (new ETag) by ``publisher`` for ``presentity``."""

    kind: ClassVar[str] = "publish"
    handle: str
    publisher: int
    presentity: int
    body: BodySpec
    expires: int = 3600

    def introduces(self) -> tuple[str, ...]:
        return (self.handle,) if self.body.invalid is None else ()

    def simpler(self) -> list[Op]:
        return [dataclasses.replace(self, body=b) for b in self.body.simpler()] + super().simpler()


@dataclass(frozen=True)
class _OnHandle(Op):
    """A step on an existing publication or subscription, named by its handle."""

    ending: ClassVar[bool] = False
    """True when the handle no longer exists after this step."""
    handle: str

    def uses(self) -> tuple[str, ...]:
        return (self.handle,)

    def ends(self) -> tuple[str, ...]:
        return (self.handle,) if self.ending else ()


@dataclass(frozen=True)
class Modify(_OnHandle):
    kind: ClassVar[str] = "modify"
    body: BodySpec
    expires: int = 3600

    def simpler(self) -> list[Op]:
        return [dataclasses.replace(self, body=b) for b in self.body.simpler()] + super().simpler()


@dataclass(frozen=True)
class Refresh(_OnHandle):
    kind: ClassVar[str] = "refresh"
    expires: int = 3600


@dataclass(frozen=True)
class Remove(_OnHandle):
    kind: ClassVar[str] = "remove"
    ending: ClassVar[bool] = True


@dataclass(frozen=True)
class Expire(_OnHandle):
    """Let a publication run out: refresh it with a short Expires, then wait past it."""

    kind: ClassVar[str] = "expire"
    ending: ClassVar[bool] = True
    expires: int = 1


@dataclass(frozen=True)
class Subscribe(Op):
    kind: ClassVar[str] = "subscribe"
    handle: str
    presentity: int
    expires: int = 600

    def introduces(self) -> tuple[str, ...]:
        return (self.handle,)


@dataclass(frozen=True)
class RefreshSub(_OnHandle):
    kind: ClassVar[str] = "refresh-sub"
    expires: int = 600


@dataclass(frozen=True)
class ExpireSub(_OnHandle):
    """Let a subscription run out: refresh it with a short Expires and never again (B23: the
    server ends it with a terminated NOTIFY, reason=timeout). The lane goes on; its end waits
    past the expiry (``Executor.wait_for_expiries``)."""

    kind: ClassVar[str] = "expire-sub"
    ending: ClassVar[bool] = True
    expires: int = 2


@dataclass(frozen=True)
class Unsubscribe(_OnHandle):
    kind: ClassVar[str] = "unsubscribe"
    ending: ClassVar[bool] = True


@dataclass(frozen=True)
class Fetch(Op):
    kind: ClassVar[str] = "fetch"
    presentity: int


@dataclass(frozen=True)
class Nemesis(Op):
    """A hostile step (NEMESES). ``target`` is a watcher handle for the answer modes, a
    publication handle for the PUBLISH ones (or None: a fresh one), None for the Accept one."""

    kind: ClassVar[str] = "nemesis"
    what: str
    presentity: int
    target: str | None = None

    def uses(self) -> tuple[str, ...]:
        return (self.target,) if self.target else ()

    def ends(self) -> tuple[str, ...]:
        # A watcher answering 481 (or silent) loses its subscription: treat it as gone.
        if self.target and self.what in ("answer-481", "stop-answering"):
            return (self.target,)
        return ()


OP_TYPES: dict[str, type[Op]] = {
    t.kind: t
    for t in (
        Publish,
        Modify,
        Refresh,
        Remove,
        Expire,
        Subscribe,
        RefreshSub,
        ExpireSub,
        Unsubscribe,
        Fetch,
        Nemesis,
    )
}


def normalize(ops: Iterable[Op]) -> list[Op]:
    """Drop every step that uses a handle not introduced yet or already gone."""
    live: set[str] = set()
    out: list[Op] = []
    for op in ops:
        if not all(h in live for h in op.uses()):
            continue
        if any(h in live for h in op.introduces()):
            continue  # a handle introduced twice (a shrink kept a later copy): skip
        out.append(op)
        live.difference_update(op.ends())
        live.update(op.introduces())
    return out


# --------------------------------------------------------------------------- generator


@dataclass(frozen=True)
class Limits:
    """What the target's profile allows (issue 13: "spacing varies within what it allows")."""

    presentities: int = 3
    publishers: int = 2
    watchers: int = 3
    min_gap: float = 0.0
    """Least pause between steps (Kamailio orders publications by whole seconds: 1.0 there
    when ordering matters)."""
    max_gap: float = 0.0
    short_expires: int = 2
    """The Expires an ``expire`` or ``expire-sub`` step uses; the lane goes on, and its end
    waits past it plus the expiry timer (``Executor.wait_for_expiries``)."""
    invalid_ratio: float = 0.1
    nemesis_ratio: float = 0.08
    max_dialogs: int = 4
    drop: tuple[str, ...] = ()
    """Body parts (``bodies.PARTS``) every generated body leaves out: behaviour the target's
    profile declares it breaks (Kamailio: prefixed namespaces, root extension elements)."""
    update_terminated: bool = True
    """False: never modify, refresh or expire a publication whose dialogs are all terminated.
    Kamailio answers 200 with a new SIP-ETag but skips the update: the old body, the old
    lifetime and the old ETag stay (a refresh to Expires 2 of a 20 s publication left it in
    the aggregate for 20 s). A declared deviation (C15, C14; C13 for the lifetime)."""
    reuse_ids: float = 0.2
    """Chance a dialog id already handed out is reused (duplicate ids across publications;
    0 for a server whose profile declares it does not de-duplicate them)."""
    nemeses: tuple[str, ...] = NEMESES
    """The hostile steps drawn (a profile's declared deviations take theirs out)."""


WEIGHTS = {
    "publish": 6,
    "modify": 5,
    "refresh": 2,
    "remove": 2,
    "expire": 1,
    "subscribe": 3,
    "refresh-sub": 1,
    "unsubscribe": 1,
    "expire-sub": 1,
    "fetch": 2,
}


@dataclass
class _State:
    publications: dict[str, int] = field(default_factory=dict)
    """Live publication handle -> presentity."""
    watchers: dict[str, int] = field(default_factory=dict)
    counter: int = 0
    ids: list[str] = field(default_factory=list)
    """Dialog ids handed out so far: reused now and then across publications (duplicates)."""
    terminated: set[str] = field(default_factory=set)
    """Publications whose current body has only terminated dialogs."""

    def handle(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"


def _dialogs(rng: random.Random, state: _State, limits: Limits) -> tuple[tuple[str, str], ...]:
    out: dict[str, str] = {}
    for _ in range(rng.randint(1, limits.max_dialogs)):
        if state.ids and rng.random() < limits.reuse_ids:
            did = rng.choice(state.ids)
        else:
            did = f"d{len(state.ids) + 1}"
            state.ids.append(did)
        out[did] = rng.choice(STATES)
    return tuple(out.items())


def _body(rng: random.Random, state: _State, limits: Limits) -> BodySpec:
    invalid = None
    if rng.random() < limits.invalid_ratio:
        # Every kind, a foreign Content-Type too: its 2xx is the C07 failure (issue 13).
        invalid = rng.choice(sorted(INVALID_KINDS))
    return BodySpec(rng.randrange(2**31), _dialogs(rng, state, limits), invalid, limits.drop)


def _all_terminated(body: BodySpec) -> bool:
    return body.invalid is None and all(s == "terminated" for _, s in body.dialogs)


def _gap(rng: random.Random, limits: Limits) -> float:
    if limits.max_gap <= limits.min_gap:
        return limits.min_gap
    return round(rng.uniform(limits.min_gap, limits.max_gap), 3)


def step(rng: random.Random, state: _State, limits: Limits) -> Op:
    """One operation enabled in ``state``; updates ``state`` as the model expects."""
    gap = _gap(rng, limits)
    if rng.random() < limits.nemesis_ratio:
        return _nemesis(rng, state, limits, gap)
    enabled = {"publish", "subscribe", "fetch"}
    if state.publications:
        enabled |= {"modify", "refresh", "remove", "expire"}
    if state.watchers:
        enabled |= {"refresh-sub", "unsubscribe", "expire-sub"}
    kinds = sorted(enabled)
    kind = rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
    presentity = rng.randrange(limits.presentities)
    if kind == "publish":
        body = _body(rng, state, limits)
        op: Op = Publish(
            state.handle("p"),
            publisher=rng.randrange(limits.publishers),
            presentity=presentity,
            body=body,
            expires=rng.choice((60, 600, 3600)),
            gap=gap,
        )
        if body.invalid is None:
            state.publications[op.handle] = presentity  # type: ignore[attr-defined]
            if _all_terminated(body):
                state.terminated.add(op.handle)  # type: ignore[attr-defined]
        return op
    if kind == "subscribe":
        handle = state.handle("w")
        state.watchers[handle] = presentity
        return Subscribe(handle, presentity, expires=rng.choice((60, 600)), gap=gap)
    if kind == "fetch":
        return Fetch(presentity, gap=gap)
    if kind in ("modify", "refresh", "remove", "expire"):
        handle = rng.choice(sorted(state.publications))
        if kind != "remove" and not limits.update_terminated and handle in state.terminated:
            kind = "remove"  # the profile declares what an update of it does: keep it out
        if kind == "modify":
            body = _body(rng, state, limits)
            if body.invalid is not None:
                state.publications.pop(handle)  # a rejected modify may or may not keep it
            if _all_terminated(body):
                state.terminated.add(handle)
            else:
                state.terminated.discard(handle)
            return Modify(handle, body, expires=rng.choice((60, 600, 3600)), gap=gap)
        if kind == "refresh":
            return Refresh(handle, expires=rng.choice((60, 600, 3600)), gap=gap)
        state.publications.pop(handle)
        if kind == "remove":
            return Remove(handle, gap=gap)
        return Expire(handle, expires=limits.short_expires, gap=gap)
    handle = rng.choice(sorted(state.watchers))
    if kind == "refresh-sub":
        return RefreshSub(handle, expires=rng.choice((60, 600)), gap=gap)
    state.watchers.pop(handle)
    if kind == "expire-sub":
        # Expires 1 as well: below a server's minimum it earns a 423 with Min-Expires (B18).
        return ExpireSub(handle, expires=rng.choice((1, limits.short_expires)), gap=gap)
    return Unsubscribe(handle, gap=gap)


WATCHER_NEMESES = ("answer-481", "answer-489", "stop-answering")
"""The hostile steps that need a watcher (drawn only while one exists)."""


def _nemesis(rng: random.Random, state: _State, limits: Limits, gap: float) -> Op:
    choices = [n for n in NEMESES if n not in WATCHER_NEMESES and n in limits.nemeses]
    if state.watchers:
        choices += [n for n in WATCHER_NEMESES if n in limits.nemeses]
    if not choices:
        return Fetch(rng.randrange(limits.presentities), gap=gap)
    what = rng.choice(choices)
    presentity = rng.randrange(limits.presentities)
    target: str | None = None
    if what.startswith("answer-") or what == "stop-answering":
        target = rng.choice(sorted(state.watchers))
        presentity = state.watchers[target]
        if what in ("answer-481", "stop-answering"):
            state.watchers.pop(target)
    elif what == "two-if-match" and state.publications:
        target = rng.choice(sorted(state.publications))
        presentity = state.publications[target]
    return Nemesis(what, presentity, target, gap=gap)


def generate(seed: int, steps: int, limits: Limits | None = None) -> list[Op]:
    """``steps`` operations drawn from ``seed``: the same seed always gives the same list."""
    return list(itertools.islice(stream(seed, limits), steps))


def stream(seed: int, limits: Limits | None = None) -> Iterator[Op]:
    """Operations drawn from ``seed`` without end (a time budget takes as many as it runs);
    its first N are ``generate(seed, N)``."""
    rng = random.Random(seed)
    limits = limits or Limits()
    state = _State()
    while True:
        yield step(rng, state, limits)


def describe(ops: Sequence[Op]) -> str:
    """One line per step, for reports and failure messages."""
    lines = []
    for i, op in enumerate(ops, 1):
        fields = ", ".join(
            f"{f.name}={getattr(op, f.name)!r}" for f in dataclasses.fields(op) if f.name != "gap"
        )
        lines.append(f"{i:3d}. {op.kind}({fields})" + (f" after {op.gap}s" if op.gap else ""))
    return "\n".join(lines)


__all__ = [
    "NEMESES",
    "OP_TYPES",
    "BodySpec",
    "Expire",
    "ExpireSub",
    "Fetch",
    "Limits",
    "Modify",
    "Nemesis",
    "Op",
    "Publish",
    "Refresh",
    "RefreshSub",
    "Remove",
    "Subscribe",
    "Unsubscribe",
    "describe",
    "generate",
    "normalize",
    "stream",
]
