"""What a watcher of a call's caller or callee should see, derived from what the peers saw.

Sans-IO and pure. Input: the messages one party's SIPp traced for one call (the caller's trace
for the caller, the callee's for the callee: each party's own view of the wire). Output: an
``Expectation``: the dialog's identifiers as that party knows them, and the states its dialog
goes through, each with the wire event that causes it, its time and the E requirement it stands
for. ``judge`` then compares the dialogs a watcher actually got, NOTIFY by NOTIFY, with it.

The state machine is RFC 4235 §3.7.1 (the errata 1495 reading of CANCEL: the 487 that answers a
CANCEL ends the dialog as ``cancelled``, not ``rejected``):

    party    wire event (in its own trace)              state        event / code
    caller   INVITE sent                                trying
    caller   1xx without To tag received (100 too)      proceeding
    caller   1xx with To tag received                   early
    callee   INVITE received                            trying
    callee   1xx without To tag sent                    proceeding
    callee   1xx with To tag sent                       early
    both     2xx to the INVITE                          confirmed
    both     487 after a CANCEL (sent / received)       terminated   cancelled
    both     other 3xx-6xx to the INVITE                terminated   rejected, code
    both     BYE sent by this party                     terminated   local-bye
    both     BYE received by this party                 terminated   remote-bye

A notifier may skip transient states (it publishes what it learns, and may rate-limit), so a
watcher's sequence is judged as an ordered subsequence of the expected one, each state no earlier
than its cause. State text is compared case-insensitively: the enumeration itself is A22's.

The profile (``CallProfile``) records what the publishing module was told to send:
``caller_confirmed`` shows the caller's early states as ``confirmed``; without
``publish_on_trying`` the callee's ``trying`` is not published; ``include_*`` say which
attributes and elements a body has at all (absent ones are then not findings).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from conformance.errors import BodyError
from conformance.oracle.aggregator import priority
from conformance.oracle.dialoginfo import Dialog, parse_version
from conformance.oracle.dialoginfo import parse as parse_dialoginfo
from conformance.oracle.findings import Finding
from conformance.sip.message import Request, Stamped, uri_of

STATES = ("trying", "proceeding", "early", "confirmed", "terminated")
"""RFC 4235 §4.1.2's states, in the order §3.7.1 moves through them."""


class Party(StrEnum):
    """Which end of the call a watcher watches."""

    CALLER = "caller"
    CALLEE = "callee"

    @property
    def direction(self) -> str:
        """RFC 4235 §4.1.1 ``direction``: the caller initiated the dialog."""
        return "initiator" if self is Party.CALLER else "recipient"


@dataclass(frozen=True, slots=True)
class CallProfile:
    """What the publishing module was told to send (pua_dialoginfo's parameters)."""

    include_callid: bool = True
    """``call-id`` is in every dialog element."""
    include_tags: bool = True
    """``local-tag``/``remote-tag`` are in the dialog element (once known)."""
    include_localremote: bool = True
    """``<local>``/``<remote>`` identity and target are sent."""
    caller_confirmed: bool = False
    """The caller's early (and proceeding) dialog is shown ``confirmed`` before the answer (a
    phone-LED workaround); its ``trying`` stays (seen on Kamailio 5.6.3)."""
    publish_on_trying: bool = False
    """The callee's ``trying`` is published (pua_dialoginfo ``callee_trying``); the caller's
    always is."""

    @classmethod
    def kamailio(cls) -> CallProfile:
        """pua_dialoginfo's defaults (Kamailio 5.6.3)."""
        return cls()

    @classmethod
    def from_profile(cls, profile: Any) -> CallProfile:
        """The call settings a target profile declares (its ``call_*`` fields; duck-typed, the
        oracle does not import the targets layer). A profile without them gets the defaults."""
        if not hasattr(profile, "call_include_callid"):
            return cls()
        return cls(
            include_callid=profile.call_include_callid,
            include_tags=profile.call_include_tags,
            include_localremote=profile.call_include_localremote,
            caller_confirmed=profile.call_caller_confirmed,
            publish_on_trying=profile.call_publish_on_trying,
        )

    def describe(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Step:
    """One state of the expected sequence and the wire event that causes it."""

    state: str
    at: float
    """When the cause was traced (the party's own trace clock)."""
    cause: str
    """The wire event, e.g. ``180 with To tag sent``."""
    rule: str
    """The E requirement a watcher's view of this step is judged under."""
    event: str | None = None
    code: int | None = None


@dataclass(frozen=True, slots=True)
class Expectation:
    """The dialog of one call as one party knows it, and the states it goes through."""

    party: Party
    call_id: str
    local_tag: str | None
    """The party's own tag (the caller's From tag, the callee's To tag)."""
    remote_tag: str | None
    """The other party's tag, once the party learned it."""
    local_uri: str | None
    local_display: str | None
    remote_uri: str | None
    remote_display: str | None
    local_target: str | None
    """The party's own Contact."""
    remote_target: str | None
    """The other party's Contact, once the party learned it."""
    steps: tuple[Step, ...]
    profile: CallProfile = field(default_factory=CallProfile)

    @property
    def direction(self) -> str:
        return self.party.direction

    @property
    def final(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    def shown(self, step: Step) -> str:
        """The state a module with this profile shows for ``step``."""
        if (
            self.party is Party.CALLER
            and self.profile.caller_confirmed
            and step.state in ("proceeding", "early")
        ):
            return "confirmed"  # pua_dialoginfo: "confirmed even in early state"; trying stays
        return step.state

    def published(self) -> tuple[Step, ...]:
        """The steps a module with this profile publishes, in order."""
        out = []
        for step in self.steps:
            if (
                self.party is Party.CALLEE
                and step.state == "trying"
                and not self.profile.publish_on_trying
            ):
                continue
            out.append(step)
        return tuple(out)


class OracleError(ValueError):
    """The messages cannot be a call as the oracle models it (the kit's input, not the SUT)."""


# -- derivation ----------------------------------------------------------------------------------
def expect(
    party: Party | str,
    messages: Iterable[Stamped],
    call_id: str,
    profile: CallProfile | None = None,
) -> Expectation:
    """The expectation for ``party``'s watcher, from ``party``'s own trace of call ``call_id``.

    Retransmissions (``retransmission`` set on traced messages) change nothing. Raises
    ``OracleError`` when the trace holds no INVITE of that call in the party's direction.
    """
    party = Party(party)
    profile = profile or CallProfile()
    mine = [m for m in messages if m.message.call_id == call_id]
    mine = [m for m in mine if not getattr(m, "retransmission", False)]
    invite_dir = "out" if party is Party.CALLER else "in"
    invite = next(
        (
            m
            for m in mine
            if m.direction == invite_dir
            and isinstance(m.message, Request)
            and m.message.method == "INVITE"
        ),
        None,
    )
    if invite is None:
        raise OracleError(
            f"no INVITE {'sent' if party is Party.CALLER else 'received'} in call {call_id!r}"
        )
    req = invite.message
    assert isinstance(req, Request)
    from_value, to_value = req.header("From"), req.header("To")
    own, other = (from_value, to_value) if party is Party.CALLER else (to_value, from_value)
    local_tag = req.from_tag if party is Party.CALLER else None
    remote_tag = req.from_tag if party is Party.CALLEE else None
    local_target = uri_of(req.header("Contact")) if party is Party.CALLER else None
    remote_target = uri_of(req.header("Contact")) if party is Party.CALLEE else None

    steps = [Step("trying", invite.timestamp, f"INVITE {_verb(invite_dir)}", "E12")]
    cancelled = False
    # Responses to the INVITE travel the other way: received by the caller, sent by the callee.
    resp_dir = "in" if party is Party.CALLER else "out"
    for m in mine:
        msg = m.message
        if _is_over(steps):
            break
        if isinstance(msg, Request):
            if msg.method == "CANCEL":
                cancelled = True
            elif msg.method == "BYE" and steps[-1].state == "confirmed":
                event = "local-bye" if m.direction == "out" else "remote-bye"
                steps.append(
                    Step("terminated", m.timestamp, f"BYE {_verb(m.direction)}", "E05", event)
                )
            continue
        if m.direction != resp_dir or msg.cseq is None or msg.cseq[1] != "INVITE":
            continue
        tag = msg.to_tag
        if party is Party.CALLER and tag and remote_tag is None:
            remote_tag = tag
            remote_target = uri_of(msg.header("Contact")) or remote_target
        if party is Party.CALLEE and tag:
            local_tag = local_tag or tag
            local_target = local_target or uri_of(msg.header("Contact"))
        if msg.status < 200:
            state = "early" if tag else "proceeding"
            cause = f"{msg.status} {'with' if tag else 'without'} To tag {_verb(m.direction)}"
            if _rank(state) > _rank(steps[-1].state):
                steps.append(Step(state, m.timestamp, cause, "E01" if tag else "E12"))
        elif msg.status < 300:
            steps.append(Step("confirmed", m.timestamp, f"2xx {_verb(m.direction)}", "E02"))
        elif msg.status == 487 and cancelled:
            steps.append(
                Step("terminated", m.timestamp, "487 after CANCEL", "E04", "cancelled", 487)
            )
        else:
            steps.append(
                Step(
                    "terminated",
                    m.timestamp,
                    f"{msg.status} {_verb(m.direction)}",
                    "E03",
                    "rejected",
                    msg.status,
                )
            )
    return Expectation(
        party=party,
        call_id=call_id,
        local_tag=local_tag,
        remote_tag=remote_tag,
        local_uri=uri_of(own),
        local_display=display_of(own),
        remote_uri=uri_of(other),
        remote_display=display_of(other),
        local_target=local_target,
        remote_target=remote_target,
        steps=tuple(steps),
        profile=profile,
    )


def _verb(direction: str) -> str:
    return "sent" if direction == "out" else "received"


def _rank(state: str) -> int:
    return STATES.index(state)


def _is_over(steps: Sequence[Step]) -> bool:
    return steps[-1].state == "terminated"


_DISPLAY = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<')


def display_of(header_value: str | None) -> str | None:
    """The display name of a From/To value (unquoted, escapes removed), None when there is none."""
    if not header_value:
        return None
    m = _DISPLAY.match(header_value)
    if m is None:
        return None
    if m.group(1) is not None:
        return re.sub(r"\\(.)", r"\1", m.group(1))
    text = (m.group(2) or "").strip()
    return text or None


# -- judging -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Observation:
    """The call's dialog as one NOTIFY showed it (``dialog`` None: not in that body)."""

    at: float
    dialog: Dialog | None
    version: int | None = None


def find_dialog(dialogs: Iterable[Dialog], exp: Expectation) -> Dialog | None:
    """The dialog of ``exp``'s call in a body: by call-id, else by the tags, else the only one."""
    found = list(dialogs)
    for d in found:
        if d.call_id == exp.call_id:
            return d
    for d in found:
        if exp.local_tag and d.local_tag == exp.local_tag:
            return d
    if not exp.profile.include_callid and len(found) == 1:
        return found[0]
    return None


def observe(notifies: Iterable[tuple[float, bytes]], exp: Expectation) -> list[Observation]:
    """One ``Observation`` per NOTIFY (its time and body) for ``exp``'s call.

    A NOTIFY without a body, or whose body has no dialog of the call, is the idle view for it
    (``dialog`` None); a body that cannot be parsed is left out (A02 is another check's).
    """
    out = []
    for at, body in notifies:
        if not body.strip():
            out.append(Observation(at, None))
            continue
        try:
            doc = parse_dialoginfo(body)
        except BodyError:
            continue
        dialogs = [item for item in doc.items if isinstance(item, Dialog)]
        out.append(Observation(at, find_dialog(dialogs, exp), parse_version(doc.version)))
    return out


def judge(
    exp: Expectation,
    observations: Sequence[Observation],
    *,
    settle: float = 2.0,
    skew: float = 0.1,
) -> list[Finding]:
    """Findings for what a watcher of ``exp.party`` saw of the call, NOTIFY by NOTIFY.

    * order (E01-E05, E12): each observed state is one the party's dialog goes through, no
      earlier than its cause, never going back;
    * end (E02-E05, E09, E11): the final state shows within ``settle`` s of its cause (with its
      event and code where sent; a body without the ended dialog is an idle view, also fine),
      and no later observation shows the dialog alive;
    * E06 direction, E07 call-id and tags, E08 identities, when present.
    ``skew``: how much earlier than its cause in the party's trace a state may be seen. The
    proxy publishes when it relays the response, a moment before the caller traces it.
    """
    findings: list[Finding] = []
    published = exp.published()
    seen = [o for o in observations if o.dialog is not None]
    who = f"{exp.party}'s watcher"
    final = published[-1] if published else None
    ended = final if final is not None and final.state == "terminated" else None
    index = 0
    reached: dict[str, tuple[Step, Observation]] = {}
    for o in seen:
        d = o.dialog
        assert d is not None
        state = (d.state or "").strip().lower()
        match = None
        for i in range(index, len(published)):
            if exp.shown(published[i]) == state and published[i].at <= o.at + skew:
                match = i
                break
        if match is None:
            if ended is not None and o.at + skew >= ended.at:
                continue  # alive after the end: E11's, judged once in _end
            step = _step_for(exp, state) or (published[index] if published else None)
            rule = step.rule if step else "E12"
            findings.append(
                Finding(
                    rule,
                    False,
                    f"{who} saw {d.state!r} at +{o.at - exp.steps[0].at:.3f} s, "
                    f"not a state the dialog was in by then (expected, in order: "
                    f"{_describe_steps(exp, published[index:])})",
                    path=f"dialog[@id={d.id!r}]/state",
                )
            )
            continue
        # Of several steps that look alike (caller_confirmed), the latest already caused.
        while (
            match + 1 < len(published)
            and exp.shown(published[match + 1]) == state
            and published[match + 1].at <= o.at + skew
        ):
            match += 1
        index = match
        findings.extend(_attributes(exp, d, published[match]))
        reached.setdefault(published[match].rule, (published[match], o))
    if final is not None:
        findings.extend(_end(exp, final, observations, settle, skew))
    return findings + _passes(exp, findings, reached, [o.dialog for o in seen])


def _passes(
    exp: Expectation,
    findings: Sequence[Finding],
    reached: dict[str, tuple[Step, Observation]],
    dialogs: Sequence[Dialog | None],
) -> list[Finding]:
    """A passed finding for each rule the watcher's NOTIFYs were judged under without a
    failure: a state step reached in order (E01, E12), and the attributes compared on every
    observation (E06-E08; absent ones are allowed, so absence passes and says so)."""
    failed = {f.requirement for f in findings if not f.passed}
    done = {f.requirement for f in findings}
    who = f"{exp.party}'s watcher"
    out: list[Finding] = []
    for rule, (step, o) in reached.items():
        if rule in done:
            continue
        out.append(
            Finding(
                rule,
                True,
                f"{who} saw {exp.shown(step)!r} +{o.at - exp.steps[0].at:.3f} s, "
                f"after {step.cause}",
            )
        )
        done.add(rule)
    # A step the watcher never saw, before one it saw in order: the notifier coalesced it
    # (RFC 6665 §4.2.2 lets it skip intermediate states). The order check above judged every
    # state that was shown, so the step's rule was judged and did not fail.
    last = max((step.at for step, _o in reached.values()), default=None)
    for step in exp.published():
        if last is None or step.rule in done or step.rule in failed or step.at >= last:
            continue
        out.append(
            Finding(
                step.rule,
                True,
                f"{who} never saw {exp.shown(step)!r} ({step.cause}): a later state came "
                "first, in order (a notifier may skip intermediate states)",
            )
        )
        done.add(step.rule)
    present = [d for d in dialogs if d is not None]
    for rule, what, sent in (
        ("E06", "direction", any(d.direction is not None for d in present)),
        (
            "E07",
            "call-id and tags",
            any(d.call_id or d.local_tag or d.remote_tag for d in present),
        ),
        ("E08", "local/remote identities", any(d.local or d.remote for d in present)),
    ):
        if rule in failed or not present:
            continue
        how = "match the party's own view" if sent else "not sent (allowed)"
        out.append(Finding(rule, True, f"{who}: {what} {how} in {len(present)} NOTIFYs"))
    return out


def _step_for(exp: Expectation, state: str) -> Step | None:
    """The first step showing ``state``: its rule is the one a misplaced ``state`` breaks."""
    return next((s for s in exp.steps if exp.shown(s) == state), None)


def _describe_steps(exp: Expectation, steps: Sequence[Step]) -> str:
    if not steps:
        return "nothing more"
    return ", ".join(f"{exp.shown(s)} ({s.cause})" for s in steps)


def _end(
    exp: Expectation,
    final: Step,
    observations: Sequence[Observation],
    settle: float,
    skew: float,
) -> list[Finding]:
    out: list[Finding] = []
    who = f"{exp.party}'s watcher"
    want = exp.shown(final)
    after = [o for o in observations if o.at + skew >= final.at]
    if not after:
        return [Finding(final.rule, False, f"{who} got no NOTIFY after {final.cause}")]
    ended = final.state == "terminated"

    def reached(o: Observation) -> bool:
        if o.dialog is None:
            return ended  # gone from a full body: the idle view (RFC 4235 §4.3) ends it too
        return (o.dialog.state or "").lower() == want

    first = next((o for o in after if reached(o)), None)
    if first is None:
        o = after[-1]
        got = "no such dialog" if o.dialog is None else repr(o.dialog.state)
        out.append(
            Finding(
                final.rule, False, f"{who} ended on {got}, expected {want!r} after {final.cause}"
            )
        )
        return out
    delay = first.at - final.at
    out.append(Finding(final.rule, True, f"{who} saw {want!r} {delay:.3f} s after {final.cause}"))
    out.append(
        Finding(
            "E09",
            delay <= settle,
            f"{who}: {want!r} seen {delay:.3f} s after {final.cause} (bound {settle:g} s)",
        )
    )
    last = first.dialog
    if last is not None:
        if final.event is not None and last.event is not None and last.event != final.event:
            out.append(
                Finding(
                    final.rule,
                    False,
                    f"{who}: event {last.event!r}, expected {final.event!r} after {final.cause}",
                )
            )
        if final.code is not None and last.code is not None and last.code != str(final.code):
            out.append(
                Finding(
                    final.rule,
                    False,
                    f"{who}: code {last.code!r}, expected {final.code} after {final.cause}",
                )
            )
    if ended:
        # E11: once ended, the dialog never shows alive again.
        later = [o for o in after if o.at >= first.at]
        alive = [
            o
            for o in later
            if o.dialog is not None and (o.dialog.state or "").lower() != "terminated"
        ]
        if alive:
            o = alive[0]
            assert o.dialog is not None
            out.append(
                Finding(
                    "E11",
                    False,
                    f"{who} saw the call {o.dialog.state!r} again "
                    f"{o.at - final.at:.3f} s after {final.cause}",
                )
            )
        else:
            out.append(
                Finding(
                    "E11", True, f"{who} saw the call end and stay ended ({len(later)} NOTIFYs)"
                )
            )
    return out


def _attributes(exp: Expectation, d: Dialog, step: Step) -> list[Finding]:
    out: list[Finding] = []
    who = f"{exp.party}'s watcher"
    if d.direction is not None and d.direction != exp.direction:
        out.append(
            Finding("E06", False, f"{who}: direction {d.direction!r}, not {exp.direction!r}")
        )
    if d.call_id is not None and d.call_id != exp.call_id:
        out.append(Finding("E07", False, f"{who}: call-id {d.call_id!r}, not {exp.call_id!r}"))
    # The remote tag is known from the step that brought it; before that none may be shown.
    remote = exp.remote_tag if _knows_remote(exp, step) else None
    for name, got, want in (
        ("local-tag", d.local_tag, exp.local_tag if _knows_local(exp, step) else None),
        ("remote-tag", d.remote_tag, remote),
    ):
        if got is not None and got != want:
            out.append(
                Finding(
                    "E07",
                    False,
                    f"{who}: {name} {got!r} in {exp.shown(step)!r}, expected "
                    f"{want!r} (the {exp.party}'s view of the dialog)",
                )
            )
    for side, part, uri, display in (
        ("local", d.local, exp.local_uri, exp.local_display),
        ("remote", d.remote, exp.remote_uri, exp.remote_display),
    ):
        if part is None:
            continue
        if part.identity is not None and uri is not None and part.identity != uri:
            out.append(
                Finding("E08", False, f"{who}: {side} identity {part.identity!r}, not {uri!r}")
            )
        if part.display is not None and part.display != display:
            out.append(
                Finding("E08", False, f"{who}: {side} display {part.display!r}, not {display!r}")
            )
    return out


def _knows_remote(exp: Expectation, step: Step) -> bool:
    if exp.party is Party.CALLEE:
        return True  # the caller's From tag came with the INVITE
    return step.state in ("early", "confirmed") or (
        step.state == "terminated" and exp.remote_tag is not None
    )


def _knows_local(exp: Expectation, step: Step) -> bool:
    if exp.party is Party.CALLER:
        return True
    return step.state != "trying" and (step.state != "proceeding")


def state_at(exp: Expectation, at: float) -> str | None:
    """The state ``exp``'s dialog is shown in at time ``at`` (None before it is published)."""
    current = None
    for step in exp.published():
        if step.at > at:
            break
        current = exp.shown(step)
    return current


def expected_view(
    expectations: Iterable[Expectation], at: float, *, single: bool = False
) -> dict[str, set[str]]:
    """E10: the states a watcher of one party should see at ``at``, by Call-ID, for calls that
    party is in at once. Aggregation shows every published call (terminated ones too, until
    their publication goes); single-dialog mode (D08) keeps the calls of the highest priority
    (early > confirmed > proceeding > trying > terminated). A tie is left whole: which one wins
    is the module's choice (D09). Each value is a one-element set, so a case can merge views.
    """
    shown = {e.call_id: state_at(e, at) for e in expectations}
    view = {cid: {state} for cid, state in shown.items() if state is not None}
    if single and len(view) > 1:
        best = max(priority(next(iter(states))) for states in view.values())
        view = {cid: st for cid, st in view.items() if priority(next(iter(st))) == best}
    return view


def states_seen(exp: Expectation, observations: Sequence[Observation]) -> list[str]:
    """The states a watcher saw for the call, lower-cased, repeats folded (for messages)."""
    out: list[str] = []
    for o in observations:
        if o.dialog is None:
            continue
        state = (o.dialog.state or "").lower()
        if not out or out[-1] != state:
            out.append(state)
    return out


__all__ = [
    "STATES",
    "CallProfile",
    "Expectation",
    "Observation",
    "OracleError",
    "Party",
    "Step",
    "display_of",
    "expect",
    "expected_view",
    "find_dialog",
    "judge",
    "observe",
    "state_at",
    "states_seen",
]
