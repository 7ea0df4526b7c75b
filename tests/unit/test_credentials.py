"""harness/credentials.py: where passwords come from, what the pool lends, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.errors import UsageError
from conformance.harness.credentials import (
    PASSWORD_ENV,
    Credentials,
    Lease,
    PoolTooSmallError,
    UserPool,
    load_keyring,
    resolve_keyring,
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cred.toml"
    path.write_text(text)
    return path


def test_toml_default_pool_realm_and_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\nignored\n")
    ring = load_keyring(
        _write(
            tmp_path,
            'realm = "staging"\nnonce_ttl = 20\nuser = "conf"\npassword_file = "pw"\n'
            '[[users]]\nuser = "alice"\npassword = "a1"\n'
            '[[users]]\nuser = "bob"\npassword = "b1"\n',
        ),
        env={},
    )
    assert ring.default == Credentials("conf", "from-file")
    assert ring.users == ("alice", "bob") and ring.realm == "staging" and ring.nonce_ttl == 20
    assert ring.for_user("bob") == Credentials("bob", "b1")
    assert ring.for_user("someone") == ring.default
    assert ring.accounts == {"alice": "a1", "bob": "b1", "conf": "from-file"}
    assert "a1" not in repr(ring) and "from-file" not in repr(ring)


def test_env_fallback_and_option_override(tmp_path: Path) -> None:
    path = _write(tmp_path, 'user = "conf"\n')
    assert load_keyring(path, env={PASSWORD_ENV: "envpw"}).default == Credentials("conf", "envpw")
    with pytest.raises(UsageError, match=PASSWORD_ENV):
        load_keyring(path, env={})
    pw = tmp_path / "pw"
    pw.write_text("opt\n")
    ring = resolve_keyring(
        user="other", password_file=str(pw), credentials_file=str(path), env={PASSWORD_ENV: "e"}
    )
    assert ring is not None and ring.default == Credentials("other", "opt")
    assert resolve_keyring(env={}) is None
    with pytest.raises(UsageError, match="auth-password-file"):
        resolve_keyring(user="u", env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user = ", "not TOML"),
        ('colour = "x"\nuser = "a"\npassword = "p"', "unknown keys colour"),
        ("", "no account"),
        ('[[users]]\nuser = "a"\npassword = "p"\n[[users]]\nuser = "a"\npassword = "q"', "twice"),
        ('[[users]]\nuser = "a"', "no password"),
        ('user = "a b"\npassword = "p"', "digest user"),
    ],
)
def test_bad_files_are_one_line_usage_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        load_keyring(_write(tmp_path, text), env={})
    assert "\n" not in info.value.message


def test_pool_shares_workers_and_leases() -> None:
    users = ("a", "b", "c", "d", "e")
    assert UserPool(users, 0, 2).share == ("a", "c", "e")
    assert UserPool(users, 1, 2).share == ("b", "d")
    pool = UserPool(users, 1, 2)
    lease = Lease(pool, "test_x")
    assert lease.take() == "b" and lease.watcher() == "d" and lease.watcher() == "d"
    with pytest.raises(PoolTooSmallError, match="user pool too small: case test_x"):
        lease.take()
    lease.release()
    assert Lease(pool, "test_y").take() == "b"


def test_serve_takes_accounts_from_the_file_and_keeps_them_out_of_repr(tmp_path: Path) -> None:
    import argparse

    from conformance.commands import serve

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    path = _write(tmp_path, '[[users]]\nuser = "a"\npassword = "pw-canary"\n')
    config = serve.config_from(
        parser.parse_args(["--auth-credentials", str(path), "--nonce-ttl", "5"])
    )
    assert config.auth_realm == "127.0.0.1" and config.nonce_ttl == 5
    assert config.auth_users == (("a", "pw-canary"),) and "pw-canary" not in repr(config)
    with pytest.raises(UsageError, match="needs --auth-credentials"):
        serve.config_from(parser.parse_args(["--auth-realm", "x"]))
