"""Digest credentials for a server that authenticates (A31): where they come from, who uses them.

Three sources, one result (a ``Keyring``):

* ``--auth-user USER`` with ``--auth-password-file FILE`` (the file's first line);
* a credentials TOML (``--credentials FILE``)::

      realm = "staging.example.com"   # optional: the realm a launched server challenges with
      user = "conformance"            # the default account: every peer authenticates as it
      password_file = "/run/secrets/sip"   # or password = "..." (keep the file mode 0600)

      [[users]]                       # a user pool: presentities and watchers are these
      user = "alice"                  # accounts (a staging server authorizes only them)
      password = "..."

* the environment: ``DIALOGINFO_AUTH_PASSWORD`` when the default user has no password above.

Passwords never leave the kit's process: options name a file, never the secret; the peers put
only the computed digest answer on the wire (``peers.digest_send``), never the password on a
SIPp command line or in a file. ``Credentials`` and ``Keyring`` reprs show users only, so a
log or a traceback shows no password.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.sip.digest import DigestClient

PASSWORD_ENV = "DIALOGINFO_AUTH_PASSWORD"
"""The default account's password when neither a file nor the TOML gives one."""


_UNSAFE = set('"\\\r\n\0')
"""Characters that would break a quoted header value (the user name goes in one)."""


@dataclass(frozen=True)
class Credentials:
    """A digest account (RFC 3261 §22). The password stays in this process: peers put only the
    computed answer on the wire (``sip/digest.py``), never the password on a command line
    (``/proc/PID/cmdline`` is world-readable) or in a file; repr shows the user only."""

    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.user or _UNSAFE & set(self.user) or " " in self.user:
            raise UsageError(f"digest user {self.user!r}: empty, or a space, quote or line break")
        if not self.password or set("\r\n\0") & set(self.password):
            raise UsageError(f"digest password for {self.user}: empty, or a line break or NUL")

    def client(self) -> DigestClient:
        """Fresh client state (challenge, nonce count) for one peer."""
        return DigestClient(self.user, self.password)


@dataclass(frozen=True)
class Keyring:
    """The accounts of one run: a default one, a pool, or both."""

    default: Credentials | None = None
    """Every peer authenticates as this account unless the pool has its user."""
    pool: tuple[Credentials, ...] = ()
    """User-pool mode when not empty: the suite's users are these accounts."""
    realm: str | None = None
    """The realm a launched server challenges with (None: its domain)."""
    nonce_ttl: float | None = None
    """Seconds the external server's nonces live, if known (the stale-nonce case needs it)."""

    def for_user(self, user: str) -> Credentials | None:
        """The account ``user`` authenticates as: its own pool entry, else the default."""
        for account in self.pool:
            if account.user == user:
                return account
        return self.default

    @property
    def accounts(self) -> dict[str, str]:
        """user -> password of every account: what a launched server provisions."""
        found = {a.user: a.password for a in self.pool}
        if self.default is not None:
            found.setdefault(self.default.user, self.default.password)
        return found

    @property
    def users(self) -> tuple[str, ...]:
        """The pool's user names, in file order."""
        return tuple(a.user for a in self.pool)


def _read_secret(path: str | os.PathLike[str], what: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    secret = text.splitlines()[0] if text else ""
    if not secret:
        raise UsageError(f"{what}: {path} is empty (the password is its first line)")
    return secret


def _account(
    entry: Mapping[str, Any], what: str, base: Path, env: Mapping[str, str]
) -> Credentials:
    user = entry.get("user")
    if not isinstance(user, str) or not user:
        raise UsageError(f"{what}: 'user' must be a non-empty string")
    password = entry.get("password")
    if password is None and "password_file" in entry:
        password = _read_secret(base / str(entry["password_file"]), f"{what} ({user})")
    if password is None and what == "credentials file":
        password = env.get(PASSWORD_ENV)
    if not isinstance(password, str) or not password:
        source = f", password_file or ${PASSWORD_ENV}" if what == "credentials file" else ""
        raise UsageError(f"{what}: no password for {user!r} (give password{source})")
    return Credentials(user, password)


def load_keyring(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Keyring:
    """Read a credentials TOML; a ``UsageError`` (one line) names what is wrong."""
    env = os.environ if env is None else env
    where = Path(path)
    try:
        data = tomllib.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"credentials file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"credentials file {path}: not TOML ({exc})") from None
    unknown = set(data) - {"realm", "nonce_ttl", "user", "password", "password_file", "users"}
    if unknown:
        raise UsageError(f"credentials file {path}: unknown keys {', '.join(sorted(unknown))}")
    base = where.parent
    default = _account(data, "credentials file", base, env) if "user" in data else None
    users = data.get("users", [])
    if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
        raise UsageError(f"credentials file {path}: 'users' must be [[users]] tables")
    pool = tuple(_account(u, f"[[users]] entry {i + 1}", base, env) for i, u in enumerate(users))
    names = [a.user for a in pool]
    if len(set(names)) != len(names):
        raise UsageError(f"credentials file {path}: a [[users]] user is listed twice")
    if default is None and not pool:
        raise UsageError(f"credentials file {path}: no account (give user, or [[users]])")
    realm = data.get("realm")
    if realm is not None and (not isinstance(realm, str) or not realm or '"' in realm):
        raise UsageError(f"credentials file {path}: 'realm' must be a plain string")
    ttl = data.get("nonce_ttl")
    if ttl is not None and (not isinstance(ttl, int | float) or not 0 < ttl <= 86400):
        raise UsageError(f"credentials file {path}: 'nonce_ttl' must be seconds (0 to 86400)")
    return Keyring(default=default, pool=pool, realm=realm, nonce_ttl=ttl)


def resolve_keyring(
    *,
    user: str | None = None,
    password_file: str | None = None,
    credentials_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Keyring | None:
    """The run's keyring from the options (None: no authentication). ``user`` with a
    ``password_file`` (or ``$DIALOGINFO_AUTH_PASSWORD``) overrides the file's default."""
    env = os.environ if env is None else env
    ring = load_keyring(credentials_file, env) if credentials_file else None
    if password_file and not user:
        raise UsageError("--auth-password-file needs --auth-user")
    if user:
        if password_file:
            password = _read_secret(password_file, "--auth-password-file")
        else:
            password = env.get(PASSWORD_ENV, "")
            if not password:
                raise UsageError(
                    f"--auth-user {user}: give --auth-password-file or set ${PASSWORD_ENV}"
                )
        default = Credentials(user, password)
        ring = Keyring(default, ring.pool, ring.realm, ring.nonce_ttl) if ring else Keyring(default)
    return ring


class PoolTooSmallError(UsageError):
    """A case needs more pool accounts than this worker's share holds."""


class UserPool:
    """User-pool mode: one worker's share of the pool's accounts, lent to one case at a time.

    A staging server authorizes PUBLISH and SUBSCRIBE for provisioned accounts only, so the
    suite cannot invent a user per case: each case borrows presentities (``take``) and one
    watcher account (``watcher``) from this worker's share (every ``workers``-th account from
    ``index``, so parallel workers never share one), and gives them back when it ends.
    """

    def __init__(self, users: tuple[str, ...], index: int = 0, workers: int = 1) -> None:
        self.share = users[index % max(workers, 1) :: max(workers, 1)]
        self.workers = workers
        self.total = len(users)
        self._busy: set[str] = set()

    def take(self, case: str, role: str = "presentity") -> str:
        """A free account of the share; ``PoolTooSmallError`` (one line) when none is left."""
        for user in self.share:
            if user not in self._busy:
                self._busy.add(user)
                return user
        raise PoolTooSmallError(
            f"user pool too small: case {case} needs more than {len(self.share)} account(s) "
            f"(this {role} is one too many; the pool lists {self.total} for "
            f"{self.workers} worker(s)): add [[users]] to the credentials file or run fewer "
            "workers"
        )

    def release(self, users: set[str] | list[str]) -> None:
        self._busy.difference_update(users)


class Lease:
    """The accounts one case borrowed from a ``UserPool``; ``release`` gives them back."""

    def __init__(self, pool: UserPool, case: str) -> None:
        self.pool = pool
        self.case = case
        self.taken: list[str] = []
        self._watcher: str | None = None

    def take(self) -> str:
        user = self.pool.take(self.case)
        self.taken.append(user)
        return user

    def watcher(self) -> str:
        """The one account every watcher of the case subscribes as (From, digest user)."""
        if self._watcher is None:
            self._watcher = self.pool.take(self.case, "watcher")
            self.taken.append(self._watcher)
        return self._watcher

    def release(self) -> None:
        self.pool.release(self.taken)
        self.taken.clear()
        self._watcher = None


__all__ = [
    "PASSWORD_ENV",
    "Credentials",
    "Keyring",
    "Lease",
    "PoolTooSmallError",
    "UserPool",
    "load_keyring",
    "resolve_keyring",
]
