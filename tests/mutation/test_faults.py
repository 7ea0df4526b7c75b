"""Every fault of the reference server is caught by the suite through its own requirement id.

Each test runs the whole conformance suite (with --dialoginfo-strict) against the reference
server with one fault switched on; opt-in with --run-mutation (CI runs it as its own step).
A fault whose only symptom is a crash is allowed to be caught by unrelated cases (timeouts), and
is listed as such by benchmarks/mutation_score.py."""

from __future__ import annotations

import pytest

from conformance.commands.mutation import run_fault
from conformance.server.faults import FAULTS

CRASHES = {"crash-after-two-dialogs"}

pytestmark = pytest.mark.mutation


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_killed_through_its_requirement(fault, tmp_path):
    result = run_fault(fault, tmp_path, workers="2")
    assert result.killed, f"fault {fault} survived the suite (mode {result.mode})"
    if fault in CRASHES:
        return
    assert result.own, f"fault {fault} breaks {result.broken} but was killed only by " + ", ".join(
        sorted({f"{k.case}:{k.requirement or 'error'}" for k in result.kills})
    )
