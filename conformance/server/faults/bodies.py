"""Faults of the NOTIFY body builder: aggregation (group D), dialog items and document bytes."""

from __future__ import annotations

import re
from collections.abc import Sequence

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
)
"""Body-builder faults, in catalogue order."""
