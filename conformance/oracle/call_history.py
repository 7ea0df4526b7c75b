"""The history check for watchers of a call's party: publications derived from the call.

A call's PUBLISHes are made inside the target (its proxy's publishing module), so the kit never
sees them and ``history.check`` has no stimuli to judge such a watcher's NOTIFYs against. This
module derives them from what the kit does see: each state the call oracle expects a party's
dialog to go through (``calls.Expectation.published``, from that party's own SIPp trace)
becomes one synthetic publication of that presentity, and every NOTIFY is then judged by the
same Jepsen-style history check as any case's, at its moment.

What is compared, honestly:

* **The table, reduced to calls and states.** A synthetic publication carries one dialog per
  call, ``id`` = the Call-ID, and the state the profile says is shown (``Expectation.shown``);
  each observed NOTIFY body is reduced to the same form before it is judged (``project``): each
  dialog becomes ``id`` = its call's Call-ID (found as the call oracle finds it) and its state
  lower-cased; a dialog of no call the case placed keeps its own id, so it shows up as an
  unexpected dialog. Identities, tags, direction, events and the state's case are the call
  oracle's and the per-NOTIFY checks' (E06-E08, A22), not this one's.
* **Windows.** A state takes effect somewhere in ``[cause - skew, cause + settle]``: ``skew``
  because the proxy publishes a response it relays a moment before the receiving party traces
  it; ``settle`` is E09's bound (2 s). So every NOTIFY must show a combination of call states
  possible at its moment, aggregated (or reduced to one, single-dialog mode) as the profile's
  flavour does, and the table at the end must have converged.
* **Ids.** A contradiction is reported under the rule of the call step it contradicts (E01-E05,
  E12); a table no combination explains under E10 (aggregation of a party's calls).

Pure: the caller passes the expectations and the traced NOTIFYs.
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.errors import BodyError
from conformance.oracle import dialoginfo
from conformance.oracle.calls import Expectation, find_dialog
from conformance.oracle.dialoginfo import Dialog
from conformance.oracle.history import Stimulus

SKEW = 0.1
"""Seconds a state may be published before its cause in the party's trace (``calls.judge``)."""
SETTLE = 2.0
"""Seconds after its cause within which a state must be published (E09's bound)."""
FALLBACK = "E10"
"""The id of a table that no combination of the party's call states explains."""


def stimuli(
    exps: Sequence[Expectation],
    presentity: str,
    *,
    skew: float = SKEW,
    settle: float = SETTLE,
) -> list[Stimulus]:
    """One synthetic publication per expected published state of each call, in time order: the
    call's first state is an initial PUBLISH, each later one a modify of the one before."""
    out: list[Stimulus] = []
    for exp in exps:
        etag: str | None = None
        for n, step in enumerate(exp.published(), 1):
            body = dialoginfo.document(
                presentity, [dialoginfo.dialog(exp.call_id, exp.shown(step))]
            )
            tag = f"{exp.call_id}#{n}"
            out.append(
                Stimulus(
                    "publish" if etag is None else "modify",
                    f"{exp.party}'s {exp.shown(step)} ({step.cause}, call {exp.call_id})",
                    step.at - skew,
                    step.at + settle,
                    200,
                    body,
                    etag=tag,
                    replaces=etag,
                    expires=3600,
                    requirement=step.rule,
                )
            )
            etag = tag
    return sorted(out, key=lambda s: s.sent)


def project(body: bytes, exps: Sequence[Expectation]) -> bytes:
    """``body`` reduced to calls and states (see the module doc); a body without content or
    that cannot be parsed is returned as it is (the per-NOTIFY checks judge it)."""
    if not body.strip():
        return body
    try:
        doc = dialoginfo.parse(body)
    except BodyError:
        return body
    found = [item for item in doc.items if isinstance(item, Dialog)]
    call_of: dict[int, str] = {}
    for exp in exps:
        d = find_dialog(found, exp)
        if d is not None:
            call_of.setdefault(id(d), exp.call_id)
    reduced = [dialoginfo.dialog(call_of.get(id(d), f"other:{d.id}"), d.state_key) for d in found]
    return dialoginfo.serialize(
        entity=doc.entity or "",
        version=doc.version if doc.version is not None else "",
        state=doc.state or "full",
        items=reduced,
    )


__all__ = ["FALLBACK", "SETTLE", "SKEW", "project", "stimuli"]
