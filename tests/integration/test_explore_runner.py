"""The explorer's runner against the reference server: a clean run finds nothing (root-level
extension elements included), and the ``root-extensions-first`` fault (the A34 order bug the
explorer once found in the clean server) is found, shrunk to a short sequence and confirmed by a
re-run. Kept reproducers replay clean, and with their recorded failures under ``under_faults``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conformance.explore import replay
from conformance.explore.runner import Explorer
from conformance.harness.ports import PortBlock
from conformance.oracle import schema
from conformance.targets import make_target
from conformance.targets.base import Target

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


@pytest.fixture(scope="module")
def reference(block: PortBlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    target = make_target("reference", block=block, workdir=tmp_path_factory.mktemp("ref"))
    target.start()
    try:
        yield target
    finally:
        target.stop()


@pytest.fixture(scope="module")
def faulted_by(
    block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Target]]:
    """A reference server with one fault switched on, started on first use per fault."""
    started: dict[str, Target] = {}

    def get(fault: str) -> Target:
        if fault not in started:
            target = make_target(
                "reference",
                block=block,
                workdir=tmp_path_factory.mktemp(f"ref-{fault}"),
                faults=(fault,),
            )
            target.start()
            started[fault] = target
        return started[fault]

    try:
        yield get
    finally:
        for target in started.values():
            target.stop()


@pytest.fixture(scope="module")
def faulted(faulted_by: Callable[[str], Target]) -> Target:
    return faulted_by("root-extensions-first")


def test_clean_reference_gives_no_finding(
    reference: Target, block: PortBlock, tmp_path: Path
) -> None:
    explorer = Explorer(reference, reference.profile, block, tmp_path)
    results = explorer.run(2, lanes=2, steps=60)
    assert sum(len(r.records) for r in results) == 60
    assert sum(s.notifies for r in results for s in r.records) > 0
    failures = [f for r in results for f, _ in r.judged.failures]
    assert not failures, [f.message for f in failures]


def test_root_extensions_first_found_and_shrunk(
    faulted: Target, block: PortBlock, tmp_path: Path
) -> None:
    explorer = Explorer(faulted, faulted.profile, block, tmp_path)
    results = explorer.run(1, lanes=4, steps=120)
    lanes = [r for r in results if any(f.requirement == "A34" for f, _ in r.judged.failures)]
    assert lanes, "seed 1 meets the root-extensions-first fault's A34 order"
    small, confirmed, _runs, rerun = explorer.shrink_confirmed(lanes[0], "A34", budget=90)
    assert confirmed and rerun is not None and rerun.evidence is not None
    assert len(small) <= 4
    # The report's ladder material: the offending NOTIFY marked, the oracle's document beside
    # it, which keeps the dialogs before the extensions (A34 holds in it, not in the NOTIFY).
    offending = [n for n in rerun.evidence["notifies"] if n["offending"]]
    assert offending and rerun.evidence["messages"]
    for n in offending:
        assert not _a34(n["body"]) and _a34(n["expected"])


def _a34(body: str) -> bool:
    return all(f.passed for f in schema.check(body.encode()) if f.requirement == "A34")


DATA = Path(__file__).resolve().parents[1] / "data" / "explore"


@pytest.mark.parametrize("path", sorted(DATA.glob("reference-*.json")), ids=lambda p: p.stem)
def test_reference_regressions_replay(
    path: Path,
    reference: Target,
    faulted_by: Callable[[str], Target],
    block: PortBlock,
    tmp_path: Path,
) -> None:
    """Each kept reference-server reproducer replays with the failures it records on the clean
    server (a fix of the server turns this red on purpose: then update the file), and under
    each fault of ``under_faults`` with that fault's recorded failures (the check stays
    failable once the bug it found is fixed)."""
    kept = replay.read(path)
    runs = [(reference, kept.meta.get("expect_failures", []))]
    for fault, expected in dict(kept.meta.get("under_faults", {})).items():
        runs.append((faulted_by(fault), expected))
    for target, expected in runs:
        explorer = Explorer(target, target.profile, block, tmp_path, limits=kept.limits)
        result = explorer.run_lane(list(kept.ops), seed=kept.seed or 0)
        failed = sorted({f.requirement for f, _ in result.judged.failures})
        assert failed == sorted(expected), [f.message for f, _ in result.judged.failures]
