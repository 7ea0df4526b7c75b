"""``load`` end to end: a short run against the reference server, one against a faulted
reference server that the load checks must catch, and one against the launched Kamailio.

Kept short (a few seconds of load each) to stay inside the CI budget; the figures at scale are
``benchmarks/load.py``'s job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.errors import ToolMissingError
from conformance.targets.kamailio import BINARY, check_installed

pytestmark = pytest.mark.integration


def _load(tmp_path: Path, *argv: str) -> tuple[int, dict[str, Any], Path]:
    code = main(["load", *argv, "--report-dir", str(tmp_path)])
    (results,) = tmp_path.glob("*/results.json")
    return code, json.loads(results.read_text())["load"], results.parent


def _kamailio_missing() -> bool:
    try:
        check_installed()
    except ToolMissingError:
        return True
    return False


def _assert_clean(section: dict[str, Any], subscriptions: int) -> None:
    totals = section["totals"]
    assert section["valid"], section["invalid_reasons"]
    assert section["subscriptions"] == subscriptions
    assert totals["subscribe_2xx"] == subscriptions
    assert totals["versions_missing"] == 0
    assert totals["final_view_wrong"] == 0
    assert totals.get("version_repeats", 0) == 0
    assert section["latency_ms"]["count"] > subscriptions  # every watcher saw several changes
    assert section["latency_ms"]["p99"] < 1000
    assert section["oracle"]["verdict"] == "pass", section["oracle"]["failures"]
    assert section["oracle"]["bodies_checked"] > 0


def test_load_smoke_against_the_reference_server(tmp_path: Path) -> None:
    code, section, run_dir = _load(
        tmp_path, "--target", "reference", "-M", "4", "-K", "4", "-R", "16", "-S", "3"
    )
    assert code == 0
    _assert_clean(section, 16)
    page = (run_dir / "report.html").read_text()
    assert '<section id="load">' in page and "<svg" in page


def test_load_catches_a_server_that_loses_versions_and_breaks_bodies(tmp_path: Path) -> None:
    # version-shared: one counter per presentity, so each of its K watchers sees gaps;
    # body-not-well-formed: the sampled bodies fail the oracle.
    code, section, _ = _load(
        tmp_path,
        "--target", "reference", "-M", "3", "-K", "3", "-R", "12", "-S", "3",
        "--fault", "version-shared", "--fault", "body-not-well-formed",
    )  # fmt: skip
    assert code == 0  # a valid run: the server, not the kit, lost them
    assert section["totals"]["versions_missing"] > 0
    assert section["loss_ratio"] > 0.001
    assert section["knee"] is not None and "loss" in section["knee"]["reason"]
    assert section["oracle"]["verdict"] == "fail"
    assert any(f.startswith("A02") for f in section["oracle"]["failures"])


@pytest.mark.kamailio
@pytest.mark.skipif(_kamailio_missing(), reason=f"{BINARY} and its modules are not installed")
def test_load_smoke_against_the_launched_kamailio(tmp_path: Path) -> None:
    code, section, _ = _load(
        tmp_path, "--target", "kamailio", "-M", "5", "-K", "4", "-R", "25", "-S", "4"
    )
    assert code == 0
    _assert_clean(section, 20)
    assert section["cpu_seconds"]["server"] > 0
