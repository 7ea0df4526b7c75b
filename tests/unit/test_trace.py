"""The SIPp message-trace parser (sip/trace.py) and NOTIFY pairing (peers.notifies_in)."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.harness.peers import notifies_in
from conformance.sip.message import Request, Response
from conformance.sip.trace import TraceParser, parse_trace

SEP = "-" * 47


def entry(message: bytes, *, sent: bool, stamp: str = "2026-11-27 09:53:01.446573") -> bytes:
    """One entry exactly as SIPp 3.6.1 writes it."""
    if sent:
        head = f"UDP message sent ({len(message)} bytes):"
    else:
        head = f"UDP message received [{len(message)}] bytes :"
    return f"{SEP} {stamp}\n{head}\n\n".encode() + message + b"\n"


def control(text: bytes, *, sent: bool = False) -> bytes:
    head = (
        f"TCP control message sent ({len(text)} bytes):"
        if sent
        else f"TCP control message received [{len(text)}] bytes :"
    )
    return f"{SEP} 2026-11-27 09:53:01.500000\n{head}\n\n".encode() + text + b"\n"


def notify(cseq: int, *, branch: str = "z9hG4bKn1", state: str = "active;expires=60") -> bytes:
    body = b"<dialog-info/>"
    return (
        "NOTIFY sip:watcher@127.0.0.1:20000 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
        "From: <sip:alice@example.com>;tag=srv\r\n"
        "To: <sip:watcher@example.com>;tag=w1\r\n"
        "Call-ID: c1\r\n"
        f"CSeq: {cseq} NOTIFY\r\n"
        "Event: dialog\r\n"
        f"Subscription-State: {state}\r\n"
        "Content-Type: application/dialog-info+xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def answer(cseq: int, status: int = 200, *, branch: str = "z9hG4bKn1") -> bytes:
    return (
        f"SIP/2.0 {status} Whatever\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
        "From: <sip:alice@example.com>;tag=srv\r\n"
        "To: <sip:watcher@example.com>;tag=w1\r\n"
        "Call-ID: c1\r\n"
        f"CSeq: {cseq} NOTIFY\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


PUBLISH = (
    b"PUBLISH sip:alice@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:20000;branch=z9hG4bK-1\r\n"
    b"Call-ID: p1\r\nCSeq: 1 PUBLISH\r\nEvent: dialog\r\nContent-Length: 4\r\n\r\nbody"
)
OK = (
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:20000;branch=z9hG4bK-1\r\n"
    b"Call-ID: p1\r\nCSeq: 1 PUBLISH\r\nSIP-ETag: e1\r\nContent-Length: 0\r\n\r\n"
)


def test_sent_and_received_entries_become_stamped_messages() -> None:
    msgs = parse_trace(entry(PUBLISH, sent=True) + entry(OK, sent=False))
    assert [m.direction for m in msgs] == ["out", "in"]
    assert isinstance(msgs[0].message, Request) and msgs[0].message.body == b"body"
    assert isinstance(msgs[1].message, Response) and msgs[1].message.header("SIP-ETag") == "e1"
    expected = datetime(2026, 11, 27, 9, 53, 1, 446573).timestamp()
    assert msgs[0].timestamp == expected
    assert not any(m.retransmission for m in msgs)


def test_byte_count_wins_over_a_separator_inside_a_body() -> None:
    body = f"x\n{SEP} 2026-11-27 09:53:01.000000\nUDP message sent (3 bytes):\n\nabc".encode()
    msg = (
        b"PUBLISH sip:a@b SIP/2.0\r\nCall-ID: p\r\nCSeq: 1 PUBLISH\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    msgs = parse_trace(entry(msg, sent=True) + entry(OK, sent=False))
    assert len(msgs) == 2
    assert msgs[0].message.body == body


def test_an_unfinished_last_entry_waits_for_more_bytes() -> None:
    data = entry(PUBLISH, sent=True) + entry(OK, sent=False)
    cut = len(data) - 20
    parser = TraceParser()
    first = parser.feed(data[:cut])
    assert [m.direction for m in first] == ["out"]
    rest = parser.feed(data[cut:])
    assert [m.direction for m in rest] == ["in"]
    assert parse_trace(data[:cut]) == tuple(first)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=30))
def test_any_chunking_gives_the_same_messages(sizes: list[int]) -> None:
    data = (
        entry(PUBLISH, sent=True)
        + control(b"Call-ID: x\r\nX-Op: stop\r\n\r\n")
        + entry(OK, sent=False)
        + entry(notify(2), sent=False)
        + entry(notify(2), sent=False)
    )
    parser = TraceParser()
    got = []
    pos = 0
    for size in sizes * (len(data) // sum(sizes) + 1):
        got += parser.feed(data[pos : pos + size])
        pos += size
        if pos >= len(data):
            break
    assert tuple(got) == parse_trace(data)
    assert len(got) == 4


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises(data: bytes) -> None:
    parser = TraceParser()
    parser.feed(data)
    parser.feed(entry(OK, sent=False))


def test_control_messages_and_diagnostics_are_skipped() -> None:
    data = (
        control(b"Call-ID: c1\r\nX-Op: subscribe\r\n\r\n")
        + b"Unexpected control message received (I was expecting a different type):\nfoo\n\n"
        + entry(OK, sent=False)
        + control(b"Call-ID: c1\r\nX-Ack: subscribe\r\n\r\n", sent=True)
    )
    msgs = parse_trace(data)
    assert [type(m.message).__name__ for m in msgs] == ["Response"]


def test_retransmissions_are_flagged_not_hidden() -> None:
    data = b"".join(
        entry(m, sent=False)
        for m in (notify(2), notify(2), notify(3, branch="z9hG4bKn2"), notify(2, branch="other"))
    )
    msgs = parse_trace(data)
    assert [m.retransmission for m in msgs] == [False, True, False, False]


def test_a_provisional_and_a_final_response_are_different_messages() -> None:
    trying = OK.replace(b"200 OK", b"100 Trying")
    msgs = parse_trace(entry(trying, sent=False) + entry(OK, sent=False) + entry(OK, sent=False))
    assert [m.retransmission for m in msgs] == [False, False, True]


def test_the_same_bytes_sent_and_received_are_not_retransmissions() -> None:
    msgs = parse_trace(entry(PUBLISH, sent=True) + entry(PUBLISH, sent=False))
    assert [m.retransmission for m in msgs] == [False, False]


def test_a_malformed_entry_is_recorded_and_parsing_goes_on() -> None:
    parser = TraceParser()
    msgs = parser.feed(entry(b"NOT SIP AT ALL", sent=False) + entry(OK, sent=False))
    assert len(msgs) == 1
    assert len(parser.malformed) == 1
    assert parser.malformed[0].direction == "in"
    assert "blank line" in parser.malformed[0].error


def test_notifies_are_paired_with_their_answers_and_retransmissions_folded() -> None:
    data = (
        entry(notify(2), sent=False)
        + entry(answer(2), sent=True)
        + entry(notify(3, branch="z9hG4bKn3"), sent=False)
        + entry(notify(3, branch="z9hG4bKn3"), sent=False)
        + entry(answer(3, 481, branch="z9hG4bKn3"), sent=True)
        + entry(answer(3, 481, branch="z9hG4bKn3"), sent=True)
        + entry(notify(4, branch="z9hG4bKn4", state="terminated;reason=timeout"), sent=False)
    )
    found = notifies_in(parse_trace(data), "c1")
    assert [n.cseq for n in found] == [2, 3, 4]
    assert [n.answered for n in found] == [200, 481, None]
    assert [n.retransmissions for n in found] == [0, 1, 0]
    assert found[0].subscription_state == "active" and found[0].expires == 60
    assert found[2].subscription_state == "terminated" and found[2].reason == "timeout"
    assert found[0].body == b"<dialog-info/>"
    assert found[0].content_type == "application/dialog-info+xml"
    assert notifies_in(parse_trace(data), "another-call") == []


def test_an_entry_shorter_than_its_byte_count_is_incomplete_not_misparsed() -> None:
    text = f"{SEP} 2026-11-27 09:53:01.446573\nUDP message sent (523 bytes):\n\n".encode() + PUBLISH
    assert len(PUBLISH) < 523
    assert parse_trace(text) == ()
