"""The requirement catalogue: the single source of ids, levels and titles.

Markers, findings and reports look requirements up here, so an id that is not in
REQUIREMENTS.md cannot be checked, marked or reported.
"""

from __future__ import annotations

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
