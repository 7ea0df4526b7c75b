"""Port blocks: exclusive per process, round-robin inside, and a busy port only skipped."""

from __future__ import annotations

import socket

import pytest

from conformance.harness import ports


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(ports, "LOCK_DIR", tmp_path)
    return tmp_path


def test_blocks_are_exclusive_and_released(lock_dir):
    a = ports.reserve_block(3)
    b = ports.reserve_block(3)
    assert a.index == 3 and b.index == 4
    a.release()
    c = ports.reserve_block(3)
    assert c.index == 3
    b.release()
    c.release()


def test_ports_advance_round_robin_and_persist(lock_dir):
    with ports.reserve_block(5) as block:
        first = block.take(4)
        second = block.take(4)
        assert second[0] == first[-1] + 1
    with ports.reserve_block(5) as block:  # the cursor survives the lock: no early reuse
        assert block.take(1)[0] == second[-1] + 1


def test_busy_port_is_skipped_by_one(lock_dir):
    with ports.reserve_block(7) as block:
        start = block.take(1)[0] + 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", start + 1))
            got = block.take(2)
        assert got == [start + 2, start + 3]


def test_released_block_refuses_to_hand_out(lock_dir):
    block = ports.reserve_block(9)
    block.release()
    with pytest.raises(ports.HarnessError):
        block.take(1)
