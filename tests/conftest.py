"""Test tiers: unit and plugin tests always run; integration tests need SIPp (and Kamailio
where marked); the mutation tests run the whole suite once per fault and are opt-in."""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-mutation",
        action="store_true",
        default=False,
        help="run tests/mutation: the conformance suite once per injected fault",
    )


@pytest.fixture(autouse=True)
def _catalogue_restored():
    """Own requirement ids (group X) added during a test (the catalogue extension hook, run
    in-process by pytester) leave with it: the catalogue is process-global, and a later test in
    the same xdist worker must see the shipped rows only."""
    from conformance.oracle import requirements

    rows, groups = dict(requirements.CATALOGUE), dict(requirements.GROUPS)
    yield
    requirements.CATALOGUE.clear()
    requirements.CATALOGUE.update(rows)
    requirements.GROUPS.clear()
    requirements.GROUPS.update(groups)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_sipp = shutil.which("sipp") is None
    no_kamailio = not os.path.exists("/usr/sbin/kamailio")
    for item in items:
        path = str(item.path)
        if "/tests/mutation/" in path and not config.getoption("--run-mutation"):
            item.add_marker(pytest.mark.skip(reason="mutation tests are opt-in: --run-mutation"))
        if "/tests/integration/" in path and no_sipp:
            item.add_marker(
                pytest.mark.skip(reason="SIPp is not installed (apt-get install sip-tester)")
            )
        if item.get_closest_marker("kamailio") and no_kamailio:
            item.add_marker(pytest.mark.skip(reason="Kamailio is not installed"))
