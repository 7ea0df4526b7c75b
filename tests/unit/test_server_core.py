"""The reference server's sans-IO core, driven with bytes and a fake clock (no sockets).

``Net`` plays every peer: it builds requests, feeds them to the core, and splits what comes
out into responses and NOTIFYs. NOTIFYs are answered (200 by default) so no retransmission
timer is left behind unless a test wants one.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest

from conformance.errors import UsageError
from conformance.oracle import checks, schema
from conformance.oracle import dialoginfo as di
from conformance.server.core import PresenceCore, ServerConfig
from conformance.server.faults import FAULTS, check_names, hooks_for
from conformance.sip import message as sipmsg
from conformance.sip.message import Request, Response, param_of

PRES = "sip:alice@example.com"
EPA = ("127.0.0.1", 5071)
WATCHER = ("127.0.0.1", 5072)
_ids = itertools.count(1)


def doc(*dialogs: tuple[str, str], extra: str = "", ct_ns: str = di.NS) -> bytes:
    inner = "".join(f'<dialog id="{i}"><state>{s}</state>{extra}</dialog>' for i, s in dialogs)
    return (
        f'<dialog-info xmlns="{ct_ns}" version="3" state="full" entity="sip:epa@h">'
        f"{inner}</dialog-info>"
    ).encode()


class Net:
    """A fake network and clock around one core."""

    def __init__(self, *, faults: frozenset[str] = frozenset(), **config: object) -> None:
        # Most tests send several changes at one instant and read each NOTIFY; the A30
        # throttle has its own tests below.
        config.setdefault("notify_interval", 0.0)
        self.core = PresenceCore(ServerConfig(**config), hooks=hooks_for(faults))  # type: ignore[arg-type]
        self.now = 1000.0
        self.responses: list[Response] = []
        self.notifies: list[Request] = []
        self.auto_answer: int | None = 200

    # ---- plumbing ------------------------------------------------------------------------------

    def feed(self, data: bytes, addr: tuple[str, int] = EPA) -> list[tuple[bytes, tuple]]:
        self.core.receive_datagram(data, addr, self.now)
        return self._drain()

    def _drain(self) -> list[tuple[bytes, tuple]]:
        out = self.core.datagrams_to_send(self.now)
        for data, _addr in out:
            msg = sipmsg.parse(data)
            if isinstance(msg, Response):
                self.responses.append(msg)
            else:
                assert msg.method == "NOTIFY"
                self.notifies.append(msg)
                if self.auto_answer is not None:
                    self.answer(msg, self.auto_answer)
        return out

    def answer(self, notify: Request, status: int) -> None:
        headers = tuple(
            (n, v) for n, v in notify.headers if n in ("Via", "From", "To", "Call-ID", "CSeq")
        )
        reply = Response(status=status, reason="X", headers=headers)
        self.core.receive_datagram(bytes(reply), WATCHER, self.now)
        # answering never produces output except NOTIFYs already drained

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer due on the way, in order."""
        end = self.now + seconds
        for _ in range(10_000):
            timer = self.core.get_timer()
            if timer is None or timer > end:
                break
            self.now = max(self.now, timer)
            self.core.handle_timer(self.now)
            self._drain()
        self.now = end

    # ---- requests ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        uri: str = PRES,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        call_id: str | None = None,
        cseq: int = 1,
        from_tag: str = "ftag",
        to_tag: str | None = None,
        branch: str | None = None,
    ) -> Request:
        to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
        base = [
            ("Via", f"SIP/2.0/UDP 127.0.0.1:5071;branch={branch or f'z9hG4bK{next(_ids)}'}"),
            ("Max-Forwards", "70"),
            ("From", f"<sip:peer@example.com>;tag={from_tag}"),
            ("To", to),
            ("Call-ID", call_id or f"cid{next(_ids)}"),
            ("CSeq", f"{cseq} {method}"),
        ]
        return Request(method=method, uri=uri, headers=(*base, *(headers or [])), body=body)

    def publish(
        self,
        body: bytes | None = None,
        *,
        etag: str | None = None,
        expires: int | None = 60,
        uri: str = PRES,
        event: str | None = "dialog",
        ctype: str | None = di.CONTENT_TYPE,
        extra: list[tuple[str, str]] | None = None,
    ) -> Response:
        headers: list[tuple[str, str]] = []
        if event is not None:
            headers.append(("Event", event))
        if expires is not None:
            headers.append(("Expires", str(expires)))
        if etag is not None:
            headers.append(("SIP-If-Match", etag))
        if body and ctype:
            headers.append(("Content-Type", ctype))
        headers += extra or []
        self.feed(bytes(self.request("PUBLISH", uri, headers=headers, body=body or b"")))
        return self.responses[-1]

    def subscribe(
        self,
        *,
        expires: int | None = 600,
        uri: str = PRES,
        event: str | None = "dialog",
        accept: str | None = None,
        call_id: str | None = None,
        to_tag: str | None = None,
        cseq: int = 1,
        from_tag: str = "wtag",
    ) -> Response:
        headers = [("Contact", "<sip:watcher@127.0.0.1:5072>")]
        if event is not None:
            headers.append(("Event", event))
        if expires is not None:
            headers.append(("Expires", str(expires)))
        if accept is not None:
            headers.append(("Accept", accept))
        req = self.request(
            "SUBSCRIBE",
            uri,
            headers=headers,
            call_id=call_id,
            cseq=cseq,
            to_tag=to_tag,
            from_tag=from_tag,
        )
        self.feed(bytes(req), WATCHER)
        return self.responses[-1]

    def dialog_of(self, response: Response) -> dict[str, str]:
        """What an in-dialog SUBSCRIBE needs: Call-ID and the server's tag."""
        return {"call_id": response.call_id or "", "to_tag": response.to_tag or ""}


def info(notify: Request) -> di.DialogInfo:
    return di.parse(notify.body)


def ids(notify: Request) -> list[str | None]:
    return list(info(notify).dialog_ids)


def version(notify: Request) -> int:
    v = info(notify).version_number()
    assert v is not None
    return v


def sub_state(notify: Request) -> str:
    return notify.header("Subscription-State") or ""


@pytest.fixture
def net() -> Net:
    return Net()


# ---- PUBLISH (RFC 3903) --------------------------------------------------------------------------


def test_initial_publish_gets_one_etag_and_expires(net: Net) -> None:
    r = net.publish(doc(("d1", "early")), expires=120)
    assert r.status == 200
    assert len(r.header_all("SIP-ETag")) == 1
    assert r.header("Expires") == "120"
    assert not r.header_all("Record-Route")


def test_expires_is_capped_and_defaulted() -> None:
    net = Net(publish_expires_max=300)
    assert net.publish(doc(("d1", "early")), expires=7200).header("Expires") == "300"
    assert int(net.publish(doc(("d2", "early")), expires=None).header("Expires") or 0) > 0


def test_short_expires_gets_423_with_min_expires_when_a_minimum_is_set() -> None:
    net = Net(publish_expires_min=30, subscribe_expires_min=30)
    r = net.publish(doc(("d1", "early")), expires=5)
    assert r.status == 423 and r.header("Min-Expires") == "30"
    s = net.subscribe(expires=5)
    assert s.status == 423 and s.header("Min-Expires") == "30"


def test_short_expires_is_accepted_by_default(net: Net) -> None:
    assert net.publish(doc(("d1", "early")), expires=1).header("Expires") == "1"


@pytest.mark.parametrize("event", [None, "presence", "x-nonexistent"])
def test_publish_with_missing_or_unknown_event_gets_489(net: Net, event: str | None) -> None:
    assert net.publish(doc(("d1", "early")), event=event).status == 489


def test_publish_with_no_body_and_no_etag_gets_400(net: Net) -> None:
    assert net.publish(None).status == 400


def test_publish_with_two_etags_gets_400(net: Net) -> None:
    etag = net.publish(doc(("d1", "early"))).header("SIP-ETag")
    r = net.publish(None, extra=[("SIP-If-Match", str(etag)), ("SIP-If-Match", f"{etag}x")])
    assert r.status == 400
    assert net.publish(None, etag=f"{etag}, other").status == 400


def test_unknown_etag_gets_412(net: Net) -> None:
    assert net.publish(None, etag="nonexistent123").status == 412


@pytest.mark.parametrize("ctype", ["application/pidf+xml", "text/plain"])
def test_wrong_content_type_gets_415_with_accept_and_changes_nothing(net: Net, ctype: str) -> None:
    net.subscribe()
    before = len(net.notifies)
    r = net.publish(doc(("d1", "early")), ctype=ctype)
    assert r.status == 415
    assert di.CONTENT_TYPE in (r.header("Accept") or "")
    assert len(net.notifies) == before
    assert net.core.publications(PRES) == []


@pytest.mark.parametrize(
    "body",
    [
        b"<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info'",
        b"<presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
        b"<dialog-info xmlns='urn:example:other'/>",
        b"\xff\xfe not utf-8",
    ],
)
def test_bad_body_gets_400_and_keeps_the_state(net: Net, body: bytes) -> None:
    etag = net.publish(doc(("d1", "early"))).header("SIP-ETag")
    net.subscribe()
    before = len(net.notifies)
    assert net.publish(body, etag=etag).status == 400
    assert net.publish(body).status == 400
    assert len(net.notifies) == before
    assert [p.etag for p in net.core.publications(PRES)] == [etag]


def test_refresh_renews_the_etag_and_the_old_one_then_gets_412(net: Net) -> None:
    first = net.publish(doc(("d1", "early")), expires=10).header("SIP-ETag")
    refreshed = net.publish(None, etag=first, expires=10)
    assert refreshed.status == 200
    second = refreshed.header("SIP-ETag")
    assert second and second != first
    assert net.publish(None, etag=first).status == 412
    net.advance(8)
    assert net.publish(None, etag=second, expires=10).status == 200  # lifetime extended
    net.advance(8)
    assert net.core.publications(PRES)  # past the original expiry, still there


def test_etags_are_never_reused(net: Net) -> None:
    seen = set()
    etag = net.publish(doc(("d1", "early"))).header("SIP-ETag")
    seen.add(etag)
    for _ in range(50):
        etag = net.publish(None, etag=etag).header("SIP-ETag")
        assert etag not in seen
        seen.add(etag)
    removed = net.publish(None, etag=etag, expires=0)
    assert removed.header("SIP-ETag") not in seen


def test_modify_replaces_only_that_publication(net: Net) -> None:
    a = net.publish(doc(("a1", "early"))).header("SIP-ETag")
    net.publish(doc(("b1", "confirmed")))
    net.subscribe()
    net.publish(doc(("a2", "trying")), etag=a)
    assert sorted(ids(net.notifies[-1])) == ["a2", "b1"]


def test_remove_notifies_without_the_dialogs_and_kills_the_etag(net: Net) -> None:
    a = net.publish(doc(("a1", "early"))).header("SIP-ETag")
    net.publish(doc(("b1", "confirmed")))
    net.subscribe()
    r = net.publish(None, etag=a, expires=0)
    assert r.status == 200 and r.header("Expires") == "0" and len(r.header_all("SIP-ETag")) == 1
    assert ids(net.notifies[-1]) == ["b1"]
    assert net.publish(None, etag=a).status == 412


def test_publication_expiry_notifies(net: Net) -> None:
    net.publish(doc(("d1", "early")), expires=2)
    net.subscribe()
    assert ids(net.notifies[-1]) == ["d1"]
    net.advance(2.5)
    last = net.notifies[-1]
    assert ids(last) == [] and info(last).state == "full"
    assert net.core.publications(PRES) == []


def test_aggregation_keeps_publication_order_and_modify_moves_to_the_end(net: Net) -> None:
    a = net.publish(doc(("a", "early"))).header("SIP-ETag")
    net.publish(doc(("b", "early")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["a", "b"]
    net.advance(1)
    net.publish(doc(("a", "confirmed")), etag=a)
    assert ids(net.notifies[-1]) == ["b", "a"]


def test_strict_duplicate_ids_newest_publication_wins(net: Net) -> None:
    net.publish(doc(("x", "early"), ("y", "trying")))
    net.advance(1)
    net.publish(doc(("x", "confirmed")))
    net.subscribe()
    body = info(net.notifies[-1])
    assert sorted(body.dialog_ids) == ["x", "y"]
    assert {d.id: d.state for d in body.dialogs}["x"] == "confirmed"


def test_module_flavour_keeps_duplicates() -> None:
    net = Net(flavour="opensips")
    net.publish(doc(("x", "early")))
    net.publish(doc(("x", "confirmed")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["x", "x"]


def test_kamailio_flavour_replaces_same_first_id_and_notifies_on_refresh() -> None:
    net = Net(flavour="kamailio")
    old = net.publish(doc(("x", "early"))).header("SIP-ETag")
    new = net.publish(doc(("x", "confirmed"))).header("SIP-ETag")
    assert net.publish(None, etag=old).status == 412
    net.subscribe()
    count = len(net.notifies)
    net.publish(None, etag=new)
    assert len(net.notifies) == count + 1


def test_strict_refresh_publish_does_not_notify(net: Net) -> None:
    etag = net.publish(doc(("x", "early"))).header("SIP-ETag")
    net.subscribe()
    count = len(net.notifies)
    net.publish(None, etag=etag)
    assert len(net.notifies) == count


def test_single_dialog_picks_by_priority_only_with_two_publications() -> None:
    net = Net(single_dialog=True)
    net.publish(doc(("c", "confirmed"), ("t", "trying")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["c", "t"]  # D10: one publication passes whole
    net.publish(doc(("e", "early")))
    assert ids(net.notifies[-1]) == ["e"]


def test_options_advertises_publish_and_dialog(net: Net) -> None:
    net.feed(bytes(net.request("OPTIONS")))  # OPTIONS stays open (probes use it)
    r = net.responses[-1]
    assert r.status == 200
    assert "PUBLISH" in (r.header("Allow") or "")
    assert "dialog" in (r.header("Allow-Events") or "")


def test_unknown_method_gets_405_and_ack_gets_nothing(net: Net) -> None:
    net.feed(bytes(net.request("MESSAGE")))
    assert net.responses[-1].status == 405
    assert net.feed(bytes(net.request("ACK"))) == []


def test_no_record_route_in_responses(net: Net) -> None:
    r = net.publish(doc(("d", "early")), extra=[("Record-Route", "<sip:127.0.0.9;lr>")])
    assert r.status == 200 and not r.header_all("Record-Route")


# ---- SUBSCRIBE / NOTIFY (RFC 6665) ---------------------------------------------------------------


def test_subscribe_gets_200_and_an_immediate_full_notify(net: Net) -> None:
    net.publish(doc(("d1", "early"), ("d2", "confirmed")))
    r = net.subscribe(expires=600)
    assert r.status == 200 and int(r.header("Expires") or 0) == 600
    n = net.notifies[-1]
    assert n.call_id == r.call_id
    assert n.to_tag == "wtag" and n.from_tag == r.to_tag
    assert n.header("Event") == "dialog"
    assert sub_state(n) == "active;expires=600"
    assert n.header("Content-Type") == di.CONTENT_TYPE
    assert sipmsg.uri_of(n.header("Contact") or "").startswith("sip:")
    body = info(n)
    assert body.root_tag == di.ROOT_TAG and body.state == "full"
    assert body.entity == PRES and body.version == "0"
    assert sorted(body.dialog_ids) == ["d1", "d2"]
    assert n.uri == "sip:watcher@127.0.0.1:5072"


def test_response_goes_out_before_the_notify(net: Net) -> None:
    out = net.feed(
        bytes(
            net.request(
                "SUBSCRIBE",
                headers=[("Event", "dialog"), ("Contact", "<sip:w@127.0.0.1:5072>")],
            )
        ),
        WATCHER,
    )
    assert out[0][0].startswith(b"SIP/2.0 200")
    assert out[1][0].startswith(b"NOTIFY ")
    assert out[1][1] == WATCHER


def test_event_id_parameter_is_echoed(net: Net) -> None:
    net.subscribe(event="dialog;id=42")
    assert param_of(net.notifies[-1].header("Event"), "id") == "42"


def test_subscribe_expires_capped_and_defaulted() -> None:
    net = Net(subscribe_expires_max=1800)
    assert net.subscribe(expires=7200).header("Expires") == "1800"
    assert 0 < int(net.subscribe(expires=None).header("Expires") or 0) <= 1800


@pytest.mark.parametrize("event", [None, "presence", "x-nonexistent"])
def test_subscribe_unknown_event_gets_489(net: Net, event: str | None) -> None:
    assert net.subscribe(event=event).status == 489
    assert net.notifies == []


def test_accept_without_dialog_info_gets_406(net: Net) -> None:
    assert net.subscribe(accept="application/pidf+xml").status == 406
    assert net.subscribe(accept="application/dialog-info+xml, application/xml").status == 200


def test_unknown_in_dialog_subscribe_gets_481(net: Net) -> None:
    assert net.subscribe(call_id="nope", to_tag="nope").status == 481


def test_versions_and_cseqs_go_up_by_one(net: Net) -> None:
    etag = net.publish(doc(("d", "trying"))).header("SIP-ETag")
    r = net.subscribe(expires=600, call_id="c1")
    for state in ("early", "confirmed"):
        etag = net.publish(doc(("d", state)), etag=etag).header("SIP-ETag")
    net.subscribe(expires=300, cseq=2, **net.dialog_of(r))
    notifies = [n for n in net.notifies if n.call_id == "c1"]
    assert [version(n) for n in notifies] == [0, 1, 2, 3]
    cseqs = [n.cseq[0] for n in notifies]  # type: ignore[index]
    assert cseqs == list(range(cseqs[0], cseqs[0] + 4))
    assert sub_state(notifies[-1]) == "active;expires=300"


def test_versions_are_per_subscription(net: Net) -> None:
    net.publish(doc(("d", "trying")))
    net.subscribe(call_id="one")
    for _ in range(3):
        net.publish(doc(("e", "trying")))
    net.subscribe(call_id="two")
    assert version(next(n for n in net.notifies if n.call_id == "two")) == 0


def test_first_version_option() -> None:
    net = Net(first_version=1)
    net.subscribe()
    assert version(net.notifies[-1]) == 1


def test_refresh_gets_200_and_full_notify(net: Net) -> None:
    net.publish(doc(("d", "early")))
    r = net.subscribe(expires=600)
    refresh = net.subscribe(expires=7200, cseq=2, **net.dialog_of(r))
    assert refresh.status == 200 and int(refresh.header("Expires") or 0) <= 7200
    n = net.notifies[-1]
    assert info(n).state == "full" and ids(n) == ["d"]


def test_unsubscribe_sends_terminated_with_body_then_nothing(net: Net) -> None:
    net.publish(doc(("d", "early")))
    r = net.subscribe(expires=600)
    bye = net.subscribe(expires=0, cseq=2, **net.dialog_of(r))
    assert bye.status == 200 and bye.header("Expires") == "0"
    n = net.notifies[-1]
    assert sub_state(n) == "terminated;reason=timeout" and ids(n) == ["d"]
    count = len(net.notifies)
    net.publish(doc(("e", "early")))
    assert len(net.notifies) == count
    assert net.core.subscription_count() == 0


def test_fetch_sends_exactly_one_terminated_notify(net: Net) -> None:
    net.publish(doc(("d1", "early"), ("d2", "confirmed")))
    r = net.subscribe(expires=0)
    assert r.status == 200 and r.header("Expires") == "0"
    assert len(net.notifies) == 1
    n = net.notifies[0]
    assert sub_state(n) == "terminated;reason=timeout" and sorted(ids(n)) == ["d1", "d2"]
    net.publish(doc(("e", "early")))
    net.advance(40)
    assert len(net.notifies) == 1


def test_subscription_expiry_sends_terminated(net: Net) -> None:
    net.subscribe(expires=3)
    net.advance(1.2)
    assert net.core.subscription_count() == 1
    net.advance(2)
    assert sub_state(net.notifies[-1]) == "terminated;reason=timeout"
    assert net.core.subscription_count() == 0


def test_subscription_state_expires_counts_down(net: Net) -> None:
    etag = net.publish(doc(("d", "early"))).header("SIP-ETag")
    net.subscribe(expires=100)
    net.advance(30)
    net.publish(doc(("d", "confirmed")), etag=etag)
    assert sub_state(net.notifies[-1]) == "active;expires=70"


def test_every_subscription_is_notified_on_change(net: Net) -> None:
    net.subscribe(call_id="w1")
    net.subscribe(call_id="w2")
    net.publish(doc(("d", "early")))
    assert sorted(n.call_id for n in net.notifies[-2:]) == ["w1", "w2"]  # type: ignore[type-var]


@pytest.mark.parametrize("status", sorted({404, 405, 410, 416, 480, 481, 485, 489, 501, 604}))
def test_notify_error_removes_the_subscription(status: int) -> None:
    net = Net()
    net.auto_answer = status
    net.subscribe()
    assert net.core.subscription_count() == 0


def test_notify_500_keeps_the_subscription(net: Net) -> None:
    net.auto_answer = 500
    net.subscribe()
    assert net.core.subscription_count() == 1


def test_notify_is_retransmitted_then_timer_f_removes_the_subscription(net: Net) -> None:
    net.auto_answer = None
    net.subscribe()
    net.advance(40)
    sent = [n for n in net.notifies]
    assert len(sent) >= 7  # 0, .5, 1.5, 3.5, 7.5, 11.5, 15.5, ... within 32 s
    assert len({n.branch for n in sent}) == 1
    assert net.core.subscription_count() == 0
    assert any(r.status == "timeout" for r in net.core.pop_log())


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_stream_transports_name_themselves_and_never_retransmit(transport: str) -> None:
    """Over TCP and TLS the NOTIFY's Via and Contact name the transport, and it goes out once
    (RFC 3261 §17.1.2.2: Timer E is for unreliable transports); Timer F still ends the
    subscription of a watcher that never answers."""
    net = Net(transport=transport, notify_interval=0.0)
    net.auto_answer = None
    net.subscribe()
    (notify,) = net.notifies
    assert (notify.header("Via") or "").startswith(f"SIP/2.0/{transport.upper()} ")
    assert (notify.header("Contact") or "").endswith(f";transport={transport}>")
    net.answer(notify, 100)  # a provisional answer must not restart retransmission either
    net.advance(31)
    assert len(net.notifies) == 1 and net.core.subscription_count() == 1
    net.advance(2)
    assert len(net.notifies) == 1 and net.core.subscription_count() == 0
    assert any(r.status == "timeout" for r in net.core.pop_log())


def test_provisional_answer_slows_retransmission(net: Net) -> None:
    net.auto_answer = None
    net.subscribe()
    net.answer(net.notifies[-1], 100)
    net.advance(3.9)
    assert len(net.notifies) == 1
    net.advance(0.2)
    assert len(net.notifies) == 2


def test_retransmitted_request_is_answered_from_cache(net: Net) -> None:
    req = bytes(
        net.request(
            "SUBSCRIBE",
            headers=[("Event", "dialog"), ("Contact", "<sip:w@127.0.0.1:5072>")],
            branch="z9hG4bKsame",
        )
    )
    first = net.feed(req, WATCHER)
    again = net.feed(req, WATCHER)
    assert len(first) == 2 and len(again) == 1
    assert again[0][0] == first[0][0]
    assert net.core.subscription_count() == 1
    pub = bytes(
        net.request(
            "PUBLISH",
            headers=[("Event", "dialog"), ("Content-Type", di.CONTENT_TYPE)],
            body=doc(("d", "early")),
            branch="z9hG4bKpub",
        )
    )
    a = net.feed(pub)
    b = net.feed(pub)
    assert b[0][0] == a[0][0]
    assert len(net.core.publications(PRES)) == 1


@pytest.mark.parametrize(
    ("form", "check"),
    [
        ("empty-document", lambda n: info(n).dialogs == () and info(n).state == "full"),
        ("no-body", lambda n: n.body == b"" and n.header("Content-Type") is None),
        ("dummy-dialog", lambda n: ids(n) == ["615293b33c62dec073e05d9421e9f48b"]),
    ],
)
def test_empty_forms(form: str, check) -> None:  # type: ignore[no-untyped-def]
    net = Net(empty_form=form)
    net.subscribe()
    assert check(net.notifies[-1])


def test_partial_on_publish_carries_only_the_new_body() -> None:
    net = Net(partial_on_publish=True)
    net.publish(doc(("a", "early")))
    net.subscribe()
    net.publish(doc(("b", "confirmed")))
    n = net.notifies[-1]
    assert info(n).state == "partial" and ids(n) == ["b"]


def test_extension_elements_and_escaping_survive(net: Net) -> None:
    ext = f'<sa:appearance xmlns:sa="{di.SA_NS}">1</sa:appearance>'
    body = (
        f'<dialog-info xmlns="{di.NS}" version="0" state="full" entity="sip:a@h">'
        f'<dialog id="d" call-id="a&quot;b&apos;c"><state>early</state>'
        f'<local><identity display="Jürgen">sip:j@h</identity></local>{ext}</dialog>'
        f"</dialog-info>"
    ).encode()
    assert net.publish(body).status == 200
    net.subscribe()
    d = info(net.notifies[-1]).dialogs[0]
    assert d.call_id == "a\"b'c"
    assert d.local is not None and d.local.display == "Jürgen"
    assert d.extensions == (f"{{{di.SA_NS}}}appearance",)


def test_entity_is_the_request_uri_without_its_parameters(net: Net) -> None:
    net.subscribe(uri="sip:bob@example.com:5070;transport=udp")
    assert info(net.notifies[-1]).entity == "sip:bob@example.com:5070"


# ---- robustness ---------------------------------------------------------------------------------


def test_garbage_never_raises_and_a_salvageable_request_gets_400(net: Net) -> None:
    rng = random.Random(4)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        net.core.receive_datagram(data, EPA, net.now)
    net.core.receive_datagram(b"x" * 70000, EPA, net.now)
    assert net.core.datagrams_to_send(net.now) == []
    broken = (
        b"PUBLISH sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKq\r\n"
        b"From: <sip:x@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: q\r\nCSeq: 1 PUBLISH\r\n"
        b"no colon here\r\n\r\n"
    )
    out = net.feed(broken)
    assert len(out) == 1 and net.responses[-1].status == 400
    missing = b"PUBLISH sip:a@h SIP/2.0\r\nFrom: <sip:x@h>;tag=1\r\nCall-ID: q\r\n\r\n"
    assert net.feed(missing) == []
    bad_cseq = bytes(net.request("PUBLISH", headers=[("Event", "dialog")])).replace(
        b"CSeq: 1 PUBLISH", b"CSeq: one PUBLISH"
    )
    net.feed(bad_cseq)
    assert net.responses[-1].status == 400
    assert net.publish(doc(("d", "early"))).status == 200


def test_mutated_requests_never_raise(net: Net) -> None:
    rng = random.Random(7)
    base = bytes(
        net.request(
            "PUBLISH",
            headers=[("Event", "dialog"), ("Content-Type", di.CONTENT_TYPE)],
            body=doc(("d", "early")),
        )
    )
    for _ in range(500):
        data = bytearray(base)
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        net.core.receive_datagram(bytes(data), EPA, net.now)
        for out, _addr in net.core.datagrams_to_send(net.now):
            sipmsg.parse(out)  # whatever goes out is a SIP message


def test_config_rejects_bad_values() -> None:
    with pytest.raises(UsageError):
        ServerConfig(flavour="nonsense")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        hooks_for(["no-such-fault"])
    with pytest.raises(UsageError):
        ServerConfig(publish_expires_min=10, publish_expires_max=5)


# ---- faults ------------------------------------------------------------------------------------


def test_fault_registry_is_complete_and_names_real_requirements() -> None:
    from conformance.oracle import requirements

    assert len(FAULTS) >= 20
    for fault in FAULTS.values():
        assert fault.description and fault.requirements
        for rid in fault.requirements:
            requirements.get(rid)
    with pytest.raises(TypeError):
        FAULTS["x"] = FAULTS["no-aggregation"]  # type: ignore[index]
    with pytest.raises(UsageError):
        check_names(["nope"])


def faulted(name: str, **config: object) -> Net:
    return Net(faults=frozenset({name}), **config)


def _two_pubs_then_subscribe(net: Net) -> Request:
    net.publish(doc(("a", "early")))
    net.advance(0.1)
    net.publish(doc(("b", "confirmed")))
    net.subscribe()
    return net.notifies[-1]


def test_fault_no_aggregation() -> None:
    assert ids(_two_pubs_then_subscribe(faulted("no-aggregation"))) == ["b"]


def test_fault_priority_wrong() -> None:
    assert ids(_two_pubs_then_subscribe(faulted("priority-wrong", single_dialog=True))) == ["b"]
    assert ids(_two_pubs_then_subscribe(Net(single_dialog=True))) == ["a"]


def test_fault_tie_wrong() -> None:
    def run(net: Net) -> list[str | None]:
        net.publish(doc(("a", "early")))
        net.advance(0.1)
        net.publish(doc(("b", "early")))
        net.subscribe()
        return ids(net.notifies[-1])

    assert run(Net(single_dialog=True)) == ["a"]
    assert run(faulted("tie-wrong", single_dialog=True)) == ["b"]


def test_fault_single_dialog_one_publication() -> None:
    net = faulted("single-dialog-one-publication", single_dialog=True)
    net.publish(doc(("c", "confirmed"), ("e", "early")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["e"]


def test_fault_dialog_duplicated() -> None:
    assert ids(_two_pubs_then_subscribe(faulted("dialog-duplicated"))) == ["a", "b", "a"]


def test_fault_extensions_dropped() -> None:
    net = faulted("extensions-dropped")
    net.publish(doc(("d", "early"), extra=f'<sa:x xmlns:sa="{di.SA_NS}"/>'))
    net.subscribe()
    assert info(net.notifies[-1]).dialogs[0].extensions == ()


ROOT_EXTENSION = '<x:note xmlns:x="urn:example:x">n</x:note>'


def _with_root_extension(*dialogs: tuple[str, str]) -> bytes:
    return doc(*dialogs).replace(b"</dialog-info>", ROOT_EXTENSION.encode() + b"</dialog-info>")


def test_root_extensions_follow_every_dialog_across_publications() -> None:
    """A34: two publications each with a root extension aggregate as dialog* then ##other."""
    net = Net()
    net.publish(_with_root_extension(("a", "early")))
    net.publish(_with_root_extension(("b", "confirmed")))
    net.subscribe()
    body = net.notifies[-1].body
    assert ids(net.notifies[-1]) == ["a", "b"]
    assert [f for f in schema.check(body) if f.requirement == "A34" and not f.passed] == []


def test_fault_root_extensions_first() -> None:
    net = faulted("root-extensions-first")
    net.publish(_with_root_extension(("a", "early")))
    net.subscribe()
    failed = [f for f in schema.check(net.notifies[-1].body) if not f.passed]
    assert [f.requirement for f in failed] == ["A34"]


def test_fault_expired_publication_kept() -> None:
    net = faulted("expired-publication-kept")
    net.publish(doc(("d", "early")), expires=1)
    net.advance(5)
    net.subscribe()
    assert ids(net.notifies[-1]) == ["d"]


def test_fault_remove_ignored() -> None:
    net = faulted("remove-ignored")
    etag = net.publish(doc(("d", "early"))).header("SIP-ETag")
    assert net.publish(None, etag=etag, expires=0).status == 200
    net.subscribe()
    assert ids(net.notifies[-1]) == ["d"]


def test_fault_unknown_etag_accepted() -> None:
    assert faulted("unknown-etag-accepted").publish(None, etag="nonexistent123").status == 200


def test_fault_etag_not_renewed() -> None:
    net = faulted("etag-not-renewed")
    etag = net.publish(doc(("d", "early"))).header("SIP-ETag")
    assert net.publish(None, etag=etag).header("SIP-ETag") == etag


def test_fault_content_type_ignored() -> None:
    assert (
        faulted("content-type-ignored").publish(doc(("d", "e")), ctype="text/plain").status == 200
    )


def test_fault_unknown_event_accepted() -> None:
    assert faulted("unknown-event-accepted").publish(doc(("d", "e")), event="x-foo").status == 200


def test_fault_record_route_echoed() -> None:
    net = faulted("record-route-echoed")
    r = net.publish(doc(("d", "early")), extra=[("Record-Route", "<sip:127.0.0.9;lr>")])
    assert r.header_all("Record-Route")


def _versions(net: Net, notifications: int = 4) -> list[int]:
    etag = net.publish(doc(("d", "trying"))).header("SIP-ETag")
    net.subscribe(call_id="v")
    for i in range(notifications - 1):
        etag = net.publish(doc(("d", "early" if i % 2 else "confirmed")), etag=etag).header(
            "SIP-ETag"
        )
    return [version(n) for n in net.notifies if n.call_id == "v"]


def test_fault_version_repeats() -> None:
    assert _versions(faulted("version-repeats")) == [0, 0, 1, 2]


def test_fault_version_down() -> None:
    assert _versions(faulted("version-down")) == [0, 1, 0, 3]


def test_fault_version_skips() -> None:
    assert _versions(faulted("version-skips")) == [0, 2, 4, 6]


def test_fault_version_starts_at_5() -> None:
    assert _versions(faulted("version-starts-at-5")) == [5, 6, 7, 8]


def test_fault_version_shared() -> None:
    net = faulted("version-shared")
    net.subscribe(call_id="one")
    net.publish(doc(("d", "early")))
    net.subscribe(call_id="two")
    assert version(next(n for n in net.notifies if n.call_id == "two")) == 2


def test_fault_version_placeholder() -> None:
    net = faulted("version-placeholder")
    net.subscribe()
    assert info(net.notifies[-1]).version == "00000000000"


def test_fault_wrong_namespace() -> None:
    net = faulted("wrong-namespace")
    net.subscribe()
    assert info(net.notifies[-1]).root_tag != di.ROOT_TAG


def test_fault_entity_missing() -> None:
    net = faulted("entity-missing")
    net.subscribe()
    assert info(net.notifies[-1]).entity is None


def test_fault_initial_notify_partial() -> None:
    net = faulted("initial-notify-partial")
    net.subscribe()
    assert info(net.notifies[-1]).state == "partial"


@pytest.mark.parametrize("published", [False, True])
def test_fault_body_not_well_formed(published: bool) -> None:
    net = faulted("body-not-well-formed")
    if published:
        net.publish(doc(("d", "early")))
    net.subscribe()
    with pytest.raises(Exception, match="not well-formed"):
        di.parse(net.notifies[-1].body)


def test_fault_no_immediate_notify() -> None:
    net = faulted("no-immediate-notify")
    assert net.subscribe().status == 200 and net.notifies == []


def test_fault_subscription_state_no_expires() -> None:
    net = faulted("subscription-state-no-expires")
    net.subscribe()
    assert sub_state(net.notifies[-1]) == "active"


def test_fault_subscribe_202() -> None:
    assert faulted("subscribe-202").subscribe().status == 202


def test_fault_expires_lengthened() -> None:
    assert int(faulted("expires-lengthened").subscribe(expires=60).header("Expires") or 0) > 60


def test_fault_cseq_gap() -> None:
    net = faulted("cseq-gap")
    net.subscribe()
    net.publish(doc(("d", "early")))
    a, b = (n.cseq[0] for n in net.notifies)  # type: ignore[index]
    assert b - a == 2


def test_fault_no_notify_on_change() -> None:
    net = faulted("no-notify-on-change")
    net.subscribe()
    net.publish(doc(("d", "early")))
    assert len(net.notifies) == 1


def test_fault_unsubscribe_stays_active() -> None:
    net = faulted("unsubscribe-stays-active")
    r = net.subscribe()
    net.subscribe(expires=0, cseq=2, **net.dialog_of(r))
    assert sub_state(net.notifies[-1]).startswith("active")


def test_fault_subscription_kept_after_481() -> None:
    net = faulted("subscription-kept-after-481")
    net.auto_answer = 481
    net.subscribe()
    assert net.core.subscription_count() == 1


def test_fault_subscription_kept_after_timeout() -> None:
    net = faulted("subscription-kept-after-timeout")
    net.auto_answer = None
    net.subscribe()
    net.advance(40)  # past Timer F: the initial NOTIFY was never answered
    assert net.core.subscription_count() == 1


def test_fault_subscription_expiry_silent() -> None:
    net = faulted("subscription-expiry-silent")
    net.subscribe(expires=3)
    before = len(net.notifies)
    net.advance(3.5)
    assert net.core.subscription_count() == 0
    assert len(net.notifies) == before  # dropped without the terminated NOTIFY


def test_fault_accept_ignored() -> None:
    assert faulted("accept-ignored").subscribe(accept="application/pidf+xml").status == 200


def test_fault_crash_after_two_dialogs() -> None:
    net = faulted("crash-after-two-dialogs")
    net.subscribe()
    net.publish(doc(("a", "early")))
    assert net.core.crashed is False
    net.publish(doc(("b", "early")))
    assert net.core.crashed is True
    count = len(net.responses)
    net.feed(bytes(net.request("OPTIONS")))  # OPTIONS stays open (probes use it)
    assert len(net.responses) == count and net.core.get_timer() is None


# ---- faults for the binding ids no earlier fault broke (issue 12) ----------------------------

PARTICIPANTS = (
    '<local><identity>sip:a@h</identity><target uri="sip:a@h">'
    '<param pname="d" pval="A &amp; B"/></target></local>'
)


def _one_dialog(name: str, *dialogs: tuple[str, str], extra: str = "") -> Request:
    net = faulted(name)
    net.publish(doc(*dialogs, extra=extra))
    net.subscribe()
    return net.notifies[-1]


def test_fault_entity_names_the_server() -> None:
    assert info(_one_dialog("entity-names-the-server", ("d", "early"))).entity != PRES


def test_fault_document_state_complete() -> None:
    assert info(_one_dialog("document-state-complete", ("d", "early"))).state == "complete"


def test_fault_dialog_id_dropped() -> None:
    assert ids(_one_dialog("dialog-id-dropped", ("d", "early"))) == [None]


def test_fault_state_not_first() -> None:
    notify = _one_dialog("state-not-first", ("d", "early"), extra=PARTICIPANTS)
    dialog = di.parse_tree(notify.body)[0]
    assert dialog[-1].tag == f"{{{di.NS}}}state"


def test_fault_state_upper_case() -> None:
    assert info(_one_dialog("state-upper-case", ("d", "early"))).dialogs[0].state == "EARLY"


def test_fault_event_unknown() -> None:
    net = faulted("event-unknown")
    net.publish(doc(("d", "terminated")).replace(b"<state>", b'<state event="rejected">'))
    net.subscribe()
    assert info(net.notifies[-1]).dialogs[0].event == "hangup"


def test_fault_direction_receiver() -> None:
    net = faulted("direction-receiver")
    net.publish(
        doc(("d", "early")).replace(b'<dialog id="d"', b'<dialog id="d" direction="recipient"')
    )
    net.subscribe()
    assert info(net.notifies[-1]).dialogs[0].direction == "receiver"


def test_fault_pval_escaped_twice() -> None:
    notify = _one_dialog("pval-escaped-twice", ("d", "early"), extra=PARTICIPANTS)
    local = info(notify).dialogs[0].local
    assert local is not None and local.params == (("d", "A &amp; B"),)


def test_fault_target_uri_dropped() -> None:
    notify = _one_dialog("target-uri-dropped", ("d", "early"), extra=PARTICIPANTS)
    local = info(notify).dialogs[0].local
    assert local is not None and local.target is None and local.params == (("d", "A & B"),)


def test_fault_idle_body_busy() -> None:
    net = faulted("idle-body-busy")
    net.subscribe()
    assert [d.state for d in info(net.notifies[-1]).dialogs] == ["confirmed"]
    net.publish(doc(("d", "early")))
    assert ids(net.notifies[-1]) == ["d"]


def test_fault_notify_type_generic_xml() -> None:
    notify = _one_dialog("notify-type-generic-xml", ("d", "early"))
    assert notify.header("Content-Type") == "application/xml"


def test_fault_notify_charset_latin1() -> None:
    notify = _one_dialog("notify-charset-latin1", ("d", "early"))
    assert param_of(notify.header("Content-Type"), "charset") == "ISO-8859-1"


def test_fault_notify_from_tag_changed() -> None:
    net = faulted("notify-from-tag-changed")
    r = net.subscribe()
    assert net.notifies[-1].from_tag != r.to_tag


def test_fault_notify_event_wrong() -> None:
    assert _one_dialog("notify-event-wrong", ("d", "early")).header("Event") == "presence"


def test_fault_subscription_state_unknown() -> None:
    assert sub_state(_one_dialog("subscription-state-unknown")).startswith("open;expires=")


def test_fault_notify_contact_two_uris() -> None:
    assert "," in (_one_dialog("notify-contact-two-uris").header("Contact") or "")


def test_fault_notify_content_type_missing() -> None:
    notify = _one_dialog("notify-content-type-missing", ("d", "early"))
    assert notify.body and notify.header("Content-Type") is None


def test_fault_notify_type_ignores_accept() -> None:
    net = faulted("notify-type-ignores-accept")
    net.subscribe()
    assert net.notifies[-1].header("Content-Type") == di.CONTENT_TYPE
    net.subscribe(accept=di.CONTENT_TYPE, from_tag="w2")
    assert net.notifies[-1].header("Content-Type") == "application/pidf+xml"


def test_fault_subscribe_423_no_min_expires() -> None:
    r = faulted("subscribe-423-no-min-expires").subscribe(expires=1)
    assert r.status == 423 and r.header("Min-Expires") is None


def test_fault_refresh_lengthened() -> None:
    net = faulted("refresh-lengthened")
    r = net.subscribe(expires=300)
    assert r.header("Expires") == "300"
    again = net.subscribe(expires=300, cseq=2, **net.dialog_of(r))
    assert again.header("Expires") == "360"


def test_fault_no_notify_on_refresh() -> None:
    net = faulted("no-notify-on-refresh")
    r = net.subscribe()
    net.subscribe(cseq=2, **net.dialog_of(r))
    assert len(net.notifies) == 1


def test_fault_fetch_no_notify() -> None:
    net = faulted("fetch-no-notify")
    assert net.subscribe(expires=0).status == 200 and net.notifies == []


def test_fault_initial_publish_no_etag() -> None:
    net = faulted("initial-publish-no-etag")
    r = net.publish(doc(("d", "early")))
    assert r.status == 200 and r.header("SIP-ETag") is None


def test_fault_publish_etag_twice() -> None:
    r = faulted("publish-etag-twice").publish(doc(("d", "early")))
    etags = r.header_all("SIP-ETag")
    assert len(etags) == 2 and etags[0] == etags[1]


def test_fault_publish_expires_grace() -> None:
    assert (
        faulted("publish-expires-grace").publish(doc(("d", "e")), expires=120).header("Expires")
        == "132"
    )


def test_fault_publish_minimum_silent() -> None:
    net = faulted("publish-minimum-silent")
    assert net.publish(doc(("d", "e")), expires=1).header("Expires") == "2"
    assert net.publish(doc(("f", "e")), expires=120).header("Expires") == "120"


def test_fault_415_without_accept() -> None:
    r = faulted("415-without-accept").publish(doc(("d", "e")), ctype="text/plain")
    assert r.status == 415 and r.header("Accept") is None


def test_fault_multiple_etags_accepted() -> None:
    net = faulted("multiple-etags-accepted")
    etag = net.publish(doc(("d", "early"))).header("SIP-ETag")
    r = net.publish(None, etag=f"{etag}, other")
    assert r.status == 200


def test_fault_refresh_not_extended() -> None:
    net = faulted("refresh-not-extended")
    etag = net.publish(doc(("d", "early")), expires=10).header("SIP-ETag")
    net.advance(5)
    assert net.publish(None, etag=etag, expires=60).status == 200
    net.advance(6)
    assert net.core.publications(PRES) == []


def test_fault_modify_appends() -> None:
    net = faulted("modify-appends")
    etag = net.publish(doc(("a", "early"))).header("SIP-ETag")
    net.subscribe()
    net.publish(doc(("b", "confirmed")), etag=etag)
    assert ids(net.notifies[-1]) == ["a", "b"]


def test_fault_quick_modify_lost() -> None:
    net = faulted("quick-modify-lost")
    etag = net.publish(doc(("a", "early"))).header("SIP-ETag")
    net.subscribe()
    etag = net.publish(doc(("b", "confirmed")), etag=etag).header("SIP-ETag")
    assert ids(net.notifies[-1]) == ["a"]
    net.advance(1)
    net.publish(doc(("c", "confirmed")), etag=etag)
    assert ids(net.notifies[-1]) == ["c"]


def test_every_fault_has_a_unit_test() -> None:
    names = {n.removeprefix("test_fault_").replace("_", "-") for n in globals()}
    calls = (Path(__file__).parent / "test_server_calls.py").read_text(encoding="utf-8")
    names |= {n.replace("_", "-") for n in re.findall(r"def test_fault_(\w+)", calls)}
    missing = [f for f in FAULTS if f not in names]
    assert missing == []


def test_strict_tie_break_last_option() -> None:
    net = Net(single_dialog=True, tie_break="last")
    net.publish(doc(("a", "early")))
    net.advance(0.1)
    net.publish(doc(("b", "early")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["b"]


# ---- A30: at most one state-change NOTIFY per second per subscription -----------------------


def test_strict_throttle_coalesces_a_burst_into_one_notify_of_the_latest_state() -> None:
    net = Net(notify_interval=None)
    a = net.publish(doc(("a1", "early"))).header("SIP-ETag")
    net.subscribe()
    assert len(net.notifies) == 1  # the initial NOTIFY is never held
    for k in range(2, 6):
        a = net.publish(doc((f"a{k}", "confirmed")), etag=a).header("SIP-ETag")
    assert len(net.notifies) == 1  # the burst waits out the second after the initial NOTIFY
    assert net.core.get_timer() == pytest.approx(net.now + 1.0)
    net.advance(1.0)
    assert len(net.notifies) == 2
    assert ids(net.notifies[-1]) == ["a5"]  # intermediate states skipped (RFC 6665 §4.2.2)
    assert version(net.notifies[-1]) == version(net.notifies[0]) + 1
    net.advance(5.0)
    assert len(net.notifies) == 2  # nothing left pending


def test_strict_throttle_exempts_refresh_and_terminated_notifies() -> None:
    net = Net(notify_interval=None)
    a = net.publish(doc(("a1", "early"))).header("SIP-ETag")
    sub = net.subscribe()
    net.publish(doc(("a2", "confirmed")), etag=a)
    assert len(net.notifies) == 1
    net.subscribe(expires=600, cseq=2, **net.dialog_of(sub))
    assert len(net.notifies) == 2 and ids(net.notifies[-1]) == ["a2"]
    net.subscribe(expires=0, cseq=3, **net.dialog_of(sub))
    assert len(net.notifies) == 3 and sub_state(net.notifies[-1]).startswith("terminated")
    net.advance(2.0)
    assert len(net.notifies) == 3  # the held change went out with the refresh NOTIFY


def test_module_flavours_do_not_throttle() -> None:
    net = Net(notify_interval=None, flavour="kamailio")
    a = net.publish(doc(("a1", "early"))).header("SIP-ETag")
    net.subscribe()
    net.publish(doc(("a2", "confirmed")), etag=a)
    assert len(net.notifies) == 2


def test_fault_notify_unthrottled() -> None:
    net = Net(notify_interval=None, faults=frozenset({"notify-unthrottled"}))
    a = net.publish(doc(("a1", "early"))).header("SIP-ETag")
    net.subscribe()
    for k in range(2, 5):
        a = net.publish(doc((f"a{k}", "confirmed")), etag=a).header("SIP-ETag")
    assert len(net.notifies) == 4


def test_fault_terminated_dialogs_dropped() -> None:
    net = faulted("terminated-dialogs-dropped")
    net.publish(doc(("a", "terminated"), ("b", "confirmed")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["b"]


def test_fault_entity_user_case() -> None:
    assert info(_one_dialog("entity-user-case", ("d", "early"))).entity == "sip:ALICE@example.com"


def test_fault_refresh_notify_empty() -> None:
    net = faulted("refresh-notify-empty")
    net.publish(doc(("d", "early")))
    sub = net.subscribe()
    assert ids(net.notifies[-1]) == ["d"] and info(net.notifies[-1]).state == "full"
    net.subscribe(expires=600, cseq=2, **net.dialog_of(sub))
    assert ids(net.notifies[-1]) == [] and info(net.notifies[-1]).state == "partial"


def test_kamailio_refresh_moves_the_publication_to_the_end() -> None:
    """Kamailio rewrites received_time on a refresh: A early, B early, refresh A, and the
    single-dialog tie (last of the class wins) goes to A (oracle: aggregator.refreshed)."""
    net = Net(flavour="kamailio", single_dialog=True)
    a = net.publish(doc(("a", "early"))).header("SIP-ETag")
    net.advance(0.1)
    net.publish(doc(("b", "early")))
    net.subscribe()
    assert ids(net.notifies[-1]) == ["b"]
    net.advance(0.1)
    net.publish(etag=a)
    assert ids(net.notifies[-1]) == ["a"]
    strict = Net(single_dialog=True, tie_break="last")
    a = strict.publish(doc(("a", "early"))).header("SIP-ETag")
    strict.advance(0.1)
    strict.publish(doc(("b", "early")))
    strict.advance(0.1)
    strict.publish(etag=a)
    strict.subscribe()
    assert ids(strict.notifies[-1]) == ["b"]  # the strict flavour keeps the refreshed one's place


def test_fault_modify_of_terminated_skipped() -> None:
    net = faulted("modify-of-terminated-skipped")
    old = net.publish(doc(("a", "terminated"))).header("SIP-ETag")
    net.subscribe()
    new = net.publish(doc(("b", "early")), etag=old)
    assert new.status == 200 and new.header("SIP-ETag") != old
    assert ids(net.notifies[-1]) == ["a"]
    assert net.publish(doc(("c", "early")), etag=new.header("SIP-ETag")).status == 412
    assert net.publish(etag=old).status == 200  # the old entity-tag still names it


def test_fault_refresh_of_terminated_skipped() -> None:
    net = faulted("refresh-of-terminated-skipped", notify_interval=None)
    old = net.publish(doc(("a", "terminated")), expires=60).header("SIP-ETag")
    live = net.publish(doc(("b", "early")), expires=60).header("SIP-ETag")
    new = net.publish(etag=old, expires=5)
    assert new.status == 200 and new.header("SIP-ETag") != old and new.header("Expires") == "5"
    assert net.publish(etag=new.header("SIP-ETag")).status == 412
    net.advance(10)  # past the Expires the 200 granted: the old lifetime still holds
    assert len(net.core.publications(PRES)) == 2
    assert net.publish(etag=old).status == 200  # the old entity-tag still names it
    assert net.publish(etag=live).status == 200  # a publication with a live dialog refreshes


def test_fault_stale_removal_notify() -> None:
    net = faulted("stale-removal-notify", notify_interval=None)
    a = net.publish(doc(("a", "early"))).header("SIP-ETag")
    net.subscribe()
    assert net.publish(etag=a, expires=0).status == 200
    assert ids(net.notifies[-1]) == ["a"]
    net.advance(3)
    assert ids(net.notifies[-1]) == ["a"] and net.core.publications(PRES) == []


def test_fault_stale_expiry_notify() -> None:
    net = faulted("stale-expiry-notify", notify_interval=None)
    net.publish(doc(("a", "early")), expires=2)
    net.subscribe()
    net.advance(3)
    assert len(net.notifies) == 2 and ids(net.notifies[-1]) == ["a"]
    assert net.core.publications(PRES) == []


def test_fault_partial_notify_per_publication() -> None:
    net = faulted("partial-notify-per-publication", notify_interval=None)
    net.publish(doc(("a", "early")))
    net.subscribe()
    assert info(net.notifies[-1]).state == "full"
    net.publish(doc(("b", "confirmed")))
    assert info(net.notifies[-1]).state == "partial" and ids(net.notifies[-1]) == ["b"]
    assert version(net.notifies[-1]) == version(net.notifies[-2]) + 1


def test_fault_out_of_order_modify() -> None:
    net = faulted("out-of-order-modify")
    etag = net.publish(doc(("a", "early"))).header("SIP-ETag")
    net.subscribe()
    etag = net.publish(doc(("b", "confirmed")), etag=etag).header("SIP-ETag")
    assert ids(net.notifies[-1]) == ["a"]
    net.advance(0.5)
    net.publish(doc(("c", "confirmed")), etag=etag)
    assert ids(net.notifies[-1]) == ["b"]


def test_fault_notify_after_unsubscribe_late() -> None:
    net = faulted("notify-after-unsubscribe-late")
    a = net.publish(doc(("a", "early"))).header("SIP-ETag")
    sub = net.subscribe()
    net.subscribe(expires=0, cseq=2, **net.dialog_of(sub))
    assert len(net.notifies) == 2
    net.publish(doc(("b", "confirmed")), etag=a)
    net.advance(2.4)
    assert len(net.notifies) == 2
    net.advance(0.2)
    assert len(net.notifies) == 3 and ids(net.notifies[-1]) == ["b"]
    net.publish(doc(("c", "confirmed")))
    net.advance(5)
    assert len(net.notifies) == 3  # one late NOTIFY only


def test_strict_entity_keeps_the_request_uri_scheme_and_port() -> None:
    net = Net()
    uri = "sips:alice@example.com:5061;transport=tls"
    net.publish(doc(("d", "early")), uri=uri)
    net.subscribe(uri=uri)
    assert info(net.notifies[-1]).entity == "sips:alice@example.com:5061"
    kam = Net(flavour="kamailio")
    kam.publish(doc(("d", "early")), uri=uri)
    kam.subscribe(uri=uri)
    assert info(kam.notifies[-1]).entity == "sip:alice@example.com"


def test_fault_entity_rebuilt() -> None:
    """The suite's presentities carry no port, so no suite case sees this fault; the A12 check
    itself kills it on a presentity with one (documented in the mutation step)."""
    uri = "sip:alice@example.com:5080"
    net = faulted("entity-rebuilt")
    net.publish(doc(("d", "early")), uri=uri)
    net.subscribe(uri=uri)
    entity = info(net.notifies[-1]).entity
    assert entity == "sip:alice@example.com"
    (finding,) = checks.check_entity(entity, uri)
    assert finding.requirement == "A12" and not finding.passed
    clean = Net()
    clean.publish(doc(("d", "early")), uri=uri)
    clean.subscribe(uri=uri)
    assert all(f.passed for f in checks.check_entity(info(clean.notifies[-1]).entity, uri))


# ---- digest authentication (A31, server/auth.py) ------------------------------------------------

AUTH = {"auth_realm": "example.com", "auth_users": (("alice", "pw"),), "nonce_ttl": 30.0}


def _authed(net: Net, method: str, password: str = "pw", **kw: object) -> Response:
    """Send ``method`` without credentials, answer the 401 with ``password``, return the last
    response (the kit's own client, sip/digest.py, computes the answer)."""
    from conformance.sip.digest import DigestClient

    send = net.publish if method == "PUBLISH" else net.subscribe
    first = send(**kw)  # type: ignore[operator]
    assert first.status == 401
    client = DigestClient("alice", password)
    client.take(401, first.header_all("WWW-Authenticate"))
    line = client.header_line(method, PRES)
    assert line is not None
    name, _, value = line.partition(": ")
    if method == "PUBLISH":
        return net.publish(**kw, extra=[(name, value)])  # type: ignore[arg-type]
    req = net.request(
        "SUBSCRIBE",
        headers=[("Contact", "<sip:w@127.0.0.1:5072>"), ("Event", "dialog"), (name, value)],
    )
    net.feed(bytes(req), WATCHER)
    return net.responses[-1]


def test_auth_challenges_then_accepts_the_right_answer() -> None:
    net = Net(**AUTH)  # type: ignore[arg-type]
    body = doc(("a", "early"))
    challenge = net.publish(body)
    assert challenge.status == 401 and net.core.publications(PRES) == []
    value = challenge.header("WWW-Authenticate") or ""
    assert 'realm="example.com"' in value and 'qop="auth"' in value and "stale" not in value
    assert _authed(net, "PUBLISH", body=body).status == 200
    assert _authed(net, "SUBSCRIBE").status == 200
    net.feed(bytes(net.request("OPTIONS")))  # OPTIONS stays open (probes use it)
    assert net.responses[-1].status == 200


def test_auth_refuses_a_wrong_password_and_an_unknown_nonce() -> None:
    net = Net(**AUTH)  # type: ignore[arg-type]
    assert _authed(net, "PUBLISH", password="nope", body=doc(("a", "early"))).status == 403
    forged = (
        'Digest username="alice", realm="example.com", nonce="1.x", '
        'uri="sip:alice@example.com", response="00"'
    )
    assert net.publish(doc(("a", "early")), extra=[("Authorization", forged)]).status == 401
    assert net.core.publications(PRES) == []


def test_auth_stale_nonce_gets_stale_true() -> None:
    from conformance.sip.digest import DigestClient

    net = Net(**AUTH)  # type: ignore[arg-type]
    client = DigestClient("alice", "pw")
    client.take(401, net.publish(doc(("a", "early"))).header_all("WWW-Authenticate"))
    net.advance(31)
    name, _, value = (client.header_line("PUBLISH", PRES) or "").partition(": ")
    stale = net.publish(doc(("a", "early")), extra=[(name, value)])
    assert stale.status == 401 and "stale=true" in (stale.header("WWW-Authenticate") or "")


def test_auth_digest_uri_must_be_the_request_uri() -> None:
    from conformance.sip.digest import DigestClient

    net = Net(**AUTH)  # type: ignore[arg-type]
    client = DigestClient("alice", "pw")
    client.take(401, net.publish(doc(("a", "early"))).header_all("WWW-Authenticate"))
    name, _, value = (client.header_line("PUBLISH", "sip:127.0.0.1:5060") or "").partition(": ")
    assert net.publish(doc(("a", "early")), extra=[(name, value)]).status == 400


def test_fault_auth_not_required() -> None:
    net = Net(faults=frozenset({"auth-not-required"}), **AUTH)  # type: ignore[arg-type]
    assert net.publish(doc(("a", "early"))).status == 200


def test_fault_auth_wrong_credentials_accepted() -> None:
    net = Net(faults=frozenset({"auth-wrong-credentials-accepted"}), **AUTH)  # type: ignore[arg-type]
    assert _authed(net, "PUBLISH", password="nope", body=doc(("a", "early"))).status == 200


def test_fault_auth_stale_not_flagged() -> None:
    from conformance.sip.digest import DigestClient

    net = Net(faults=frozenset({"auth-stale-not-flagged"}), **AUTH)  # type: ignore[arg-type]
    client = DigestClient("alice", "pw")
    client.take(401, net.publish(doc(("a", "early"))).header_all("WWW-Authenticate"))
    net.advance(31)
    name, _, value = (client.header_line("PUBLISH", PRES) or "").partition(": ")
    stale = net.publish(doc(("a", "early")), extra=[(name, value)])
    assert stale.status == 401 and "stale" not in (stale.header("WWW-Authenticate") or "")
