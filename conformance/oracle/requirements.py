"""The requirement catalogue: the single source of ids, levels and titles.

Markers, findings and reports look requirements up here, so an id that is not in
REQUIREMENTS.md cannot be checked, marked or reported.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum

from conformance.oracle._catalogue import ROWS


class Level(StrEnum):
    """How binding a requirement is (the Level column of REQUIREMENTS.md)."""

    MUST = "MUST"
    MUST_STAR = "MUST*"
    SHOULD = "SHOULD"
    MAY = "MAY"
    DEF = "DEF"
    IMPL = "IMPL"
    INFO = "INFO"

    @property
    def binding(self) -> bool:
        """Whether a violation fails a run without ``--strict`` (MUST, MUST*, MAY done wrongly)."""
        return self in (Level.MUST, Level.MUST_STAR, Level.MAY)


@dataclass(frozen=True, slots=True)
class Requirement:
    id: str
    """Catalogue id, e.g. ``A19``."""
    ref: str
    """RFC and section as the catalogue writes it, e.g. ``4235 §4.1.1``."""
    level: Level
    """The first level of the Level cell: a row marked "MUST / MAY" counts as MUST."""
    level_text: str
    """The Level cell as written, with any verdict note."""
    title: str
    """One line saying what is required."""

    @property
    def group(self) -> str:
        return self.id[0]


CATALOGUE: dict[str, Requirement] = {
    rid: Requirement(rid, ref, Level(level), level_text, title)
    for rid, ref, level, level_text, title in ROWS
}

GROUPS = {
    "A": "RFC 4235 body",
    "B": "RFC 6665 SUBSCRIBE/NOTIFY",
    "C": "RFC 3903 PUBLISH",
    "D": "presence_dialoginfo",
    "E": "call-driven dialog state",
}


def get(rid: str) -> Requirement:
    """The requirement with id ``rid``; a ``KeyError`` naming the id when there is none."""
    try:
        return CATALOGUE[rid]
    except KeyError:
        raise KeyError(f"unknown requirement id {rid!r} (see REQUIREMENTS.md)") from None


OWN_GROUP = "X"
"""The group letter of requirements a kit user adds for their own cases."""


def add_requirement(rid: str, *, ref: str, level: Level | str, title: str) -> Requirement:
    """Add a requirement of the user's own to the catalogue (the catalogue extension hook).

    Own ids live in group ``X`` (``X01``, ``X-acme-3``...), so they can never shadow or change a
    row of REQUIREMENTS.md; adding the same row twice is harmless (every xdist worker does it),
    adding a different row under an existing id is a ``ValueError``."""
    if not rid.startswith(OWN_GROUP) or len(rid) < 2:
        raise ValueError(f"own requirement ids start with {OWN_GROUP!r}, e.g. 'X01'; not {rid!r}")
    row = Requirement(rid, ref, Level(level), str(Level(level)), title)
    existing = CATALOGUE.get(rid)
    if existing is not None and existing != row:
        raise ValueError(f"requirement {rid!r} is already defined differently: {existing}")
    CATALOGUE[rid] = row
    GROUPS.setdefault(OWN_GROUP, "own requirements")
    return row


CATALOGUE_FIELDS = ("ref", "level", "title")


def parse_catalogue(text: str, source: str = "catalogue") -> list[Requirement]:
    """Own requirement rows from a TOML catalogue extension (``--dialoginfo-catalogue``), one
    table per id, checked but not yet added::

        [X-acme-1]
        ref = "ACME PBX spec 3.2"
        level = "MUST"
        title = "a PUBLISH of one dialog is answered 200"

    A ``ValueError`` naming ``source`` and the id says what is wrong (one line)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not TOML: {exc}") from None
    rows = []
    for rid, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"{source}: {rid!r} must be a table [{rid}] with ref, level, title")
        given = set(table)
        if given != set(CATALOGUE_FIELDS) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(
                f"{source}: [{rid}] needs exactly the strings ref, level and title "
                f"(has {', '.join(sorted(given)) or 'nothing'})"
            )
        if not rid.startswith(OWN_GROUP) or len(rid) < 2:
            raise ValueError(f"{source}: own requirement ids start with {OWN_GROUP!r}, not {rid!r}")
        try:
            level = Level(table["level"])
        except ValueError:
            allowed = ", ".join(lv.value for lv in Level)
            raise ValueError(f"{source}: [{rid}] level {table['level']!r}: use {allowed}") from None
        rows.append(Requirement(rid, table["ref"], level, level.value, table["title"]))
    return rows
