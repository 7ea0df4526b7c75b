"""Fault switches for the reference server: each one breaks exactly one rule of REQUIREMENTS.md.

A conformance suite is only as good as the faults it catches. The mutation tests start the
reference server with ``--fault NAME`` and expect at least one finding carrying one of the
fault's requirement ids. The switches live in the server process only: nothing here is imported
by the oracle that judges it, so a fault can never leak into the expectation.

The registry is frozen (a ``MappingProxyType``): the set of faults is part of the kit's
contract, and the mutation score is computed over exactly these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from conformance.errors import UsageError


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    description: str
    """One line saying what the faulted server does wrong."""
    requirements: tuple[str, ...]
    """Catalogue ids a conforming suite must report as failed when the fault is on."""


_FAULTS = (
    # Aggregation (group D and A19)
    Fault("no-aggregation", "only the latest publication reaches the NOTIFY body", ("D03",)),
    Fault(
        "priority-wrong",
        "single-dialog mode ranks confirmed above early",
        ("D08",),
    ),
    Fault(
        "tie-wrong",
        "single-dialog tie between equal states goes to the other candidate",
        ("D09",),
    ),
    Fault(
        "single-dialog-one-publication",
        "single-dialog mode also trims a lone publication to one dialog",
        ("D10",),
    ),
    Fault("dialog-duplicated", "the first dialog of the aggregate appears twice", ("A19",)),
    Fault(
        "extensions-dropped",
        "extension elements (other namespaces) are removed from dialogs",
        ("A34",),
    ),
    # PUBLISH (group C)
    Fault("expired-publication-kept", "publications never expire", ("C17",)),
    Fault("remove-ignored", "PUBLISH Expires: 0 answers 200 but keeps the state", ("C16",)),
    Fault("unknown-etag-accepted", "SIP-If-Match with an unknown entity-tag gets 200", ("C11",)),
    Fault("etag-not-renewed", "a refresh answers with the entity-tag it was given", ("C14",)),
    Fault(
        "content-type-ignored",
        "a PUBLISH body of the wrong Content-Type is stored (no 415)",
        ("C07",),
    ),
    Fault("unknown-event-accepted", "PUBLISH with an unknown Event gets 200", ("C01",)),
    Fault("record-route-echoed", "responses copy the request's Record-Route", ("C19",)),
    # Versions (A07-A11)
    Fault(
        "version-repeats", "a NOTIFY after the first reuses the previous version", ("A08", "A09")
    ),
    Fault(
        "version-shared",
        "one version counter per presentity, shared by all its subscriptions",
        ("A10",),
    ),
    Fault("version-down", "the third NOTIFY of a subscription goes back to the start", ("A09",)),
    Fault("version-starts-at-5", "the first version of a subscription is 5", ("A07",)),
    Fault(
        "version-placeholder",
        "the version attribute is the unpatched placeholder 00000000000",
        ("A11",),
    ),
    # Body shape (A group)
    Fault("wrong-namespace", "the root element is in a made-up namespace", ("A05",)),
    Fault("entity-missing", "the root has no entity attribute", ("A06",)),
    Fault(
        "initial-notify-partial", "the NOTIFY answering a SUBSCRIBE says state=partial", ("A14",)
    ),
    Fault("body-not-well-formed", "NOTIFY bodies lose their closing root tag", ("A02",)),
    # SUBSCRIBE / NOTIFY (group B)
    Fault("no-immediate-notify", "a new subscription gets no initial NOTIFY", ("B05",)),
    Fault(
        "subscription-state-no-expires",
        "Subscription-State: active carries no expires parameter",
        ("B09",),
    ),
    Fault("subscribe-202", "SUBSCRIBE is answered with 202 Accepted", ("B02",)),
    Fault("expires-lengthened", "SUBSCRIBE 200 grants more time than requested", ("B03",)),
    Fault("cseq-gap", "NOTIFY CSeq numbers go up by two", ("B12",)),
    Fault("no-notify-on-change", "a PUBLISH change notifies no watcher", ("B24",)),
    Fault("unsubscribe-stays-active", "the NOTIFY answering Expires: 0 says active", ("B21",)),
    Fault(
        "subscription-kept-after-481",
        "a NOTIFY answered with 481 leaves the subscription in place",
        ("B25",),
    ),
    Fault(
        "subscription-kept-after-timeout",
        "a NOTIFY that times out (Timer F) leaves the subscription in place",
        ("B26",),
    ),
    Fault(
        "subscription-expiry-silent",
        "an expired subscription is dropped without a terminated NOTIFY",
        ("B23",),
    ),
    Fault("accept-ignored", "SUBSCRIBE whose Accept lacks dialog-info gets 200 (no 406)", ("B15",)),
    Fault(
        "crash-after-two-dialogs",
        "the server stops answering after its first NOTIFY carrying two dialogs",
        ("B05", "B24"),
    ),
)

FAULTS: MappingProxyType[str, Fault] = MappingProxyType({f.name: f for f in _FAULTS})
"""Every fault by name, in catalogue order."""


def check_names(names: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """The names as a set; a ``UsageError`` naming the first unknown one and listing the rest."""
    for name in names:
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
    return frozenset(names)
