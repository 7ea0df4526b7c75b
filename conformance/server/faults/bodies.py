"""Faults of the NOTIFY body builder: aggregation (group D), dialog items and document bytes."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence

from lxml import etree

from conformance.server.bodies import DIALOG, DIALOG_INFO_NS, Publication, strip_foreign_children
from conformance.server.faults.base import Fault
from conformance.server.hooks import Hooks, WinnerRule


def _no_aggregation(h: Hooks) -> None:
    def newest_only(pubs: Sequence[Publication]) -> Sequence[Publication]:
        return list(pubs[-1:])

    h.bodies.publications = newest_only


def _priority_wrong(h: Hooks) -> None:
    previous = h.bodies.priority
    swap = {"early": 3, "confirmed": 4}

    def confirmed_first(rank: int, state: str) -> int:
        return swap.get(state.lower(), previous(rank, state))

    h.bodies.priority = confirmed_first


def _tie_wrong(h: Hooks) -> None:
    previous = h.bodies.winner_rule

    def other(rule: WinnerRule) -> WinnerRule:
        return "last" if previous(rule) == "first" else "first"

    h.bodies.winner_rule = other


def _single_dialog_one_publication(h: Hooks) -> None:
    def always(applies: bool, publications: int) -> bool:
        return publications >= 1

    h.bodies.single_dialog_applies = always


def _dialog_duplicated(h: Hooks) -> None:
    previous = h.bodies.items

    def first_twice(items: list[etree._Element]) -> list[etree._Element]:
        items = previous(items)
        first = next((i for i in items if i.tag == DIALOG), None)
        return items if first is None else [*items, first]

    h.bodies.items = first_twice


def _extensions_dropped(h: Hooks) -> None:
    previous = h.bodies.items

    def without(items: list[etree._Element]) -> list[etree._Element]:
        return [strip_foreign_children(i) if i.tag == DIALOG else i for i in previous(items)]

    h.bodies.items = without


def _root_extensions_first(h: Hooks) -> None:
    previous = h.bodies.items

    def extensions_first(items: list[etree._Element]) -> list[etree._Element]:
        items = previous(items)
        return [i for i in items if i.tag != DIALOG] + [i for i in items if i.tag == DIALOG]

    h.bodies.items = extensions_first


def _wrong_namespace(h: Hooks) -> None:
    previous = h.bodies.document

    def renamed(body: bytes) -> bytes:
        return previous(body).replace(DIALOG_INFO_NS.encode(), b"urn:example:not-dialog-info", 1)

    h.bodies.document = renamed


def _entity_missing(h: Hooks) -> None:
    previous = h.bodies.document

    def anonymous(body: bytes) -> bytes:
        return re.sub(rb' entity="[^"]*"', b"", previous(body), count=1)

    h.bodies.document = anonymous


def _body_not_well_formed(h: Hooks) -> None:
    previous = h.bodies.document

    def truncated(body: bytes) -> bytes:
        body = re.sub(rb"</(\w+:)?dialog-info>$", b"", previous(body).rstrip())
        return body[:-2] + b">" if body.endswith(b"/>") else body

    h.bodies.document = truncated


def _terminated_dropped(h: Hooks) -> None:
    previous = h.bodies.items

    def live_only(items: list[etree._Element]) -> list[etree._Element]:
        def ended(item: etree._Element) -> bool:
            state = item.find(_q("state"))
            text = state.text if state is not None else None
            return item.tag == DIALOG and (text or "").strip().lower() == "terminated"

        return [i for i in previous(items) if not ended(i)]

    h.bodies.items = live_only


def _entity_user_upper(h: Hooks) -> None:
    previous = h.bodies.document

    def shouted(body: bytes) -> bytes:
        return re.sub(
            rb' entity="(sips?:)([^@"]*)@',
            lambda m: b' entity="' + m.group(1) + m.group(2).upper() + b"@",
            previous(body),
            count=1,
        )

    h.bodies.document = shouted


def _each_dialog(edit: Callable[[etree._Element], None]) -> Callable[[Hooks], None]:
    """An items fault that edits a copy of every ``<dialog>`` of the document."""

    def install(h: Hooks) -> None:
        previous = h.bodies.items

        def edited(items: list[etree._Element]) -> list[etree._Element]:
            out = []
            for item in previous(items):
                if item.tag == DIALOG:
                    item = copy.deepcopy(item)
                    edit(item)
                out.append(item)
            return out

        h.bodies.items = edited

    return install


def _q(local: str) -> str:
    return f"{{{DIALOG_INFO_NS}}}{local}"


def _drop_id(dialog: etree._Element) -> None:
    dialog.attrib.pop("id", None)


def _state_last(dialog: etree._Element) -> None:
    state = dialog.find(_q("state"))
    if state is not None and len(dialog) > 1:
        dialog.remove(state)
        dialog.append(state)


def _state_upper(dialog: etree._Element) -> None:
    state = dialog.find(_q("state"))
    if state is not None and state.text:
        state.text = state.text.upper()


def _event_unknown(dialog: etree._Element) -> None:
    state = dialog.find(_q("state"))
    if state is not None and state.get("event") is not None:
        state.set("event", "hangup")


def _direction_receiver(dialog: etree._Element) -> None:
    if dialog.get("direction") == "recipient":
        dialog.set("direction", "receiver")


def _pval_escaped_twice(dialog: etree._Element) -> None:
    for param in dialog.iter(_q("param")):
        value = param.get("pval")
        if value is not None:
            param.set("pval", value.replace("&", "&amp;"))


def _target_uri_dropped(dialog: etree._Element) -> None:
    for target in dialog.iter(_q("target")):
        target.attrib.pop("uri", None)


def _document_edit(edit: Callable[[bytes], bytes]) -> Callable[[Hooks], None]:
    def install(h: Hooks) -> None:
        previous = h.bodies.document
        h.bodies.document = lambda body: edit(previous(body))

    return install


def _idle_confirmed(h: Hooks) -> None:
    def busy(items: list[etree._Element]) -> list[etree._Element]:
        dialog = etree.Element(DIALOG, nsmap={None: DIALOG_INFO_NS})
        dialog.set("id", "idle")
        etree.SubElement(dialog, _q("state")).text = "confirmed"
        return [dialog]

    h.bodies.idle = busy


FAULTS = (
    Fault(
        "no-aggregation",
        "only the latest publication reaches the NOTIFY body",
        ("D03",),
        _no_aggregation,
    ),
    Fault(
        "priority-wrong",
        "single-dialog mode ranks confirmed above early",
        ("D08",),
        _priority_wrong,
    ),
    Fault(
        "tie-wrong",
        "single-dialog tie between equal states goes to the other candidate",
        ("D09",),
        _tie_wrong,
    ),
    Fault(
        "single-dialog-one-publication",
        "single-dialog mode also trims a lone publication to one dialog",
        ("D10",),
        _single_dialog_one_publication,
    ),
    Fault(
        "dialog-duplicated",
        "the first dialog of the aggregate appears twice",
        ("A19",),
        _dialog_duplicated,
    ),
    Fault(
        "extensions-dropped",
        "extension elements (other namespaces) are removed from dialogs",
        ("A34",),
        _extensions_dropped,
    ),
    Fault(
        "root-extensions-first",
        "root-level extension elements are written before the dialogs",
        ("A34",),
        _root_extensions_first,
    ),
    Fault(
        "wrong-namespace",
        "the root element is in a made-up namespace",
        ("A05",),
        _wrong_namespace,
    ),
    Fault("entity-missing", "the root has no entity attribute", ("A06",), _entity_missing),
    Fault(
        "body-not-well-formed",
        "NOTIFY bodies lose their closing root tag",
        ("A02",),
        _body_not_well_formed,
    ),
    Fault(
        "entity-names-the-server",
        "the root's entity is the server's own URI, not the presentity",
        ("A12",),
        _document_edit(
            lambda body: re.sub(rb' entity="[^"]*"', b' entity="sip:presence@localhost"', body)
        ),
    ),
    Fault(
        "document-state-complete",
        "the root's state attribute says complete instead of full",
        ("A13",),
        _document_edit(lambda body: body.replace(b' state="full"', b' state="complete"', 1)),
    ),
    Fault("dialog-id-dropped", "dialogs lose their id attribute", ("A18",), _each_dialog(_drop_id)),
    Fault(
        "state-not-first",
        "<state> is written after the other children of a dialog",
        ("A21",),
        _each_dialog(_state_last),
    ),
    Fault(
        "state-upper-case",
        "dialog states are written in upper case (EARLY)",
        ("A22",),
        _each_dialog(_state_upper),
    ),
    Fault(
        "event-unknown",
        "a terminated dialog's event attribute is rewritten to a made-up value",
        ("A23",),
        _each_dialog(_event_unknown),
    ),
    Fault(
        "direction-receiver",
        "direction recipient is written as receiver (the RFC's own example's typo)",
        ("A24",),
        _each_dialog(_direction_receiver),
    ),
    Fault(
        "pval-escaped-twice",
        "target param values are XML-escaped twice (A &amp;amp; B)",
        ("A27",),
        _each_dialog(_pval_escaped_twice),
    ),
    Fault(
        "target-uri-dropped",
        "a participant's <target> loses its uri attribute",
        ("A28",),
        _each_dialog(_target_uri_dropped),
    ),
    Fault(
        "idle-body-busy",
        "an idle presentity's NOTIFY carries a confirmed dialog",
        ("B27",),
        _idle_confirmed,
    ),
    Fault(
        "terminated-dialogs-dropped",
        "terminated dialogs are left out of NOTIFY bodies",
        ("A23",),
        _terminated_dropped,
    ),
    Fault(
        "entity-user-case",
        "the root's entity has the presentity's user part upper-cased",
        ("A12",),
        _entity_user_upper,
    ),
)
"""Body-builder faults, in catalogue order."""
