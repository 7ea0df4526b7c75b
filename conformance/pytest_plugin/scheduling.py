"""How many xdist workers ``-n auto`` starts for the suite, and which cases start first.

The cases are bound by waiting, not by CPU: expiry timers, silence windows, the holds a call
keeps past a server's one-NOTIFY-a-second throttle. A worker mostly sleeps, so the number of
cores says little; what bounds the run is the longest case and the sum of the waits shared
among the workers. ``-n auto`` therefore starts as many workers as it takes for the sum of the
expected case times to fit beside the longest case, capped so a laptop is not flooded (each
worker launches its own server: Kamailio forks a dozen processes) and so other runs on the
machine keep port blocks (``harness/ports.py``).

The expected times are measured, not guessed: ``durations.json`` beside this module holds each
shipped case's duration against the launched Kamailio (both modes, the longer one), written by
``benchmarks/suite_speed.py --store-durations``. Under xdist the cases are ordered longest
first, so the long waits start at once and the short cases fill the gaps (xdist's ``load``
scheduling hands out cases in collection order). Cases the file does not know (a project's
own) keep their order after the known long ones.

Nothing here changes a wait: the cases wait exactly as long as their profile says.
"""

from __future__ import annotations

import json
import math
import os
from functools import cache
from pathlib import Path

import pytest

from conformance.pytest_plugin.hooks import is_case
from conformance.pytest_plugin.options import PREFIX, WORKERS_OPTION

DURATIONS_FILE = Path(__file__).resolve().parent / "durations.json"
MAX_AUTO_WORKERS = 8
"""The most workers ``-n auto`` starts per session: 8 Kamailio instances of ~12 processes and
8 pytest workers fit a laptop; past that a run of both modes costs more in start-up (each
worker imports and collects the suite, ~0.6 s of CPU) than it saves in waiting."""


@cache
def expected_durations() -> dict[str, float]:
    """``file.py::case[param]`` -> seconds, as last measured (empty when the file is missing)."""
    try:
        raw = json.loads(DURATIONS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, int | float)}


def duration_key(item: pytest.Item) -> str:
    """The key a case has in ``durations.json``: independent of rootdir and install path."""
    return f"{item.path.name}::{item.name}"


def waiting_workers(durations: list[float], cap: int = MAX_AUTO_WORKERS) -> int:
    """Workers beyond which the longest case, not the sum of waits, bounds the run:
    ``ceil(sum / longest)``, at least 1, at most ``cap``."""
    longest = max(durations, default=0.0)
    if longest <= 0:
        return 1
    return max(1, min(cap, math.ceil(sum(durations) / longest)))


def _free_port_blocks() -> int:
    from conformance.harness.ports import free_block_count

    return free_block_count()


def is_conformance_session(config: pytest.Config) -> bool:
    """The session runs the shipped suite or names a dialog-info option: only then does the
    plugin choose the worker count (a project's own ``pytest -n auto`` keeps xdist's cores)."""
    args = [str(a) for a in config.invocation_params.args]
    return any(a.startswith(PREFIX) or a.startswith("conformance.suite") for a in args)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` for the suite: ``--dialoginfo-workers N``, else the waiting estimate,
    capped at half the free port blocks (the rest stay for other runs, e.g. the other mode)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS") or not is_conformance_session(config):
        return None  # xdist's own rule: the environment variable, or the cores
    given = config.getoption(WORKERS_OPTION)
    if given:
        return int(given)
    wanted = waiting_workers(list(expected_durations().values()))
    return max(1, min(wanted, _free_port_blocks() // 2))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, longest expected case first; every worker sorts alike (the file is static),
    so xdist sees the same collection on each."""
    if not hasattr(config, "workerinput"):
        return  # in one process the order changes nothing
    known = expected_durations()
    if not known or not any(is_case(item) for item in items):
        return  # inert outside the suite
    items.sort(key=lambda item: -known.get(duration_key(item), 0.0))  # stable: ties keep order
