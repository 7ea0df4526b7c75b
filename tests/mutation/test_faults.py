"""Every fault of the reference server is caught by the suite through its own requirement id.

Each fault runs the whole conformance suite once (a default run) against the reference server
with that fault switched on; its recorded findings are judged as a default and as a strict run
(conformance.commands.mutation); opt-in with --run-mutation (CI runs it as its own step).
A fault whose only symptom is a crash is allowed to be caught by unrelated cases (timeouts), and
is listed as such by benchmarks/mutation_score.py."""

from __future__ import annotations

import pytest

from conformance.commands.mutation import CRASHES, SUITE_BLIND, MutationResult, run_faults
from conformance.errors import HarnessError
from conformance.server.faults import FAULTS

pytestmark = pytest.mark.mutation


@pytest.fixture(scope="module")
def results(request, tmp_path_factory) -> dict[str, MutationResult | HarnessError]:
    """Every selected fault's run, made a few at a time on the first test that asks (faults
    wait on SIP timers, so running them side by side divides the step's time)."""
    selected = [
        item.callspec.params["fault"]
        for item in request.session.items
        if getattr(item, "callspec", None) is not None and "fault" in item.callspec.params
    ]
    return dict(run_faults(selected, tmp_path_factory.mktemp("faults")))


@pytest.mark.parametrize("fault", sorted(set(FAULTS) - set(SUITE_BLIND)))
def test_fault_is_killed_through_its_requirement(fault, results):
    result = results[fault]
    if isinstance(result, HarnessError):
        raise result
    assert result.killed, f"fault {fault} survived the suite (mode {result.mode})"
    if fault in CRASHES:
        return
    seen = ", ".join(sorted({f"{k.case}:{k.requirement or 'error'}" for k in result.kills}))
    judgement = "default" if result.binding else "default (a warn)"
    assert result.own_default, (
        f"fault {fault} breaks {result.broken} but the {judgement} judgement shows none of "
        f"them; killed by {seen}"
    )
    assert result.own_strict, (
        f"fault {fault} breaks {result.broken} but the strict judgement fails through none "
        f"of them; killed by {seen}"
    )
