"""The SIPp runner (conformance/sipp.py): exits mapped, deadlines kept, processes always reaped."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.errors import HarnessError, ToolMissingError
from conformance.harness.ports import PortBlock
from conformance.harness.sipp import Ports, SippExit, SippProcess, command, run, sipp_binary
from conformance.resources import scenario_path

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
]


@pytest.fixture
def silent_server(block: PortBlock) -> Iterator[tuple[str, int]]:
    """A UDP socket that reads nothing and answers nothing (no ICMP error either)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", block.take_one()))
        yield s.getsockname()


@pytest.fixture
def echo_server(block: PortBlock) -> Iterator[tuple[str, int]]:
    """A tiny UDP peer in a thread that answers every request 200 OK (no Kamailio needed)."""
    import threading

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", block.take_one()))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            keep = [
                h
                for h in head[1:]
                if h.split(b":")[0].lower() in (b"via", b"from", b"to", b"call-id", b"cseq")
            ]
            reply = (
                b"\r\n".join([b"SIP/2.0 200 OK", *keep, b"SIP-ETag: e-1", b"Content-Length: 0"])
                + b"\r\n\r\n"
            )
            sock.sendto(reply, addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def _files(tmp_path: Path) -> dict[str, str]:
    return {
        "user": "alice",
        "domain": "example.com",
        "headers": "Event: dialog\r\nExpires: 60\r\n",
        "body": "",
    }


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_a_one_shot_run_returns_its_messages(echo_server, block, tmp_path) -> None:
    result = run(
        scenario_path("publish.xml"),
        server=echo_server,
        block=block,
        workdir=tmp_path,
        timeout=5,
        keys=_files(tmp_path),
    )
    assert result.exit is SippExit.OK
    assert result.ok() is result
    assert [m.direction for m in result.messages] == ["out", "in"]
    assert result.messages[1].message.header("SIP-ETag") == "e-1"
    assert result.command[0] == sipp_binary()
    assert {"-nostdin", "-default_behaviors", "-trace_msg"} <= set(result.command)
    assert result.logs["messages"].is_file()
    assert 0 < result.duration < 5


def test_the_deadline_stops_a_silent_exchange(silent_server, block, tmp_path) -> None:
    started = time.monotonic()
    result = run(
        scenario_path("publish.xml"),
        server=silent_server,
        block=block,
        workdir=tmp_path,
        timeout=0.4,
        keys=_files(tmp_path),
    )
    assert result.exit is SippExit.TIMEOUT
    assert time.monotonic() - started < 0.4 + 1.5
    assert [m.direction for m in result.messages if not m.retransmission] == ["out"]
    with pytest.raises(HarnessError, match=r"SIPp failed \(TIMEOUT"):
        result.ok()


def test_a_broken_scenario_is_a_harness_error_naming_command_and_log(
    echo_server, block, tmp_path
) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<scenario><send><![CDATA[ [nonsense_keyword] ]]></send></scenario>")
    result = run(bad, server=echo_server, block=block, workdir=tmp_path, timeout=5)
    assert result.exit in (SippExit.FATAL, SippExit.CALL_FAILED)  # 3.6.1 says 1 here
    assert result.messages == ()
    with pytest.raises(HarnessError) as info:
        result.ok()
    text = str(info.value)
    assert str(bad) in text and f"exit status {result.returncode}" in text
    assert "Unable to load or parse" in text  # the tail of SIPp's own complaint


def test_a_taken_port_is_reported_as_bind_failure(echo_server, block, tmp_path) -> None:
    ports = Ports.take(block)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", ports.sip))
        result = run(
            scenario_path("publish.xml"),
            server=echo_server,
            block=block,
            workdir=tmp_path,
            timeout=5,
            keys=_files(tmp_path),
            ports=ports,
        )
    assert result.exit is SippExit.BIND_FAILED


def test_missing_sipp_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="apt-get install sip-tester"):
        sipp_binary()


def _watch_process(block: PortBlock, tmp_path: Path, server: tuple[str, int]) -> SippProcess:
    ports = Ports.take(block)
    argv, logs = command(
        scenario_path("watch.xml"),
        server=server,
        ports=ports,
        workdir=tmp_path,
        keys={"user": "a", "domain": "b", "watcher": "w"},
        calls=None,
        timeout=60,
        extra=("-3pcc", f"127.0.0.1:{ports.twin}", "-aa"),
    )
    return SippProcess(argv, logs, cwd=tmp_path)


def test_stop_reaps_a_long_running_sipp(silent_server, block, tmp_path) -> None:
    proc = _watch_process(block, tmp_path, silent_server).start()
    assert not proc.wait(0.2)  # it idles, waiting for a controller
    pid = proc.pid
    assert proc.stop() is SippExit.STOPPED
    assert _gone(pid)
    assert proc.stop() is SippExit.STOPPED  # idempotent


def test_keyboard_interrupt_still_reaps(silent_server, block, tmp_path) -> None:
    proc = _watch_process(block, tmp_path, silent_server)
    with pytest.raises(KeyboardInterrupt), proc:
        raise KeyboardInterrupt
    assert proc.pid is not None and _gone(proc.pid)


def test_sipp_dies_with_its_parent(silent_server, block, tmp_path) -> None:
    """A SIPp whose Python parent is SIGKILLed must not outlive it (PR_SET_PDEATHSIG)."""
    ports = Ports.take(block)
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from conformance.harness.sipp import Ports, SippProcess, command
        from conformance.resources import scenario_path
        ports = Ports(sip={ports.sip}, control={ports.control}, media={ports.media},
                      twin={ports.twin})
        argv, logs = command(scenario_path("watch.xml"), server={silent_server!r}, ports=ports,
                             workdir=Path({str(tmp_path)!r}),
                             keys={{"user": "a", "domain": "b", "watcher": "w"}}, calls=None,
                             timeout=60, extra=("-3pcc", "127.0.0.1:{ports.twin}", "-aa"))
        p = SippProcess(argv, logs, cwd=Path({str(tmp_path)!r})).start()
        print(p.pid, flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    sipp_pid = 0
    try:
        line = child.stdout.readline() if child.stdout else b""
        sipp_pid = int(line)
        assert not _gone(sipp_pid)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _gone(sipp_pid):
            time.sleep(0.02)
        # Orphaned, it is reaped by init; /proc may keep a zombie for an instant.
        status = Path(f"/proc/{sipp_pid}/stat")
        assert _gone(sipp_pid) or " Z " in status.read_text()
    finally:
        if sipp_pid and not _gone(sipp_pid):  # only if the test failed: don't leak it
            os.kill(sipp_pid, signal.SIGKILL)
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()
