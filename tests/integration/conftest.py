"""Fixtures the integration modules share: a port block per module and a launched Kamailio."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from conformance.harness.ports import PortBlock, reserve_block


@pytest.fixture(scope="module")
def block() -> Iterator[PortBlock]:
    """This module's block of loopback ports (the preferred index is only a hint)."""
    with reserve_block(os.getpid()) as b:
        yield b


@pytest.fixture(scope="module")
def server(block: PortBlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A presence-only Kamailio for this module, skipped where Kamailio is not installed."""
    kamailio = pytest.importorskip("conformance.targets.kamailio")
    try:
        kamailio.check_installed()
    except Exception as exc:  # ToolMissingError
        pytest.skip(str(exc))
    target = kamailio.KamailioTarget(
        "aggregate", block=block, workdir=tmp_path_factory.mktemp("kamailio")
    )
    target.start()
    try:
        yield (target.host, target.port)
    finally:
        target.stop()
