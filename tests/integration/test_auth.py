"""Digest authentication end to end (A31): the suite's auth cases, in user-pool mode, against the
reference server launched with the pool's accounts; a pool too small for a case is one line;
and no password reaches the command lines, the report, results.json, JUnit or any log.

The same cases against a launched Kamailio (auth_db over SQLite) and each auth fault's kill run
as their own CI steps (.ci/run; tests/mutation), because they take tens of seconds.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from conformance.commands.run import suite_argv

CANARY = f"canary-{secrets.token_hex(6)}"
"""Part of every password: found anywhere in the output, it leaked."""


def _credentials(tmp_path: Path, pool: int) -> Path:
    path = tmp_path / "credentials.toml"
    users = "".join(
        f'[[users]]\nuser = "pool{i}"\npassword = "{CANARY}-{i}"\n' for i in range(pool)
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'realm = "kit.test"\n{users}')
    return path


def _suite(tmp_path: Path, pool: int, *select: str) -> subprocess.CompletedProcess[str]:
    cmd = suite_argv(
        "-q",
        "-k",
        " and ".join(("test_auth", *select)),
        "--dialoginfo-credentials",
        str(_credentials(tmp_path, pool)),
        f"--dialoginfo-report={tmp_path / 'report'}",
        "--basetemp",
        str(tmp_path / "tmp"),
        "--junitxml",
        str(tmp_path / "junit.xml"),
    )
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)


def test_auth_cases_pass_on_the_reference_server_in_pool_mode(tmp_path: Path) -> None:
    proc = _suite(tmp_path, pool=3)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "5 passed" in out
    (results,) = tmp_path.glob("report/*/results.json")
    text = results.read_text()
    assert '"A31"' in text and "pool0" in text  # the cases ran as pool accounts
    leaked = [
        str(p)
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "credentials.toml" and CANARY in p.read_text(errors="ignore")
    ]
    assert leaked == [] and CANARY not in out


def test_a_pool_too_small_for_a_case_is_one_line(tmp_path: Path) -> None:
    proc = _suite(tmp_path, 1, "test_authenticated_run_passes")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    line = next(x for x in out.splitlines() if "user pool too small" in x)
    assert "test_authenticated_run_passes" in line and "Traceback" not in out


def test_live_peer_and_fetch_answer_challenges(tmp_path: Path) -> None:
    """The peers outside the suite's fixtures take the same path: the live peer (one SIPp for
    many requests) and a one-time fetch, against the reference server with one account."""
    from conformance.harness.credentials import Credentials
    from conformance.harness.live_publisher import LivePeer
    from conformance.harness.peers import fetch
    from conformance.harness.ports import reserve_block
    from conformance.oracle.dialoginfo import dialog, document
    from conformance.targets.reference import ReferenceTarget

    block = reserve_block(0)
    account = Credentials("alice", f"{CANARY}-live")
    target = ReferenceTarget(block=block, workdir=tmp_path, accounts={"alice": account.password})
    try:
        target.start()
        where = {"server": (target.host, target.port), "block": block, "domain": target.domain}
        body = document(target.presentity_uri("alice"), [dialog("l1", "confirmed")])
        with LivePeer(workdir=tmp_path / "live", auth=account, **where) as peer:  # type: ignore[arg-type]
            assert peer.publish("alice", body).status == 200
            assert peer.publish("alice", body).status == 200
            statuses = [m.message.status for m in peer.messages if hasattr(m.message, "status")]
            assert statuses == [401, 200, 200]  # challenged once, then the nonce is reused
        response, notifies = fetch(
            workdir=tmp_path / "fetch",
            user="alice",
            watcher="alice",
            auth=account,
            **where,  # type: ignore[arg-type]
        )
        assert response.status == 200 and b"l1" in notifies[0].body
        unauthenticated, _ = fetch(workdir=tmp_path / "fetch", user="alice", **where)  # type: ignore[arg-type]
        assert unauthenticated.status == 401
    finally:
        target.stop()
        block.release()
    leaked = [
        p for p in tmp_path.rglob("*") if p.is_file() and CANARY in p.read_text(errors="ignore")
    ]
    assert leaked == []
