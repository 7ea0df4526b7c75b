"""The phone kit against simulated phones (SIPp scenarios in sipp_scenarios/phones/).

Each test runs the kit in-process on loopback (port 0), starts one simulated phone that
SUBSCRIBEs to it, and checks the conclusions the report draws. Bounded: the kit by its plan
time limit, SIPp by ``-timeout`` and by ``SippProcess.stop`` in ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import sipp
from conformance.harness.ports import PortBlock, reserve_block
from conformance.phone import probes, report
from conformance.phone.runner import run_session
from conformance.phone.session import SessionConfig
from conformance.resources import scenario_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

PLAN_TIMEOUT = 40.0


@pytest.fixture(scope="module")
def block() -> Iterator[PortBlock]:
    with reserve_block(os.getpid() % 40) as b:
        yield b


def probe_phone(
    phone: str, block: PortBlock, workdir: Path, *, transport: str = "udp", **overrides: Any
) -> dict[str, Any]:
    """Run the default plan against ``phones/<phone>.xml``; return the report document."""
    config = SessionConfig(
        phone_host="127.0.0.1",
        local_port=0,
        transport=transport,  # type: ignore[arg-type]
        probe_timeout=overrides.pop("probe_timeout", 1.5),
        plan_timeout=PLAN_TIMEOUT,
        resubscribe_timeout=overrides.pop("resubscribe_timeout", 1.5),
        **overrides,
    )
    procs: list[sipp.SippProcess] = []

    def start_phone(addr: tuple[str, int]) -> None:
        extra = ["-s", "bob"] + (["-t", "t1"] if transport == "tcp" else [])
        argv, logs = sipp.command(
            scenario_path(f"phones/{phone}.xml"),
            server=addr,
            ports=sipp.Ports.take(block),
            workdir=workdir,
            calls=1,
            timeout=PLAN_TIMEOUT,
            extra=extra,
        )
        procs.append(sipp.SippProcess(argv, logs, cwd=workdir).start())

    started = datetime.now(UTC)
    try:
        session = asyncio.run(run_session(probes.DEFAULT_PLAN, config, ready=start_phone))
    finally:
        for proc in procs:
            proc.stop()
    assert procs and not procs[0].alive()
    doc = report.build(session, plan_name="default", started=started)
    report.write(doc, workdir / "report")
    return doc


def outcomes(doc: dict[str, Any]) -> dict[str, tuple[str, int | None]]:
    return {p["name"]: (p["outcome"], p["status"]) for p in doc["probes"]}


def conclusions(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in doc["conclusions"]}


def test_tolerant_phone_has_no_restrictions(block: PortBlock, tmp_path: Path) -> None:
    doc = probe_phone("tolerant", block, tmp_path)
    assert doc["phone"]["user_agent"] == "simulated-phone tolerant"
    assert {o for o, _ in outcomes(doc).values()} == {"accepted"}
    found = conclusions(doc)
    assert "no-restrictions" in found
    assert found["max-dialogs"]["level"] == "ok"
    assert "up to 20 dialogs" in found["max-dialogs"]["text"]
    assert doc["settings"] == []
    html = (tmp_path / "report" / report.HTML_NAME).read_text()
    assert "no restrictions found" in html


def test_strict_phone_needs_single_dialog(block: PortBlock, tmp_path: Path) -> None:
    doc = probe_phone("strict", block, tmp_path)
    got = outcomes(doc)
    assert got["state-confirmed"] == ("accepted", 200)
    assert got["dialogs-2"] == ("rejected", 400)
    assert got["dialogs-20"] == ("rejected", 400)
    assert got["size-16k"] == ("accepted", 200)  # a big body with one dialog is fine
    found = conclusions(doc)
    assert "accepts up to 1 dialogs, fails at 2" in found["max-dialogs"]["text"]
    assert found["force_single_dialog"]["level"] == "fail"
    assert "force_single_dialog=1" in doc["settings"]
    assert "no-restrictions" not in found


def test_crashing_phone_is_fatal_at_two_dialogs(block: PortBlock, tmp_path: Path) -> None:
    doc = probe_phone("crash", block, tmp_path)
    got = outcomes(doc)
    assert got["dialogs-2"][0] == "fatal"
    assert got["dialogs-5"][0] == "skipped"  # it never SUBSCRIBEs again
    assert all(o == "accepted" for n, (o, _) in got.items() if not n.startswith("dialogs-"))
    found = conclusions(doc)
    assert found["force_single_dialog"]["level"] == "fail"
    assert "fails at 2 (no answer" in found["max-dialogs"]["text"]
    assert found["fatal"]["probes"] == ["dialogs-2"]


def test_partial481_phone_rejects_partial_and_comes_back(block: PortBlock, tmp_path: Path) -> None:
    doc = probe_phone("partial481", block, tmp_path)
    got = outcomes(doc)
    assert got["partial"] == ("rejected", 481)
    # It SUBSCRIBEd again after its 481, and the walk went on to the end.
    assert doc["phone"]["subscribes"] == 2
    assert got["dialogs-20"] == ("accepted", 200)
    found = conclusions(doc)
    assert "rejects partial state" in found["partial-state"]["text"]
    assert found["max-dialogs"]["level"] == "ok"
    assert "force_single_dialog" not in found


def test_tolerant_phone_over_tcp(block: PortBlock, tmp_path: Path) -> None:
    doc = probe_phone("tolerant", block, tmp_path, transport="tcp")
    assert doc["kit"]["transport"] == "tcp"
    assert {o for o, _ in outcomes(doc).values()} == {"accepted"}
    assert "no-restrictions" in conclusions(doc)


def test_notify_liveness_when_options_are_not_used(block: PortBlock, tmp_path: Path) -> None:
    doc = probe_phone("crash", block, tmp_path, liveness="notify")
    got = outcomes(doc)
    assert got["dialogs-2"][0] == "fatal"
    assert got["state-early"] == ("accepted", 200)
    assert doc["phone"]["options_supported"] is None
