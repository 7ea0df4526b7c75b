"""The explorer as an opt-in case (issue 13): ``--dialoginfo-explore-steps N`` runs N generated
operations against a target instance of its own (launched like the session's target; an
external server is used as is), every NOTIFY judged by the suite's checks and history, the
profile's ``explore`` deviations applied. A failure is shrunk and its reproducer printed.

Not a requirement-marked case: the explorer judges its own findings (``explore.runner``), so
the plugin's per-case judge leaves it alone. The seed is printed in every outcome."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from conformance.explore import ops
from conformance.explore.runner import Explorer, reproduce, summary


def test_explore(
    pytestconfig: pytest.Config, dialoginfo_settings: Any, dialoginfo_ports: Any, tmp_path: Path
) -> None:
    steps = pytestconfig.getoption("dialoginfo_explore_steps")
    if not steps:
        pytest.skip("the explorer is opt-in: --dialoginfo-explore-steps N")
    seed = pytestconfig.getoption("dialoginfo_explore_seed")
    if seed is None:
        seed = random.SystemRandom().randrange(10**6)
    from conformance.targets import make_target

    settings = dialoginfo_settings
    target = make_target(
        settings.target,
        profile=settings.profile,
        block=dialoginfo_ports,
        workdir=tmp_path,
        faults=settings.faults,
    )
    target.start()
    try:
        explorer = Explorer(
            target,
            settings.profile,
            dialoginfo_ports,
            tmp_path,
            timeout=settings.timeout,
            strict=settings.strict,
            restart=target.start,
        )
        results = explorer.run(seed, lanes=4, steps=steps)
        info = summary(results, sum(r.wall for r in results) / len(results))
        print(f"explore: seed {seed}: {info}")
        found = reproduce(explorer, results, tmp_path, budget=120, meta={"seed": seed})
        lines = [
            f"{r.requirement} ({r.shape}, {r.hits}x): {r.message}\n  shrunk to {len(r.ops)} "
            f"step(s), {'confirmed' if r.confirmed else 'unconfirmed'}: {r.path}\n"
            + ops.describe(r.ops)
            for r in found
        ]
    finally:
        target.stop()
    assert not lines, f"explore seed {seed}: " + "\n".join(lines)
