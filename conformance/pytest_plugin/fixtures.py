"""The plugin's fixtures, every one named ``dialoginfo_*``.

A project that installs the kit keeps its own ``case``, ``target`` or ``watcher`` fixtures:
pytest fixture names are global to a session, so the kit's must not be common words.
``dialoginfo_case`` is the experiment handle a conformance case works with
(``conformance.testing.Case``); the others build it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.errors import ConformanceError
from conformance.pytest_plugin.options import (
    LOCAL_ADDRESS_OPTION,
    PROXY_OPTION,
    REGISTER_OPTION,
    TLS_CA_OPTION,
    TLS_INSECURE_OPTION,
    Settings,
    settings,
    worker,
)

EXIT_TARGET_UNAVAILABLE = 10
"""``pytest.exit`` code when the target cannot start: none of pytest's own codes (0-5, where 3
is pytest's internal error), so the ``run`` command can tell it apart and map it to its own
table (README "Exit codes")."""
EXIT_BAD_LOCAL_ADDRESS = 11
"""``pytest.exit`` code when ``--dialoginfo-local-address`` cannot reach the target (not on
this host, or not the route's): a usage error found only once the target is known."""

case_key = pytest.StashKey[Any]()
"""Where ``dialoginfo_case`` leaves the case handle on its item, for the judge."""


def case_id(item: pytest.Item) -> str:
    """The id profiles key deviations by: the test function's name, without parameters."""
    return getattr(item, "originalname", None) or item.name.split("[", 1)[0]


@pytest.fixture(scope="session")
def dialoginfo_settings(pytestconfig: pytest.Config) -> Settings:
    """The resolved options: target spec, profile with command-line overrides, strictness."""
    return settings(pytestconfig)


@pytest.fixture(scope="session")
def dialoginfo_ports(pytestconfig: pytest.Config) -> Iterator[Any]:
    """This worker's block of loopback ports, locked for the session."""
    from conformance.harness.ports import reserve_block

    digits = re.sub(r"\D", "", worker(pytestconfig))
    block = reserve_block(int(digits) if digits else 0)
    yield block
    block.release()


@pytest.fixture(scope="session")
def dialoginfo_target(
    dialoginfo_settings: Settings,
    dialoginfo_ports: Any,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[Any]:
    """The server under test for this worker: launched here, or the user's external one."""
    from conformance.harness import relay
    from conformance.harness.sipp import sipp_binary
    from conformance.targets import make_target

    workdir = tmp_path_factory.mktemp("target")
    ca = (pytestconfig.getoption(TLS_CA_OPTION), pytestconfig.getoption(TLS_INSECURE_OPTION))
    try:
        sipp_binary()  # every case needs SIPp: say so once, not in every case
        relay.configure(ca[0], insecure=ca[1])
        tgt = make_target(
            dialoginfo_settings.target,
            profile=dialoginfo_settings.profile,
            block=dialoginfo_ports,
            workdir=workdir,
            faults=dialoginfo_settings.faults,
            keyring=dialoginfo_settings.keyring,
        )
        tgt.start()
        own_ca = getattr(tgt, "ca_path", None)
        if own_ca and not any(ca):
            relay.configure(str(own_ca))  # a launched TLS server: trust its own CA
    except ConformanceError as exc:
        pytest.exit(
            f"dialog-info conformance: cannot start target: {exc.message}",
            returncode=EXIT_TARGET_UNAVAILABLE,
        )
    try:
        yield tgt
    finally:
        tgt.stop()


@pytest.fixture(scope="session")
def dialoginfo_local_address(dialoginfo_target: Any, pytestconfig: pytest.Config) -> str:
    """The address the peers bind and advertise: ``--dialoginfo-local-address``, checked
    against the route to the target before any case runs, or the kernel's own choice."""
    from conformance.harness.local_address import check_local_address, source_address

    given = pytestconfig.getoption(LOCAL_ADDRESS_OPTION)
    host, port = dialoginfo_target.host, dialoginfo_target.port
    try:
        return check_local_address(given, host, port) if given else source_address(host, port)
    except ConformanceError as exc:
        pytest.exit(f"dialog-info conformance: {exc.message}", returncode=EXIT_BAD_LOCAL_ADDRESS)


@pytest.fixture(scope="session")
def dialoginfo_user_pool(dialoginfo_settings: Settings, pytestconfig: pytest.Config) -> Any:
    """User-pool mode (a credentials file with ``[[users]]``): this worker's share of the
    accounts (``harness.credentials.UserPool``); None when the suite invents its users."""
    from conformance.harness.credentials import UserPool

    ring = dialoginfo_settings.keyring
    if ring is None or not ring.pool:
        return None
    digits = re.sub(r"\D", "", worker(pytestconfig))
    count = int(getattr(pytestconfig, "workerinput", {}).get("workercount", 1))
    return UserPool(ring.users, int(digits) if digits else 0, count)


@pytest.fixture
def dialoginfo_lease(dialoginfo_user_pool: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The pool accounts this test borrowed (``harness.credentials.Lease``), given back after
    it; None outside user-pool mode."""
    from conformance.harness.credentials import Lease

    if dialoginfo_user_pool is None:
        yield None
        return
    lease = Lease(dialoginfo_user_pool, case_id(request.node))
    yield lease
    lease.release()


@pytest.fixture
def dialoginfo_presentity(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, dialoginfo_lease: Any
) -> str:
    """A user part unique to this test, worker and run (the suite may share a server); in
    user-pool mode, an account of the pool."""
    from conformance.case import unique_user

    if dialoginfo_lease is not None:
        return str(_pool_user(dialoginfo_lease))
    return unique_user(worker(pytestconfig), request.node.name[:12].strip("_[") or "p")


def _pool_user(lease: Any, role: str = "take") -> Any:
    """An account from the lease; a pool too small for the case fails it with one line."""
    from conformance.harness.credentials import PoolTooSmallError

    try:
        return getattr(lease, role)()
    except PoolTooSmallError as exc:
        pytest.fail(exc.message, pytrace=False)


@pytest.fixture
def dialoginfo_publisher(
    dialoginfo_target: Any,
    dialoginfo_ports: Any,
    tmp_path: Path,
    dialoginfo_settings: Settings,
    dialoginfo_local_address: str,
) -> Any:
    """Sends PUBLISH through short-lived SIPp processes (authenticating as each presentity's
    pool account, or the default account, when credentials are given)."""
    from conformance.harness.peers import Publisher

    return Publisher(
        server=(dialoginfo_target.host, dialoginfo_target.port),
        block=dialoginfo_ports,
        workdir=tmp_path / "publish",
        domain=dialoginfo_target.domain,
        timeout=dialoginfo_settings.timeout,
        local=dialoginfo_local_address,
        transport=dialoginfo_target.transport,
        auth=dialoginfo_settings.keyring,
    )


@pytest.fixture
def dialoginfo_watcher(
    dialoginfo_target: Any,
    dialoginfo_ports: Any,
    tmp_path: Path,
    dialoginfo_settings: Settings,
    dialoginfo_local_address: str,
    dialoginfo_lease: Any,
) -> Iterator[Any]:
    """A factory: ``dialoginfo_watcher(user=..., expires=..., accept=..., answer=...)`` -> a
    started-later SIPp watcher; every watcher it made is closed (unsubscribed, reaped) after
    the test."""
    from conformance.harness.peers import Watcher

    made: list[Any] = []
    counter = iter(range(10_000))

    def make(**kw: Any) -> Any:
        if dialoginfo_lease is not None and "watcher" not in kw:
            kw["watcher"] = _pool_user(dialoginfo_lease, "watcher")
        kw.setdefault("auth", dialoginfo_settings.keyring)
        w = Watcher(
            server=(dialoginfo_target.host, dialoginfo_target.port),
            block=dialoginfo_ports,
            workdir=tmp_path / f"watch-{next(counter)}",
            domain=dialoginfo_target.domain,
            timeout=dialoginfo_settings.timeout,
            local=dialoginfo_local_address,
            transport=dialoginfo_target.transport,
            **kw,
        )
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


@pytest.fixture
def dialoginfo_case(
    request: pytest.FixtureRequest,
    dialoginfo_target: Any,
    dialoginfo_publisher: Any,
    dialoginfo_watcher: Any,
    dialoginfo_settings: Settings,
    pytestconfig: pytest.Config,
    dialoginfo_lease: Any,
) -> Iterator[Any]:
    """The experiment handle: publish, subscribe, expect; findings are judged after the test."""
    from conformance.case import Case

    c = Case(
        name=case_id(request.node),
        target=dialoginfo_target,
        profile=dialoginfo_settings.profile,
        publisher=dialoginfo_publisher,
        new_watcher=dialoginfo_watcher,
        worker=worker(pytestconfig),
        timeout=dialoginfo_settings.timeout,
        users=dialoginfo_lease,
    )
    request.node.stash[case_key] = c
    yield c
    c.close()


@pytest.fixture
def dialoginfo_expectation(dialoginfo_case: Any, dialoginfo_presentity: str) -> Any:
    """The oracle over what this test published to ``dialoginfo_presentity``."""
    return dialoginfo_case.expectation(dialoginfo_presentity)


@pytest.fixture
def dialoginfo_calls(
    dialoginfo_case: Any,
    dialoginfo_target: Any,
    dialoginfo_ports: Any,
    dialoginfo_settings: Settings,
    tmp_path: Path,
    pytestconfig: pytest.Config,
) -> Iterator[Any]:
    """Calls for group E (``conformance.case.Calls``): they go where the target routes calls
    (its ``call_proxy``); a target that routes none skips the case and says why."""
    from conformance.case import Calls

    proxy = pytestconfig.getoption(PROXY_OPTION) or getattr(dialoginfo_target, "call_proxy", None)
    if proxy is None:
        pytest.skip(
            f"target {dialoginfo_target.name!r} over {dialoginfo_target.transport.upper()} "
            "routes no calls (group E needs a proxy that tracks calls and publishes their "
            "dialog state, over UDP: the reference server, Kamailio with pua_dialoginfo, or "
            f"yours given as {PROXY_OPTION} sip:HOST:PORT)"
        )
    calls = Calls(
        dialoginfo_case,
        proxy=proxy,
        block=dialoginfo_ports,
        workdir=tmp_path / "calls",
        timeout=dialoginfo_settings.timeout,
        register=bool(pytestconfig.getoption(REGISTER_OPTION)),
        auth=dialoginfo_settings.keyring,
    )
    yield calls
    calls.close()
