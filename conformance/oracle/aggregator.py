"""The reference aggregator: the one NOTIFY body presence_dialoginfo builds from N publications.

This is the oracle for group D of REQUIREMENTS.md. It models ``aggregate_xmls`` of the OpenSIPS
4.0.1 and Kamailio 5.6.3 modules (``modules/presence_dialoginfo/notify_body.c``), quirks included,
because the suite has to predict what a real server sends, not what a tidy server would send:

* Only unexpired publications count (D05), oldest ``received`` first (then the arrival counter
  ``seq``, so the order is total even where the servers' one-second ``received_time`` is not).
* Default mode (D03): every *element* child of every publication root is moved in, dialogs and
  root-level extension elements alike, in publication order then document order. The published
  root's version/state/entity are dropped, and nothing is de-duplicated (D07).
* ``force_single_dialog`` (D08-D10) only applies with at least two live publications; the winner
  is chosen by each module's own loop, simulated literally (see ``_opensips_winner`` and
  ``_kamailio_winner``), because their tie rules and Kamailio's ``check_relevant_state`` sums give
  results that no "clean" priority rule reproduces.
* A live body that is not well-formed (D13) makes the module's aggregation fail as a whole. The
  aggregate is then ``broken``: the notifier falls back per flavour (``notify_body``).

Pure: no I/O and no clock; ``now`` is passed in. Each distinct body is parsed once (bounded LRU
cache keyed by the bytes), so re-aggregating after every PUBLISH costs little.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from conformance.errors import BodyError, UsageError
from conformance.oracle import dialoginfo
from conformance.oracle.dialoginfo import Dialog, Item
from conformance.sip.message import split_uri

__all__ = [
    "DUMMY_DIALOG_ID",
    "EMPTY_FORMS",
    "FLAVOURS",
    "PRIORITY",
    "Aggregate",
    "EmptyForm",
    "Flavour",
    "Publication",
    "aggregate",
    "dummy_dialog",
    "entity_for",
    "kamailio_replaces",
    "live",
    "notify_body",
    "priority",
    "refreshed",
]

Flavour = Literal["strict", "opensips", "kamailio"]
FLAVOURS: tuple[Flavour, ...] = ("strict", "opensips", "kamailio")
"""``opensips`` and ``kamailio`` model the modules; ``strict`` is the RFC-strict reference server:
OpenSIPS's rules, except that a dialog id published by several publications is kept from the
newest one only (A19 forbids duplicate ids in one document; the modules break it, D07), and
root-level extension elements follow every dialog (A34: root content is dialog* then ##other)."""

EmptyForm = Literal["empty-document", "no-body", "dummy-dialog"]
EMPTY_FORMS: tuple[EmptyForm, ...] = ("empty-document", "no-body", "dummy-dialog")
"""What a notifier sends when nothing is published (``notify_body`` with no publication): an
empty full document (OpenSIPS, the RFC-strict default), no body (Kamailio), or Kamailio's
``force_dummy_dialog`` placeholder (D11). Profiles and the reference server declare one."""

PRIORITY = {"early": 4, "confirmed": 3, "proceeding": 2, "trying": 1, "terminated": 0}
"""The module's "most interesting first" order (D08). Unknown state text counts as 0."""

DUMMY_DIALOG_ID = "615293b33c62dec073e05d9421e9f48b"
"""The id of Kamailio's ``force_dummy_dialog`` placeholder dialog (D11)."""

# Kamailio's check_relevant_state weights (DEF_*_NODE in notify_body.c). They are summed, so two
# copies of one state can reach the next class: that is what suppresses duplicates.
_KAM_WEIGHT = {"trying": 1, "proceeding": 2, "early": 4, "confirmed": 8, "terminated": 16}
# A candidate in state S is skipped when the id's weight sum reaches this threshold.
_KAM_SKIP_AT = {"trying": 2, "proceeding": 4, "early": 8, "confirmed": 16}

_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Publication:
    """One stored publication of (presentity, ``dialog``), as the presence server keeps it."""

    body: bytes
    """As published; may be anything, even invalid XML (the modules store it unchecked, D13)."""
    etag: str
    received: float
    """When the publication (or its last modify) was stored: the aggregation order key."""
    expires: float
    """Absolute time at which it expires; it contributes while ``expires > now``."""
    seq: int = 0
    """Arrival counter breaking ties of equal ``received``, so the order is total."""


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The aggregation result before a version is written in (versions are per watcher)."""

    entity: str
    """``sip:user@host`` rebuilt from the presentity (port and parameters dropped, D02)."""
    items: tuple[Item, ...]
    """Dialogs and root-level extension elements, in output order."""
    publications: int
    """How many live publications contributed."""
    broken: bool = False
    """The module's aggregation failed (a live body not well-formed, D13; or single-dialog mode
    found no element with a state): it produces no document, see ``notify_body``."""
    reason: str = ""
    """Why ``broken`` is set, quoting the offending publication."""

    @property
    def dialogs(self) -> tuple[Dialog, ...]:
        return tuple(i for i in self.items if isinstance(i, Dialog))

    def body(self, version: int | str, *, state: str = "full") -> bytes:
        """The document with ``version`` written in (what one watcher receives)."""
        return dialoginfo.serialize(
            entity=self.entity, version=version, state=state, items=self.items
        )


# --------------------------------------------------------------------------- parsing (cached)


@dataclass(frozen=True, slots=True)
class _Child:
    """A root element child with what the modules' single-dialog loops look at."""

    item: Item
    is_dialog: bool
    """Local name is ``dialog`` (ASCII case-insensitive, any namespace): the modules' test."""
    id: str | None
    """``xmlGetProp(node, "id")``: the first attribute named ``id``, whatever its namespace."""
    state: str | None
    """``xmlNodeGetNodeContentByName(node, "state")``, see ``_state_chain``."""


@dataclass(frozen=True, slots=True)
class _Parsed:
    children: tuple[_Child, ...]
    first_dialog_id: str | None
    """What Kamailio's ``check_if_dialog`` returns (used by ``kamailio_replaces``)."""


@dataclass(frozen=True, slots=True)
class _Unparsable:
    reason: str


def _fold(text: str) -> str:
    """ASCII-only case folding, like C ``strcasecmp`` (``str.lower`` folds far more)."""
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def priority(state: str | None) -> int:
    """OpenSIPS ``get_dialog_state_priority``: case-insensitive, unknown text is 0."""
    return PRIORITY.get(_fold(state), 0) if state is not None else 0


def _xml_get_prop_id(el: etree._Element) -> str | None:
    for name, value in el.attrib.items():
        if name == "id" or name.endswith("}id"):
            return str(value)
    return None


def _content_of_first_child(state: etree._Element) -> str | None:
    """``xmlNodeGetContent(state->children)``: the content of the state element's first child
    node, NULL when it has none (``<state/>``)."""
    if state.text is not None:
        return str(state.text)
    if len(state) == 0:
        return None
    first = state[0]
    if isinstance(first.tag, str):
        return "".join(first.itertext())
    return first.text or ""  # a comment or processing instruction: its content


def _own_state(node: etree._Element) -> tuple[bool, str | None]:
    """Search ``node`` and its descendants, in document order, for a node named ``state``."""
    for sub in node.iter():
        tag = sub.tag
        if isinstance(tag, str):
            if _fold(_local(tag)) == "state":
                return True, _content_of_first_child(sub)
        elif isinstance(sub, etree._ProcessingInstruction) and _fold(sub.target) == "state":
            return True, None  # a PI named "state" matches by name and has no children
    return False, None


def _state_chain(root: etree._Element) -> list[str | None]:
    """The ``<state>`` text each root child yields in the modules' loops.

    ``xmlNodeGetNodeByName`` (pidf.c) walks the node, its subtree, *and then the node's following
    siblings*. So a root child without a ``<state>`` of its own (an extension element, a dialog
    missing its state) borrows the state of the next sibling that has one, and an empty
    ``<state/>`` stops the walk with no content. Computed backwards in one pass.
    """
    nodes = list(root)
    out: list[str | None] = [None] * len(nodes)
    following: str | None = None
    for k in range(len(nodes) - 1, -1, -1):
        found, content = _own_state(nodes[k])
        following = content if found else following
        out[k] = following
    return out


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse(body: bytes) -> _Parsed | _Unparsable:
    try:
        root = dialoginfo.parse_tree(body)
    except BodyError as exc:
        return _Unparsable(exc.message)
    states = _state_chain(root)
    children: list[_Child] = []
    first_dialog_id: str | None = None
    first_dialog_done = root.getprevious() is not None  # doc->children is not the root then
    for node, state in zip(root, states, strict=True):
        tag = node.tag
        if not isinstance(tag, str):
            pi = node if isinstance(node, etree._ProcessingInstruction) else None
            if pi is not None and not first_dialog_done and _fold(pi.target) == "dialog":
                first_dialog_done = True  # xmlNodeGetChildByName matches a PI by name too
            continue
        is_dialog = _fold(_local(tag)) == "dialog"
        node_id = _xml_get_prop_id(node)
        if is_dialog and not first_dialog_done:
            first_dialog_done = True
            first_dialog_id = node_id
        item: Item = (
            dialoginfo.dialog_from_element(node)
            if tag == dialoginfo.DIALOG_TAG
            else dialoginfo.element_from(node)
        )
        children.append(_Child(item=item, is_dialog=is_dialog, id=node_id, state=state))
    return _Parsed(children=tuple(children), first_dialog_id=first_dialog_id)


# --------------------------------------------------------------------------- public API


def live(publications: Iterable[Publication], now: float) -> list[Publication]:
    """Unexpired publications (``expires > now``) in aggregation order: oldest first."""
    return sorted((p for p in publications if p.expires > now), key=lambda p: (p.received, p.seq))


def entity_for(presentity: str) -> str:
    """The ``entity`` the modules write: ``"sip:" + user + "@" + host`` from the presentity URI.

    The scheme is always ``sip:`` (a ``sips:`` presentity loses its ``s``), the port, password,
    parameters and headers are dropped, user and host are kept as written (escapes included),
    which is what concatenating the parsed Request-URI's user and host gives (A12, T5).
    """
    uri = split_uri(presentity)
    if uri is None:
        raise UsageError(f"presentity {presentity!r} is not a URI like sip:user@host")
    if not uri.host:
        raise UsageError(f"presentity {presentity!r} has no host")
    return f"sip:{uri.user}@{uri.host}"


def dummy_dialog() -> Dialog:
    """Kamailio's ``force_dummy_dialog`` placeholder (D11), as a watcher parses it on the wire.

    Kamailio's template has no namespace, but libxml serialises the moved ``<dialog>`` without
    ``xmlns=""`` under the namespaced new root, so watchers read it in the dialog-info namespace.
    """
    return dialoginfo.dialog(DUMMY_DIALOG_ID, "terminated", direction="recipient")


def aggregate(
    publications: Sequence[Publication],
    *,
    presentity: str,
    now: float,
    single_dialog: bool = False,
    flavour: Flavour = "opensips",
) -> Aggregate:
    """What ``aggregate_xmls`` builds from the live ``publications`` of one presentity.

    Publications may be given in any order; expired ones are ignored. With no live publication
    the result has no items and ``publications == 0``; the notifier then sends its flavour's
    idle form (``notify_body``).
    """
    if flavour not in FLAVOURS:
        raise UsageError(f"unknown flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")
    entity = entity_for(presentity)
    current = live(publications, now)
    if flavour == "strict":
        current = strict_publications(current)
    parsed: list[_Parsed] = []
    for pub in current:
        result = _parse(bytes(pub.body))
        if isinstance(result, _Unparsable):
            # xmlParseMemory fails for this body, so the module's aggregation returns NULL: one
            # bad publisher blanks the aggregate for every watcher (D13, T7).
            return Aggregate(
                entity=entity,
                items=(),
                publications=len(current),
                broken=True,
                reason=f"publication {pub.etag!r} is not well-formed: {result.reason}",
            )
        parsed.append(result)
    if not single_dialog or len(parsed) < 2:
        # D03, and D10: single-dialog mode is skipped when only one body exists (j == 1).
        items = tuple(c.item for p in parsed for c in p.children)
        if flavour == "strict":
            # A34: the schema's root content is dialog* then ##other, so root-level extension
            # elements of every publication follow all dialogs (each group in order).
            items = tuple(i for i in items if isinstance(i, Dialog)) + tuple(
                i for i in items if not isinstance(i, Dialog)
            )
        return Aggregate(entity=entity, items=items, publications=len(parsed))
    winner = _kamailio_winner(parsed) if flavour == "kamailio" else _opensips_winner(parsed)
    if winner is None:
        # Neither module finds a node with a <state>: OpenSIPS fails xmlAddChild(root, NULL),
        # Kamailio logs "no winning node found"; both then return no document.
        return Aggregate(
            entity=entity,
            items=(),
            publications=len(parsed),
            broken=True,
            reason=f"force_single_dialog: no element with a <state> in {len(parsed)} publications",
        )
    return Aggregate(entity=entity, items=(winner.item,), publications=len(parsed))


def _opensips_winner(parsed: Sequence[_Parsed]) -> _Child | None:
    """OpenSIPS: every root element child with a state is a candidate (not only dialogs); the
    first one of the highest priority wins (strict ``>``; unknown text ties with terminated)."""
    best = -1
    winner: _Child | None = None
    for pub in parsed:
        for child in pub.children:
            if child.state is None:
                continue
            rank = priority(child.state)
            if rank > best:
                best, winner = rank, child
    return winner


def _kamailio_walk(parsed: Sequence[_Parsed]) -> Iterator[tuple[_Child, str, str | None, bool]]:
    """Every node with a state, in order, as Kamailio's loops see it: ``(node, folded state,
    current dialog id, own)``.

    The current dialog is the most recent ``<dialog>`` seen across publications (its id may be
    None); ``own`` says whether the most recent ``<dialog>`` *with* an id lies in the node's own
    publication. Both loops (``check_relevant_state`` and the winner loop) track the same two
    variables, so they are kept here once.
    """
    current_id: str | None = None
    current_pub = -1
    for index, pub in enumerate(parsed):
        for child in pub.children:
            if child.is_dialog:
                current_id = child.id
                if child.id is not None:
                    current_pub = index
            if child.state is not None:
                yield child, _fold(child.state), current_id, current_pub == index


def _kamailio_weights(parsed: Sequence[_Parsed]) -> dict[str, int]:
    """``check_relevant_state`` for every id at once (it is O(all nodes) per call in C).

    A node counts for an id when the most recent ``<dialog>`` seen (across publications) has that
    id (compared case-insensitively) and lies in the node's own publication: extension elements
    after a dialog count for it. Its state's weight is added; the node itself is included.
    """
    totals: dict[str, int] = {}
    for _child, state, current_id, own in _kamailio_walk(parsed):
        if current_id is None or not own:
            continue
        weight = _KAM_WEIGHT.get(state, 0)
        if weight:
            key = _fold(current_id)
            totals[key] = totals.get(key, 0) + weight
    return totals


def _kamailio_winner(parsed: Sequence[_Parsed]) -> _Child | None:
    """Kamailio 5.6.3's loop, step by step.

    Each class (early, confirmed, proceeding, trying, terminated) remembers the *last* node
    assigned to it, and the winner is the best non-empty class, so ties go to the last node.
    A non-terminated candidate is considered only when a ``<dialog>`` with an id was seen in its
    own publication, and it is skipped when its id's ``check_relevant_state`` sum reaches the
    next class: ``D early`` + ``D confirmed`` gives 12 >= 8, so early is skipped and confirmed
    (12 < 16) stays. The same id twice in the same state also sums past the threshold (4 + 4), so
    both copies are skipped. Terminated nodes are never checked. When no class holds a node yet,
    the node just examined becomes the provisional winner ("assume a failure somewhere"), so if
    every candidate was skipped the last node with a state is sent.
    """
    weights = _kamailio_weights(parsed)
    classes: dict[str, _Child] = {}
    winner: _Child | None = None
    for child, state, dialog_id, own in _kamailio_walk(parsed):
        if state == "terminated":
            classes["terminated"] = child
        elif state in _KAM_SKIP_AT and own:
            relevance = weights.get(_fold(dialog_id), 0) if dialog_id is not None else 0
            if relevance < _KAM_SKIP_AT[state]:
                classes[state] = child
        winner = next(
            (
                classes[name]
                for name in ("early", "confirmed", "proceeding", "trying", "terminated")
                if name in classes
            ),
            child,
        )
    return winner


def strict_publications(pubs: Sequence[Publication]) -> list[Publication]:
    """The strict flavour's view of the store, in one pass over each body.

    A dialog id published by several publications is kept from the newest one only (A19), and
    session descriptions are withheld (A29: no watcher asked for them, nor was one authorised).
    Publications are rewritten, not dropped, so the number of publications (which decides
    whether single-dialog mode applies, D10) is unchanged.
    """
    ordered = sorted(pubs, key=lambda p: (p.received, p.seq))
    seen: set[str] = set()
    out: list[Publication] = []
    for pub in reversed(ordered):
        try:
            info = dialoginfo.parse(pub.body)
        except BodyError:
            out.append(pub)
            continue
        kept: list[dialoginfo.Item] = []
        for item in reversed(info.items):
            if isinstance(item, Dialog) and item.id is not None:
                if item.id in seen:
                    continue
                seen.add(item.id)
            kept.append(item)
        kept.reverse()
        changed = len(kept) != len(info.items)
        if b"session-description" in pub.body:
            kept = [_dialog_without_sdp(i) if isinstance(i, Dialog) else i for i in kept]
            changed = True
        if changed:
            body = dialoginfo.serialize(
                entity=info.entity or "",
                version=info.version or "0",
                state=info.state or "full",
                items=kept,
            )
            pub = dataclasses.replace(pub, body=body)
        out.append(pub)
    out.reverse()
    return out


def _dialog_without_sdp(item: Dialog) -> Dialog:
    root = dialoginfo.parse_tree(item.xml.encode())
    for element in list(root.iter(f"{{{dialoginfo.NS}}}session-description")):
        parent = element.getparent()
        if parent is not None:  # always: the root is the <dialog>, not a session-description
            parent.remove(element)
    return dialoginfo.dialog_from_element(root)


def refreshed(
    pub: Publication, *, etag: str, now: float, expires: float, seq: int, flavour: Flavour
) -> Publication:
    """``pub`` after a body-less refresh PUBLISH stored at ``now``: new ETag and lifetime.

    Where the refreshed publication then sorts is the flavour's business. Kamailio 5.6.3's
    ``update_presentity`` writes ``received_time`` on every update, a refresh included, so the
    publication moves to the end of the aggregation order (seen live: A early, B early, refresh
    A, and the single-dialog tie, which Kamailio gives to the last candidate, goes to A; see
    BEHAVIOUR.md "Verified since"). OpenSIPS and the strict flavour keep its place; ``seq`` is
    then ignored. A modify moves to the end in every flavour (it is a new store).
    """
    if flavour == "kamailio":
        return dataclasses.replace(pub, etag=etag, expires=expires, received=now, seq=seq)
    return dataclasses.replace(pub, etag=etag, expires=expires)


def kamailio_replaces(stored: Sequence[Publication], new_body: bytes) -> Publication | None:
    """The stored publication Kamailio deletes when a *new* PUBLISH (no SIP-If-Match) arrives.

    Publication-store behaviour, not aggregation: Kamailio's ``presence`` (``update_presentity``
    -> ``delete_presentity_if_dialog_id_exists``) reads the ``id`` of the first ``<dialog>`` child
    of the new body's root and deletes the first stored publication of the same presentity and
    event whose first dialog has exactly (case-sensitively) that id; its ETag then gets 412. Pass
    ``stored`` in storage order and include publications that expired but were not yet cleaned
    (the lookup does not filter on expiry). Bodies that do not parse never match.
    """
    new = _parse(bytes(new_body))
    if isinstance(new, _Unparsable) or new.first_dialog_id is None:
        return None
    for pub in stored:
        old = _parse(bytes(pub.body))
        if isinstance(old, _Parsed) and old.first_dialog_id == new.first_dialog_id:
            return pub
    return None


def notify_body(
    agg: Aggregate,
    *,
    version: int | str,
    flavour: Flavour,
    force_dummy_dialog: bool = False,
) -> bytes | None:
    """The body a server of ``flavour`` puts in a full-state NOTIFY; None means no body at all.

    OpenSIPS answers "nothing" (no publication, or a failed aggregation) with an empty full
    document; Kamailio sends no body when aggregation fails, and for no publication either no
    body or, with ``force_dummy_dialog``, the dummy terminated dialog (D11, D13).
    """
    if flavour not in FLAVOURS:
        raise UsageError(f"unknown flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")
    if agg.broken:
        if flavour == "opensips":
            return dialoginfo.serialize(entity=agg.entity, version=version, state="full")
        return None
    if agg.publications == 0:
        if flavour == "opensips":
            return dialoginfo.serialize(entity=agg.entity, version=version, state="full")
        if force_dummy_dialog:
            return dialoginfo.serialize(
                entity=agg.entity, version=version, state="full", items=(dummy_dialog(),)
            )
        return None
    return agg.body(version)
