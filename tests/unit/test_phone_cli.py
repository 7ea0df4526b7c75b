"""``dialoginfo-conformance phone``: option errors are one line and exit status 2."""

from __future__ import annotations

import pytest

from conformance.cli import main
from conformance.commands.addresses import parse_listen
from conformance.commands.phone import parse_phone
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
