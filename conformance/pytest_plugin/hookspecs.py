"""Hooks the plugin offers to projects that write their own cases."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec
def pytest_dialoginfo_requirements(config: pytest.Config) -> Any:
    """Return requirement rows to add to the catalogue before collection: an iterable of
    ``dict(id=..., ref=..., level=..., title=...)`` (ids in group ``X``). Implement it in a root
    ``conftest.py`` or a plugin; see ``conformance.testing.add_requirement``."""
