"""The first explorer executor against the reference server: steps run, checks run, and the
server keeps nothing from it afterwards (every publication removed, every SIPp reaped)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.explore import ops
from conformance.explore.execute import Executor, summary
from conformance.explore.ops import BodySpec, Expire, Fetch, Publish, Subscribe
from conformance.harness.live_publisher import LivePeer
from conformance.harness.ports import PortBlock
from conformance.oracle.dialoginfo import parse
from conformance.targets.reference import ReferenceTarget

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


@pytest.fixture(scope="module")
def reference(
    block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReferenceTarget]:
    target = ReferenceTarget(block=block, workdir=tmp_path_factory.mktemp("reference"))
    target.start()
    try:
        yield target
    finally:
        target.stop()


def _children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def test_a_generated_sequence_runs_and_leaves_nothing_behind(
    reference: ReferenceTarget, block: PortBlock, tmp_path: Path
) -> None:
    sequence = ops.normalize(op for op in ops.generate(7, 80) if not isinstance(op, Expire))[:40]
    server = (reference.host, reference.port)
    with Executor(
        server=server, domain=reference.host, block=block, workdir=tmp_path, run_id="t7"
    ) as ex:
        records = ex.run(sequence)
        sipps = [p for p in _children_of(os.getpid()) if p != reference.pid]
        assert sipps  # the peers and watchers are running SIPps
        users = {ex.user(i) for i in range(3)}
    assert [r.op for r in records] == sequence
    assert all(r.statuses or r.skipped or r.op.kind == "nemesis" for r in records)
    assert summary(records, 1.0)["notifies"] > 0
    assert [p for p in _children_of(os.getpid()) if p != reference.pid] == []
    with LivePeer(server=server, block=block, workdir=tmp_path, domain=reference.host) as peer:
        for user in users:  # every publication was removed at the end
            _response, notifies = peer.fetch(user)
            body = notifies[-1].body
            assert not body.strip() or parse(body).dialogs == (), user


def test_checks_see_what_the_notify_carries(
    reference: ReferenceTarget, block: PortBlock, tmp_path: Path
) -> None:
    # A schema-valid body whose dialog state the oracle checks: the NOTIFY must pass A22; a
    # fetch answers; the records carry the statuses of each step.
    sequence: list[ops.Op] = [
        Subscribe("w1", 0),
        Publish("p1", 0, 0, BodySpec(3, (("a", "confirmed"),))),
        Fetch(0),
    ]
    with Executor(
        server=(reference.host, reference.port),
        domain=reference.host,
        block=block,
        workdir=tmp_path,
        run_id="t8",
    ) as ex:
        records = ex.run(sequence)
        watcher = ex.watchers["w1"][1]
        # The strict reference server sends at most one state change a second (A30): the
        # publish's NOTIFY may come up to a second after the SUBSCRIBE's.
        watcher.wait_notifies(2)
        assert [d.id for d in parse(watcher.notifies[-1].body).dialogs] == ["a"]
        assert len(watcher.notifies) == 2  # the SUBSCRIBE's and the publish's, nothing more
    assert [r.statuses for r in records] == [[200], [200], [200]]
    assert [r.findings for r in records] == [[], [], []]
    # The publish's NOTIFY is counted in the step it arrived in: at once on a server that does
    # not throttle, up to a second later (a later step, or none) on the strict reference server.
    assert sum(r.notifies for r in records) <= 2
