"""KamailioTarget and ExternalTarget against the real Kamailio: start, probe, stop, reap."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.errors import HarnessError, ToolMissingError, UsageError
from conformance.harness.ports import PortBlock, reserve_block
from conformance.targets import make_target
from conformance.targets.external import ExternalTarget
from conformance.targets.kamailio import (
    BINARY,
    TEMPLATE,
    KamailioTarget,
    _group_members,
    check_installed,
)
from conformance.targets.probe import probe
from conformance.targets.profile import load_profile


def _kamailio_missing() -> bool:
    try:
        check_installed()
    except ToolMissingError:
        return True
    return False


pytestmark = [
    pytest.mark.integration,
    pytest.mark.kamailio,
    pytest.mark.skipif(_kamailio_missing(), reason=f"{BINARY} and its modules are not installed"),
]


@pytest.fixture
def block() -> Iterator[PortBlock]:
    with reserve_block(os.getpid() % 40) as b:
        yield b


def _assert_gone(pgid: int, workdir: Path) -> None:
    assert _group_members(pgid) == [], f"Kamailio processes left in group {pgid}"
    assert not workdir.exists(), f"{workdir} was not removed"


@pytest.mark.parametrize("mode", ["aggregate", "single", "dummy"])
def test_each_mode_starts_answers_and_leaves_nothing(
    mode: str, block: PortBlock, tmp_path: Path
) -> None:
    target = KamailioTarget(mode, block=block, workdir=tmp_path)  # type: ignore[arg-type]
    with target:
        assert target.alive()
        result = probe(target.host, target.port, timeout=2.0)
        assert result.ok, result
        pgid, workdir = target.pid, target.workdir
        assert pgid is not None and workdir is not None
        assert len(_group_members(pgid)) > 1  # Kamailio forked its workers into our group
        cfg = (workdir / "kamailio.cfg").read_text()
        assert f"listen=udp:127.0.0.1:{target.port}" in cfg
        single = "1" if mode == "single" else "0"
        assert f'"force_single_dialog", {single})' in cfg
        assert (workdir / "kamailio.db").is_file()
        info = target.describe()
        assert info["mode"] == mode and "5.6" in info["version"]
        assert target.profile.single_dialog is (mode == "single")
        expected_form = "dummy-dialog" if mode == "dummy" else "no-body"
        assert target.profile.empty_form == expected_form
    _assert_gone(pgid, workdir)
    assert not target.alive()
    target.stop()  # a second stop is harmless


def test_two_instances_in_parallel_on_different_blocks(block: PortBlock) -> None:
    with reserve_block(block.index + 1) as other:
        assert other.index != block.index
        first = KamailioTarget("aggregate", block=block)
        second = KamailioTarget("single", block=other)
        with first, second:
            assert first.port != second.port
            assert probe(first.host, first.port, timeout=2.0).ok
            assert probe(second.host, second.port, timeout=2.0).ok
            groups = [(first.pid, first.workdir), (second.pid, second.workdir)]
    for pgid, workdir in groups:
        assert pgid is not None and workdir is not None
        _assert_gone(pgid, workdir)


def test_stop_after_kill_9_of_the_main_process_reaps_the_children(block: PortBlock) -> None:
    target = KamailioTarget("aggregate", block=block)
    target.start()
    try:
        pgid, workdir = target.pid, target.workdir
        assert pgid is not None and workdir is not None
        children = [p for p in _group_members(pgid) if p != pgid]
        assert children
        os.kill(pgid, signal.SIGKILL)
        time.sleep(0.2)
        assert not target.alive()
    finally:
        target.stop()
    _assert_gone(pgid, workdir)


def test_a_broken_config_fails_fast_naming_the_command_and_log(
    block: PortBlock, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.cfg.tmpl"
    broken.write_text(TEMPLATE.read_text().replace('loadmodule "sl.so"', 'loadmodule "nosuch.so"'))
    target = KamailioTarget("aggregate", block=block, template=broken, workdir=tmp_path / "w")
    started = time.monotonic()
    with pytest.raises(HarnessError) as info:
        target.start()
    assert time.monotonic() - started < 5
    text = str(info.value)
    assert "exited with status" in text and BINARY in text and "nosuch" in text
    assert target.process is None and not list((tmp_path / "w").iterdir())


def test_missing_binary_says_which_packages_to_install(block: PortBlock) -> None:
    target = KamailioTarget("aggregate", block=block, binary="/nonexistent/kamailio")
    with pytest.raises(ToolMissingError, match="kamailio-presence-modules"):
        target.start()


def test_external_target_checks_that_something_answers(block: PortBlock) -> None:
    with KamailioTarget("aggregate", block=block) as server:
        external = make_target(f"sip:{server.address}", profile="kamailio")
        assert isinstance(external, ExternalTarget)
        with external:
            assert external.options_status == 200
            assert external.alive()
            assert external.describe()["profile"] == "kamailio"
    silent = ExternalTarget(
        f"sip:127.0.0.1:{block.take_one()}", profile=load_profile("generic"), ready_timeout=0.5
    )
    started = time.monotonic()
    with pytest.raises(HarnessError, match="nothing answered OPTIONS"):
        silent.start()
    assert time.monotonic() - started < 2


def test_make_target_picks_the_kamailio_mode_from_the_profile(block: PortBlock) -> None:
    single = load_profile("kamailio").with_overrides(single_dialog=True)
    target = make_target("kamailio", profile=single, block=block)
    assert isinstance(target, KamailioTarget) and target.mode == "single"
    dummy = make_target("kamailio:dummy", block=block)
    assert isinstance(dummy, KamailioTarget) and dummy.profile.empty_form == "dummy-dialog"
    with pytest.raises(UsageError, match="only with the reference target"):
        make_target("kamailio", block=block, faults=("x",))
