"""The sans-IO SIP parser: fixed cases both ways, and the fuzz invariant (a message or a
SipParseError for any bytes, never another exception)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.errors import SipParseError
from conformance.sip.message import (
    Request,
    Response,
    SipUri,
    param_of,
    parse,
    split_uri,
    tag_of,
    uri_of,
    value_of,
)

NOTIFY = (
    b"NOTIFY sip:w@127.0.0.1:5070 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n"
    b"f: <sip:alice@example.com>;tag=srv\r\n"
    b"t: <sip:w@example.com>;tag=wat\r\n"
    b"i: call-1\r\n"
    b"CSeq: 7 NOTIFY\r\n"
    b"o: dialog\r\n"
    b"Subscription-State: active;expires=599\r\n"
    b"c: application/dialog-info+xml\r\n"
    b"l: 5\r\n\r\n<a/>\nTRAILING"
)


def test_compact_forms_and_body_cut_to_content_length():
    msg = parse(NOTIFY)
    assert isinstance(msg, Request)
    assert (msg.method, msg.uri) == ("NOTIFY", "sip:w@127.0.0.1:5070")
    assert msg.header("Call-ID") == msg.header("i") == "call-1"
    assert msg.header("event") == "dialog"
    assert msg.cseq == (7, "NOTIFY")
    assert msg.branch == "z9hG4bK-1"
    assert (msg.from_tag, msg.to_tag) == ("srv", "wat")
    assert msg.body == b"<a/>\n"
    assert param_of(msg.header("Subscription-State"), "expires") == "599"


def test_round_trip():
    msg = parse(NOTIFY)
    again = parse(bytes(msg))
    assert again == msg
    assert b"Content-Length: 5\r\n" in bytes(msg)


def test_response_and_folded_header():
    raw = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=b\r\nSIP-ETag:\r\n  abc\r\n\r\n"
    msg = parse(raw)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (200, "OK")
    assert msg.header("sip-etag") == "abc"


def test_tag_inside_uri_is_not_the_header_tag():
    assert tag_of("<sip:a@b;tag=wrong>;tag=right") == "right"
    assert tag_of("<sip:a@b;tag=wrong>") is None
    assert uri_of('"Bob" <sip:bob@h>;tag=1') == "sip:bob@h"
    assert uri_of("sip:bob@h;tag=1") == "sip:bob@h"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"SIP/2.0 abc OK\r\n\r\n", "illegal start line 'SIP/2.0 abc OK'"),
        (b"NOTIFY sip:x SIP/2.0\r\nno colon here\r\n\r\n", "malformed header line 'no colon here'"),
        (b"NOTIFY sip:x SIP/2.0\r\n folded first\r\n\r\n", "continuation line before any header"),
        (b"NOTIFY sip:x SIP/2.0\r\nl: 10\r\n\r\nabc", "Content-Length 10 but only 3 body bytes"),
        (b"NOTIFY sip:x SIP/2.0\r\nl: x\r\n\r\n", "bad Content-Length 'x'"),
        (b"NOTIFY sip:x SIP/2.0\r\n", "no blank line ends the headers"),
        (b"NOTIFY sip:x SIP/2.0\r\nA: \xff\r\n\r\n", "not UTF-8"),
    ],
)
def test_errors_quote_the_input(raw, needle):
    with pytest.raises(SipParseError, match=None) as info:
        parse(raw)
    assert needle in info.value.message


def test_str_is_a_type_error():
    with pytest.raises(TypeError):
        parse("NOTIFY sip:x SIP/2.0\r\n\r\n")  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_give_a_message_or_a_parse_error(data):
    try:
        msg = parse(data)
    except SipParseError as exc:
        assert exc.message  # an error that says what was wrong
    else:
        assert isinstance(msg, Request | Response)


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["PUBLISH", "SUBSCRIBE", "NOTIFY", "OPTIONS"]),
    headers=st.lists(
        st.tuples(
            st.sampled_from(["Via", "From", "To", "Call-ID", "Event", "X-Thing"]),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30),
        ),
        max_size=6,
    ),
    body=st.binary(max_size=100),
)
def test_built_messages_parse_back(method, headers, body):
    msg = Request(headers=tuple(headers), body=body, method=method, uri="sip:a@127.0.0.1")
    again = parse(bytes(msg))
    assert again.method == method and again.body == body
    assert [v for n, v in again.headers if n != "Content-Length"] == [v for _, v in headers]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Application/Dialog-Info+XML; charset=UTF-8", "application/dialog-info+xml"),
        ("dialog;id=7", "dialog"),
        (" active ;expires=60", "active"),
        (";expires=60", ""),
        ("", None),
        (None, None),
    ],
)
def test_value_of_drops_parameters_and_case(value: str | None, expected: str | None) -> None:
    """One reader for media types, event packages and subscription states."""
    assert value_of(value) == expected


@pytest.mark.parametrize(
    ("uri", "parts", "user", "host", "port"),
    [
        ("sip:alice@Example.COM", ("sip", "alice", "Example.COM"), "alice", "Example.COM", None),
        (
            "<sips:alice:secret@example.com:5061;transport=tls?subject=x>",
            ("sips", "alice:secret", "example.com:5061"),
            "alice",
            "example.com",
            5061,
        ),
        (
            "sip:bob@[2001:db8::1]:5070",
            ("sip", "bob", "[2001:db8::1]:5070"),
            "bob",
            "[2001:db8::1]",
            5070,
        ),
        ("sip:example.com", ("sip", "", "example.com"), "", "example.com", None),
        ("sip:a%40b@h:x", ("sip", "a%40b", "h:x"), "a%40b", "h", None),
    ],
)
def test_split_uri_keeps_parts_as_written(
    uri: str, parts: tuple[str, str, str], user: str, host: str, port: int | None
) -> None:
    got = split_uri(uri)
    assert got == SipUri(*parts)
    assert (got.user, got.host, got.port) == (user, host, port)


@pytest.mark.parametrize("bad", ["", "alice", "sip:", ":alice@host", "<>"])
def test_split_uri_refuses_what_has_no_scheme_or_rest(bad: str) -> None:
    assert split_uri(bad) is None
