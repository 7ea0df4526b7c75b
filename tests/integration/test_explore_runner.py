"""The explorer's runner against the reference server: a clean run finds nothing, and the
reference server's A34 bug (root extension elements aggregated between dialogs) is found,
shrunk to a short sequence and confirmed by a re-run."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.explore import replay
from conformance.explore.runner import Explorer, limits_for
from conformance.harness.ports import PortBlock
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


def test_clean_reference_without_root_extensions_gives_no_finding(
    reference: Target, block: PortBlock, tmp_path: Path
) -> None:
    limits = dataclasses.replace(limits_for(reference.profile), drop=("root-extensions",))
    explorer = Explorer(reference, reference.profile, block, tmp_path, limits=limits)
    results = explorer.run(2, lanes=2, steps=60)
    assert sum(len(r.records) for r in results) == 60
    assert sum(s.notifies for r in results for s in r.records) > 0
    failures = [f for r in results for f, _ in r.judged.failures]
    assert not failures, [f.message for f in failures]


def test_root_extensions_between_dialogs_found_and_shrunk(
    reference: Target, block: PortBlock, tmp_path: Path
) -> None:
    explorer = Explorer(reference, reference.profile, block, tmp_path)
    results = explorer.run(1, lanes=4, steps=120)
    lanes = [r for r in results if any(f.requirement == "A34" for f, _ in r.judged.failures)]
    assert lanes, "seed 1 meets the reference server's A34 aggregation bug"
    small, confirmed, _runs = explorer.shrink(lanes[0], "A34", budget=90)
    assert confirmed
    assert len(small) <= 4


DATA = Path(__file__).resolve().parents[1] / "data" / "explore"


@pytest.mark.parametrize("path", sorted(DATA.glob("reference-*.json")), ids=lambda p: p.stem)
def test_reference_regressions_replay(
    path: Path, reference: Target, block: PortBlock, tmp_path: Path
) -> None:
    """Each kept reference-server reproducer replays with the failures it records (a fix of
    the server turns this red on purpose: then update or drop the file)."""
    kept = replay.read(path)
    explorer = Explorer(reference, reference.profile, block, tmp_path, limits=kept.limits)
    result = explorer.run_lane(list(kept.ops), seed=kept.seed or 0)
    failed = sorted({f.requirement for f, _ in result.judged.failures})
    assert failed == sorted(kept.meta.get("expect_failures", [])), [
        f.message for f, _ in result.judged.failures
    ]
