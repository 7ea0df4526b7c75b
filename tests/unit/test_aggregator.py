"""The reference aggregator against the behaviour of OpenSIPS 4.0.1 and Kamailio 5.6.3
(BEHAVIOUR.md, REQUIREMENTS.md group D), then its invariants as properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.errors import UsageError
from conformance.oracle import dialoginfo as di
from conformance.oracle.aggregator import (
    DUMMY_DIALOG_ID,
    PRIORITY,
    Aggregate,
    Publication,
    aggregate,
    dummy_dialog,
    entity_for,
    kamailio_replaces,
    live,
    notify_body,
    priority,
    refreshed,
)

NS = di.NS
PRES = "sip:alice@example.com"


def body(*dialogs: tuple[str, str], extra: str = "", state: str = "full") -> bytes:
    """A publication body with ``(id, state)`` dialogs, then raw ``extra`` root children."""
    inner = "".join(f'<dialog id="{i}"><state>{s}</state></dialog>' for i, s in dialogs)
    return (
        f'<dialog-info xmlns="{NS}" version="7" state="{state}" entity="sip:epa@h">'
        f"{inner}{extra}</dialog-info>"
    ).encode()


def pubs(*bodies: bytes, expires: float = 100.0) -> list[Publication]:
    return [
        Publication(body=b, etag=f"e{n}", received=float(n), expires=expires, seq=n)
        for n, b in enumerate(bodies)
    ]


def ids_states(agg: Aggregate) -> list[tuple[str | None, str | None]]:
    return [(d.id, d.state) for d in agg.dialogs]


def tag(item: di.Item) -> str:
    return di.DIALOG_TAG if isinstance(item, di.Dialog) else item.tag


def run(*bodies: bytes, single: bool = False, flavour: str = "opensips") -> Aggregate:
    return aggregate(pubs(*bodies), presentity=PRES, now=0.0, single_dialog=single, flavour=flavour)


# --------------------------------------------------------------------------- default mode


def test_d03_every_dialog_of_every_publication_in_publication_order() -> None:
    agg = run(body(("a", "early"), ("b", "confirmed")), body(("c", "trying")), body())
    assert ids_states(agg) == [("a", "early"), ("b", "confirmed"), ("c", "trying")]
    assert agg.publications == 3
    assert not agg.broken


def test_d03_root_extension_elements_move_in_and_published_root_attributes_are_dropped() -> None:
    ext = '<x:note xmlns:x="urn:example:x">hi</x:note>'
    agg = run(body(("a", "early"), extra=ext, state="partial"))
    assert [type(i).__name__ for i in agg.items] == ["Dialog", "Element"]
    assert agg.items[1].tag == "{urn:example:x}note"
    doc = di.parse(agg.body(5))
    assert (doc.version, doc.state, doc.entity) == ("5", "full", PRES)
    assert doc.items[1].canonical == agg.items[1].canonical


def test_strict_root_extensions_follow_every_dialog() -> None:
    """A34: the modules concatenate (an extension between dialogs, schema-invalid); the strict
    flavour writes dialog* then the extensions, each group in publication order."""
    x, y = '<x:a xmlns:x="urn:example:x"/>', '<x:b xmlns:x="urn:example:x"/>'
    bodies = (body(("a", "early"), extra=x), body(("b", "confirmed"), extra=y))
    kinds = [getattr(i, "id", None) or i.tag for i in run(*bodies).items]
    assert kinds == ["a", "{urn:example:x}a", "b", "{urn:example:x}b"]
    strict = run(*bodies, flavour="strict")
    kinds = [getattr(i, "id", None) or i.tag for i in strict.items]
    assert kinds == ["a", "b", "{urn:example:x}a", "{urn:example:x}b"]


def test_d07_duplicate_ids_are_not_deduplicated() -> None:
    agg = run(body(("1", "early")), body(("1", "confirmed")))
    assert ids_states(agg) == [("1", "early"), ("1", "confirmed")]


def test_d05_expired_publications_add_nothing_and_expiry_is_exclusive() -> None:
    items = [
        Publication(body(("old", "early")), "e0", received=0, expires=10),
        Publication(body(("new", "early")), "e1", received=1, expires=10.5),
    ]
    assert ids_states(aggregate(items, presentity=PRES, now=10)) == [("new", "early")]
    assert aggregate(items, presentity=PRES, now=10.5).items == ()


def test_order_is_received_then_seq_whatever_the_input_order() -> None:
    a = Publication(body(("a", "early")), "a", received=5, expires=99, seq=2)
    b = Publication(body(("b", "early")), "b", received=5, expires=99, seq=1)
    c = Publication(body(("c", "early")), "c", received=1, expires=99, seq=9)
    assert [p.etag for p in live([a, b, c], 0)] == ["c", "b", "a"]
    assert [d.id for d in aggregate([a, b, c], presentity=PRES, now=0).dialogs] == [
        "c",
        "b",
        "a",
    ]


def test_d14_extension_inside_a_dialog_survives() -> None:
    inner = (
        f'<dialog-info xmlns="{NS}" xmlns:sa="{di.SA_NS}" version="0" state="full" '
        'entity="sip:a@h"><dialog id="a"><state>confirmed</state>'
        "<sa:appearance>1</sa:appearance></dialog></dialog-info>"
    ).encode()
    agg = run(inner)
    assert agg.dialogs[0].extensions == (f"{{{di.SA_NS}}}appearance",)
    assert di.parse(agg.body(0)).dialogs[0].canonical == agg.dialogs[0].canonical


def test_d13_well_formed_foreign_xml_has_its_root_children_copied() -> None:
    pidf = (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@h">'
        b"<tuple id='t'><status><basic>open</basic></status></tuple></presence>"
    )
    agg = run(body(("a", "early")), pidf)
    assert [tag(i) for i in agg.items] == [di.DIALOG_TAG, "{urn:ietf:params:xml:ns:pidf}tuple"]
    assert not agg.broken


@pytest.mark.parametrize("bad", [b"<dialog-info", b"text/plain body", b"", b"  "])
def test_d13_one_body_not_well_formed_drops_the_whole_aggregate(bad: bytes) -> None:
    agg = run(body(("a", "confirmed")), bad)
    assert agg.broken and agg.items == () and agg.publications == 2
    assert "'e1'" in agg.reason
    assert notify_body(agg, version=3, flavour="kamailio") is None
    empty = di.parse(notify_body(agg, version=3, flavour="opensips") or b"")
    assert (empty.state, empty.version, empty.items) == ("full", "3", ())


def test_d13_an_expired_bad_body_does_no_harm() -> None:
    items = [
        Publication(b"<broken", "bad", received=0, expires=1),
        Publication(body(("a", "early")), "good", received=1, expires=50),
    ]
    agg = aggregate(items, presentity=PRES, now=2)
    assert not agg.broken and ids_states(agg) == [("a", "early")]


# --------------------------------------------------------------------------- single-dialog mode

E, C, P, T, X = "early", "confirmed", "proceeding", "trying", "terminated"

SINGLE_CASES = [
    # (name, publications as lists of (id, state), opensips winner, kamailio winner)
    ("D08 early beats all", [[("a", C)], [("b", E)], [("c", T)]], ("b", E), ("b", E)),
    ("D08 confirmed > trying", [[("a", C)], [("b", "trying")]], ("a", C), ("a", C)),
    ("D08 trying > terminated", [[("a", X)], [("b", "trying")]], ("b", "trying"), ("b", "trying")),
    ("D08 proceeding > trying", [[("a", "trying")], [("b", P)]], ("b", P), ("b", P)),
    ("D09 tie: opensips first, kamailio last", [[("a", E)], [("b", E)]], ("a", E), ("b", E)),
    ("D09 tie in one publication", [[("a", C), ("b", C)], [("z", X)]], ("a", C), ("b", C)),
    ("D09 case-insensitive", [[("a", "EARLY")], [("b", C)]], ("a", "EARLY"), ("a", "EARLY")),
    ("kamailio latest state: early then confirmed", [[("D", E)], [("D", C)]], ("D", E), ("D", C)),
    ("kamailio latest state: confirmed then early", [[("D", C)], [("D", E)]], ("D", E), ("D", C)),
    ("kamailio: terminated beats stale confirmed", [[("D", C)], [("D", X)]], ("D", C), ("D", X)),
    ("kamailio ids compare case-insensitively", [[("d", E)], [("D", C)]], ("d", E), ("D", C)),
    # Same id twice in the same state: both are skipped (4 + 4 >= 8); another dialog then wins
    # even with a lower state, and with none the fallback sends the last node examined.
    (
        "kamailio same state twice, other dialog wins",
        [[("D", E)], [("D", E)], [("F", "trying")]],
        ("D", E),
        ("F", "trying"),
    ),
    ("kamailio same state twice, nothing else", [[("D", E)], [("D", E)]], ("D", E), ("D", E)),
    (
        "kamailio two proceedings suppress early",
        [[("D", E), ("D", P)], [("D", P)]],
        ("D", E),
        ("D", P),
    ),
    # Unknown state text: OpenSIPS ranks it with terminated (first wins); Kamailio only falls
    # back to it when no class holds a node.
    ("unknown vs terminated", [[("a", "ringing")], [("b", X)]], ("a", "ringing"), ("b", X)),
    ("unknown only", [[("a", "ringing")], [("b", "held")]], ("a", "ringing"), ("b", "held")),
]


@pytest.mark.parametrize(
    ("publications", "opensips", "kamailio"),
    [c[1:] for c in SINGLE_CASES],
    ids=[c[0] for c in SINGLE_CASES],
)
def test_single_dialog_winner(
    publications: list[list[tuple[str, str]]],
    opensips: tuple[str, str],
    kamailio: tuple[str, str],
) -> None:
    bodies = [body(*p) for p in publications]
    assert ids_states(run(*bodies, single=True, flavour="opensips")) == [opensips]
    assert ids_states(run(*bodies, single=True, flavour="kamailio")) == [kamailio]


def test_d09_the_winner_is_the_node_itself_not_a_copy_of_another() -> None:
    first = body(extra='<dialog id="a" direction="initiator"><state>early</state></dialog>')
    second = body(extra='<dialog id="b" direction="recipient"><state>early</state></dialog>')
    assert run(first, second, single=True).dialogs[0].direction == "initiator"
    assert run(first, second, single=True, flavour="kamailio").dialogs[0].direction == "recipient"


def test_d10_one_publication_passes_through_whole() -> None:
    for flavour in ("opensips", "kamailio"):
        agg = run(body(("a", E), ("b", C)), single=True, flavour=flavour)
        assert ids_states(agg) == [("a", E), ("b", C)]


def test_single_mode_drops_root_extension_elements() -> None:
    agg = run(body(("a", C), extra="<x xmlns='urn:x'/>"), body(("b", T)), single=True)
    assert [tag(i) for i in agg.items] == [di.DIALOG_TAG]


def test_opensips_extension_element_borrows_the_next_siblings_state_and_can_win() -> None:
    # xmlNodeGetNodeByName walks on to following siblings: <x/> has no state of its own, finds
    # the early state of the next dialog, and wins the strict ">" by coming first.
    first = body(("a", E), extra="")
    first = first.replace(b'<dialog id="a">', b"<x xmlns='urn:x'/><dialog id=\"a\">")
    second = body(("b", E))
    assert [tag(i) for i in run(first, second, single=True).items] == ["{urn:x}x"]
    # Kamailio only considers early nodes after a dialog with an id in the same publication.
    assert ids_states(run(first, second, single=True, flavour="kamailio")) == [("b", E)]


@pytest.mark.parametrize("flavour", ["opensips", "kamailio"])
def test_single_mode_with_nothing_stateful_fails_like_the_modules(flavour: str) -> None:
    agg = run(body(), body(extra="<x xmlns='urn:x'/>"), single=True, flavour=flavour)
    assert agg.broken and agg.items == ()
    assert "no element with a <state>" in agg.reason
    # The same publications in default mode are fine: one extension element, no dialog.
    assert not run(body(), body(extra="<x xmlns='urn:x'/>")).broken


def test_empty_state_element_counts_as_no_state() -> None:
    empty_state = body(extra='<dialog id="a"><state/></dialog>')
    agg = run(empty_state, body(("b", X)), single=True)
    assert ids_states(agg) == [("b", X)]


def test_priority_table() -> None:
    assert PRIORITY == {"early": 4, "confirmed": 3, "proceeding": 2, "trying": 1, "terminated": 0}
    assert [priority(s) for s in ("Early", "CONFIRMED", "ringing", None, " early")] == [
        4,
        3,
        0,
        0,
        0,  # the modules compare the raw text: surrounding blanks make it unknown
    ]


# --------------------------------------------------------------------------- idle forms (D11)


def test_d11_no_publication_forms() -> None:
    agg = aggregate([], presentity="sips:bob@example.org:5061", now=0)
    assert (agg.items, agg.publications, agg.broken) == ((), 0, False)
    opensips = di.parse(notify_body(agg, version=0, flavour="opensips") or b"")
    assert (opensips.entity, opensips.state, opensips.items) == ("sip:bob@example.org", "full", ())
    assert notify_body(agg, version=1, flavour="kamailio") is None
    dummy = di.parse(
        notify_body(agg, version=1, flavour="kamailio", force_dummy_dialog=True) or b""
    )
    assert dummy.dialogs == (dummy_dialog(),)
    assert (dummy.dialogs[0].id, dummy.dialogs[0].direction) == (DUMMY_DIALOG_ID, "recipient")
    assert dummy.dialogs[0].state == "terminated"


def test_notify_body_passes_the_aggregate_through() -> None:
    agg = run(body(("a", E)))
    for flavour in ("opensips", "kamailio"):
        assert notify_body(agg, version=4, flavour=flavour) == agg.body(4)


def test_unknown_flavour_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="flavour"):
        aggregate([], presentity=PRES, now=0, flavour="freeswitch")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- entity (D02, T5)


@pytest.mark.parametrize(
    ("presentity", "entity"),
    [
        ("sip:alice@example.com", "sip:alice@example.com"),
        ("sips:alice@example.com:5061;transport=tls", "sip:alice@example.com"),
        ("<sip:alice@example.com;x=y?subject=z>", "sip:alice@example.com"),
        ("sip:alice:secret@example.com", "sip:alice@example.com"),
        ("sip:al%69ce@Example.COM", "sip:al%69ce@Example.COM"),
        ("sip:bob@[2001:db8::1]:5070", "sip:bob@[2001:db8::1]"),
        ("sip:example.com", "sip:@example.com"),
    ],
)
def test_entity_for(presentity: str, entity: str) -> None:
    assert entity_for(presentity) == entity


@pytest.mark.parametrize("bad", ["", "alice", "sip:", "sip:alice@"])
def test_entity_for_refuses_what_is_not_a_uri(bad: str) -> None:
    with pytest.raises(UsageError, match="presentity"):
        entity_for(bad)


# --------------------------------------------------------------------------- kamailio_replaces


def test_kamailio_replaces_the_first_stored_publication_with_the_same_first_dialog_id() -> None:
    stored = pubs(body(("x", E)), body(("a", E), ("b", C)), body(("a", T)))
    assert kamailio_replaces(stored, body(("a", C))) is stored[1]
    assert kamailio_replaces(stored, body(("b", C))) is None  # b is not a first dialog
    assert kamailio_replaces(stored, body(("A", C))) is None  # strcmp: case-sensitive
    assert kamailio_replaces(stored, body()) is None
    assert kamailio_replaces(stored, b"<nope") is None
    assert kamailio_replaces(pubs(b"<nope", body(("x", E))), body(("x", T))) is not None


# --------------------------------------------------------------------------- properties

ID = st.sampled_from(["a", "b", "c", "d", "e"])
STATE = st.sampled_from([*di.STATES, "Early", "ringing"])
PUB = st.lists(st.tuples(ID, STATE), max_size=4)


def canon(agg: Aggregate) -> list[str]:
    return sorted(i.canonical for i in agg.items)


@settings(max_examples=60, deadline=None)
@given(st.lists(PUB, max_size=6))
def test_property_default_mode_keeps_exactly_the_published_children(
    publications: list[list[tuple[str, str]]],
) -> None:
    bodies = [body(*p) for p in publications]
    expected = sorted(item.canonical for b in bodies for item in di.parse(b).items)
    assert canon(run(*bodies)) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(PUB.filter(bool), min_size=2, max_size=6), st.sampled_from(["opensips", "kamailio"])
)
def test_property_single_mode_keeps_one_dialog_of_top_priority(
    publications: list[list[tuple[str, str]]], flavour: str
) -> None:
    if flavour == "kamailio":
        # Kamailio's stale-state rule only bites on repeated ids: give every dialog its own.
        counter = iter(range(1000))
        publications = [[(f"{i}{next(counter)}", s) for i, s in p] for p in publications]
    agg = run(*(body(*p) for p in publications), single=True, flavour=flavour)
    assert len(agg.items) == 1 and len(agg.dialogs) == 1
    top = max(priority(s) for p in publications for _, s in p)
    assert priority(agg.dialogs[0].state) == top


@settings(max_examples=60, deadline=None)
@given(
    st.lists(PUB, max_size=4),
    st.lists(st.one_of(PUB.map(lambda p: body(*p)), st.just(b"<broken")), max_size=4),
    st.booleans(),
)
def test_property_expired_publications_never_contribute(
    current: list[list[tuple[str, str]]], expired: list[bytes], single: bool
) -> None:
    fresh = pubs(*(body(*p) for p in current), expires=100)
    stale = [
        Publication(b, f"x{n}", received=-1.0 - n, expires=5.0, seq=50 + n)
        for n, b in enumerate(expired)
    ]
    now = 10.0
    alone = aggregate(fresh, presentity=PRES, now=now, single_dialog=single)
    mixed = aggregate(fresh + stale, presentity=PRES, now=now, single_dialog=single)
    assert mixed == alone


@settings(max_examples=60, deadline=None)
@given(st.lists(PUB, max_size=6), st.randoms(use_true_random=False))
def test_property_multiset_does_not_depend_on_order(
    publications: list[list[tuple[str, str]]], rnd: random.Random
) -> None:
    bodies = [body(*p) for p in publications]
    shuffled = bodies[:]
    rnd.shuffle(shuffled)
    assert canon(run(*bodies)) == canon(run(*shuffled))
    # Same publications handed over in a different list order: identical result, items and all.
    items = pubs(*bodies)
    rnd.shuffle(items)
    assert aggregate(items, presentity=PRES, now=0) == run(*bodies)


# --------------------------------------------------------------------------- libxml walk details


def raw(inner: str) -> bytes:
    head = f'<dialog-info xmlns="{NS}" version="0" state="full" entity="sip:e@h">'
    return f"{head}{inner}</dialog-info>".encode()


WALK_CASES = [
    # (name, bodies, opensips winner id, kamailio winner id)
    (
        # Kamailio skips non-terminated states until a dialog with an id was seen in the same
        # publication, so an id-less early dialog only wins by fallback, and loses to trying.
        "kamailio: dialog without id",
        [raw("<dialog><state>early</state></dialog>"), body(("b", "trying"))],
        None,
        "b",
    ),
    (
        # An extension element after dialog a counts for a's id in check_relevant_state:
        # 4 + 4 >= 8, so a (and the element) are skipped; b wins with trying.
        "kamailio: extension element inherits the previous dialog id",
        [
            raw(
                '<dialog id="a"><state>early</state></dialog>'
                '<x xmlns="urn:x"><state>early</state></x>'
            ),
            body(("b", "trying")),
        ],
        "a",
        "b",
    ),
    (
        # xmlNodeGetContent(state->children): a comment first means its text, not "early".
        "state content is the first child node",
        [raw('<dialog id="a"><state><!--c-->early</state></dialog>'), body(("b", "terminated"))],
        "a",
        "b",
    ),
    (
        # A processing instruction named "state" matches by name and has no content: no state.
        "processing instruction named state",
        [raw('<dialog id="a"><?state x?><state>early</state></dialog>'), body(("b", "terminated"))],
        "b",
        "b",
    ),
]


@pytest.mark.parametrize(
    ("bodies", "opensips", "kamailio"),
    [c[1:] for c in WALK_CASES],
    ids=[c[0] for c in WALK_CASES],
)
def test_single_mode_follows_the_libxml_walk(
    bodies: list[bytes], opensips: str | None, kamailio: str | None
) -> None:
    assert run(*bodies, single=True).dialogs[0].id == opensips
    assert run(*bodies, single=True, flavour="kamailio").dialogs[0].id == kamailio


def test_kamailio_replaces_reads_doc_children_and_any_id_attribute() -> None:
    stored = pubs(raw('<dialog xmlns:q="urn:q" q:id="a"><state>early</state></dialog>'))
    assert kamailio_replaces(stored, body(("a", "confirmed"))) is stored[0]
    # A comment before the root is doc->children: Kamailio finds no dialog under it.
    leading = b"<!--c-->" + body(("a", "confirmed"))
    assert kamailio_replaces(stored, leading) is None


def test_strict_flavour_resolves_duplicates_and_withholds_session_descriptions():
    from conformance.oracle.aggregator import Publication, aggregate
    from conformance.oracle.dialoginfo import dialog, document

    sdp = '<local><session-description type="application/sdp">v=0</session-description></local>'
    pubs = [
        Publication(
            document("sip:a@h", [dialog("1", "early"), dialog("x", "trying")]), "e1", 1.0, 100.0, 0
        ),
        Publication(
            document("sip:a@h", [dialog("1", "confirmed", extra=sdp)]), "e2", 2.0, 100.0, 1
        ),
    ]
    strict = aggregate(pubs, presentity="sip:a@h", now=10.0, flavour="strict")
    assert [(d.id, d.state) for d in strict.dialogs] == [("x", "trying"), ("1", "confirmed")]
    assert strict.dialogs[1].local is not None
    assert strict.dialogs[1].local.session_description is None
    module = aggregate(pubs, presentity="sip:a@h", now=10.0, flavour="opensips")
    assert [d.id for d in module.dialogs] == ["1", "x", "1"]
    assert module.dialogs[2].local.session_description == "v=0"


# --------------------------------------------------------------------------- refresh order


@pytest.mark.parametrize(
    ("flavour", "winner", "order"),
    [
        # Kamailio 5.6.3 (seen live): the refresh moves A to the end; its tie goes to the last.
        ("kamailio", "A", ["B", "A"]),
        # OpenSIPS and strict keep A's place; their tie goes to the first.
        ("opensips", "A", ["A", "B"]),
        ("strict", "A", ["A", "B"]),
    ],
)
def test_refresh_order_per_flavour(flavour: str, winner: str, order: list[str]) -> None:
    a, b = pubs(body(("A", "early")), body(("B", "early")))
    a2 = refreshed(a, etag="a2", now=5.0, expires=100.0, seq=9, flavour=flavour)  # type: ignore[arg-type]
    assert (a2.etag, a2.expires, a2.body) == ("a2", 100.0, a.body)
    agg = aggregate([a2, b], presentity=PRES, now=6.0, flavour=flavour)  # type: ignore[arg-type]
    assert [d.id for d in agg.dialogs] == order
    single = aggregate([a2, b], presentity=PRES, now=6.0, single_dialog=True, flavour=flavour)  # type: ignore[arg-type]
    assert [d.id for d in single.dialogs] == [winner]


def test_kamailio_tie_without_refresh_goes_to_the_newer() -> None:
    """The same tie without the refresh: Kamailio gives it to B, so the refresh case above is
    what tells a model that keeps A's place from Kamailio."""
    a, b = pubs(body(("A", "early")), body(("B", "early")))
    single = aggregate([a, b], presentity=PRES, now=6.0, single_dialog=True, flavour="kamailio")
    assert [d.id for d in single.dialogs] == ["B"]
