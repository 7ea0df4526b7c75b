"""dialog-info bodies generated from the RFC 4235 schema, valid and deliberately invalid.

Why a generator and not more fixtures: hand-written bodies cover what someone thought of; a
server also meets every other shape the schema allows (a prefixed namespace, a participant with
every child, an RFC 7463 element, a 500-character Unicode display name, a comment between two
dialogs). Every valid body here is built from the errata schema's content model
(schemas/dialog-info.errata.xsd, and sa-dialog-info.xsd for RFC 7463): each element and
attribute it declares appears, optional parts are present or absent, extensions sit exactly
where the schema's ``xs:any namespace="##other"`` permits them. tests/unit/test_explore_bodies.py
walks the XSDs and checks that a fixed seed's bodies contain every declared element and
attribute, that each valid body passes ``conformance.oracle.schema`` without a single failed
finding, and that each invalid variant fails with the requirement id it names.

Pure and deterministic: everything is drawn from the ``random.Random`` the caller passes, so a
seed reproduces a body exactly (no global state, no clock, no I/O).

Caps (issue 13): a body is at most ``UDP_BODY_CAP`` bytes unless the caller allows more (TCP);
no DOCTYPE ever carries an external identifier, and the one entity probe is at most
``ENTITY_PROBE_CAP`` bytes.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from conformance.oracle.dialoginfo import CONTENT_TYPE, NS, SA_NS, STATES

UDP_BODY_CAP = 8000
"""Bytes: a PUBLISH of this body with its headers still fits a UDP datagram comfortably."""
ENTITY_PROBE_CAP = 1024
"""Bytes: the largest entity-declaration probe ever generated (expansion is never asked for)."""
EXT_NAMESPACES = ("urn:example:explore:ext", "http://example.com/ns/dialog-ext")
"""Namespaces of the generic extension elements (not declared by any schema: lax skips them)."""
EVENTS = ("cancelled", "rejected", "replaced", "local-bye", "remote-bye", "error", "timeout")
PREFIXES = ("d", "di", "ns0", "dlg", "ñs", "x-y.z")
"""Prefixes for the RFC 4235 namespace (any NCName works, Unicode ones too)."""
WRONG_CONTENT_TYPES = (
    "application/pidf+xml",
    "text/plain",
    "application/xml",
    "application/dialog-info",
)


@dataclass(frozen=True)
class Node:
    """An element to serialize: namespace, local name, attributes in order, children, text."""

    ns: str | None
    local: str
    attrs: tuple[tuple[str, str], ...] = ()
    children: tuple[Node, ...] = ()
    text: str | None = None


@dataclass(frozen=True)
class Body:
    """A generated body and what it is meant to be."""

    data: bytes
    kind: str
    """``valid``, or the name of the invalid variant (a key of INVALID_KINDS)."""
    content_type: str = CONTENT_TYPE
    expect: str | None = None
    """The requirement id a correct oracle must fail for this body (None: valid). For
    ``wrong-content-type`` the body itself is valid and the id is the PUBLISH rule (C07)."""
    dialogs: tuple[tuple[str, str], ...] = ()
    """(id, state) of each dialog of a valid body, in document order."""

    @property
    def valid(self) -> bool:
        return self.expect is None

    @property
    def dialog_ids(self) -> tuple[str, ...]:
        return tuple(i for i, _ in self.dialogs)


# --------------------------------------------------------------------------- text and values

_POOLS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "-._~!$()*+,;=:@/?#[]% ",
    "<>&\"'",
    "éèçñüßÅØæœ",
    "αβγδΩЖЩя",
    "中文漢字日本語한국어",
    "עבריתالعربية",
    "\u0301\u0308\u200d\u00a0\u2028",
    "☎✓😀𝄞🇫🇷",
)
"""Character pools for free text: ASCII, XML specials, Latin, Greek/Cyrillic, CJK, RTL,
combining marks / ZWJ / NBSP / LINE SEPARATOR, astral-plane characters. All are XML 1.0 Chars;
tab, CR and LF are added separately and written as character references in attributes."""
_NCNAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_éñΩ中"
_NCNAME_REST = _NCNAME_START + "0123456789-."


def _length(rng: random.Random, long: bool) -> int:
    roll = rng.random()
    if roll < 0.05:
        return 0
    if roll < 0.75:
        return rng.randint(1, 12)
    if roll < 0.95 or not long:
        return rng.randint(13, 80)
    return rng.randint(200, 1200)


def text(
    rng: random.Random, *, long: bool = True, empty: bool = True, controls: bool = True
) -> str:
    """Free text: any XML character mix, from empty to long."""
    n = _length(rng, long)
    if n == 0 and not empty:
        n = 1
    pools = rng.sample(_POOLS, rng.randint(1, 3))
    out = []
    for _ in range(n):
        if controls and rng.random() < 0.02:
            out.append(rng.choice("\t\n\r"))
        else:
            out.append(rng.choice(rng.choice(pools)))
    return "".join(out)


def token(rng: random.Random, *, long: bool = True) -> str:
    """An identifier-like value (dialog id, tag, Call-ID): mostly ASCII, sometimes not."""
    if rng.random() < 0.7:
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-._~"
        n = rng.randint(1, 24) if not long or rng.random() < 0.9 else rng.randint(100, 400)
        return "".join(rng.choice(alphabet) for _ in range(n))
    return text(rng, long=long, empty=False)


def ncname(rng: random.Random) -> str:
    return rng.choice(_NCNAME_START) + "".join(
        rng.choice(_NCNAME_REST) for _ in range(rng.randint(0, 8))
    )


def sip_uri(rng: random.Random) -> str:
    """A SIP/SIPS/tel URI (xs:anyURI): percent-escapes and parameters included."""
    scheme = rng.choice(("sip", "sip", "sips", "tel"))
    if scheme == "tel":
        return "tel:+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 15)))
    user = "".join(
        rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
        for _ in range(rng.randint(1, 16))
    )
    if rng.random() < 0.2:
        user += "%" + rng.choice(("20", "40", "C3%A9", "E2%98%8E"))
    # No IPv6 literal: "sip:u@[::1]" has no authority, so RFC 3986 (and xs:anyURI in
    # libxml2) forbids its brackets.
    host = rng.choice(("example.com", "127.0.0.1", "localhost", "host-1.example.org"))
    uri = f"{scheme}:{user}@{host}"
    if rng.random() < 0.3:
        uri += f":{rng.randint(1, 65535)}"
    if rng.random() < 0.3:
        uri += rng.choice((";transport=udp", ";user=phone", ";lr", ";x=1;y"))
    return uri


_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0\r\n"


def _count(rng: random.Random, most: int) -> int:
    return rng.randint(1, most) if rng.random() < 0.5 else 1


# --------------------------------------------------------------------------- building

_SA_ELEMENTS = ("joined-dialog", "replaced-dialog", "appearance", "exclusive")


def _maybe(rng: random.Random, p: float = 0.5) -> bool:
    return rng.random() < p


def _shuffled(rng: random.Random, attrs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    rng.shuffle(attrs)  # attribute order is not significant in XML
    return tuple(attrs)


def nameaddr(rng: random.Random, local: str) -> Node:
    """identity / referred-by (type nameaddr: anyURI content, optional ``display``)."""
    attrs = [("display", text(rng))] if _maybe(rng) else []
    return Node(NS, local, tuple(attrs), text=sip_uri(rng))


def participant(rng: random.Random, local: str, *, long: bool) -> Node:
    """local / remote (type participant): identity, target, session-description, cseq, any."""
    kids: list[Node] = []
    if _maybe(rng, 0.7):
        kids.append(nameaddr(rng, "identity"))
    if _maybe(rng):
        params = tuple(
            Node(NS, "param", _shuffled(rng, [("pname", token(rng)), ("pval", text(rng))]))
            for _ in range(rng.choice((0, 1, 1, 2, 3)))
        )
        kids.append(Node(NS, "target", (("uri", sip_uri(rng)),), params))
    if _maybe(rng, 0.3):
        content = _SDP if _maybe(rng) else text(rng, long=long)
        kids.append(
            Node(
                NS,
                "session-description",
                (("type", rng.choice(("application/sdp", ""))),),
                text=content,
            )
        )
    if _maybe(rng, 0.4):
        kids.append(Node(NS, "cseq", text=str(rng.choice((0, 1, rng.randint(2, 2**31))))))
    kids.extend(extensions(rng, sa=False))
    return Node(NS, local, children=tuple(kids))


def extension(rng: random.Random) -> Node:
    """A generic extension element in another namespace (lax: no schema checks it)."""
    ns = rng.choice(EXT_NAMESPACES)
    attrs = [(ncname(rng), text(rng, long=False)) for _ in range(rng.randint(0, 2))]
    kids: tuple[Node, ...] = ()
    if _maybe(rng, 0.3):
        kids = (Node(ns, ncname(rng), text=text(rng, long=False)),)
    content = text(rng, long=False) if not kids and _maybe(rng) else None
    unique = dict(attrs)  # an attribute name may appear once per element
    return Node(ns, ncname(rng), tuple(unique.items()), kids, content)


def sa_element(rng: random.Random, local: str | None = None) -> Node:
    """An RFC 7463 (shared appearance) element, valid against sa-dialog-info.xsd."""
    local = local or rng.choice(_SA_ELEMENTS)
    if local in ("joined-dialog", "replaced-dialog"):
        attrs = [("call-id", token(rng)), ("local-tag", token(rng)), ("remote-tag", token(rng))]
        return Node(SA_NS, local, _shuffled(rng, attrs))
    if local == "appearance":
        return Node(SA_NS, local, text=str(rng.choice((0, 1, 2, rng.randint(-5, 10**6)))))
    return Node(SA_NS, local, text=rng.choice(("true", "false", "1", "0")))


def extensions(rng: random.Random, *, sa: bool) -> list[Node]:
    out: list[Node] = []
    if _maybe(rng, 0.25):
        out.extend(extension(rng) for _ in range(_count(rng, 2)))
    if sa and _maybe(rng, 0.3):
        out.extend(sa_element(rng) for _ in range(_count(rng, 3)))
    rng.shuffle(out)
    return out


def state_node(rng: random.Random, value: str) -> Node:
    attrs: list[tuple[str, str]] = []
    if value == "terminated":
        if _maybe(rng):
            attrs.append(("event", rng.choice(EVENTS)))
        if _maybe(rng):
            attrs.append(
                ("code", str(rng.choice((100, 486, 487, 603, 699, rng.randint(100, 699)))))
            )
    return Node(NS, "state", _shuffled(rng, attrs), text=value)


def dialog_node(rng: random.Random, did: str, state: str, *, long: bool) -> Node:
    """One ``<dialog>``: state first, then the optional RFC 4235 children in schema order."""
    attrs = [("id", did)]
    for name in ("call-id", "local-tag", "remote-tag"):
        if _maybe(rng, 0.6):
            attrs.append((name, token(rng, long=long)))
    if _maybe(rng, 0.6):
        attrs.append(("direction", rng.choice(("initiator", "recipient"))))
    kids = [state_node(rng, state)]
    if _maybe(rng, 0.3):
        kids.append(Node(NS, "duration", text=str(rng.choice((0, 1, rng.randint(2, 10**9))))))
    if _maybe(rng, 0.2):
        rattrs = [("call-id", token(rng)), ("local-tag", token(rng)), ("remote-tag", token(rng))]
        kids.append(Node(NS, "replaces", _shuffled(rng, rattrs)))
    if _maybe(rng, 0.2):
        kids.append(nameaddr(rng, "referred-by"))
    if _maybe(rng, 0.2):
        hops = tuple(Node(NS, "hop", text=f"<{sip_uri(rng)};lr>") for _ in range(_count(rng, 3)))
        kids.append(Node(NS, "route-set", children=hops))
    for side in ("local", "remote"):
        if _maybe(rng):
            kids.append(participant(rng, side, long=long))
    kids.extend(extensions(rng, sa=True))
    return Node(NS, "dialog", _shuffled(rng, attrs), tuple(kids))


def document_node(
    rng: random.Random,
    *,
    entity: str,
    version: int,
    state: str,
    dialogs: list[tuple[str, str]],
    long: bool,
) -> Node:
    root_attrs = [("version", str(version)), ("state", state), ("entity", entity)]
    # Each dialog and the root's extensions draw from their own generator, seeded from this
    # one and the dialog id: a shrinker that removes one dialog leaves the others (and the
    # root's extensions) exactly as they were.
    root_rng = random.Random(rng.getrandbits(64))
    base = rng.getrandbits(64)
    kids: list[Node] = [
        dialog_node(random.Random(f"{base}:{d}"), d, s, long=long) for d, s in dialogs
    ]
    kids.extend(extension(root_rng) for _ in range(root_rng.choice((0, 0, 0, 1, 2))))
    return Node(NS, "dialog-info", _shuffled(rng, root_attrs), tuple(kids))


# --------------------------------------------------------------------------- serializing


@dataclass(frozen=True)
class Style:
    """How one document is written: none of it changes what the document means."""

    prefix: str
    """Prefix of the RFC 4235 namespace; "" is the default namespace."""
    sa_prefix: str
    declaration: str
    quote: str
    indent: str | None
    newline: str
    comments: bool
    cdata: bool


def style(rng: random.Random) -> Style:
    return Style(
        prefix="" if _maybe(rng) else rng.choice(PREFIXES),
        sa_prefix=rng.choice(("sa", "shared", "")),
        declaration=rng.choice(
            (
                "",
                '<?xml version="1.0"?>',
                '<?xml version="1.0" encoding="UTF-8"?>',
                "<?xml version='1.0' encoding='utf-8'?>",
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
            )
        ),
        quote=rng.choice("\"'"),
        indent=rng.choice((None, "", " ", "  ", "\t")),
        newline=rng.choice(("\n", "\r\n")),
        comments=_maybe(rng, 0.2),
        cdata=_maybe(rng, 0.2),
    )


def _escape_attr(value: str, quote: str) -> str:
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace(quote, "&quot;" if quote == '"' else "&apos;")
    # Character references keep tab/CR/LF through attribute-value normalisation.
    return out.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")


def _escape_text(value: str) -> str:
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return out.replace("\r", "&#13;")  # a literal CR would be normalised away on parsing


def serialize(root: Node, st: Style, rng: random.Random) -> bytes:
    """Write ``root`` in style ``st``; ``rng`` places the optional comments."""
    parts: list[str] = []
    if st.declaration:
        parts.append(st.declaration + st.newline)
    if st.comments:
        parts.append("<!-- generated: é ☎ -->" + st.newline)
    _write(root, st, rng, parts, depth=0, scope={})
    parts.append(st.newline if rng.random() < 0.5 else "")
    return "".join(parts).encode("utf-8")


def _write(
    node: Node,
    st: Style,
    rng: random.Random,
    parts: list[str],
    *,
    depth: int,
    scope: dict[str, str],
) -> None:
    q = st.quote
    declare: list[tuple[str, str]] = []
    scope = dict(scope)  # namespace -> prefix in force here
    if node.ns is not None and node.ns not in scope:
        if node.ns == NS:
            prefix = st.prefix
        elif node.ns == SA_NS:
            prefix = st.sa_prefix
        else:
            prefix = "x" + str(EXT_NAMESPACES.index(node.ns)) if node.ns in EXT_NAMESPACES else "e"
        if prefix == "" and "" in scope.values():
            # The default namespace is taken by another namespace here: redeclare it locally.
            scope = {k: v for k, v in scope.items() if v != ""}
        scope[node.ns] = prefix
        declare.append((prefix, node.ns))
    elif node.ns is None and "" in scope.values():
        scope = {k: v for k, v in scope.items() if v != ""}
        declare.append(("", ""))
    prefix = scope.get(node.ns, "") if node.ns is not None else ""
    name = f"{prefix}:{node.local}" if prefix else node.local
    pad = "" if st.indent is None else st.newline + st.indent * depth
    parts.append(pad + "<" + name)
    for p, ns in declare:
        parts.append(f" xmlns{':' + p if p else ''}={q}{_escape_attr(ns, q)}{q}")
    for attr, value in node.attrs:
        parts.append(f" {attr}={q}{_escape_attr(value, q)}{q}")
    if not node.children and node.text is None:
        parts.append("/>")
        return
    parts.append(">")
    if node.text is not None:
        if st.cdata and "]]>" not in node.text and "\r" not in node.text and node.text:
            parts.append(f"<![CDATA[{node.text}]]>")
        else:
            parts.append(_escape_text(node.text))
    for child in node.children:
        if st.comments and rng.random() < 0.2:
            parts.append(f"<!--{text(rng, long=False, controls=False).replace('-', '_')}_-->")
        _write(child, st, rng, parts, depth=depth + 1, scope=scope)
    if node.children and st.indent is not None:
        parts.append(st.newline + st.indent * depth)
    parts.append(f"</{name}>")


# --------------------------------------------------------------------------- valid bodies

PARTS = (
    "style",
    "root-extensions",
    "dialog-extensions",
    "participants",
    "optional-children",
    "optional-attributes",
)
"""Parts of a valid body ``valid(drop=...)`` can leave out: the writing style (prefixes,
comments, CDATA, indentation, declaration), extension elements under the root or in dialogs
and participants, <local>/<remote>, the optional dialog children, the optional attributes."""
_OPTIONAL_CHILDREN = ("duration", "replaces", "referred-by", "route-set")


def prune(root: Node, dropped: frozenset[str]) -> Node:
    """``root`` without the PARTS named in ``dropped``; dialog ids and states are kept."""
    if not dropped - {"style"}:
        return root
    kids = []
    for child in root.children:
        if child.ns != NS:
            if "root-extensions" not in dropped:
                kids.append(child)
            continue
        kids.append(_prune_dialog(child, dropped))
    return dataclasses.replace(root, children=tuple(kids))


def _prune_dialog(dialog: Node, dropped: frozenset[str]) -> Node:
    kids = []
    for child in dialog.children:
        if child.ns != NS:
            if "dialog-extensions" in dropped:
                continue
        elif child.local in ("local", "remote"):
            if "participants" in dropped:
                continue
            if "dialog-extensions" in dropped:
                child = dataclasses.replace(
                    child, children=tuple(c for c in child.children if c.ns == NS)
                )
        elif child.local in _OPTIONAL_CHILDREN and "optional-children" in dropped:
            continue
        elif child.local == "state" and "optional-attributes" in dropped:
            child = dataclasses.replace(child, attrs=())
        kids.append(child)
    attrs = dialog.attrs
    if "optional-attributes" in dropped:
        attrs = tuple(a for a in attrs if a[0] == "id")
    return dataclasses.replace(dialog, attrs=attrs, children=tuple(kids))


def valid(
    rng: random.Random,
    *,
    entity: str,
    version: int | None = None,
    state: str | None = "full",
    dialogs: list[tuple[str, str]] | None = None,
    max_dialogs: int = 6,
    max_bytes: int = UDP_BODY_CAP,
    drop: Iterable[str] = (),
) -> Body:
    """A body the errata schema and every RFC 4235 rule accept.

    ``dialogs`` fixes (id, state) pairs (the operation model chooses them); otherwise 0 to
    ``max_dialogs`` fresh ones. ``version``/``state`` None draw them. Dialogs are dropped from
    the end, then long values shortened, until the body fits ``max_bytes``. ``drop`` names
    PARTS to leave out after drawing (the shrinker's "smaller bodies"): the same seed with
    more dropped is the same body with less in it, still valid.
    """
    dropped = frozenset(drop)
    unknown = dropped - set(PARTS)
    if unknown:
        raise ValueError(f"unknown body parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    if version is None:
        version = rng.choice((0, 1, rng.randint(2, 1000), 2**32 - 1))
    if state is None:
        state = rng.choice(("full", "partial"))
    if dialogs is None:
        ids: set[str] = set()
        dialogs = []
        for _ in range(rng.choice((0, *range(1, max_dialogs + 1)))):
            did = token(rng)
            if did not in ids:
                ids.add(did)
                dialogs.append((did, rng.choice(STATES)))
    st = style(rng)
    if "style" in dropped:
        st = Style("", "sa", "", '"', None, "\n", comments=False, cdata=False)
    long = True
    kept = list(dialogs)
    while True:
        root = document_node(
            rng, entity=entity, version=version, state=state, dialogs=kept, long=long
        )
        root = prune(root, dropped)
        data = serialize(root, st, rng)
        if len(data) <= max_bytes:
            return Body(data, "valid", dialogs=tuple(kept))
        if long:
            long = False
        elif kept:
            kept.pop()
        else:
            st = dataclasses.replace(st, indent=None, comments=False)
            root = Node(NS, "dialog-info", root.attrs)
            return Body(serialize(root, st, rng), "valid", dialogs=())


# --------------------------------------------------------------------------- invalid bodies


def _first_dialog(root: Node) -> tuple[int, Node]:
    for i, child in enumerate(root.children):
        if child.ns == NS and child.local == "dialog":
            return i, child
    raise ValueError("no dialog")  # pragma: no cover - callers build one


def _replace_child(root: Node, index: int, new: Node | None) -> Node:
    kids = list(root.children)
    if new is None:
        del kids[index]
    else:
        kids[index] = new
    return dataclasses.replace(root, children=tuple(kids))


def _drop_attr(node: Node, name: str) -> Node:
    return dataclasses.replace(node, attrs=tuple(a for a in node.attrs if a[0] != name))


def _set_attr(node: Node, name: str, value: str) -> Node:
    return dataclasses.replace(node, attrs=(*_drop_attr(node, name).attrs, (name, value)))


def _on_dialog(
    change: Callable[[Node, random.Random], Node],
) -> Callable[[Node, random.Random], Node]:
    def apply(root: Node, rng: random.Random) -> Node:
        i, d = _first_dialog(root)
        return _replace_child(root, i, change(d, rng))

    return apply


def _with_child(
    make: Callable[[random.Random], Node], *, first: bool = False
) -> Callable[[Node, random.Random], Node]:
    """Add a child to the first dialog: after <state> (schema order), or before it."""

    def change(d: Node, rng: random.Random) -> Node:
        kids = list(d.children)
        kids.insert(0 if first else 1, make(rng))
        return dataclasses.replace(d, children=tuple(kids))

    return _on_dialog(change)


def _participant_with(
    make: Callable[[random.Random], Node],
) -> Callable[[Node, random.Random], Node]:
    return _with_child(lambda rng: Node(NS, "local", children=(make(rng),)))


_TREE_MUTATIONS: dict[str, tuple[str, Callable[[Node, random.Random], Node]]] = {
    "missing-version": ("A06", lambda r, _: _drop_attr(r, "version")),
    "missing-state": ("A06", lambda r, _: _drop_attr(r, "state")),
    "missing-entity": ("A06", lambda r, _: _drop_attr(r, "entity")),
    "bad-root-state": (
        "A13",
        lambda r, rng: _set_attr(r, "state", rng.choice(("Full", "", "delta"))),
    ),
    "bad-version": (
        "A11",
        lambda r, rng: _set_attr(r, "version", rng.choice(("-1", "1.5", "x", str(2**32), "٣"))),
    ),
    "dialog-without-id": ("A18", _on_dialog(lambda d, _: _drop_attr(d, "id"))),
    "duplicate-ids": (
        "A19",
        lambda r, _: dataclasses.replace(r, children=(_first_dialog(r)[1], *r.children)),
    ),
    "dialog-without-state": (
        "A21",
        _on_dialog(lambda d, _: dataclasses.replace(d, children=d.children[1:])),
    ),
    "state-not-first": ("A21", _with_child(lambda rng: Node(NS, "duration", text="5"), first=True)),
    "two-states": ("A21", _with_child(lambda rng: Node(NS, "state", text="trying"))),
    "bad-state-value": (
        "A22",
        _on_dialog(
            lambda d, rng: _replace_child(
                d, 0, Node(NS, "state", text=rng.choice(("ringing", "Confirmed", "", "early-ish")))
            )
        ),
    ),
    "bad-event": (
        "A23",
        _on_dialog(
            lambda d, rng: _replace_child(
                d,
                0,
                Node(NS, "state", (("event", rng.choice(("hangup", "BYE"))),), text="terminated"),
            )
        ),
    ),
    "bad-code": (
        "A23",
        _on_dialog(
            lambda d, rng: _replace_child(
                d,
                0,
                Node(NS, "state", (("code", rng.choice(("99", "700", "abc"))),), text="terminated"),
            )
        ),
    ),
    "bad-direction": (
        "A24",
        _on_dialog(
            lambda d, rng: _set_attr(d, "direction", rng.choice(("receiver", "Initiator", "")))
        ),
    ),
    "target-without-uri": ("A28", _participant_with(lambda rng: Node(NS, "target"))),
    "param-without-pval": (
        "A28",
        _participant_with(
            lambda rng: Node(
                NS, "target", (("uri", "sip:a@b"),), (Node(NS, "param", (("pname", "p"),)),)
            )
        ),
    ),
    "session-description-without-type": (
        "A28",
        _participant_with(lambda rng: Node(NS, "session-description", text="v=0")),
    ),
    "replaces-missing-attribute": (
        "A03",
        _with_child(lambda rng: Node(NS, "replaces", (("call-id", "c"), ("local-tag", "l")))),
    ),
    "route-set-without-hop": ("A03", _with_child(lambda rng: Node(NS, "route-set"))),
    "rfc4235-element-under-root": (
        "A21",
        lambda r, _: dataclasses.replace(
            r, children=(*r.children, Node(NS, "state", text="early"))
        ),
    ),
    "extension-before-dialog": (
        "A34",
        lambda r, rng: dataclasses.replace(r, children=(extension(rng), *r.children)),
    ),
    "invalid-rfc7463-element": (
        "A34",
        _on_dialog(
            lambda d, rng: dataclasses.replace(
                d,
                children=(*d.children, Node(SA_NS, "appearance", text=rng.choice(("one", "1.5")))),
            )
        ),
    ),
}

_LITERALS: dict[str, tuple[str, Callable[[random.Random, str], bytes]]] = {
    "empty-root": (
        "A06",
        lambda rng, entity: rng.choice(
            (f'<dialog-info xmlns="{NS}"/>', f'<d:dialog-info xmlns:d="{NS}"></d:dialog-info>')
        ).encode(),
    ),
    "wrong-root": (
        "A05",
        lambda rng, entity: rng.choice(
            (
                f'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}"/>',
                f'<dialog-info version="0" state="full" entity="{entity}"/>',  # no namespace
                f'<dialog-info xmlns="urn:example:other" version="0" state="full" '
                f'entity="{entity}"/>',
                f'<dialog xmlns="{NS}" id="x"><state>trying</state></dialog>',
            )
        ).encode(),
    ),
    "not-xml": (
        "A02",
        lambda rng, entity: rng.choice(
            (
                b"this is not XML",
                b"",
                b"   \r\n",
                f'<dialog-info xmlns="{NS}" version="0" state="full" entity="{entity}">'.encode(),
                f'<dialog-info xmlns="{NS}" version="0" state="full" entity="{entity}">'
                f"</dialog>".encode(),
                b"<a><b></a></b>",
                b"<?xml version='1.0'?>",
                b'{"dialog-info": {}}',
                b"<a>&undefined;</a>",
            )
        ),
    ),
    "not-utf8": (
        "A04",
        lambda rng, entity: (
            f'<dialog-info xmlns="{NS}" version="0" state="full" entity="{entity}">'
            f'<dialog id="caf\u00e9"><state>trying</state></dialog></dialog-info>'
        ).encode("latin-1"),
    ),
    "latin1-declaration": (
        "A04",
        lambda rng, entity: (
            f'<?xml version="1.0" encoding="ISO-8859-1"?>'
            f'<dialog-info xmlns="{NS}" version="0" state="full" entity="{entity}"/>'
        ).encode(),
    ),
    "entity-probe": (
        "A02",
        lambda rng, entity: _entity_probe(rng, entity),
    ),
}


def _entity_probe(rng: random.Random, entity: str) -> bytes:
    """An internal-subset entity declaration (never an external identifier), at most 1 kB.

    A correct server refuses it or treats it as plain text; it must never expand it into a
    stored publication. The oracle refuses any DOCTYPE unparsed (A02)."""
    depth = rng.randint(1, 4)
    decls = ['<!ENTITY e0 "dialog">'] + [
        f'<!ENTITY e{i} "&e{i - 1};&e{i - 1};&e{i - 1};">' for i in range(1, depth + 1)
    ]
    data = (
        f"<!DOCTYPE dialog-info [{''.join(decls)}]>"
        f'<dialog-info xmlns="{NS}" version="0" state="full" entity="{entity}">'
        f'<dialog id="&e{depth};"><state>trying</state></dialog></dialog-info>'
    ).encode()
    assert len(data) <= ENTITY_PROBE_CAP
    return data


INVALID_KINDS: dict[str, str] = {
    **{k: rid for k, (rid, _) in _TREE_MUTATIONS.items()},
    **{k: rid for k, (rid, _) in _LITERALS.items()},
    "wrong-content-type": "C07",
}
"""Every invalid variant and the requirement id a correct oracle or server must fail for it."""


def invalid(
    rng: random.Random,
    *,
    entity: str,
    kind: str | None = None,
    max_bytes: int = UDP_BODY_CAP,
) -> Body:
    """A body (or Content-Type) that breaks one rule: ``kind`` names it, None draws one."""
    kind = kind or rng.choice(sorted(INVALID_KINDS))
    if kind not in INVALID_KINDS:
        known = ", ".join(sorted(INVALID_KINDS))
        raise ValueError(f"unknown invalid body kind {kind!r}; known: {known}")
    expect = INVALID_KINDS[kind]
    if kind == "wrong-content-type":
        base = valid(rng, entity=entity, max_bytes=max_bytes)
        return Body(base.data, kind, rng.choice(WRONG_CONTENT_TYPES), expect, base.dialogs)
    if kind in _LITERALS:
        return Body(_LITERALS[kind][1](rng, entity), kind, expect=expect)
    dialogs = [(token(rng, long=False), rng.choice(STATES[:4]))]
    st = style(rng)
    root = document_node(
        rng, entity=entity, version=rng.randint(0, 100), state="full", dialogs=dialogs, long=False
    )
    # Mutations act on the first dialog's leading children: keep them free of extensions.
    root = _TREE_MUTATIONS[kind][1](root, rng)
    return Body(serialize(root, st, rng), kind, expect=expect)


def body(
    rng: random.Random,
    *,
    entity: str,
    invalid_ratio: float = 0.15,
    max_bytes: int = UDP_BODY_CAP,
    **valid_args: object,
) -> Body:
    """A valid body, or with probability ``invalid_ratio`` an invalid one."""
    if rng.random() < invalid_ratio:
        return invalid(rng, entity=entity, max_bytes=max_bytes)
    return valid(rng, entity=entity, max_bytes=max_bytes, **valid_args)  # type: ignore[arg-type]


__all__ = [
    "ENTITY_PROBE_CAP",
    "INVALID_KINDS",
    "PARTS",
    "UDP_BODY_CAP",
    "Body",
    "Node",
    "Style",
    "body",
    "invalid",
    "prune",
    "serialize",
    "style",
    "valid",
]
