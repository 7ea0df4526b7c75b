"""The probes as data: which NOTIFY bodies the kit sends a phone, and how each is built.

Each probe changes one thing against a plain body (one ``confirmed`` dialog, ``state="full"``,
the next version), so a rejection points at that one thing:

* one dialog in each RFC 4235 state: does the phone know them all?
* the three "nothing to show" forms servers send (D11/B27): no body (Kamailio), an empty
  ``<dialog-info>`` (OpenSIPS) and Kamailio's ``force_dummy_dialog`` placeholder;
* document features: ``state="partial"`` (OpenSIPS on PUBLISH), a version jump, a repeated
  version, unknown extension elements, RFC 7463 ``sa:`` elements, UTF-8 display names;
* body size with one dialog (``size_probe``), apart from dialog count, so a limit on bytes is
  not mistaken for a limit on dialogs (over UDP a body above ~1300 bytes may be fragmented on a
  real network, RFC 3261 §18.1.1);
* N dialogs, all ``confirmed`` so only the count varies (``count_probe``).

The count and size probes are not a fixed list: ``planner`` searches the exact limits with them
(``COUNT_LADDER``, ``SIZE_LADDER``, then bisection) right after the first plain probe, before
the fixed probes that may end the subscription.

Pure: no I/O. ``body_for`` builds bytes from a probe, an entity and a version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from conformance.errors import UsageError
from conformance.oracle import aggregator
from conformance.oracle import dialoginfo as di

Form = Literal["dialogs", "no-body", "empty", "dummy"]
VersionMode = Literal["next", "jump", "repeat"]
Extra = Literal["", "extension", "sa", "utf8", "size"]

VERSION_JUMP = 1000
"""How far the version-jump probe skips ahead (a server restart or lost NOTIFYs look like this)."""

KIT_NS = "urn:x-dialoginfo-conformance:phone-probe"
"""Namespace of the unknown extension elements: no phone can know it."""

UDP_SAFE_BYTES = 1300
"""Above this a SIP message over UDP may be fragmented on a real path (RFC 3261 §18.1.1)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """One NOTIFY body to try on the phone."""

    name: str
    """Stable identifier, used in reports and conclusions (``dialogs-5``, ``partial``)."""
    group: str
    """What it measures: state, empty, document, version, extension, size, count."""
    title: str
    """One line for a human: what the body is."""
    form: Form = "dialogs"
    dialogs: int = 1
    """Number of ``<dialog>`` elements in the body (0 for the empty forms)."""
    state: str = "confirmed"
    """The ``<state>`` of every dialog."""
    doc_state: str = "full"
    version: VersionMode = "next"
    extra: Extra = ""
    size: int = 0
    """For ``extra="size"``: the body is padded to this many bytes."""


def _state_probes() -> list[Probe]:
    return [Probe(f"state-{s}", "state", f"one dialog in state {s}", state=s) for s in di.STATES]


FIXED_PLAN: tuple[Probe, ...] = (
    *(p for p in _state_probes() if p.state != "confirmed"),
    Probe(
        "partial", "document", 'state="partial" document (OpenSIPS on PUBLISH)', doc_state="partial"
    ),
    Probe("no-body", "empty", "NOTIFY without a body (Kamailio, nothing published)", "no-body", 0),
    Probe("empty", "empty", "empty full <dialog-info> (OpenSIPS, nothing published)", "empty", 0),
    Probe("dummy", "empty", "Kamailio force_dummy_dialog placeholder dialog", "dummy", 1),
    Probe(
        "extension", "extension", "unknown extension elements in dialog and root", extra="extension"
    ),
    Probe("sa", "extension", "RFC 7463 sa: shared-appearance elements", extra="sa"),
    Probe("utf8", "extension", "UTF-8 display names (non-ASCII)", extra="utf8"),
    Probe("version-jump", "version", f"version jumps ahead by {VERSION_JUMP}", version="jump"),
    Probe("version-repeat", "version", "version repeats the previous one", version="repeat"),
)
"""Probes sent after the count and size searches: they are the ones that may end the
subscription (a 481 to partial state, unusual bodies), and losing it must not cost the limits."""

FIRST = Probe("state-confirmed", "state", "one dialog in state confirmed")
"""The plain body every other probe differs from by one thing; always sent first."""

DEFAULT_PLAN: tuple[Probe, ...] = (FIRST, *FIXED_PLAN)
"""The fixed probes of the default plan (the searches add count and size probes)."""

QUICK_PLAN: tuple[Probe, ...] = tuple(
    p for p in DEFAULT_PLAN if p.name in ("state-confirmed", "no-body", "empty", "dummy", "partial")
)

PLANS: dict[str, tuple[Probe, ...]] = {"default": DEFAULT_PLAN, "quick": QUICK_PLAN}

COUNT_LADDER = (2, 5, 20)
"""Dialog counts tried before bisecting between the last accepted and the first failed one."""
SIZE_LADDER = (4 * 1024, 16 * 1024)
"""Body sizes (bytes, one dialog) tried before bisecting."""
SIZE_PRECISION = 64
"""The size search stops when the accepted and the failed size are this close (bytes)."""


def count_probe(n: int) -> Probe:
    """``n`` confirmed dialogs: only the count differs from the first probe."""
    return Probe(f"dialogs-{n}", "count", f"{n} dialogs", dialogs=n)


def size_probe(size: int) -> Probe:
    """One dialog padded to ``size`` bytes: only the size differs from the first probe."""
    return Probe(
        f"size-{size}", "size", f"one dialog padded to {size} bytes", extra="size", size=size
    )


def plan(name: str) -> tuple[Probe, ...]:
    """The named plan; ``UsageError`` naming the known ones otherwise."""
    try:
        return PLANS[name]
    except KeyError:
        known = ", ".join(sorted(PLANS))
        raise UsageError(f"unknown probe plan {name!r}: use one of {known}") from None


def baseline(entity: str, version: int) -> bytes:
    """The plain body: the initial NOTIFY and liveness-check NOTIFYs carry it."""
    return di.serialize(
        entity=entity, version=version, items=[_dialog("kit-baseline", 0, "terminated")]
    )


def body_for(probe: Probe, entity: str, version: int) -> bytes | None:
    """The NOTIFY body of ``probe`` (None: send no body at all)."""
    if probe.form == "no-body":
        return None
    if probe.form == "empty":
        return di.serialize(entity=entity, version=version)
    if probe.form == "dummy":
        return di.serialize(entity=entity, version=version, items=[aggregator.dummy_dialog()])
    items: list[di.Item] = [
        _dialog(probe.name, i, probe.state, probe.extra) for i in range(probe.dialogs)
    ]
    if probe.extra == "extension":
        root_ext = di.parse_tree(
            f'<x:note xmlns:x="{KIT_NS}">root-level extension</x:note>'.encode()
        )
        items.append(di.element_from(root_ext))
    body = di.serialize(entity=entity, version=version, state=probe.doc_state, items=items)
    if probe.extra == "size" and len(body) < probe.size:
        pad = probe.size - len(body)
        items = [_dialog(probe.name, 0, probe.state, "size", pad=pad)]
        body = di.serialize(entity=entity, version=version, state=probe.doc_state, items=items)
    return body


def _dialog(name: str, index: int, state: str, extra: str = "", *, pad: int = 0) -> di.Dialog:
    """A realistic BLF dialog: call-id, tags, direction, local and remote identities."""
    local_display = ""
    remote_display = ' display="Alice"'
    ext = ""
    session = ""
    if extra == "utf8":
        local_display = ' display="Jürgen Größe"'
        remote_display = ' display="Zoë Ñúñez 山田太郎 ☎"'
    if extra == "extension":
        ext = f'<x:flags xmlns:x="{KIT_NS}" level="2"><x:flag>unknown</x:flag></x:flags>'
    if extra == "sa":
        sa = f'xmlns:sa="{di.SA_NS}"'
        ext = f"<sa:exclusive {sa}>false</sa:exclusive><sa:appearance {sa}>1</sa:appearance>"
    if extra == "size" and pad > 0:
        # Sized by the padding character count; the wrapper adds ~80 bytes we subtract here.
        session = (
            '<session-description type="text/plain">'
            + "v" * max(0, pad - 80)
            + "</session-description>"
        )
    xml = (
        f"<local><identity{local_display}>sip:bob@example.invalid</identity>"
        f'<target uri="sip:bob@192.0.2.10"/>{session}</local>'
        f"<remote><identity{remote_display}>sip:alice@example.invalid</identity></remote>{ext}"
    )
    return di.dialog(
        f"{name}-{index}",
        state,
        direction="recipient",
        call_id=f"{name}-{index}@kit.invalid",
        local_tag=f"lt{index}",
        remote_tag=f"rt{index}",
        extra=xml,
    )
