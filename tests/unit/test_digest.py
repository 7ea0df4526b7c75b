"""sip/digest.py: the digest arithmetic against RFC 2617's own example, and its parsers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.errors import SipParseError
from conformance.sip import digest


def test_rfc2617_example_response() -> None:
    """RFC 2617 §3.5: Mufasa / "Circle Of Life", GET /dir/index.html, qop=auth."""
    challenge = digest.parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = digest.authorization(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    answer = digest.parse_credentials(value)
    assert (answer.qop, answer.nc, answer.opaque) == ("auth", "00000001", challenge.opaque)
    ha1 = digest.ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    assert digest.expected_response(answer, ha1, "GET") == answer.response


def test_sha256_and_no_qop() -> None:
    challenge = digest.Challenge(realm="r", nonce="n", algorithm="SHA-256")
    value = digest.authorization(
        challenge, username="u", password="p", method="SUBSCRIBE", uri="sip:a@b", cnonce="c"
    )
    answer = digest.parse_credentials(value)
    assert answer.qop is None and len(answer.response) == 64
    assert answer.response == digest.expected_response(
        answer, digest.ha1("SHA-256", "u", "r", "p"), "SUBSCRIBE"
    )


def test_challenge_round_trip_and_stale() -> None:
    sent = digest.Challenge(realm="example.com", nonce="abc.def", qop=("auth",), stale=True)
    back = digest.parse_challenge(digest.challenge_value(sent))
    assert back == sent


def test_client_answers_407_with_proxy_authorization_and_counts() -> None:
    client = digest.DigestClient("alice", "pw")
    assert client.header_line("PUBLISH", "sip:alice@x") is None  # nothing to answer yet
    taken = client.take(407, ['Digest realm="x", nonce="n1", qop="auth"'])
    assert taken is not None and taken.proxy
    first = client.header_line("PUBLISH", "sip:alice@x") or ""
    second = client.header_line("PUBLISH", "sip:alice@x") or ""
    assert first.startswith("Proxy-Authorization: Digest ") and "nc=00000001" in first
    assert "nc=00000002" in second and "pw" not in first
    assert "pw" not in repr(client)
    assert client.take(401, ['Basic realm="x"']) is None  # nothing a digest client can answer


@pytest.mark.parametrize(
    "value",
    ["Basic realm=x", "Digest realm", 'Digest nonce="n"', "Digest realm=x, ,,", ""],
)
def test_bad_challenges_raise_sip_parse_error(value: str) -> None:
    with pytest.raises(SipParseError):
        digest.parse_challenge(value)


@given(st.text(max_size=80))
def test_parsers_raise_only_sip_parse_error(text: str) -> None:
    for parse in (digest.parse_challenge, digest.parse_credentials):
        with contextlib.suppress(SipParseError):
            parse(text)
