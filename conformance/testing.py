"""The public API for writing your own dialog-info conformance cases.

Everything a case needs is here; every other module of the kit is private and may change. A
case is a pytest test that carries the ``requirement`` marker and takes the ``dialoginfo_case``
fixture (a :class:`Case`): it publishes, subscribes and records findings, and the plugin judges
those findings after the test returns, exactly as it judges the shipped suite::

    from conformance.testing import Case, dialog, requirement

    @requirement("X01")
    def test_my_rule(dialoginfo_case: Case) -> None:
        user = dialoginfo_case.user("mine")
        result = dialoginfo_case.publish(user, [dialog("d1", "confirmed")])
        dialoginfo_case.finding("X01", result.response.status == 200, "PUBLISH answered "
                                f"{result.response.status}", observed=str(result.response.status))

Own requirement ids live in group ``X``: add them with :func:`add_requirement`, or return rows
from the ``pytest_dialoginfo_requirements(config)`` hook in a root ``conftest.py``. The README
section "Writing your own cases" lists these names; a test keeps the two in step.
"""

from __future__ import annotations

import pytest

from conformance.case import Case
from conformance.oracle.dialoginfo import dialog, document
from conformance.oracle.findings import Finding, Verdict, failures
from conformance.oracle.requirements import Level, Requirement, add_requirement

requirement = pytest.mark.dialoginfo_requirement
"""``@requirement("C03", ...)``: the ids the case checks; it must emit a finding for each."""
slow = pytest.mark.dialoginfo_slow
"""``@slow``: the case waits more than 30 s; it runs only with ``--dialoginfo-slow``."""
mode = pytest.mark.dialoginfo_mode
"""``@mode("single")`` or ``@mode("aggregate")``: the case applies to that dialog mode only."""

__all__ = [
    "Case",
    "Finding",
    "Level",
    "Requirement",
    "Verdict",
    "add_requirement",
    "dialog",
    "document",
    "failures",
    "mode",
    "requirement",
    "slow",
]
