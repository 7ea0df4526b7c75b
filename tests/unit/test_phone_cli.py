"""``dialoginfo-conformance phone``: option errors are one line and exit status 2."""

from __future__ import annotations

import pytest

from conformance.cli import main
from conformance.commands.addresses import parse_listen
from conformance.commands.phone import advertised_address, exit_status, parse_phone
from conformance.errors import UsageError


def test_phone_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["phone"])
    assert exc.value.code == 2
    assert "--phone" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--phone", "phone.example"], "give the phone's IP address"),
        (["--phone", "127.0.0.1", "--listen", "nowhere"], "use HOST:PORT"),
        (["--phone", "127.0.0.1", "--plan", "nope"], "unknown probe plan"),
        (["--phone", "127.0.0.1", "--probe-timeout", "0"], "probe timeout"),
        (["--phone", "127.0.0.1", "--max-dialogs", "0"], "max dialogs"),
        (["--phone", "127.0.0.1", "--resubscribe-wait", "-1"], "resubscribe wait"),
    ],
)
def test_bad_options_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["phone", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_parsers() -> None:
    assert parse_listen("127.0.0.1:5062", allow_remote=True) == ("127.0.0.1", 5062)
    assert parse_listen("[::1]:5062", allow_remote=True) == ("::1", 5062)
    assert parse_phone(" 192.0.2.1 ") == "192.0.2.1"
    with pytest.raises(UsageError):
        parse_listen("127.0.0.1:99999")


def test_help_documents_every_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["phone", "--help"])
    out = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "3 ", "130", "143"):
        assert f"\n  {code}" in out
    for option in ("--resubscribe-wait", "--subscribe-wait", "--max-dialogs", "--retry-crashes"):
        assert option in out


def test_exit_status() -> None:
    assert exit_status(None, 1, {"restrictions_found": False}) == 0
    assert exit_status(None, 1, {"restrictions_found": True}) == 1
    assert exit_status(None, 0, {"restrictions_found": False}) == 3
    assert exit_status("SIGINT", 1, {}) == 130
    assert exit_status("SIGTERM", 0, {}) == 143


def test_never_advertises_an_unspecified_address() -> None:
    assert advertised_address("0.0.0.0", "127.0.0.1", None) == "127.0.0.1"
    assert advertised_address("0.0.0.0", "127.0.0.1", "192.0.2.1") == "192.0.2.1"
    assert advertised_address("127.0.0.1", "127.0.0.1", None) == "127.0.0.1"
    with pytest.raises(UsageError, match="cannot send to"):
        advertised_address("0.0.0.0", "127.0.0.1", "0.0.0.0")
    with pytest.raises(UsageError, match="give an IP address"):
        advertised_address("0.0.0.0", "127.0.0.1", "kit.example")
