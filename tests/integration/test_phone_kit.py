"""The phone kit, as a vendor runs it, against simulated phones (sipp_scenarios/phones/).

Each test runs ``dialoginfo-conformance phone`` as a process on loopback, starts one simulated
phone (SIPp) that SUBSCRIBEs to it, and checks what a person sees: the printed lines, the exit
status and the report file. The phones take their limit at run time (``-set limit N``), so each
runs at two limits: a kit that only got lucky at one limit fails at the other. Bounded: the kit
by its own time limits (short ones, given as options), both processes by ``wait``/``stop`` in
``finally``.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.harness import sipp
from conformance.harness.ports import PortBlock
from conformance.resources import scenario_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
PROBE_TIMEOUT = 1.5
"""Per request: loopback answers take milliseconds, this leaves room for a loaded machine."""
REBOOT_MS = int(PROBE_TIMEOUT * 3 * 1000 + 1000)
"""The crash phone stays dead past the kit's three unanswered requests (probe, OPTIONS in and
out of the dialog), then SUBSCRIBEs again: the kit must be waiting for it by then."""
KIT_ARGS = [
    "--probe-timeout",
    str(PROBE_TIMEOUT),
    "--subscribe-wait",
    "15",
    "--resubscribe-wait",
    "12",
    "--plan-timeout",
    "90",
]


@dataclass
class Run:
    code: int
    out: str
    doc: dict[str, Any]

    def conclusion(self, key: str) -> str:
        found = [c["text"] for c in self.doc["conclusions"] if c["key"] == key]
        assert found, f"no conclusion {key!r} in {[c['key'] for c in self.doc['conclusions']]}"
        return found[0]

    def outcome(self, name: str) -> str:
        return next(p["outcome"] for p in self.doc["probes"] if p["name"] == name)


def run_kit(
    phone: str,
    block: PortBlock,
    workdir: Path,
    *,
    limit: int | None = None,
    kit_args: tuple[str, ...] = (),
    phone_host: str = "127.0.0.1",
    transport: str = "udp",
    on_line: Callable[[str, subprocess.Popen[str]], None] | None = None,
) -> Run:
    """Run the kit command against ``phones/<phone>.xml``; return what it printed and wrote."""
    port = block.take_one()
    reports = workdir / "reports"
    argv = [
        sys.executable,
        "-m",
        "conformance.cli",
        "phone",
        "--listen",
        f"127.0.0.1:{port}",
        "--phone",
        phone_host,
        "--transport",
        transport,
        "--report-dir",
        str(reports),
        *KIT_ARGS,
        *kit_args,
    ]
    kit = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert kit.stdout is not None
        for line in kit.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out: list[str] = []
    phone_proc: sipp.SippProcess | None = None
    try:
        deadline = time.monotonic() + 150
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            out.append(line)
            if line.startswith("listening on") and phone_proc is None:
                sets = {"limit": str(limit)} if limit is not None else {}
                if phone == "crash":
                    sets["reboot"] = str(REBOOT_MS)
                argv_phone, logs = sipp.command(
                    scenario_path(f"phones/{phone}.xml"),
                    server=("127.0.0.1", port),
                    ports=sipp.Ports.take(block),
                    workdir=workdir,
                    sets=sets,
                    calls=1,
                    timeout=120,
                    extra=["-s", "bob"] + (["-t", "t1"] if transport == "tcp" else []),
                )
                phone_proc = sipp.SippProcess(argv_phone, logs, cwd=workdir).start()
            if on_line is not None:
                on_line(line, kit)
        code = kit.wait(timeout=30)
    finally:
        if kit.poll() is None:
            kit.kill()
            kit.wait(timeout=10)
        if phone_proc is not None:
            phone_proc.stop()
    reader.join(timeout=5)
    found = sorted(reports.glob("phone-*.json"))
    assert len(found) == 1, f"report files: {found}; output:\n{''.join(out)}"
    assert found[0].with_suffix(".html").is_file()
    assert found[0].name.startswith(f"phone-{phone_host}-")
    return Run(code, "".join(out), json.loads(found[0].read_text(encoding="utf-8")))


@pytest.mark.parametrize("limit", [3, 13])
def test_crashing_phone_limit_is_exact_and_called_a_crash(
    limit: int, block: PortBlock, tmp_path: Path
) -> None:
    run = run_kit("crash", block, tmp_path, limit=limit)
    assert run.code == 1, run.out
    expected = f"accepts up to {limit} dialogs, fails at {limit + 1} (crashed"
    assert expected in run.out
    assert expected in run.conclusion("max-dialogs")
    assert "SUBSCRIPTION ENDED: the phone stopped answering (crashed or hung)" in run.out
    assert "power-cycle it" in run.out
    assert "the phone crashed" in run.conclusion("crashed")
    assert "stays alive" not in run.out
    # It rebooted after each crash, and the probes after the count search all ran.
    assert run.doc["phone"]["subscribes"] >= 2
    assert run.outcome("partial") == "accepted"
    assert run.outcome("size-16384") == "accepted"  # the size search survived the crashes
    assert "force_single_dialog=1" in run.doc["settings"]
    # Only below the crash point once it crashed: no count at or above a crashing one again.
    crashed = [p["dialogs"] for p in run.doc["probes"] if p["outcome"] == "crashed"]
    counts = [p["dialogs"] for p in run.doc["probes"] if p["group"] == "count"]
    for i, n in enumerate(counts):
        assert all(n < c for c in crashed if c in counts[:i]), counts


@pytest.mark.parametrize("limit", [3, 13])
def test_silent_phone_limit_is_exact_and_it_stays_alive(
    limit: int, block: PortBlock, tmp_path: Path
) -> None:
    run = run_kit("silent", block, tmp_path, limit=limit)
    assert run.code == 1, run.out
    assert (
        f"accepts up to {limit} dialogs, fails at {limit + 1} (no answer, though the phone "
        "stays alive)" in run.out
    )
    assert f"ignores NOTIFYs with {limit + 1} or more dialogs but stays alive" in run.out
    assert "crash" not in run.conclusion("max-dialogs")
    assert "SUBSCRIPTION ENDED" not in run.out
    assert run.doc["phone"]["subscribes"] == 1
    assert all(p["outcome"] != "crashed" for p in run.doc["probes"])
    assert run.outcome(f"dialogs-{limit + 1}") == "dropped"


@pytest.mark.parametrize("limit", [3, 13])
def test_partial481_phone_is_told_to_resubscribe_and_the_walk_goes_on(
    limit: int, block: PortBlock, tmp_path: Path
) -> None:
    run = run_kit("partial481", block, tmp_path, limit=limit)
    assert run.code == 1, run.out
    assert f"accepts up to {limit} dialogs, fails at {limit + 1} (rejected with 400" in run.out
    assert "rejects partial state (rejected with 481" in run.out
    ended = run.out.index("SUBSCRIPTION ENDED: the phone answered 481")
    assert "make the phone SUBSCRIBE again" in run.out[ended:]
    assert "--resubscribe-wait" in run.out[ended:]
    assert "SUBSCRIBE #2" in run.out[ended:]
    assert run.doc["phone"]["subscribes"] == 2
    # The count search ran before partial state, and the probes after it still ran.
    names = [p["name"] for p in run.doc["probes"]]
    assert names.index(f"dialogs-{limit + 1}") < names.index("partial")
    assert run.outcome("version-repeat") == "accepted"
    assert not [p for p in run.doc["probes"] if p["outcome"] == "skipped"]


def test_tolerant_phone_over_tcp_exits_0(block: PortBlock, tmp_path: Path) -> None:
    run = run_kit("tolerant", block, tmp_path, transport="tcp", kit_args=("--max-dialogs", "8"))
    assert run.code == 0, run.out
    assert "no restrictions found: every probe was sent and accepted" in run.out
    assert "accepts up to 8 dialogs (the most tried" in run.out
    assert "User-Agent: simulated-phone tolerant" in run.out
    assert run.doc["kit"]["transport"] == "tcp"


def test_sigterm_writes_the_report_marked_interrupted(block: PortBlock, tmp_path: Path) -> None:
    sent: list[bool] = []

    def terminate(line: str, kit: subprocess.Popen[str]) -> None:
        if line.startswith("probe  2") and not sent:
            sent.append(True)
            kit.send_signal(signal.SIGTERM)

    run = run_kit("silent", block, tmp_path, limit=3, on_line=terminate)
    assert sent
    assert run.code == 143, run.out
    assert "INTERRUPTED (SIGTERM)" in run.out
    assert run.doc["interrupted"] == "SIGTERM"
    outcomes = {p["name"]: p["outcome"] for p in run.doc["probes"]}
    assert outcomes["state-confirmed"] == "accepted"
    assert outcomes["dialogs-2"] == "accepted"
    skipped = [p for p in run.doc["probes"] if p["outcome"] == "skipped"]
    assert skipped and all(p["note"] == "interrupted (SIGTERM)" for p in skipped)
    assert "no restrictions found: every probe" not in run.out


def test_subscribe_from_another_address_is_named_and_exits_3(
    block: PortBlock, tmp_path: Path
) -> None:
    run = run_kit(
        "tolerant",
        block,
        tmp_path,
        phone_host="127.0.0.2",
        kit_args=("--subscribe-wait", "2"),
    )
    assert run.code == 3, run.out
    assert (
        "SUBSCRIBE from 127.0.0.1 refused: not the phone under test (--phone 127.0.0.2)" in run.out
    )
    assert "SUBSCRIBEs from 127.0.0.1 were refused" in run.out
    assert run.doc["refused_subscribes_from"] == ["127.0.0.1"]


def test_liveness_by_notify_still_tells_a_silent_drop(block: PortBlock, tmp_path: Path) -> None:
    run = run_kit(
        "silent", block, tmp_path, limit=3, kit_args=("--liveness", "notify", "--max-body", "0")
    )
    assert run.code == 1, run.out
    assert "accepts up to 3 dialogs, fails at 4 (no answer, though the phone stays alive)" in (
        run.out
    )
    assert run.doc["phone"]["options_supported"] is None
