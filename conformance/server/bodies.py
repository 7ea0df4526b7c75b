"""The reference server's own NOTIFY body builder, written from the rules, not from the oracle.

The suite judges the reference server with ``conformance.oracle.aggregator``. If the server
built its bodies with that same code, a bug in it would pass the clean run and every mutant
alike; so this module is a second implementation of the same rules (docs/REQUIREMENTS.md
group D, docs/BEHAVIOUR.md), and a differential test (tests/unit/test_server_bodies.py) runs
both on generated publications. Nothing here imports ``conformance.oracle``.

The rules, per flavour (all three drop expired publications and go oldest first, D05):

* **opensips** (D03, D07): every element child of every live publication root is moved into a
  new root, in publication order then document order; nothing is de-duplicated.
* **kamailio**: the same aggregate; its store also replaces a publication whose first dialog
  id matches a new one (``first_dialog_id``), and single-dialog mode runs Kamailio's loop.
* **strict**: the OpenSIPS aggregate, except that a dialog id published twice is kept from
  the newest publication only (A19), session descriptions are withheld (A29), and root-level
  extension elements follow every dialog (A34, ``dialogs_first``).

``force_single_dialog`` (D08-D10) trims to one element only from two live publications on.
Candidates are the root children the modules' loops see: any element whose subtree, or failing
that a following sibling's, holds a ``<state>`` (libxml's ``xmlNodeGetNodeByName`` walks on to
the siblings). Priority is early > confirmed > proceeding > trying > terminated, compared
ASCII case-insensitively, unknown text 0. Ties (D09): OpenSIPS keeps the first; the strict
flavour keeps the first or the last as configured; Kamailio runs ``_kamailio_pick``.

Bodies are parsed here with their own hardened parser (``read_xml``): size cap, UTF-8 only,
no DOCTYPE or entity declaration, no entity expansion, no DTD, no network.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

from lxml import etree

from conformance.errors import BodyError
from conformance.server.hooks import BodyHooks, WinnerRule

Flavour = Literal["strict", "opensips", "kamailio"]

DIALOG_INFO_NS = "urn:ietf:params:xml:ns:dialog-info"
MEDIA_TYPE = "application/dialog-info+xml"
ROOT = f"{{{DIALOG_INFO_NS}}}dialog-info"
DIALOG = f"{{{DIALOG_INFO_NS}}}dialog"
SESSION_DESCRIPTION = f"{{{DIALOG_INFO_NS}}}session-description"
BODY_LIMIT = 1 << 20
"""Bytes of a published body the server reads at most; a larger one gets 400."""
IDLE_DIALOG_ID = "615293b33c62dec073e05d9421e9f48b"
"""Kamailio's ``force_dummy_dialog`` dialog id (D11)."""

RANK = {"early": 4, "confirmed": 3, "proceeding": 2, "trying": 1, "terminated": 0}
"""Single-dialog priority, most interesting first (D08)."""
KAMAILIO_WEIGHT = {"trying": 1, "proceeding": 2, "early": 4, "confirmed": 8, "terminated": 16}
"""Kamailio's ``check_relevant_state`` weights, summed per dialog id."""
KAMAILIO_CLASSES = ("early", "confirmed", "proceeding", "trying", "terminated")
_KAMAILIO_LIMIT = {"trying": 2, "proceeding": 4, "early": 8, "confirmed": 16}
"""A candidate in this state is passed over once its id's weight sum reaches the limit."""

_UPPER_TO_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_CACHED_BODIES = 2048
_FORBIDDEN_MARKUP = (b"<!DOCTYPE", b"<!ENTITY")


@dataclass(frozen=True, slots=True)
class Built:
    """What the builder made of the store: root children, or why there is no document."""

    items: tuple[etree._Element, ...]
    publications: int
    """Live publications that took part; 0 means the presentity is idle."""
    failure: str = ""
    """Non-empty when the modules would produce no document (a body not well-formed, D13, or
    single-dialog mode finding no candidate)."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One stored publication, as the server keeps it. Aggregation order is ``stored_at``, then
    ``arrival`` (a counter, so equal clock readings still give one order); it counts while
    ``expires_at > now``."""

    body: bytes
    etag: str
    stored_at: float
    expires_at: float
    arrival: int = 0


# ---- reading published XML -------------------------------------------------------------------


def read_xml(body: bytes) -> etree._Element:
    """The root element of a published body; ``BodyError`` for anything the server refuses.

    Checked before libxml2 sees a byte: the size, UTF-8, and any DOCTYPE or ENTITY declaration
    (refused outright: with expansion merely off, an entity bomb still leaves entity nodes).
    The parser then runs with entities, DTDs and the network off.
    """
    data = bytes(body)
    if len(data) > BODY_LIMIT:
        raise BodyError(f"a body of {len(data)} bytes is over the server's {BODY_LIMIT} limit")
    if not data.strip():
        raise BodyError("the body is empty")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (offset {exc.start})") from None
    folded = data.upper()
    for markup in _FORBIDDEN_MARKUP:
        if markup in folded:
            raise BodyError(f"the body declares {markup[2:].decode()}; refused")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise BodyError(f"the body is not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise BodyError("the body carries a document type; refused")
    return root


def is_dialog_info(root: etree._Element) -> bool:
    return root.tag == ROOT


def entity_of(uri: str) -> str:
    """``sip:USER@HOST`` from a presentity URI: scheme forced to ``sip``, port, password,
    parameters and headers dropped, user and host as written (D02, A12). The modules write
    this, and the server keys presentities by it."""
    _scheme, user, host, _port = _entity_parts(uri)
    return f"sip:{user}@{host}"


def entity_uri(uri: str) -> str:
    """The strict server's ``entity``: the Request-URI's scheme, user, host and port, with
    password, parameters and headers dropped (A12 compares scheme and port too)."""
    scheme, user, host, port = _entity_parts(uri)
    return f"{scheme}:{user}@{host}" + (f":{port}" if port else "")


def _entity_parts(uri: str) -> tuple[str, str, str, str]:
    """(scheme lower-cased, user, host, port) of a presentity URI; BodyError when unreadable."""
    text = uri.strip().removeprefix("<").removesuffix(">").strip()
    scheme, colon, rest = text.partition(":")
    if not (scheme and colon and rest):
        raise BodyError(f"{uri!r} is not a URI like sip:user@host")
    end = min((i for i in (rest.find(c) for c in ";?>") if i >= 0), default=len(rest))
    rest = rest[:end]
    user, at, hostport = rest.rpartition("@")
    if not at:
        user, hostport = "", rest
    user = user.partition(":")[0]
    if hostport.startswith("[") and "]" in hostport:
        host = hostport[: hostport.index("]") + 1]
        port = hostport[len(host) :].removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    if not host:
        raise BodyError(f"{uri!r} names no host")
    return scheme.lower(), user, host, port


def root_children(body: bytes) -> list[etree._Element]:
    """Copies of the element children of a published body's root; none if it does not parse."""
    try:
        root = read_xml(body)
    except BodyError:
        return []
    return [_detached(child) for child in root if isinstance(child.tag, str)]


def idle_dialog() -> etree._Element:
    """Kamailio's placeholder for "nothing published" (D11)."""
    element = etree.Element(DIALOG, nsmap={None: DIALOG_INFO_NS})
    element.set("id", IDLE_DIALOG_ID)
    element.set("direction", "recipient")
    etree.SubElement(element, f"{{{DIALOG_INFO_NS}}}state").text = "terminated"
    return element


def count_dialogs(items: Sequence[etree._Element]) -> int:
    return sum(1 for item in items if item.tag == DIALOG)


def write_document(
    entity: str, version: int | str, state: str, items: Sequence[etree._Element]
) -> bytes:
    """A new ``dialog-info`` root in the default namespace holding copies of ``items`` (D02)."""
    attributes = {"version": str(version), "state": state, "entity": entity}
    root = etree.Element(ROOT, attrib=attributes, nsmap={None: DIALOG_INFO_NS})
    root.extend(_detached(item) for item in items)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def strip_foreign_children(element: etree._Element) -> etree._Element:
    """A copy of ``element`` without the children outside the dialog-info namespace."""
    out = _detached(element)
    for child in list(out):
        if isinstance(child.tag, str) and not child.tag.startswith(f"{{{DIALOG_INFO_NS}}}"):
            out.remove(child)
    return out


# ---- the module's view of a body ---------------------------------------------------------------


def _lower(text: str) -> str:
    """ASCII-only lower case, as C's ``strcasecmp`` compares."""
    return text.translate(_UPPER_TO_LOWER)


def _local_name(tag: str) -> str:
    return tag.partition("}")[2] if tag.startswith("{") else tag


class _Node(NamedTuple):
    """A root child element as the single-dialog loops see it: ``dialog`` when it is named
    ``dialog`` in any namespace and any ASCII case (the modules' test), ``ident`` the first
    attribute whose local name is ``id``, ``state`` the ``<state>`` content the loop reads for
    it (see ``_states``)."""

    element: etree._Element
    dialog: bool
    ident: str | None
    state: str | None


class _Body(NamedTuple):
    """The nodes of one publication and the id of its first dialog (Kamailio's replace key)."""

    nodes: tuple[_Node, ...]
    first_dialog_id: str | None


def _state_text(state: etree._Element) -> str | None:
    """``xmlNodeGetContent`` of the state node's first child; None for ``<state/>``."""
    if state.text is not None:
        return str(state.text)
    first = next(iter(state), None)
    if first is None:
        return None
    if isinstance(first.tag, str):
        return "".join(first.itertext())
    return first.text or ""


def _own_state(node: etree._Element) -> tuple[bool, str | None]:
    """The first node named ``state`` in ``node``'s subtree, in document order."""
    for sub in node.iter():
        if isinstance(sub.tag, str):
            if _lower(_local_name(sub.tag)) == "state":
                return True, _state_text(sub)
        elif isinstance(sub, etree._ProcessingInstruction) and _lower(sub.target) == "state":
            return True, None
    return False, None


def _states(root: etree._Element) -> list[str | None]:
    """For each root child node, the state the loop reads: its own, or the next sibling's."""
    own = [_own_state(child) for child in root]
    result: list[str | None] = []
    carried: str | None = None
    while own:
        found, content = own.pop()
        if found:
            carried = content
        result.append(carried)
    result.reverse()
    return result


def _ident(element: etree._Element) -> str | None:
    for name, value in element.attrib.items():
        if _local_name(name) == "id":
            return str(value)
    return None


def _view(root: etree._Element) -> _Body:
    nodes: list[_Node] = []
    first_dialog_id: str | None = None
    # Kamailio looks for the first dialog child of doc->children: with a comment or PI before
    # the root element that is not the root, and no dialog is found.
    looking = root.getprevious() is None
    for child, state in zip(root, _states(root), strict=True):
        if not isinstance(child.tag, str):
            if (
                looking
                and isinstance(child, etree._ProcessingInstruction)
                and _lower(child.target) == "dialog"
            ):
                looking = False
            continue
        dialog = _lower(_local_name(child.tag)) == "dialog"
        ident = _ident(child)
        if dialog and looking:
            looking = False
            first_dialog_id = ident
        nodes.append(_Node(child, dialog, ident, state))
    return _Body(tuple(nodes), first_dialog_id)


@functools.lru_cache(maxsize=_CACHED_BODIES)
def _read(body: bytes) -> _Body | str:
    """The loops' view of ``body``, or the reason it does not parse (cached: the elements are
    shared and must never be changed; the builder copies what it outputs)."""
    try:
        return _view(read_xml(body))
    except BodyError as exc:
        return str(exc)


def first_dialog_id(body: bytes) -> str | None:
    """The id of the first ``<dialog>`` child of the body's root (Kamailio's replace key)."""
    view = _read(bytes(body))
    return None if isinstance(view, str) else view.first_dialog_id


def replaced_by(stored: Sequence[Publication], body: bytes) -> Publication | None:
    """Kamailio: the first stored publication whose first dialog id equals the new body's
    (case-sensitive), which a new PUBLISH silently replaces. Unparsable bodies match nothing."""
    wanted = first_dialog_id(body)
    if wanted is None:
        return None
    return next((p for p in stored if first_dialog_id(p.body) == wanted), None)


def _detached(element: etree._Element) -> etree._Element:
    out = copy.deepcopy(element)
    out.tail = None
    return out


# ---- the builder ---------------------------------------------------------------------------------


class BodyBuilder:
    """Builds one presentity's aggregate for a flavour and mode; faults come in as ``hooks``."""

    def __init__(
        self,
        *,
        flavour: Flavour = "strict",
        single_dialog: bool = False,
        tie_break: Literal["first", "last"] = "first",
        hooks: BodyHooks | None = None,
    ) -> None:
        self.flavour = flavour
        self.single_dialog = single_dialog
        self.tie_break = tie_break
        self.hooks = hooks or BodyHooks()

    def build(self, publications: Sequence[Publication], now: float) -> Built:
        live = sorted((p for p in publications if p.expires_at > now), key=_age)
        if self.flavour == "strict":
            live = _newest_ids_only(live)
        chosen = list(self.hooks.publications(live))
        bodies: list[_Body] = []
        for pub in chosen:
            view = _read(bytes(pub.body))
            if isinstance(view, str):
                return Built((), len(chosen), f"publication {pub.etag} does not parse: {view}")
            bodies.append(view)
        nodes = [node for body in bodies for node in body.nodes]
        trims = self.hooks.single_dialog_applies(len(bodies) >= 2, len(bodies))
        if not (self.single_dialog and trims):
            elements = [n.element for n in nodes]
            if self.flavour == "strict":
                elements = dialogs_first(elements)
            return Built(tuple(_detached(e) for e in elements), len(bodies))
        rule: WinnerRule = self.tie_break
        if self.flavour != "strict":
            rule = "kamailio" if self.flavour == "kamailio" else "first"
        rule = self.hooks.winner_rule(rule)
        winner = _kamailio_pick(bodies) if rule == "kamailio" else self._pick(nodes, rule)
        if winner is None:
            return Built((), len(bodies), "single-dialog mode found no element with a state")
        return Built((_detached(winner.element),), len(bodies))

    def finish(self, items: Sequence[etree._Element]) -> list[etree._Element]:
        """The root children as they will be written (where item faults apply)."""
        return list(self.hooks.items(list(items)))

    def document(
        self, entity: str, version: int | str, state: str, items: Sequence[etree._Element]
    ) -> bytes:
        return self.hooks.document(write_document(entity, version, state, items))

    def _rank(self, state: str) -> int:
        return self.hooks.priority(RANK.get(_lower(state), 0), state)

    def _pick(self, nodes: Sequence[_Node], rule: WinnerRule) -> _Node | None:
        best: _Node | None = None
        best_rank = -1
        for node in nodes:
            if node.state is None:
                continue
            rank = self._rank(node.state)
            if rank > best_rank or (rule == "last" and rank == best_rank):
                best, best_rank = node, rank
        return best


def dialogs_first(elements: Sequence[etree._Element]) -> list[etree._Element]:
    """Strict flavour (A34): RFC 4235's root content is ``dialog*`` then ``##other``
    extensions, so root-level extension elements of every publication follow all dialogs (each
    group in publication then document order); the modules' plain concatenation would put a
    later publication's dialogs after an earlier one's extensions, which the schema forbids."""
    return [e for e in elements if e.tag == DIALOG] + [e for e in elements if e.tag != DIALOG]


def _age(pub: Publication) -> tuple[float, int]:
    return (pub.stored_at, pub.arrival)


def _newest_ids_only(live: list[Publication]) -> list[Publication]:
    """Strict flavour: each dialog id kept from its newest publication only (and the last
    occurrence within it), session descriptions withheld. Publications are rewritten, never
    dropped, so the publication count that decides single-dialog mode stays the same."""
    seen: set[str] = set()
    out: list[Publication] = []
    for pub in reversed(live):
        try:
            root = read_xml(pub.body)
        except BodyError:
            out.append(pub)  # the aggregation will fail on it, as the modules' does
            continue
        changed = False
        for child in reversed([c for c in root if c.tag == DIALOG]):
            ident = child.get("id")
            if ident is not None and ident in seen:
                root.remove(child)
                changed = True
                continue
            if ident is not None:
                seen.add(str(ident))
            for sdp in list(child.iter(SESSION_DESCRIPTION)):
                parent = sdp.getparent()
                if parent is not None:
                    parent.remove(sdp)
                    changed = True
        if changed:
            pub = replace(pub, body=etree.tostring(root, encoding="UTF-8"))
        out.append(pub)
    out.reverse()
    return out


def _in_dialog_context(bodies: Sequence[_Body]) -> Iterator[tuple[_Node, str | None, bool]]:
    """Each node with what Kamailio's loops remember when they reach it: the id of the last
    ``<dialog>`` read (across publications; an id-less dialog resets it to None), and whether
    the last dialog *with* an id lies in this node's own publication."""
    ident: str | None = None
    owner = -1
    flat = ((index, node) for index, body in enumerate(bodies) for node in body.nodes)
    for index, node in flat:
        if node.dialog:
            ident = node.ident
            owner = owner if ident is None else index
        yield node, ident, owner == index


def _kamailio_weights(bodies: Sequence[_Body]) -> dict[str, int]:
    """``check_relevant_state`` for every id: the weights of the states of every node that
    follows a dialog with that id (the dialog included) in the dialog's own publication."""
    sums: dict[str, int] = {}
    for node, ident, own in _in_dialog_context(bodies):
        if ident is not None and own and node.state is not None:
            key = _lower(ident)
            sums[key] = sums.get(key, 0) + KAMAILIO_WEIGHT.get(_lower(node.state), 0)
    return sums


def _kamailio_pick(bodies: Sequence[_Body]) -> _Node | None:
    """Kamailio 5.6.3's single-dialog loop (D09): each state class keeps the last node put in
    it; a non-terminated node needs a dialog with an id seen in its own publication, and is
    passed over when its id's weight sum reaches the next class (a later state of the same id
    elsewhere, or the same state twice). Until some class holds a node, the node just read is
    the provisional winner."""
    sums = _kamailio_weights(bodies)
    kept: dict[str, _Node] = {}
    winner: _Node | None = None
    for node, ident, own in _in_dialog_context(bodies):
        if node.state is None:
            continue
        state = _lower(node.state)
        relevance = sums.get(_lower(ident), 0) if ident is not None else 0
        if state == "terminated" or (
            state in _KAMAILIO_LIMIT and own and relevance < _KAMAILIO_LIMIT[state]
        ):
            kept[state] = node
        present = [kept[c] for c in KAMAILIO_CLASSES if c in kept]
        winner = present[0] if present else node
    return winner
