"""A server on another address (issue 14, point 1): the kit's peers bind and advertise an
address of their own, and the suite passes with the kernel's choice and with a named one.

The proof runs on loopback: a launched Kamailio listens on 127.0.0.2 only, the kit binds
127.0.0.3. Kamailio adds ``received=`` to the Via of a request whose source differs from the
Via's sent-by (RFC 3261 §18.2.1), so a response without it proves the datagram left from the
advertised address; a raw request that advertises another address shows that check can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.commands.run import suite_argv
from conformance.errors import HarnessError, ToolMissingError
from conformance.harness import relay
from conformance.harness.calls import Callee, Caller, new_call_id
from conformance.harness.credentials import Credentials
from conformance.harness.local_address import sip_host
from conformance.harness.peers import Publisher, Watcher, fetch
from conformance.harness.ports import PortBlock, reserve_block
from conformance.harness.sipp import SippProcess
from conformance.pytest_plugin.fixtures import EXIT_BAD_LOCAL_ADDRESS
from conformance.sip.message import Request, Response, param_of, uri_of
from conformance.sip.trace import Traced
from conformance.targets import make_target
from conformance.targets.kamailio import KamailioTarget, check_installed, check_tls_installed
from conformance.targets.kamailio_calls import KamailioCallsTarget, check_call_modules
from conformance.targets.probe import probe

SERVER = "127.0.0.2"
LOCAL = "127.0.0.3"


def _missing() -> str | None:
    if shutil.which("sipp") is None:
        return "sipp is not installed"
    try:
        check_installed()
        check_call_modules()
    except ToolMissingError as exc:
        return str(exc)
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.kamailio,
    pytest.mark.skipif(_missing() is not None, reason=_missing() or ""),
]

BODY = (
    b'<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
    b'version="0" state="full" entity="sip:x@example.org"/>\n'
)


@pytest.fixture(scope="module")
def block() -> Iterator[PortBlock]:
    with reserve_block((os.getpid() + 13) % 40) as b:
        yield b


def _launch(
    kind: type[KamailioTarget],
    block: PortBlock,
    factory: pytest.TempPathFactory,
    transport: str,
) -> Iterator[Any]:
    """A Kamailio of ``kind`` listening on 127.0.0.2 only, on one transport."""
    if transport == "tls":
        try:
            check_tls_installed()
        except ToolMissingError as exc:
            pytest.skip(str(exc))
    target = kind(
        "aggregate",
        host=SERVER,
        block=block,
        workdir=factory.mktemp(f"{kind.__name__}-{transport}"),
        transport=transport,
    )
    with target:
        yield target


@pytest.fixture(scope="module")
def kamailio(block: PortBlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Kamailio on 127.0.0.2 only (UDP): it serves presence and proxies calls."""
    yield from _launch(KamailioCallsTarget, block, tmp_path_factory, "udp")


@pytest.fixture(scope="module")
def kamailio_tcp(block: PortBlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The same on TCP only (one transport per instance, tcp_children=1)."""
    yield from _launch(KamailioCallsTarget, block, tmp_path_factory, "tcp")


def _sent_from(messages: list[Traced], local: str) -> list[str]:
    """What is wrong with the outgoing requests' Via and Contact and the responses' Via."""
    wrong = []
    host = sip_host(local)
    for m in messages:
        msg = m.message
        via = msg.header("Via") or ""
        if m.direction == "out" and isinstance(msg, Request):
            sent_by = via.split()[1].split(";")[0] if len(via.split()) > 1 else ""
            if not sent_by.startswith(host + ":"):
                wrong.append(f"{msg.method} Via {via!r}")
            contact = msg.header("Contact")
            if contact and f"@{host}:" not in (uri_of(contact) or ""):
                wrong.append(f"{msg.method} Contact {contact!r}")
        if m.direction == "in" and isinstance(msg, Response) and param_of(via, "received"):
            wrong.append(f"{msg.status} to {msg.cseq}: server saw another source ({via!r})")
    return wrong


def _every_peer(kamailio: Any, block: PortBlock, workdir: Path, local: str | None) -> dict:
    """Drive one of each peer class over the server's transport; their traces by class name."""
    common = {
        "server": (kamailio.host, kamailio.port),
        "block": block,
        "workdir": workdir,
        "domain": kamailio.domain,
        "local": local,
        "transport": kamailio.transport,
    }
    user = f"d-{uuid.uuid4().hex[:8]}"
    seen: dict[str, list[Traced]] = {}
    with Watcher(user=user, **common) as watcher:  # type: ignore[arg-type,misc]
        publisher = Publisher(**common)  # type: ignore[arg-type]
        publisher.publish(user, BODY)
        publisher.options(user)  # raw.xml
        watcher.wait_notifies(2)
        if kamailio.transport == "tls":
            # Kamailio listens on TLS only, so every NOTIFY came through a relay connection.
            assert watcher.relay.connections >= 1 and watcher.relay.errors == []
        _, notifies = fetch(user=user, **common)  # type: ignore[arg-type]
        assert notifies
        seen["Watcher"] = watcher.messages
    seen["Publisher"] = _traces(workdir, "publish") + _traces(workdir, "raw")
    seen["fetch"] = _traces(workdir, "fetch")
    caller = Caller(user=f"c-{user}", **common)  # type: ignore[arg-type]
    callee = Callee(user=f"e-{user}", **common)  # type: ignore[arg-type]
    with callee, caller:
        call_id = new_call_id()
        callee.expect(call_id)
        caller.invite(callee, call_id=call_id)
        callee.wait_invite(call_id)
        callee.answer(call_id)
        caller.bye(call_id)
        seen["Caller"] = caller.messages(call_id)
        seen["Callee"] = callee.messages(call_id)
    return seen


def _traces(workdir: Path, kind: str) -> list[Traced]:
    from conformance.sip.trace import TraceParser

    out: list[Traced] = []
    for path in sorted(workdir.glob(f"{kind}-*messages.log")):
        out += TraceParser().feed(path.read_bytes())
    return out


PEER_CLASSES = ("Publisher", "Watcher", "fetch", "Caller", "Callee")
"""Every class or function of the harness that opens a SIP socket."""


@pytest.mark.parametrize(
    ("server", "local"),
    [("kamailio", LOCAL), ("kamailio", None), ("kamailio_tcp", LOCAL), ("kamailio_tls", LOCAL)],
    ids=["udp-named", "udp-kernel", "tcp-named", "tls-named"],
)
def test_every_peer_binds_and_advertises_the_local_address(
    request: pytest.FixtureRequest, server: str, block: PortBlock, tmp_path: Path, local: str | None
) -> None:
    kamailio = request.getfixturevalue(server)
    if kamailio.transport == "tls":
        relay.configure(str(kamailio.ca_path))
    seen = _every_peer(kamailio, block, tmp_path, local)
    assert sorted(seen) == sorted(PEER_CLASSES)
    expected = local or "127.0.0.1"  # the kernel's source towards 127.0.0.2
    transport = kamailio.transport.upper()
    for name, messages in seen.items():
        assert any(m.direction == "out" for m in messages), name
        assert _sent_from(messages, expected) == [], name
        for m in messages:
            via = m.message.header("Via") or ""
            if m.direction == "out" and isinstance(m.message, Request):
                assert via.startswith(f"SIP/2.0/{transport} "), (name, via)
            # SIPp's own -aa answers to NOTIFYs carry SIPp's Contact; the scenarios' messages
            # (requests, and the callee's answers to INVITE) carry the advertised one.
            ours = isinstance(m.message, Request) or m.message.cseq[1] == "INVITE"
            contact = m.message.header("Contact") if m.direction == "out" and ours else None
            if contact and transport != "UDP":
                assert f";transport={kamailio.transport}" in contact.lower(), (name, contact)
    logs = [p.read_text(errors="replace") for p in tmp_path.rglob("*messages.log")]
    assert len(logs) >= len(PEER_CLASSES)
    # SIPp names each entry's transport; over TLS it speaks TCP to the relay
    spoken = "UDP" if transport == "UDP" else "TCP"
    other = "TCP" if spoken == "UDP" else "UDP"
    assert all(f"{other} message" not in text for text in logs)
    assert all(f"{spoken} message" in text for text in logs)
    invite = next(m.message for m in seen["Caller"] if m.direction == "out")
    assert f"c=IN IP4 {expected}" in invite.body.decode(), "SDP names the bound address"


def test_the_received_check_can_fail(kamailio: Any, block: PortBlock, tmp_path: Path) -> None:
    """A request advertising 127.0.0.4 but sent from 127.0.0.3 gets received=127.0.0.3."""
    publisher = Publisher(
        server=(kamailio.host, kamailio.port),
        block=block,
        workdir=tmp_path,
        domain=kamailio.domain,
        local=LOCAL,
    )
    response = publisher.request(
        "OPTIONS sip:x@[domain] SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.4:[local_port];rport;branch=[branch]\n"
        "Max-Forwards: 70\nFrom: <sip:x@[domain]>;tag=t1\nTo: <sip:x@[domain]>\n"
        "Call-ID: [call_id]\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n"
    )
    assert param_of(response.header("Via") or "", "received") == LOCAL


@pytest.fixture(scope="module")
def kamailio_tls(block: PortBlock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The same on TLS only (tls.so, a CA and a certificate made at start)."""
    yield from _launch(KamailioCallsTarget, block, tmp_path_factory, "tls")


@pytest.fixture(scope="module")
def presence_kamailio(
    block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KamailioTarget]:
    """The suite's Kamailio (presence only, the shipped profile's config) on 127.0.0.2."""
    yield from _launch(KamailioTarget, block, tmp_path_factory, "udp")


@pytest.mark.parametrize("local", [LOCAL, None], ids=["named", "kernel"])
def test_suite_passes_against_a_server_on_another_address(
    presence_kamailio: KamailioTarget, tmp_path: Path, local: str | None
) -> None:
    """The whole suite against Kamailio on 127.0.0.2 as an external target, the kit's peers
    on 127.0.0.3 or on the kernel's choice (127.0.0.1)."""
    spec = f"sip:{SERVER}:{presence_kamailio.port}"
    extra = ["--dialoginfo-local-address", local] if local else []
    cmd = suite_argv(
        "--dialoginfo-target", spec, "--dialoginfo-profile", "kamailio", *extra, "-q", "-n", "2",
        "--dialoginfo-report", str(tmp_path / "reports"),
    )  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


@pytest.fixture(scope="module")
def presence_kamailio_tcp(
    block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KamailioTarget]:
    """The suite's Kamailio on 127.0.0.2, TCP only."""
    yield from _launch(KamailioTarget, block, tmp_path_factory, "tcp")


def test_suite_passes_over_tcp_with_a_label(
    presence_kamailio_tcp: KamailioTarget, tmp_path: Path
) -> None:
    """``sip:HOST:PORT;transport=tcp``: the suite passes against a TCP-only Kamailio on another
    address; the results name the transport and carry the label the user gave."""
    spec = f"sip:{SERVER}:{presence_kamailio_tcp.port};transport=tcp"
    reports = tmp_path / "reports"
    cmd = suite_argv(
        "--dialoginfo-target", spec, "--dialoginfo-profile", "kamailio",
        "--dialoginfo-local-address", LOCAL, "--dialoginfo-label", "staging",
        "-q", "-n", "2", "--dialoginfo-report", str(reports),
    )  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (results,) = reports.glob("*/results.json")
    doc = json.loads(results.read_text())
    assert doc["label"] == "staging"
    assert doc["target"]["transport"] == "tcp"
    assert results.parent.name.endswith("-staging")
    assert "TCP" in (results.parent / "report.html").read_text()


@pytest.mark.parametrize(
    ("local", "why"),
    [
        ("192.0.2.250", "is not an address of this host"),
        ("::1", "is IPv6 but the target"),
        ("not-an-ip", "is not an IP address"),
    ],
)
def test_a_bad_local_address_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], local: str, why: str
) -> None:
    from conformance.cli import main

    code = main(["run", "--target", f"sip:{SERVER}:5060", "--local-address", local])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert why in err and "\n" not in err


def test_a_local_address_off_the_route_is_refused(presence_kamailio: KamailioTarget) -> None:
    """A non-loopback address of this host towards a loopback server: the plugin stops the run
    before any case, in one line (the kernel would send from loopback)."""
    other = next((a for a in _host_addresses() if not a.startswith("127.") and ":" not in a), None)
    if other is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    spec = f"sip:{SERVER}:{presence_kamailio.port}"
    cmd = suite_argv(
        "--dialoginfo-target", spec, "--dialoginfo-local-address", other, "-q", "-n", "0"
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_BAD_LOCAL_ADDRESS, proc.stdout[-2000:]
    assert "is not on the route to the target" in proc.stdout + proc.stderr
    assert " passed" not in proc.stdout


def _host_addresses() -> list[str]:
    """This host's addresses, from the kernel's choice towards a documentation address."""

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.250", 9))
        except OSError:
            return []
        return [s.getsockname()[0]]


def test_ipv6_target(block: PortBlock, tmp_path: Path) -> None:
    """``sip:[::1]:PORT``: the reference server on ::1, peers on ::1 by the kernel's choice,
    brackets in Via and Contact, and the PUBLISH cases of the suite pass."""
    from conformance.targets.reference import ReferenceTarget

    with ReferenceTarget(host="::1", block=block, workdir=tmp_path / "ref") as ref:
        common = {"server": (ref.host, ref.port), "block": block, "domain": ref.domain}
        user = f"v6-{uuid.uuid4().hex[:8]}"
        with Watcher(user=user, workdir=tmp_path / "w", **common) as watcher:  # type: ignore[arg-type,misc]
            publisher = Publisher(workdir=tmp_path / "p", **common)  # type: ignore[arg-type]
            assert publisher.publish(user, BODY).response.status == 200
            watcher.wait_notifies(2)
            assert watcher.local == "::1"
            assert _sent_from(watcher.messages, "::1") == []
        spec = f"sip:[::1]:{ref.port}"
        cmd = suite_argv(
            "--dialoginfo-target", spec, "--dialoginfo-profile", "reference",
            "-q", "-n", "0", "-k", "publish",
            "--dialoginfo-report", str(tmp_path / "reports"),
        )  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert " passed" in proc.stdout


def test_run_leaves_no_temp_files_and_ids_are_package_relative(tmp_path: Path) -> None:
    """``run`` from an unrelated directory: node ids start at the suite package (not at a
    virtualenv or checkout path), and nothing is left in the temp directory."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    reports = tmp_path / "reports"
    env = {**os.environ, "TMPDIR": str(scratch)}
    cmd = [
        sys.executable, "-m", "conformance.cli", "run", "--mode", "aggregate", "-n", "0",
        "--report-dir", str(reports), "--", "-q", "-k", "test_publish_malformed",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (results,) = reports.glob("*/results.json")
    nodeids = [c["nodeid"] for c in json.loads(results.read_text())["cases"]]
    assert nodeids and all(n.startswith("conformance/suite/test_") for n in nodeids), nodeids
    junit = (results.parent / "junit.xml").read_text()
    assert 'classname="conformance.suite.test_publish"' in junit
    left = [p.name for p in scratch.iterdir() if p.name != "dialoginfo-conformance-ports"]
    assert left == []


@pytest.fixture(scope="module")
def presence_kamailio_tls(
    block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KamailioTarget]:
    """The suite's Kamailio on 127.0.0.2, TLS only, its certificate signed by a fresh CA."""
    yield from _launch(KamailioTarget, block, tmp_path_factory, "tls")


def test_suite_passes_over_tls(presence_kamailio_tls: KamailioTarget, tmp_path: Path) -> None:
    """``sips:HOST:PORT`` with ``--tls-ca``: every peer's stream goes through the TLS relay;
    Kamailio listens on TLS only, so no plain listener faces the kit."""
    spec = f"sips:{SERVER}:{presence_kamailio_tls.port}"
    reports = tmp_path / "reports"
    cmd = suite_argv(
        "--dialoginfo-target", spec, "--dialoginfo-profile", "kamailio",
        "--dialoginfo-local-address", LOCAL,
        "--dialoginfo-tls-ca", str(presence_kamailio_tls.ca_path), "-q", "-n", "2",
        "--dialoginfo-report", str(reports),
    )  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    (results,) = reports.glob("*/results.json")
    doc = json.loads(results.read_text())
    assert doc["target"]["transport"] == "tls" and doc["label"] == "external-tls"
    config = next(Path(presence_kamailio_tls.workdir or ".").glob("kamailio.cfg")).read_text()
    assert [line for line in config.splitlines() if line.startswith("listen=")] == [
        f"listen=tls:{SERVER}:{presence_kamailio_tls.port}"
    ]


def test_tls_certificate_checks(presence_kamailio_tls: KamailioTarget, tmp_path: Path) -> None:
    """--tls-ca verifies the chain and the SAN; another CA is refused in one line;
    --tls-insecure skips the check."""
    spec = f"sips:{SERVER}:{presence_kamailio_tls.port}"
    relay.configure(str(presence_kamailio_tls.ca_path))
    make_target(spec).start()
    other, _ = relay.make_ca(tmp_path)
    relay.configure(str(other))
    with pytest.raises(HarnessError, match="TLS certificate refused") as refused:
        make_target(spec).start()
    assert "\n" not in str(refused.value)
    relay.configure(insecure=True)
    make_target(spec).start()
    # The SAN names 127.0.0.2 (an IP SAN): the same server under another name is refused.
    relay.configure(str(presence_kamailio_tls.ca_path))
    ctx = relay.settings().client_context()
    assert probe(SERVER, presence_kamailio_tls.port, transport="tls", tls=ctx, timeout=2).ok
    raw = socket.create_connection((SERVER, presence_kamailio_tls.port), timeout=2)
    with raw, pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        ctx.wrap_socket(raw, server_hostname="staging.example.com")
    relay.configure()


@pytest.fixture(scope="module")
def kamailio_auth(
    block: PortBlock, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KamailioTarget]:
    """Kamailio on 127.0.0.2 whose PUBLISH and SUBSCRIBE need digest credentials (auth_db
    over an SQLite subscriber table)."""
    target = KamailioTarget(
        "aggregate",
        host=SERVER,
        block=block,
        workdir=tmp_path_factory.mktemp("kama"),
        accounts={"alice": "s3cret pass"},
    )
    with target:
        yield target


def test_digest_publish(
    kamailio_auth: KamailioTarget,
    block: PortBlock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PUBLISH without credentials is challenged; with wrong ones it is challenged again;
    with the right ones it is accepted. The password is in no argv."""
    argvs: list[tuple[str, ...]] = []
    real_init = SippProcess.__init__

    def spy(self: SippProcess, argv: Any, *args: Any, **kwargs: Any) -> None:
        argvs.append(tuple(argv))
        real_init(self, argv, *args, **kwargs)

    monkeypatch.setattr(SippProcess, "__init__", spy)
    common = {
        "server": (kamailio_auth.host, kamailio_auth.port),
        "block": block,
        "workdir": tmp_path,
        "domain": kamailio_auth.domain,
        "local": LOCAL,
    }
    plain = Publisher(**common)  # type: ignore[arg-type]
    assert plain.publish("alice", BODY).response.status == 407
    wrong = Publisher(auth=Credentials("alice", "not it"), **common)  # type: ignore[arg-type]
    refused = wrong.publish("alice", BODY)
    assert [a.response.status for a in wrong.attempts] == [407, 407]
    assert refused.request.header("Proxy-Authorization")
    right = Publisher(auth=Credentials("alice", "s3cret pass"), **common)  # type: ignore[arg-type]
    accepted = right.publish("alice", BODY)
    assert accepted.response.status == 200 and accepted.etag
    auth = accepted.request.header("Proxy-Authorization") or ""
    assert 'uri="sip:alice@127.0.0.2"' in auth and "algorithm=MD5" in auth and "qop=auth" in auth
    assert "s3cret" not in auth
    assert right.publish("alice", BODY).response.status == 200
    assert len(right.attempts) == 1  # the nonce is reused: no second challenge
    # The command lines SIPp ran with (what /proc/PID/cmdline shows) hold no password.
    assert len(argvs) == 6
    assert not any("s3cret" in arg or "not it" in arg for argv in argvs for arg in argv)
    files = " ".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert "s3cret" not in files and "not it" not in files
