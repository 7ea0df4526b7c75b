"""RFC 4235 body checks: XSD validation plus the semantic rules the XSD cannot express.

The body is parsed once (``dialoginfo.parse_tree``: no entities, no network, size cap, UTF-8
only) and every check reads that one tree. lxml gives the schema verdict because it is fast
enough to run on every NOTIFY; xmlschema is loaded only to explain a failure (its reason and
path are clearer than libxml2's), so the fast path never imports it. Schemas are local files
(``schemas/``), compiled once per process, and never fetch anything.

The schema verdict is A03, a SHOULD: the structural rules that RFC 4235 makes binding
(mandatory attributes, one ``<state>`` first, enumerations, ``local``/``remote`` shape,
extension placement) are re-checked here so that each violation carries its own MUST/MUST*
requirement id, a path and a line. Trap T2: the XSD misses ``<state>ringing</state>``,
duplicate ids and versions above 2^32-1, so those checks exist only here.

API modelled on xmlschema: ``iter_findings`` does the work, ``check`` lists it,
``is_conformant`` asks whether any binding requirement was violated. Passed findings are
emitted too: a requirement counts as covered only when some finding names it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from lxml import etree

from conformance.errors import BodyError
from conformance.oracle import dialoginfo
from conformance.oracle.dialoginfo import NS, SA_NS, STATES
from conformance.oracle.findings import Finding, Verdict
from conformance.oracle.requirements import Level
from conformance.resources import schema_path
from conformance.sip.message import split_uri

ERRATA_SCHEMA = "dialog-info.errata.xsd"
VERBATIM_SCHEMA = "dialog-info.xsd"
SA_SCHEMA = "sa-dialog-info.xsd"

EVENTS = ("cancelled", "rejected", "replaced", "local-bye", "remote-bye", "error", "timeout")
DIRECTIONS = ("initiator", "recipient")
VERSION_PLACEHOLDER = "00000000000"
"""What Kamailio/OpenSIPS put in the aggregate before patching the version per watcher (D02)."""

# Children of <dialog> in RFC 4235 schema order; each at most once, <state> exactly once.
_DIALOG_ORDER = ("state", "duration", "replaces", "referred-by", "route-set", "local", "remote")
_PARTICIPANT_ORDER = ("identity", "target", "session-description", "cseq")
_MAX_ERRORS = 5
_HAS_DISPLAY = etree.XPath("boolean(.//*[@display])")
_NSP = f"{{{NS}}}"


def _split(tag: str) -> tuple[str | None, str]:
    """(namespace, local name) of a Clark tag; string slicing is cheaper than etree.QName."""
    if tag.startswith(_NSP):
        return NS, tag[len(_NSP) :]
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


# --------------------------------------------------------------------------- schema loading


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@functools.cache
def _lxml_schema(main: str) -> etree.XMLSchema:
    """``main`` with the repaired RFC 7463 schema beside it, compiled once per process.

    A namespace-less driver document imports both, so lax wildcards find the sa:
    declarations and validate extension elements instead of skipping them (A34)."""
    base = schema_path(main).parent
    driver = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:import namespace="{NS}" schemaLocation="{main}"/>'
        f'<xs:import namespace="{SA_NS}" schemaLocation="{SA_SCHEMA}"/>'
        "</xs:schema>"
    ).encode()
    doc = etree.fromstring(driver, _safe_parser(), base_url=str(base / "_driver.xsd"))
    return etree.XMLSchema(doc)


@functools.cache
def _sa_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(schema_path(SA_SCHEMA)), _safe_parser()))


# libxml2 is not safe compiling a schema while another thread parses XML (an explorer lane
# reading a NOTIFY): "xmlSchemaPValAttr, the given type '' is not a built-in type" ended an
# explore run in a traceback, and a stress script (4 threads parsing, 4 compiling) hit it in 1
# fresh process of 30. A compile takes about 1 ms, so all three happen at import, before any
# thread of the kit starts; threads then only read the cache.
for _name in (ERRATA_SCHEMA, VERBATIM_SCHEMA):
    _lxml_schema(_name)
_sa_schema()


@functools.cache
def _xmlschema_validator() -> Any:
    """The xmlschema twin of the errata schema, built only when an error needs explaining."""
    import xmlschema  # lazy: about 100 ms to import and compile, never on the fast path

    base = schema_path(ERRATA_SCHEMA)
    return xmlschema.XMLSchema(
        str(base),
        locations=[(SA_NS, str(schema_path(SA_SCHEMA)))],
        allow="sandbox",
        defuse="always",
    )


def explain(root: etree._Element) -> list[dict[str, Any]]:
    """xmlschema's reasons and paths for ``root`` against the errata schema (evidence only)."""
    out: list[dict[str, Any]] = []
    import xmlschema

    # The tree is already parsed; "none" forbids the resource from loading anything else.
    # xmlschema reads lxml elements, but types-lxml's _Element does not match its protocol.
    resource = xmlschema.XMLResource(root, allow="none", defuse="always")  # type: ignore[arg-type]
    for err in _xmlschema_validator().iter_errors(resource):
        out.append({"reason": err.reason, "path": err.path, "sourceline": err.sourceline})
        if len(out) >= _MAX_ERRORS:
            break
    return out


# --------------------------------------------------------------------------- public API


def iter_findings(
    body: bytes, *, subscribe_uri: str | None = None, cross_check: bool = False
) -> Iterator[Finding]:
    """Every finding about ``body``, passed ones included, in document order.

    ``subscribe_uri`` (the SUBSCRIBE Request-URI) enables the A12 entity check.
    ``cross_check`` runs xmlschema on every body, not only on invalid ones (slow; tests)."""
    yield from _declaration(body)
    try:
        root = dialoginfo.parse_tree(body)
    except BodyError as exc:
        yield Finding(exc.requirement, False, exc.message, path="/")
        if exc.requirement != "A02":
            # Refused before parsing: well-formedness was never established either way.
            yield Finding("A02", False, f"not parsed: {exc.message}", path="/")
        return
    yield Finding("A02", True, "well-formed XML", path="/")
    yield _xsd_finding(root, cross_check=cross_check)
    if root.tag != dialoginfo.ROOT_TAG:
        yield Finding(
            "A05",
            False,
            f"root element is {root.tag!r}, not {{{NS}}}dialog-info",
            path=f"/{etree.QName(root).localname}",
            sourceline=root.sourceline,
        )
        return
    yield Finding("A05", True, "root is dialog-info in the RFC 4235 namespace", path="/dialog-info")
    yield from _root_attributes(root, subscribe_uri)
    yield from _children(root)


def check(body: bytes, *, subscribe_uri: str | None = None) -> list[Finding]:
    """All findings for ``body`` (the function benchmarks and the aggregator call)."""
    return list(iter_findings(body, subscribe_uri=subscribe_uri))


def is_conformant(body: bytes, *, subscribe_uri: str | None = None) -> bool:
    """True when no MUST/MUST* requirement is violated (SHOULD/DEF only warn)."""
    return not any(
        f.verdict() is Verdict.FAIL for f in iter_findings(body, subscribe_uri=subscribe_uri)
    )


# --------------------------------------------------------------------------- checks


def _declaration(body: bytes) -> Iterator[Finding]:
    """A04: the XML declaration, when present, says 1.0 and UTF-8 (or no encoding)."""
    decl = dialoginfo.xml_declaration(body)
    if decl is None:
        return  # no declaration: UTF-8 by default; the bytes themselves are checked on parse
    version, encoding = decl
    if version != "1.0":
        yield Finding("A04", False, f"XML declaration says version {version!r}, not '1.0'", "/")
    elif encoding is not None and encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        yield Finding("A04", False, f"XML declaration says encoding {encoding!r}, not UTF-8", "/")
    else:
        yield Finding("A04", True, f"XML 1.0, encoding {encoding or 'unspecified (UTF-8)'}", "/")


def _xsd_finding(root: etree._Element, *, cross_check: bool) -> Finding:
    """A03 against the errata schema (lxml verdict); verbatim verdict and xmlschema's reasons
    are evidence."""
    tree = root.getroottree()
    errata = _lxml_schema(ERRATA_SCHEMA)
    valid = errata.validate(tree)
    verbatim_valid = valid if _no_display(root) else _lxml_schema(VERBATIM_SCHEMA).validate(tree)
    evidence: dict[str, Any] = {"schema": ERRATA_SCHEMA, "verbatim_schema_valid": verbatim_valid}
    if valid and not cross_check:
        return Finding("A03", True, f"valid against {ERRATA_SCHEMA}", "/", evidence=evidence)
    errors: list[dict[str, Any]] = [
        {"message": e.message, "line": e.line, "path": getattr(e, "path", None)}
        for e in list(errata.error_log)[:_MAX_ERRORS]
    ]
    explained = explain(root)
    if valid and explained:
        evidence["disagreement"] = "lxml says valid, xmlschema does not"
    if not valid and not explained:
        evidence["disagreement"] = "lxml says invalid, xmlschema says valid"
    evidence["lxml_errors"] = errors
    evidence["xmlschema_errors"] = explained
    if valid:
        return Finding("A03", True, f"valid against {ERRATA_SCHEMA}", "/", evidence=evidence)
    first = explained[0] if explained else None
    reason = first["reason"] if first and first["reason"] else errors[0]["message"]
    return Finding(
        "A03",
        False,
        f"not valid against {ERRATA_SCHEMA}: {reason}",
        path=(first["path"] if first else errors[0]["path"]) or "/",
        sourceline=(first["sourceline"] if first else None) or errors[0]["line"],
        evidence=evidence,
    )


def _no_display(root: etree._Element) -> bool:
    # The two schemas differ only in the identity/referred-by "display" attribute, so a body
    # without one gets the same verdict from both: skip the second validation (speed).
    return not _HAS_DISPLAY(root)


def _root_attributes(root: etree._Element, subscribe_uri: str | None) -> Iterator[Finding]:
    line = root.sourceline
    for name in ("version", "state", "entity"):
        present = root.get(name) is not None
        msg = (
            f"attribute {name!r} is present"
            if present
            else f"mandatory attribute {name!r} is missing"
        )
        yield Finding("A06", present, msg, f"/dialog-info/@{name}", line)
    version = root.get("version")
    if version is not None:
        yield _version_finding(version, line)
    state = root.get("state")
    if state is not None:
        ok = state in ("full", "partial")
        msg = f"state={state!r}" + ("" if ok else ", expected 'full' or 'partial'")
        yield Finding("A13", ok, msg, "/dialog-info/@state", line)
    entity = root.get("entity")
    if entity is not None and subscribe_uri is not None:
        same = _uri_key(entity) == _uri_key(subscribe_uri)
        msg = (
            f"entity {entity!r} " + ("matches" if same else "differs from") + f" {subscribe_uri!r}"
        )
        yield Finding("A12", same, msg, "/dialog-info/@entity", line)


def _version_finding(version: str, line: int | None) -> Finding:
    path = "/dialog-info/@version"
    if version == VERSION_PLACEHOLDER:
        return Finding(
            "A11", False, f"version is the unpatched placeholder {version!r} (leak)", path, line
        )
    if version.startswith("-") and version[1:].isdigit():
        return Finding("A11", False, f"version {version} is negative", path, line)
    if not (version.isascii() and version.isdigit()):
        return Finding("A11", False, f"version {version!r} is not a decimal integer", path, line)
    if int(version) > 0xFFFFFFFF:
        return Finding("A11", False, f"version {version} exceeds 2^32-1", path, line)
    return Finding("A11", True, f"version {version} fits 32 bits", path, line)


def _children(root: etree._Element) -> Iterator[Finding]:
    """Dialogs (A18-A28) and root-level extensions (A34), then document-wide id uniqueness."""
    seen: dict[str, int] = {}
    counts: dict[str, int] = {}
    failed: set[str] = set()
    extension_seen: str | None = None
    index = 0
    for child in root:
        if not isinstance(child.tag, str):
            continue
        namespace, local = _split(child.tag)
        if namespace == NS and local == "dialog":
            index += 1
            path = f"/dialog-info/dialog[{index}]"
            if extension_seen is not None:
                failed.add("A34")
                yield Finding(
                    "A34",
                    False,
                    f"<dialog> after extension element {extension_seen}",
                    path,
                    child.sourceline,
                )
            for f in _dialog(child, path, seen):
                if isinstance(f, str):  # a check that held: counted, not materialised (speed)
                    counts[f] = counts.get(f, 0) + 1
                else:
                    failed.add(f.requirement)
                    yield f
        elif namespace == NS:
            failed.add("A21")
            yield Finding(
                "A21",
                False,
                f"unexpected RFC 4235 element <{local}> under dialog-info",
                f"/dialog-info/{local}",
                child.sourceline,
            )
        else:
            extension_seen = f"{{{namespace}}}{local}"
            for f in _extension(child, f"/dialog-info/{local}"):
                if isinstance(f, str):
                    counts[f] = counts.get(f, 0) + 1
                else:
                    failed.add(f.requirement)
                    yield f
    # One passed finding per checked requirement (coverage), unless an instance failed.
    for rid, n in counts.items():
        if rid not in failed and rid not in ("A19", "A34"):
            yield Finding(rid, True, f"holds for {index} dialog(s) ({n} check(s))", "/dialog-info")
    if "A19" not in failed:
        yield Finding("A19", True, f"{len(seen)} dialog id(s), all unique", "/dialog-info")
    if "A34" not in failed:
        yield Finding("A34", True, "extension elements (if any) follow RFC 4235 content", "/")


_Result = Finding | str
"""Dialog-level checks yield a Finding for a violation and the bare requirement id for a check
that held; ``_children`` folds the ids into one passed finding per requirement."""


def _dialog(el: etree._Element, path: str, seen: dict[str, int]) -> Iterator[_Result]:
    line = el.sourceline
    did = el.get("id")
    if did is None:
        yield Finding("A18", False, "<dialog> has no id attribute", path, line)
    else:
        yield "A18"
        if did in seen:
            yield Finding(
                "A19",
                False,
                f"id {did!r} repeats the dialog on line {seen[did]}",
                path,
                line,
                evidence={"id": did},
            )
        else:
            seen[did] = line or 0
    direction = el.get("direction")
    if direction is not None:
        if direction in DIRECTIONS:
            yield "A24"
        else:
            msg = f"direction={direction!r}, expected initiator or recipient"
            yield Finding("A24", False, msg, f"{path}/@direction", line)
    if el.text and el.text.strip():
        yield Finding("A21", False, f"text {el.text.strip()[:40]!r} inside <dialog>", path, line)
    yield from _ordered(el, path, _DIALOG_ORDER, "A21")
    states = el.findall(f"{{{NS}}}state")
    if len(states) != 1:
        yield Finding(
            "A21", False, f"{len(states)} <state> elements, expected exactly one", path, line
        )
    else:
        first = next((c for c in el if isinstance(c.tag, str)), None)
        if first is not states[0]:
            yield Finding("A21", False, "<state> is not the first child of <dialog>", path, line)
        else:
            yield "A21"
        yield from _state(states[0], f"{path}/state")
    for side in ("local", "remote"):
        part = el.find(f"{{{NS}}}{side}")
        if part is not None:
            yield from _participant(part, f"{path}/{side}")


def _state(el: etree._Element, path: str) -> Iterator[_Result]:
    line = el.sourceline
    value = (el.text or "").strip()
    if value in STATES:
        yield "A22"
    else:
        hint = " (wrong case)" if value.lower() in STATES else ""
        yield Finding(
            "A22", False, f"state {value!r} is not one of {', '.join(STATES)}{hint}", path, line
        )
    event, code = el.get("event"), el.get("code")
    if event is not None:
        if event not in EVENTS:
            yield Finding(
                "A23",
                False,
                f"event {event!r} is not one of {', '.join(EVENTS)}",
                f"{path}/@event",
                line,
            )
        elif value != "terminated":
            yield Finding(
                "A23",
                False,
                f"event {event!r} on a {value!r} dialog: events describe the move into terminated",
                f"{path}/@event",
                line,
                level=Level.DEF,
            )
        else:
            yield "A23"
    if code is not None:
        if code.strip().isascii() and code.strip().isdigit() and 100 <= int(code) <= 699:
            yield "A23"
        else:
            yield Finding(
                "A23", False, f"code {code!r} is not an integer 100-699", f"{path}/@code", line
            )


def _participant(el: etree._Element, path: str) -> Iterator[_Result]:
    bad = False
    for f in _ordered(el, path, _PARTICIPANT_ORDER, "A28"):
        bad = bad or (not isinstance(f, str) and f.requirement == "A28")
        yield f
    target = el.find(f"{{{NS}}}target")
    if target is not None:
        if target.get("uri") is None:
            bad = True
            yield Finding(
                "A28", False, "<target> has no uri attribute", f"{path}/target", target.sourceline
            )
        for i, p in enumerate(target.findall(f"{{{NS}}}param"), 1):
            missing = [a for a in ("pname", "pval") if p.get(a) is None]
            if missing:
                bad = True
                yield Finding(
                    "A28",
                    False,
                    f"<param> lacks {' and '.join(missing)}",
                    f"{path}/target/param[{i}]",
                    p.sourceline,
                )
    sd = el.find(f"{{{NS}}}session-description")
    if sd is not None and sd.get("type") is None:
        bad = True
        yield Finding(
            "A28",
            False,
            "<session-description> has no type",
            f"{path}/session-description",
            sd.sourceline,
        )
    if not bad:
        yield "A28"


def _ordered(el: etree._Element, path: str, order: tuple[str, ...], rid: str) -> Iterator[_Result]:
    """RFC 4235 children in schema order, each at most once, extensions only at the end."""
    last = -1
    ext: str | None = None
    for child in el:
        if not isinstance(child.tag, str):
            continue
        namespace, local = _split(child.tag)
        where = f"{path}/{local}"
        if namespace != NS:
            if ext is None:
                ext = f"{{{namespace}}}{local}"
            yield from _extension(child, where)
            continue
        if ext is not None:
            yield Finding(
                "A34",
                False,
                f"<{local}> follows extension element {ext}: extensions "
                "belong after the RFC 4235 children",
                where,
                child.sourceline,
                evidence={"extension": ext},
            )
        if local not in order:
            yield Finding(rid, False, f"unexpected element <{local}>", where, child.sourceline)
            continue
        pos = order.index(local)
        if pos <= last:
            what = "repeated" if pos == last else "out of schema order"
            yield Finding(rid, False, f"<{local}> {what}", where, child.sourceline)
        last = max(last, pos)


def _extension(el: etree._Element, path: str) -> Iterator[_Result]:
    """RFC 7463 elements are validated against the repaired sa schema (A34, T4)."""
    if etree.QName(el).namespace != SA_NS:
        return
    schema = _sa_schema()
    # UTF-8, not the ASCII default: ASCII turns a non-ASCII prefix in a namespace declaration
    # into a character reference, which is not XML (found by conformance/explore/bodies.py).
    data = etree.tostring(el, encoding="utf-8")
    doc = etree.ElementTree(etree.fromstring(data, _safe_parser()))
    if schema.validate(doc):
        yield "A34"
        return
    msg = schema.error_log.last_error.message if schema.error_log.last_error else "invalid"
    yield Finding("A34", False, f"not valid against {SA_SCHEMA}: {msg}", path, el.sourceline)


# --------------------------------------------------------------------------- helpers


def _uri_key(uri: str) -> tuple[str, str, str]:
    """A rough RFC 3261 §19.1.4 key: scheme and host case-insensitive, user unescaped and
    case-sensitive, parameters and headers ignored (the modules drop them, T5)."""
    text = uri.strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    # split_uri forgives blanks inside <...> and stops at '>' (the end of a name-addr); here a
    # stray one of either keeps the URI from matching, as any other stray character would.
    head = text.split(";", 1)[0].split("?", 1)[0]
    stray = head != head.strip() or ">" in head
    parts = None if stray else split_uri(text)
    if parts is None:  # not a URI: equal only to the same text
        return text.lower(), "", ""
    return parts.scheme.lower(), unquote(parts.userinfo), parts.hostport.lower()
