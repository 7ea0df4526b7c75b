"""Checks on what a watcher captured: NOTIFY headers, the sequence of one subscription, and the
watcher's view against the oracle's expected aggregate.

Pure functions over parsed messages, like the rest of the oracle: the suite feeds them what SIPp
captured, and unit tests feed them hand-built messages. Each returns findings, passed ones too,
because a requirement counts as covered only when some check emitted a finding with its id.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from urllib.parse import unquote

from conformance.errors import BodyError
from conformance.oracle import dialoginfo, schema
from conformance.oracle.aggregator import Aggregate, entity_for
from conformance.oracle.dialoginfo import CONTENT_TYPE, Dialog
from conformance.oracle.findings import Finding
from conformance.oracle.requirements import Level
from conformance.oracle.view import WatcherView
from conformance.sip.message import Request, Response, Stamped, param_of, uri_of, value_of

PROMPT_SECONDS = 2.0
"""REQUIREMENTS.md: "promptly" means within 2 s on loopback."""

SILENCE_SECONDS = 3.0
"""REQUIREMENTS.md B21 (and B25, B26): after the subscription ended, a state change must
produce no NOTIFY on that dialog "within 3 s"."""

RATE_WINDOW = 1.0
"""RFC 4235 §3.10 (A30): not "faster than once every 1 second" to one subscriber."""

RATE_ALLOWANCE = 0.1
"""Seconds a watcher's trace may shrink the gap between two NOTIFYs a server spaced exactly
``RATE_WINDOW`` apart: SIPp stamps what it reads, and on a loaded host (2 cores, 8 explorer
lanes) the reference server's throttled NOTIFYs were read 0.975 and 0.987 s apart. A server
with no throttle sends a change's NOTIFY within milliseconds of its PUBLISH."""

TERMINATING_CODES = frozenset({404, 405, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 604})
"""NOTIFY responses after which RFC 6665 §4.2.2 says the subscription MUST be removed (B25)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the watcher asked for and was granted: the yardstick for each NOTIFY."""

    presentity: str
    """The SUBSCRIBE Request-URI, e.g. ``sip:alice-3@127.0.0.1``."""
    call_id: str
    subscriber_tag: str
    """The From-tag of the SUBSCRIBE: every NOTIFY's To-tag (B06)."""
    notifier_tag: str | None = None
    """The To-tag of the 2xx, when one came: every NOTIFY's From-tag (B06)."""
    event: str = "dialog"
    accept: tuple[str, ...] | None = None
    """Media types of the SUBSCRIBE's Accept; None when it sent no Accept (A01 default)."""
    granted: int | None = None
    """Expires of the 2xx."""
    granted_at: float | None = None
    rfc: int = 6665
    entity_rebuilt: bool = False
    """The profile says the server rebuilds ``entity`` as ``sip:user@host`` (presence_dialoginfo,
    trap T5): a changed scheme or a dropped port is then the module's documented form (D02), not
    an A12 failure. Off, the entity must be the presentity by RFC 3261 §19.1.4."""


@dataclass(frozen=True, slots=True)
class Captured:
    """One NOTIFY as a watcher saw it, with when it came and how it was answered."""

    request: Request
    timestamp: float
    answered: int | None = None
    late: bool = False
    """Read by a watcher that was paused on purpose: ``timestamp`` is when it was read, not
    when it arrived, so time-dependent checks (B09's remaining time) do not apply."""

    @property
    def body(self) -> bytes:
        return self.request.body

    @property
    def state(self) -> str | None:
        """The Subscription-State value (active, pending, terminated), lower-cased."""
        return value_of(self.request.header("Subscription-State"))


def _f(rid: str, ok: bool, message: str, **kw: object) -> Finding:
    return Finding(rid, ok, message, **kw)  # type: ignore[arg-type]


def stamped(finding: Finding, at: float) -> Finding:
    """A broken rule with the arrival time of the NOTIFY that broke it (``at``): the explorer
    places it at that step (``runner.failure_step``) instead of at its lane's end, and knows
    whether a garbage body was live then (``runner.relayed``)."""
    if finding.passed:
        return finding
    return dataclasses.replace(finding, evidence={**finding.evidence, "at": at})


# -- responses to SUBSCRIBE ---------------------------------------------------------------------


def check_subscribe_response(
    response: Response, *, requested: int | None, rfc: int = 6665, acceptable: bool = True
) -> list[Finding]:
    """B02 on any SUBSCRIBE response; B01, B03 (B04 when nothing was requested) when the
    SUBSCRIBE was ``acceptable``: Event: dialog with an Accept the notifier can meet."""
    out = [
        _f(
            "B02",
            response.status != 202 or rfc == 3265,
            f"SUBSCRIBE answered {response.status}",
            level=None if rfc == 6665 else Level.INFO,
            observed=str(response.status),
        )
    ]
    if not acceptable:
        return out
    out.append(
        _f(
            "B01",
            200 <= response.status < 300,
            f"SUBSCRIBE for Event: dialog answered {response.status} {response.reason}",
            observed=str(response.status),
        )
    )
    if 200 <= response.status < 300:
        expires = response.header("Expires")
        if expires is None or not expires.strip().isdigit():
            out.append(
                _f(
                    "B03",
                    False,
                    f"2xx to SUBSCRIBE has no usable Expires ({expires!r})",
                    observed=f"Expires {expires!r}",
                )
            )
        else:
            granted = int(expires)
            limit = requested if requested is not None else 3600
            rid = "B03" if requested is not None else "B04"
            ok = granted <= limit and (granted > 0 or requested == 0)
            out.append(_f(rid, ok, f"requested Expires {requested}, granted {granted}"))
    return out


def check_refresh_response(response: Response, *, requested: int) -> list[Finding]:
    """Failures of a refresh SUBSCRIBE's response: B19, a 2xx "MUST NOT increase" the time
    (RFC 6665 §4.2.1.4); B18, a 423 to an "unacceptably short" Expires carries a Min-Expires
    above it (RFC 3261 §20.23). Other statuses are the caller's business."""
    if response.status == 423:
        minimum = response.header("Min-Expires") or ""
        if minimum.isdigit() and int(minimum) > requested:
            return []
        return [_f("B18", False, f"423 to a refresh with Expires {requested} carries "
                                 f"Min-Expires {minimum!r}")]  # fmt: skip
    if not 200 <= response.status < 300:
        return []
    granted = response.header("Expires") or ""
    if granted.isdigit() and int(granted) <= requested:
        return []
    return [_f("B19", False, f"in-dialog refresh Expires {requested} answered "
                             f"{response.status} with Expires {granted!r}")]  # fmt: skip


# -- one NOTIFY ---------------------------------------------------------------------------------


# -- responses to PUBLISH -----------------------------------------------------------------------


def check_publish_response(
    response: Response, *, requested: int | None, if_match: str | None = None
) -> list[Finding]:
    """The rules every 2xx to a PUBLISH obeys (RFC 3903 §6; the suite's test_publish rows),
    failures only (a generated run would drown in passes): C04, exactly one SIP-ETag and an
    Expires; C05, the Expires granted is positive and not above what was ``requested``; C14, a
    request that quoted ``if_match`` (refresh, modify) gets a new entity-tag, not the old one.
    A remove (``requested`` 0) is only held to C04's single SIP-ETag."""
    if not 200 <= response.status < 300:
        return []
    out: list[Finding] = []
    etags = response.header_all("SIP-ETag")
    expires = response.header("Expires")
    granted = int(expires) if expires is not None and expires.strip().isdigit() else None
    if len(etags) != 1 or "," in etags[0] or (granted is None and requested != 0):
        out.append(
            _f("C04", False, f"2xx to PUBLISH carries SIP-ETag {etags!r}, Expires {expires!r}")
        )
    if requested and granted is not None and not 0 < granted <= requested:
        out.append(_f("C05", False, f"PUBLISH requested Expires {requested}, granted {granted}"))
    if if_match and requested != 0 and etags and etags[0].strip() == if_match:
        out.append(_f("C14", False, f"2xx to a PUBLISH quoting {if_match!r} kept that ETag"))
    return out


# -- the end of a subscription -------------------------------------------------------------------


def check_subscription_end(
    notifies: Sequence[Captured],
    *,
    unsubscribed: float | None = None,
    expired: float | None = None,
    slack: float = 0.5,
) -> list[Finding]:
    """Failures of RFC 6665's rules on how a subscription ends, from one subscription's NOTIFYs:
    B25, no NOTIFY later than ``slack`` after one the watcher answered with a terminating code
    (481, 489...: the subscription MUST be removed); B21, after an unsubscribe answered at
    ``unsubscribed``, the last NOTIFY says terminated and nothing follows it by ``slack``; B23,
    a subscription whose grant ran out at ``expired`` (never refreshed since, and waited past
    the server's expiry timer by the caller) ended with a terminated NOTIFY, reason=timeout."""
    out: list[Finding] = []
    rejected = next((c for c in notifies if c.answered in TERMINATING_CODES), None)
    if rejected is not None:
        later = [c for c in notifies if c.timestamp > rejected.timestamp + slack]
        if later:
            out.append(
                _f(
                    "B25",
                    False,
                    f"{len(later)} NOTIFY(s) after one answered {rejected.answered}",
                    observed=f"NOTIFYs after a NOTIFY answered {rejected.answered}",
                )
            )
    if unsubscribed is not None and rejected is None:
        after = [c for c in notifies if c.timestamp >= unsubscribed - slack]
        final = next((c for c in after if c.state == "terminated"), None)
        if final is None:
            states = [c.state for c in after]
            out.append(
                _f("B21", False, f"no terminated NOTIFY after the unsubscribe (states {states})")
            )
        elif any(c.timestamp > final.timestamp + slack for c in after):
            out.append(
                _f("B21", False, "NOTIFY(s) after the terminated one ending the subscription")
            )
    if expired is not None and rejected is None and unsubscribed is None:
        out += _expiry_ended(notifies, expired)
    return out


def _expiry_ended(notifies: Sequence[Captured], expired: float) -> list[Finding]:
    """B23's failure, if any: the NOTIFY ending an expired subscription (RFC 6665 §4.2.1.4)."""
    final = next((c for c in notifies if c.state == "terminated"), None)
    if final is None:
        states = [c.state for c in notifies]
        message = f"no terminated NOTIFY after the subscription's Expires ran out (states {states})"
        return [
            _f(
                "B23",
                False,
                message,
                observed="no NOTIFY ending the expired subscription",
                evidence={"at": expired},
            )
        ]
    header = (final.request.header("Subscription-State") or "").replace(" ", "").lower()
    if (param_of(header, "reason") or "") == "timeout":
        return []
    return [
        _f(
            "B23",
            False,
            f"the expired subscription ended with Subscription-State {header!r}",
            observed=f"expired subscription ended with {header!r}",
            evidence={"at": final.timestamp},
        )
    ]


def check_notify(captured: Captured, sub: Subscription) -> list[Finding]:
    """Header rules every NOTIFY must meet, then the body rules of RFC 4235 (schema.py)."""
    req = captured.request
    out: list[Finding] = []
    label = f"NOTIFY CSeq {req.cseq[0] if req.cseq else '?'}"

    # B06: the NOTIFY belongs to the subscription's dialog.
    problems, which = [], []
    if req.call_id != sub.call_id:
        problems.append(f"Call-ID {req.call_id!r} != {sub.call_id!r}")
        which.append("Call-ID differs")
    if req.to_tag != sub.subscriber_tag:
        problems.append(f"To-tag {req.to_tag!r} != SUBSCRIBE From-tag {sub.subscriber_tag!r}")
        which.append("To-tag differs")
    if sub.notifier_tag is not None and req.from_tag != sub.notifier_tag:
        problems.append(f"From-tag {req.from_tag!r} != 2xx To-tag {sub.notifier_tag!r}")
        which.append("From-tag differs")
    out.append(
        _f(
            "B06",
            not problems,
            f"{label}: " + ("; ".join(problems) or "matches"),
            observed="; ".join(which) or "matches",  # tags and Call-IDs change every run
        )
    )

    # B07: Event names the same package, with the same id parameter.
    event = req.header("Event")
    package = value_of(event)
    sent_id = param_of(";" + sub.event.split(";", 1)[1], "id") if ";" in sub.event else None
    ok = package == (value_of(sub.event) or "") and (
        sent_id is None or param_of(event, "id") == sent_id
    )
    out.append(
        _f(
            "B07",
            ok,
            f"{label}: Event {event!r} for a subscription to {sub.event!r}",
            observed=f"Event {event!r}",
        )
    )

    # B08-B10: Subscription-State.
    state_header = req.header("Subscription-State")
    state = captured.state
    out.append(
        _f(
            "B08",
            state in ("active", "pending", "terminated"),
            f"{label}: Subscription-State {state_header!r}",
            observed=f"Subscription-State {state or 'missing'}",
        )
    )
    if state in ("active", "pending"):
        expires = param_of(state_header, "expires")
        level = None if sub.rfc == 6665 else Level.SHOULD
        if expires is None or not expires.isdigit():
            out.append(
                _f(
                    "B09",
                    False,
                    f"{label}: {state_header!r} has no expires=",
                    level=level,
                    observed="no expires=",
                )
            )
        elif sub.granted is not None and sub.granted_at is not None and not captured.late:
            remaining = sub.granted - (captured.timestamp - sub.granted_at) + 1
            out.append(
                _f(
                    "B09",
                    int(expires) <= remaining,
                    f"{label}: expires={expires}, at most {remaining:.0f} s remain",
                    observed="expires= within the remaining time"
                    if int(expires) <= remaining
                    else "expires= beyond the remaining time",
                )
            )
    elif state == "terminated":
        reason = param_of(state_header, "reason")
        out.append(
            _f(
                "B10",
                reason is not None,
                f"{label}: {state_header!r}",
                observed=f"terminated;reason={reason}" if reason else "terminated, no reason",
            )
        )

    # B11: a Contact with exactly one SIP or SIPS URI.
    contacts = [c for value in req.header_all("Contact") for c in _split_contacts(value)]
    uri = uri_of(contacts[0]) if len(contacts) == 1 else None
    ok = uri is not None and uri.lower().startswith(("sip:", "sips:"))
    scheme = uri.split(":", 1)[0].lower() if uri else None
    out.append(
        _f(
            "B11",
            ok,
            f"{label}: Contact {req.header_all('Contact')!r}",
            observed=f"{len(contacts)} Contact URI(s), scheme {scheme}",
        )
    )

    body = captured.body
    content_type = req.header("Content-Type")
    if body.strip():
        mtype = value_of(content_type)
        out.append(
            _f(
                "B13",
                content_type is not None,
                f"{label}: {len(body)}-byte body, Content-Type {content_type!r}",
                observed=f"body with Content-Type {content_type!r}",
            )
        )
        if sub.accept is None or CONTENT_TYPE in sub.accept:
            out.append(
                _f(
                    "A01",
                    mtype == CONTENT_TYPE,
                    f"{label}: Content-Type {content_type!r}",
                    observed=f"Content-Type {content_type!r}",
                )
            )
        if sub.accept is not None:
            out.append(
                _f(
                    "B14",
                    mtype in sub.accept,
                    f"{label}: Content-Type {mtype!r}, Accept {', '.join(sub.accept)}",
                    observed=f"Content-Type {mtype!r}, Accept {', '.join(sub.accept)}",
                )
            )
        charset = param_of(content_type, "charset")
        out.append(
            _f(
                "A04",
                charset is None or charset.lower() in ("utf-8", "utf8"),
                f"{label}: Content-Type charset {charset!r}",
                path="Content-Type",
                observed=f"Content-Type charset {charset!r}",
            )
        )
        out.extend(_labelled(schema.iter_findings(body), label))
        try:
            entity = dialoginfo.parse(body).entity
        except BodyError:  # A02 is reported by the schema findings above
            entity = None
        if entity is not None:
            found = check_entity(entity, sub.presentity, rebuilt=sub.entity_rebuilt)
            out.extend(_labelled(found, label))
    return out


# -- the entity (A12, D02) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Uri:
    scheme: str
    user: str
    host: str
    port: str | None


def _uri(text: str) -> _Uri | None:
    """Scheme, user (unescaped), host (lower-cased) and port of a SIP URI; parameters and
    headers dropped. None when ``text`` is not ``scheme:[user@]host``."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    scheme, sep, rest = text.partition(":")
    if not sep or not scheme or not rest:
        return None
    for stop in ";?":
        rest = rest.split(stop, 1)[0]
    userinfo, at, hostport = rest.rpartition("@")
    user = unquote(userinfo.split(":", 1)[0]) if at else ""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, port = hostport[: end + 1], hostport[end + 2 :] if hostport[end + 1 :] else ""
    else:
        host, _, port = hostport.partition(":")
    if not host:
        return None
    return _Uri(scheme.lower(), user, host.lower(), port or None)


def check_entity(entity: str, presentity: str, *, rebuilt: bool = False) -> list[Finding]:
    """A12: ``entity`` names the presentity. The AOR (user unescaped and case-sensitive, host
    case-insensitive) must always match. Scheme and port must match too, unless the profile says
    the server rebuilds the entity (``rebuilt``, trap T5): then a ``sips:`` turned ``sip:`` or a
    dropped port is judged as D02 (the module's ``"sip:"+user+"@"+domain``) instead."""
    seen, wanted = _uri(entity), _uri(presentity)
    if seen is None or wanted is None:
        return [_f("A12", False, f"entity {entity!r} is not a SIP URI like sip:user@host")]
    aor = (seen.user, seen.host) == (wanted.user, wanted.host)
    exact = aor and (seen.scheme, seen.port) == (wanted.scheme, wanted.port)
    path = "/dialog-info/@entity"
    if exact:
        return [_f("A12", True, f"entity {entity!r} is the presentity {presentity!r}", path=path)]
    if not aor:
        return [
            _f("A12", False, f"entity {entity!r} names another AOR than {presentity!r}", path=path)
        ]
    changed = "scheme" if seen.scheme != wanted.scheme else "port"
    if seen.scheme != wanted.scheme and seen.port != wanted.port:
        changed = "scheme and port"
    if not rebuilt:
        return [
            _f(
                "A12",
                False,
                f"entity {entity!r} has the presentity's AOR but another {changed} than "
                f"{presentity!r} (the profile does not declare a rebuilt entity, T5)",
                path=path,
            )
        ]
    module = entity_for(presentity)
    return [
        _f("A12", True, f"entity {entity!r} has the AOR of {presentity!r}", path=path),
        _f(
            "D02",
            entity.strip() == module,
            f"entity {entity!r} for {presentity!r} ({changed} changed); the module writes "
            f"{module!r}",
            path=path,
        ),
    ]


def _labelled(findings: Iterable[Finding], label: str) -> Iterable[Finding]:
    for f in findings:
        yield Finding(
            f.requirement,
            f.passed,
            f"{label}: {f.message}",
            f.path,
            f.sourceline,
            f.level,
            f.evidence,
            observed=f.observed,  # the label (CSeq) is where, not what
            skipped=f.skipped,
        )


def _split_contacts(value: str) -> list[str]:
    # Commas inside <...> or quotes do not separate contacts.
    parts, depth, quoted, current = [], 0, False, ""
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


# -- the sequence of one subscription ------------------------------------------------------------


def first_version_observed(version: int) -> str:
    """The canonical A07 observation; a profile's ``first_version`` fact predicts exactly this."""
    return f"first version {version}"


def check_sequence(notifies: Sequence[Captured]) -> list[Finding]:
    """B12 (contiguous CSeq) and the version rules A07-A09 over one subscription's NOTIFYs.

    The watcher view is replayed here rather than trusted from elsewhere, so the version findings
    always describe exactly these NOTIFYs. A07 is judged against 0 whatever the target: a server
    that starts at 1 declares that as a deviation in its profile, it does not move the yardstick."""
    out: list[Finding] = []
    numbered = [(n.request.cseq[0], n) for n in notifies if n.request.cseq]
    for (prev, _), (cur, n) in pairwise(numbered):
        # The later NOTIFY's Subscription-State tells a reader which one broke the order (on
        # Kamailio, a terminated one for an expired subscription that a PUBLISH triggered).
        state = "" if cur == prev + 1 else f" ({n.request.header('Subscription-State')})"
        out.append(
            stamped(
                _f(
                    "B12",
                    cur == prev + 1,
                    f"NOTIFY CSeq {prev} then {cur}{state}",
                    observed=f"CSeq step {cur - prev}",  # the CSeq itself depends on the flow
                ),
                n.timestamp,
            )
        )
    view = WatcherView()
    first: tuple[int, float] | None = None
    bodiless = 0
    for n in notifies:
        if not n.body.strip():
            bodiless += 1
            continue
        for f in view.apply(n.body):
            if f.requirement not in ("A08", "A09"):
                continue
            if f.requirement == "A08" and not f.passed and bodiless:
                # Said in the observation, so a profile can excuse exactly a server that
                # counts its body-less NOTIFYs (Kamailio) without excusing any other gap.
                message = f"{f.message}; {bodiless} NOTIFY(s) without a body between"
                f = dataclasses.replace(f, message=message, observed="")
            out.append(stamped(f, n.timestamp))
        bodiless = 0
        if first is None and view.version is not None:
            first = (view.version, n.timestamp)  # the first document the view can read
    if first is not None:
        version, at = first
        out.append(
            stamped(
                _f(
                    "A07",
                    version == 0,
                    f"first version of the subscription is {version}",
                    observed=first_version_observed(version),
                ),
                at,
            )
        )
    return out


def check_scoped_versions(firsts: Sequence[tuple[str, int]]) -> list[Finding]:
    """A10 across the subscriptions of one presentity: each has a version counter of its own,
    so the first NOTIFY of every one (``(label, version)``, for those whose first NOTIFY
    carried a document) carries the same version, whatever the others were sent before. A
    counter shared by the presentity starts a later subscription where the others stand."""
    if len(firsts) < 2:
        return []
    ok = len({v for _, v in firsts}) == 1
    listed = ", ".join(f"{label} {v}" for label, v in firsts)
    return [
        _f(
            "A10",
            ok,
            f"first versions of one presentity's subscriptions: {listed}",
            observed="first versions agree" if ok else "first versions differ",
        )
    ]


# -- the view against the oracle -----------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Expected and observed dialogs, kept for the report's diff."""

    expected: tuple[Dialog, ...]
    observed: tuple[Dialog, ...]
    missing: tuple[Dialog, ...] = field(default=())
    unexpected: tuple[Dialog, ...] = field(default=())

    @property
    def equal(self) -> bool:
        return not self.missing and not self.unexpected

    def describe(self) -> str:
        def fmt(ds: Iterable[Dialog]) -> str:
            return ", ".join(f"{d.id}:{d.state}" for d in ds) or "none"

        if self.equal:
            return f"dialogs as expected ({fmt(self.expected)})"
        return (
            f"expected {fmt(self.expected)}; observed {fmt(self.observed)}; "
            f"missing {fmt(self.missing)}; unexpected {fmt(self.unexpected)}"
        )

    def evidence(self) -> dict[str, object]:
        return {
            "expected": [d.xml for d in self.expected],
            "observed": [d.xml for d in self.observed],
        }


def compare(expected: Iterable[Dialog], observed: Iterable[Dialog]) -> Comparison:
    """Multiset comparison by canonical form (dialog order is not the point of most rules)."""
    exp, obs = tuple(expected), tuple(observed)
    ce, co = Counter(exp), Counter(obs)
    return Comparison(exp, obs, tuple((ce - co).elements()), tuple((co - ce).elements()))


def expected_view(expected: Aggregate) -> dict[str, Dialog]:
    """What a §4.3 watcher holds after a full document with the expected aggregate."""
    view = WatcherView()
    view.apply(expected.body(0))
    return dict(view.dialogs)


def check_view(
    view: WatcherView,
    expected: Aggregate,
    requirements: Sequence[str],
    *,
    label: str = "watcher view",
    level: Level | None = None,
) -> list[Finding]:
    """The watcher's table against the oracle's, one finding per requirement named."""
    comparison = compare(expected_view(expected).values(), view.dialogs.values())
    return [
        _f(
            rid,
            comparison.equal,
            f"{label}: {comparison.describe()}",
            evidence=comparison.evidence(),
            level=level,
        )
        for rid in requirements
    ]


def check_body(body: bytes, expected: Aggregate, requirements: Sequence[str]) -> list[Finding]:
    """A full NOTIFY body's dialogs against the expected aggregate, as a multiset (terminated
    dialogs included), for rules about what the body itself carries (D08, D10)."""
    try:
        doc = dialoginfo.parse(body)
    except BodyError as exc:
        # A body the oracle cannot read is the server's fault (A02), never a case error.
        return [_f(exc.requirement, False, f"NOTIFY body: {exc.message}")]
    comparison = compare(expected.dialogs, doc.dialogs)
    return [
        _f(
            rid,
            comparison.equal,
            f"NOTIFY body: {comparison.describe()}",
            evidence=comparison.evidence(),
        )
        for rid in requirements
    ]


def check_refresh_notify(body: bytes, expected: Aggregate) -> list[Finding]:
    """The NOTIFY a SUBSCRIBE refresh triggers: B20 (it carries the current state, every dialog
    of the expected aggregate, terminated ones included) and A14 (as a ``state="full"``
    document). With nothing published, a body that shows nothing is the current state (B27)."""
    if not body.strip():
        idle = not expected.dialogs
        return [
            _f(
                "B20",
                idle,
                "refresh NOTIFY has no body"
                + (
                    "; nothing is published"
                    if idle
                    else f" while {len(expected.dialogs)} dialog(s) are published"
                ),
            )
        ]
    try:
        doc = dialoginfo.parse(body)
    except BodyError as exc:
        return [_f("B20", False, f"refresh NOTIFY body does not parse: {exc.message}")]
    comparison = compare(expected.dialogs, doc.dialogs)
    return [
        _f(
            "B20",
            comparison.equal,
            f"refresh NOTIFY body: {comparison.describe()}",
            evidence=comparison.evidence(),
        ),
        full_document(doc, "refresh NOTIFY"),
    ]


def full_document(doc: dialoginfo.DialogInfo, what: str) -> Finding:
    """A14: a NOTIFY a SUBSCRIBE triggered (the first of a subscription, or a refresh's)
    SHOULD carry the whole state, as a ``state="full"`` document."""
    return _f("A14", doc.state == "full", f"{what} body state {doc.state!r}")


def check_subscribe_notify(body: bytes, what: str) -> list[Finding]:
    """A14 on the body of a NOTIFY a SUBSCRIBE triggered; nothing for a body that is empty or
    does not parse (B27 and A02 judge those)."""
    if not body.strip():
        return []
    try:
        doc = dialoginfo.parse(body)
    except BodyError:
        return []
    return [full_document(doc, what)]


def check_passthrough(bodies: Iterable[bytes], dialog_id: str, **attributes: str) -> Finding:
    """A23: the terminated dialog ``dialog_id`` reaches the watcher with the ``event``/``code``
    it was published with. Judged on the bodies, not the §4.3 view (which drops terminated
    dialogs), and a dialog that never appears in any body fails: nothing passed through."""
    copies: list[Dialog] = []
    for body in bodies:
        if not body.strip():
            continue
        try:
            doc = dialoginfo.parse(body)
        except BodyError:  # A02 is judged by the per-NOTIFY checks
            continue
        copies += [d for d in doc.dialogs if d.id == dialog_id]
    wanted = {name: value for name, value in sorted(attributes.items())}
    if not copies:
        return _f("A23", False, f"dialog {dialog_id!r} ({wanted}) appeared in no NOTIFY body")
    seen = [{name: getattr(d, name) for name in wanted} for d in copies]
    return _f(
        "A23",
        all(s == wanted for s in seen),
        f"dialog {dialog_id!r} published with {wanted}, came back as "
        + ", ".join(str(s) for s in seen),
    )


def idle_form(body: bytes) -> str:
    """What a NOTIFY body shows for a presentity: ``no-body``, ``empty-document`` (a full
    document without dialogs), ``dummy-dialog`` (a full document with one terminated dialog),
    ``terminated-dialogs``, ``partial-empty`` (a partial document without live dialogs),
    ``unparsable``, or ``N live dialog(s)``."""
    if not body.strip():
        return "no-body"
    try:
        doc = dialoginfo.parse(body)
    except BodyError:
        return "unparsable"
    live = [d for d in doc.dialogs if d.state_key != "terminated"]
    if live:
        return f"{len(live)} live dialog(s)"
    if doc.state != "full":
        return "partial-empty"  # shows nothing; whether it should be full is A14's question
    if not doc.dialogs:
        return "empty-document"
    return "dummy-dialog" if len(doc.dialogs) == 1 else "terminated-dialogs"


NEUTRAL_FORMS = ("no-body", "empty-document", "dummy-dialog", "terminated-dialogs", "partial-empty")
"""Forms that show a §4.3 watcher no dialog: what B27 allows when nothing is published."""


def check_idle_notify(body: bytes, expected: Aggregate) -> Finding:
    """B27: with no meaningful state, the NOTIFY is empty or neutral (no body, a full document
    without dialogs, or one whose dialogs are all terminated). A neutral body while dialogs are
    published is not "no meaningful state": it fails too."""
    form = idle_form(body)
    live = [d for d in expected.dialogs if d.state_key != "terminated"]
    if live:
        return _f(
            "B27",
            form not in NEUTRAL_FORMS,
            f"NOTIFY shows {form} while {len(live)} live dialog(s) are published",
        )
    return _f("B27", form in NEUTRAL_FORMS, f"idle presentity's NOTIFY: {form}")


def check_rate(timestamps: Sequence[float], *, allowance: float = 0.0) -> Finding:
    """A30: at most one NOTIFY per ``RATE_WINDOW`` to one subscriber (RECOMMENDED, so a burst
    warns). ``timestamps`` are one subscription's NOTIFY arrival times; ``allowance`` narrows
    the window by the clock jitter between two arrivals the server spaced exactly one window
    apart. A burst carries when it began to break the rule (``at``: its second NOTIFY), so the
    explorer places it at its step."""
    ordered = sorted(timestamps)
    window = RATE_WINDOW - allowance
    burst = max((sum(1 for t in ordered if s <= t < s + window) for s in ordered), default=0)
    if burst <= 1:
        return _f("A30", True, f"no two NOTIFYs within {RATE_WINDOW:.0f} s to one watcher")
    a, b = next((a, b) for a, b in pairwise(ordered) if b - a < window)
    return _f(
        "A30",
        False,
        f"{burst} NOTIFYs within {RATE_WINDOW:.0f} s to one watcher",
        evidence={"at": b, "gap": round(b - a, 3)},
    )


def owed_notifies(trace: Iterable[Stamped]) -> set[str]:
    """The CSeq of each NOTIFY that answers one of the watcher's SUBSCRIBEs (initial, refresh,
    unsubscribe): the first NOTIFY after it in ``trace``, the messages in the order the
    watcher's SIPp handled them. The order, not the timestamps: SIPp may stamp a sent request
    late, after the NOTIFY it caused (the reference server's clean seed 4 in single mode once
    showed an answering NOTIFY counted as a change, a false A30). A SUBSCRIBE no NOTIFY
    answers (a 481, a 423) leaves its slot to the next NOTIFY: that only hides a change."""
    owed: set[str] = set()
    pending = 0
    for m in trace:
        method = getattr(m.message, "method", None)
        if m.direction == "out" and method == "SUBSCRIBE":
            pending += 1
        elif m.direction == "in" and method == "NOTIFY" and pending:
            cseq = m.message.header("CSeq")
            if cseq is not None and cseq not in owed:
                owed.add(cseq)
                pending -= 1
    return owed


def state_change_times(notifies: Sequence[Captured], owed: Collection[str]) -> list[float]:
    """Arrival times of the NOTIFYs A30 limits: those a change of the presentity's state sent.
    RFC 4235 §3.10 bounds the rate of notifications, but the NOTIFY that answers each of the
    watcher's own SUBSCRIBEs (``owed``: their CSeq, ``owed_notifies``) and one that ends the
    subscription are owed at once. Those are left out, with retransmissions (the same CSeq)
    and NOTIFYs a paused watcher read late (their time is when it read them).

    A change NOTIFY that arrives between a SUBSCRIBE and its answer takes the answer's place,
    and the answer is counted instead; a server that spaces every change NOTIFY a window after
    the NOTIFY before it (of any kind) still shows no two counted ones within a window."""
    out: list[float] = []
    seen: set[str | None] = set()
    for c in notifies:
        cseq = c.request.header("CSeq")
        if cseq in seen:
            continue
        seen.add(cseq)
        if cseq not in owed and not c.late and c.state != "terminated":
            out.append(c.timestamp)
    return out
