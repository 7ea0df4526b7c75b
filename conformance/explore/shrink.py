"""Shrink a failing operation sequence to a small one that still fails (delta debugging).

Phase 1 is Zeller's ddmin over the step list: try halves, then complements, then finer chunks,
keeping any candidate that still fails. Every candidate is first ``ops.normalize``d (steps whose
publication or watcher was cut away are dropped), so every candidate is runnable. Phase 2
simplifies single steps (``Op.simpler``: fewer dialogs, a valid body for an invalid one, no
gap), and phase 3 folds a publication's modify into it (``_merge``: the PUBLISH carries the
modify's body, one step instead of two); phase 1 runs again if either helped. The result is
1-minimal for phase 1: removing any single step makes it pass (or the budget ran out, which
``Shrunk.exhausted`` says).

Pure: the caller passes ``fails`` (run the sequence against a fresh server, True when the same
failure shows) and bounds; verdicts are cached per candidate, so no sequence runs twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from conformance.explore.ops import Modify, Op, Publish, normalize


@dataclass(frozen=True)
class Shrunk:
    """A shrink's outcome."""

    ops: tuple[Op, ...]
    tests: int
    """How many candidates were run (cache hits not counted)."""
    exhausted: bool
    """True when the budget ended the search before it was done."""


class _Budget(Exception):
    pass


def shrink(
    ops: Sequence[Op],
    fails: Callable[[Sequence[Op]], bool],
    *,
    max_tests: int = 1000,
    out_of_time: Callable[[], bool] | None = None,
    seen_failing: bool = False,
) -> Shrunk:
    """The smallest failing sequence found from ``ops`` (which must fail itself).

    ``max_tests`` bounds the runs of ``fails``; ``out_of_time`` is asked before each run (the
    runner's wall-clock budget, ``--shrink-budget``). Raises ValueError when ``ops`` passes.
    ``seen_failing``: the caller has just run ``ops`` alone and seen it fail, so it is not run
    again (one run of a live server is seconds of the budget).
    """
    cache: dict[tuple[Op, ...], bool] = {}
    count = 0
    best: tuple[Op, ...] = ()

    def test(candidate: Sequence[Op]) -> bool:
        nonlocal count, best
        key = tuple(normalize(candidate))
        if key in cache:
            return cache[key]
        if count >= max_tests or (out_of_time is not None and out_of_time()):
            raise _Budget
        count += 1
        cache[key] = verdict = bool(fails(key))
        if verdict and (not best or len(key) <= len(best)):
            best = key  # kept for a budget that ends the search midway
        return verdict

    current = tuple(normalize(ops))
    if seen_failing:
        cache[current] = True
        best = current
    try:
        first = test(current)
    except _Budget:  # no time left for even one run: the sequence stays as it came
        return Shrunk(current, count, True)
    if not first:
        raise ValueError("the sequence to shrink does not fail")
    exhausted = False
    try:
        while True:
            before = current
            current = _ddmin(current, test)
            current = _simplify(current, test)
            current = _merge(current, test)
            if current == before:
                break
    except _Budget:
        exhausted = True
        current = best
    return Shrunk(tuple(normalize(current)), count, exhausted)


def _ddmin(items: tuple[Op, ...], test: Callable[[Sequence[Op]], bool]) -> tuple[Op, ...]:
    items = tuple(normalize(items))
    n = 2
    while len(items) >= 2:
        size = len(items)
        chunks = [items[size * i // n : size * (i + 1) // n] for i in range(n)]
        chunks = [c for c in chunks if c]
        reduced = False
        for chunk in chunks:
            if len(chunk) < size and test(chunk):
                items, n, reduced = tuple(normalize(chunk)), 2, True
                break
        if not reduced:
            for i in range(len(chunks)):
                rest = tuple(op for j, c in enumerate(chunks) if j != i for op in c)
                if len(rest) < size and test(rest):
                    items, n, reduced = tuple(normalize(rest)), max(n - 1, 2), True
                    break
        if not reduced:
            if n >= size:
                break
            n = min(size, n * 2)
    return items


def _simplify(items: tuple[Op, ...], test: Callable[[Sequence[Op]], bool]) -> tuple[Op, ...]:
    i = 0
    while i < len(items):
        for candidate in items[i].simpler():
            trial = (*items[:i], candidate, *items[i + 1 :])
            if test(trial):
                items = trial
                break
        else:
            i += 1
    return items


def _merge(items: tuple[Op, ...], test: Callable[[Sequence[Op]], bool]) -> tuple[Op, ...]:
    """Fold each modify into the publish that made its handle: the publish carries the
    modify's body, either where it stood (the modify dropped) or where the modify stood (the
    publish dropped), whichever still fails. ddmin cannot find this: dropping either step alone
    loses the body or the publication."""
    i = 0
    while i < len(items):
        op = items[i]
        j = None
        if isinstance(op, Modify):
            made = [k for k in range(i) if _publishes(items[k], op.handle)]
            j = made[-1] if made else None
        if j is None or not isinstance(op, Modify):
            i += 1
            continue
        first = items[j]
        assert isinstance(first, Publish)
        merged = dataclasses.replace(first, body=op.body, expires=op.expires)
        there = (*items[:j], merged, *items[j + 1 : i], *items[i + 1 :])
        here = (*items[:j], *items[j + 1 : i], merged, *items[i + 1 :])
        for trial in (there, here):
            if test(trial):
                items = tuple(normalize(trial))
                i = 0
                break
        else:
            i += 1
    return items


def _publishes(op: Op, handle: str) -> bool:
    return isinstance(op, Publish) and op.handle == handle


__all__ = ["Shrunk", "shrink"]
