"""conformance.explore.bodies: schema coverage, oracle verdicts, determinism and caps.

The coverage test reads the XSDs themselves (hardened parser), so an element or attribute the
generator never produces is named here, and a schema change is noticed.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from lxml import etree

from conformance.explore import bodies
from conformance.explore.execute import Executor, Taint
from conformance.oracle import dialoginfo, schema
from conformance.oracle.dialoginfo import NS, SA_NS
from conformance.resources import schema_path

XS = "{http://www.w3.org/2001/XMLSchema}"
ENTITY = "sip:alice@example.com"
SEEDS = range(200)


def _hardened() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def declared(filename: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Every element (Clark name) and (element, attribute) pair an XSD declares."""
    tree = etree.parse(str(schema_path(filename)), _hardened())
    root = tree.getroot()
    target = root.get("targetNamespace")
    elements = {f"{{{target}}}{e.get('name')}" for e in root.iter(f"{XS}element") if e.get("name")}
    typed: dict[str, set[str]] = {}
    for e in root.iter(f"{XS}element"):
        kind = e.get("type", "")
        if e.get("name") and ":" in kind:
            typed.setdefault(kind.split(":", 1)[1], set()).add(f"{{{target}}}{e.get('name')}")
    pairs: set[tuple[str, str]] = set()
    for attr in root.iter(f"{XS}attribute"):
        if not attr.get("name"):
            continue
        owner = attr.getparent()
        while owner is not None:
            if owner.tag == f"{XS}element" and owner.get("name"):
                pairs.add((f"{{{target}}}{owner.get('name')}", attr.get("name")))
                break
            if owner.tag == f"{XS}complexType" and owner.get("name"):
                for element in typed[owner.get("name")]:
                    pairs.add((element, attr.get("name")))
                break
            owner = owner.getparent()
    return elements, pairs


def _valid_bodies() -> Iterator[bodies.Body]:
    for seed in SEEDS:
        yield bodies.valid(random.Random(seed), entity=ENTITY)


def test_the_xsd_walk_sees_the_whole_schema() -> None:
    # Guards the walk itself: a walk that found nothing would make the coverage test vacuous.
    elements, pairs = declared("dialog-info.errata.xsd")
    assert len(elements) == 15 and f"{{{NS}}}param" in elements
    assert (f"{{{NS}}}identity", "display") in pairs
    assert (f"{{{NS}}}referred-by", "display") in pairs
    assert (f"{{{NS}}}state", "code") in pairs and len(pairs) == 19


def test_every_declared_element_and_attribute_is_generated() -> None:
    want_elements, want_pairs = declared("dialog-info.errata.xsd")
    sa_elements, sa_pairs = declared("sa-dialog-info.xsd")
    want_elements |= sa_elements
    want_pairs |= sa_pairs
    seen_elements: set[str] = set()
    seen_pairs: set[tuple[str, str]] = set()
    absent_pairs: set[tuple[str, str]] = set()
    for body in _valid_bodies():
        for el in dialoginfo.parse_tree(body.data).iter():
            if not isinstance(el.tag, str):
                continue
            seen_elements.add(el.tag)
            seen_pairs.update((el.tag, a) for a in el.attrib)
            optional = ("display", "event", "code", "direction")
            absent_pairs.update((el.tag, a) for a in optional if a not in el.attrib)
    assert want_elements - seen_elements == set()
    assert want_pairs - seen_pairs == set()
    # Optional attributes are also left out somewhere.
    assert {(f"{{{NS}}}identity", "display"), (f"{{{NS}}}dialog", "direction")} <= absent_pairs


def test_valid_bodies_pass_every_oracle_check_and_say_what_they_hold() -> None:
    for seed, body in zip(SEEDS, _valid_bodies(), strict=True):
        failed = [f for f in schema.check(body.data) if not f.passed]
        assert failed == [], (seed, failed[:2], body.data[:400])
        assert body.valid and body.kind == "valid" and len(body.data) <= bodies.UDP_BODY_CAP
        parsed = dialoginfo.parse(body.data)
        assert tuple((d.id, d.state) for d in parsed.dialogs) == body.dialogs, seed


def test_the_variety_the_issue_asks_for() -> None:
    texts = [b.data for b in _valid_bodies()]
    roots = [dialoginfo.parse_tree(t) for t in texts]
    assert any(r.prefix is None for r in roots) and any(r.prefix for r in roots)
    assert any(len(r) == 0 for r in roots)  # no dialog at all
    assert any(len(r.findall(f"{{{NS}}}dialog")) >= 4 for r in roots)
    assert any(any(ord(c) > 0xFFFF for c in t.decode()) for t in texts)  # astral plane
    assert any(b"<!--" in t for t in texts) and any(b"<![CDATA[" in t for t in texts)
    assert any(b"\r\n" in t for t in texts) and any(not t.startswith(b"<?xml") for t in texts)
    longest = max(len(v) for r in roots for el in r.iter() for v in el.attrib.values())
    assert longest >= 200
    places = {
        el.getparent().tag
        for r in roots
        for el in r.iter()
        if isinstance(el.tag, str)
        and not el.tag.startswith(f"{{{NS}}}")
        and el.getparent() is not None
    }
    for parent in ("dialog-info", "dialog", "local", "remote"):
        assert f"{{{NS}}}{parent}" in places, parent
    assert any(r.find(f".//{{{SA_NS}}}joined-dialog") is not None for r in roots)


def test_same_seed_same_body_and_no_shared_state() -> None:
    first = [bodies.body(random.Random(s), entity=ENTITY) for s in range(20)]
    random.seed(12345)  # the global generator must not matter
    again = [bodies.body(random.Random(s), entity=ENTITY) for s in range(20)]
    assert first == again
    assert len({b.data for b in first}) == 20


@pytest.mark.parametrize("kind", sorted(bodies.INVALID_KINDS))
def test_each_invalid_variant_fails_with_its_requirement(kind: str) -> None:
    for seed in range(15):
        body = bodies.invalid(random.Random(seed), entity=ENTITY, kind=kind)
        assert body.kind == kind and not body.valid
        failed = {f.requirement for f in schema.check(body.data) if not f.passed}
        if kind == "wrong-content-type":
            # The body is fine; the Content-Type is what a server must reject (C07).
            assert failed == set() and body.content_type != dialoginfo.CONTENT_TYPE
            assert body.expect == "C07"
        else:
            assert body.expect in failed, (seed, failed, body.data[:300])


def test_invalid_draws_cover_every_kind_and_unknown_kind_is_refused() -> None:
    rng = random.Random(7)
    drawn = {bodies.invalid(rng, entity=ENTITY).kind for _ in range(600)}
    assert drawn == set(bodies.INVALID_KINDS)
    with pytest.raises(ValueError, match="unknown invalid body kind 'nope'"):
        bodies.invalid(rng, entity=ENTITY, kind="nope")


def test_caps() -> None:
    for seed in range(50):
        small = bodies.valid(random.Random(seed), entity=ENTITY, max_bytes=600)
        assert len(small.data) <= 600
        assert not [f for f in schema.check(small.data) if not f.passed]
    for seed in range(30):
        probe = bodies.invalid(random.Random(seed), entity=ENTITY, kind="entity-probe")
        assert len(probe.data) <= bodies.ENTITY_PROBE_CAP
        assert b"SYSTEM" not in probe.data and b"PUBLIC" not in probe.data
    for seed in range(200):
        data = bodies.body(random.Random(seed), entity=ENTITY, invalid_ratio=0.5).data
        assert b"SYSTEM" not in data and b"PUBLIC" not in data


def test_fixed_dialogs_are_used_as_given() -> None:
    chosen = [("a", "trying"), ("b", "terminated"), ("\u263e x", "confirmed")]
    body = bodies.valid(random.Random(3), entity=ENTITY, dialogs=chosen, version=7)
    parsed = dialoginfo.parse(body.data)
    assert [(d.id, d.state) for d in parsed.dialogs] == chosen
    assert parsed.version == "7" and parsed.entity == ENTITY


def test_oracle_survives_a_non_ascii_prefix_next_to_an_rfc7463_element() -> None:
    # Found by this generator: the oracle re-serialised RFC 7463 elements as ASCII, turning the
    # prefix "ñs" of an inherited namespace declaration into "&#241;s" and crashing on it.
    data = (
        f"<ñs:dialog-info xmlns:ñs='{NS}' version='1' state='full' entity='{ENTITY}'>"
        f"<ñs:dialog id='x'><ñs:state>trying</ñs:state>"
        f"<exclusive xmlns='{SA_NS}'>true</exclusive></ñs:dialog></ñs:dialog-info>"
    ).encode()
    assert [f for f in schema.check(data) if not f.passed] == []


def test_dropping_parts_keeps_a_valid_body_with_the_same_dialogs() -> None:
    for seed in range(60):
        full = bodies.valid(random.Random(seed), entity=ENTITY)
        bare = bodies.valid(random.Random(seed), entity=ENTITY, drop=bodies.PARTS)
        # The full body may have shed dialogs to fit the size cap; the bare one keeps more.
        assert bare.dialogs[: len(full.dialogs)] == full.dialogs
        assert len(bare.data) <= len(full.data) or len(bare.dialogs) > len(full.dialogs)
        assert not [f for f in schema.check(bare.data) if not f.passed], seed
        root = dialoginfo.parse_tree(bare.data)
        assert b"<!--" not in bare.data and root.prefix is None
        assert all(el.tag.startswith(f"{{{NS}}}") for el in root.iter() if isinstance(el.tag, str))
        assert all(set(d.attrib) == {"id"} for d in root)
        assert root.find(f".//{{{NS}}}local") is None and root.find(f".//{{{NS}}}duration") is None


def test_each_part_drops_only_itself() -> None:
    def ext_parents(data: bytes) -> set[str]:
        return {
            etree.QName(el.getparent()).localname
            for el in dialoginfo.parse_tree(data).iter()
            if isinstance(el.tag, str)
            and not el.tag.startswith(f"{{{NS}}}")
            and el.getparent() is not None
            and el.getparent().tag.startswith(f"{{{NS}}}")
        }

    seen_root = seen_dialog = False
    for seed in range(120):
        full = bodies.valid(random.Random(seed), entity=ENTITY)
        parents = ext_parents(full.data)
        no_root = bodies.valid(random.Random(seed), entity=ENTITY, drop=["root-extensions"])
        assert "dialog-info" not in ext_parents(no_root.data)
        if "dialog-info" in parents:
            seen_root = True
            no_dialog = bodies.valid(random.Random(seed), entity=ENTITY, drop=["dialog-extensions"])
            assert ext_parents(no_dialog.data) <= {"dialog-info"}
        seen_dialog = seen_dialog or "dialog" in parents
    assert seen_root and seen_dialog
    with pytest.raises(ValueError, match="unknown body parts"):
        bodies.valid(random.Random(1), entity=ENTITY, drop=["everything"])


def test_an_accepted_empty_modify_taints_nothing():
    """The empty ``not-xml`` body makes a modify a refresh (RFC 3903 §4.3): a 200 for it is no
    accepted garbage, so the presentity's body findings keep their level (issue 13); a
    non-empty invalid body accepted with 200 still taints."""
    ex = SimpleNamespace(tainted={}, _untaint=lambda handle, at: None)
    ok = SimpleNamespace(status=200)
    empty = bodies.Body(b"", "not-xml", expect="A02")
    taint = functools.partial(Executor._taint, ex, handle="p1", sent=10.0)
    taint(0, empty, ok, SimpleNamespace(index=3))
    assert ex.tainted == {}
    garbage = bodies.Body(b"this is not XML", "not-xml", expect="A02")
    taint(0, garbage, ok, SimpleNamespace(index=4))
    assert ex.tainted == {0: [Taint(4, 10.0, "p1")]}


def test_a_taint_lasts_until_its_publication_is_replaced():
    """The garbage a presentity's NOTIFYs may relay is live from its PUBLISH until a valid
    modify of the same publication is accepted; another publication's modify leaves it."""
    ex = Executor.__new__(Executor)
    ex.tainted = {}
    ok, refused = SimpleNamespace(status=200), SimpleNamespace(status=400)
    garbage = bodies.Body(b"this is not XML", "not-xml", expect="A02")
    valid = bodies.valid(random.Random(1), entity=ENTITY)
    ex._taint(0, garbage, ok, SimpleNamespace(index=2), handle="p1", sent=10.0)
    ex._taint(0, valid, ok, SimpleNamespace(index=3), handle="p2", sent=11.0)
    ex._taint(0, valid, refused, SimpleNamespace(index=4), handle="p1", sent=12.0)
    (t,) = ex.tainted[0]
    assert t.until == math.inf and t.covers(13.0) and not t.covers(9.0)
    ex._taint(0, valid, ok, SimpleNamespace(index=5), handle="p1", sent=14.0)
    assert 14.0 <= t.until < math.inf and not t.covers(t.until + 1)
