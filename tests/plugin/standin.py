"""A stand-in for the case handle, for pytester projects that test the plugin's plumbing
without a server: a conftest that provides ``dialoginfo_case``, and four cases, one per row of
the verdict table."""

from __future__ import annotations

DEVIATIONS = '{"test_known": (Deviation("C07", "declared", observed="200 to text/plain"),)}'


def standin_conftest(deviations: str = DEVIATIONS, extra: str = "") -> str:
    """conftest.py source: ``dialoginfo_case`` is a StandIn whose profile declares
    ``deviations`` (Python source of the mapping); ``extra`` is appended."""
    return f"""
import pytest
from conformance.oracle.verdicts import Deviation
from conformance.pytest_plugin.fixtures import case_key
from conformance.targets.profile import Profile

class StandIn:
    def __init__(self):
        self.findings = []
        self.profile = Profile(name="standin", deviations={deviations})
        self.target = self
        self.waited = self.timed_out = 0.0

    def finish(self):
        return self.findings

    def evidence(self):
        return {{"messages": [], "notifies": []}}

    def server_agent(self):
        return "standin/1.0"

    def describe(self):
        return {{"kind": "standin"}}

@pytest.fixture
def dialoginfo_case(request):
    c = StandIn()
    request.node.stash[case_key] = c
    return c
{extra}
"""


CASES = """
import pytest
from conformance.oracle.findings import Finding

@pytest.mark.dialoginfo_requirement("A19")
def test_fails(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("A19", False, "duplicate id 1"))

@pytest.mark.dialoginfo_requirement("A03")
def test_warns(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("A03", False, "schema"))

@pytest.mark.dialoginfo_requirement("C07")
def test_known(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("C07", False, "m", observed="200 to text/plain"))

@pytest.mark.dialoginfo_requirement("C01")
def test_passes(dialoginfo_case):
    dialoginfo_case.findings.append(Finding("C01", True, "489"))
"""
"""One case per row of the verdict table: fail, warn (a pass with a mark), known, pass."""
