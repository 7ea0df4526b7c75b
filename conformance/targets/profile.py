"""Target profiles: what a presence server is known to do, declared in TOML.

Servers differ where the RFCs leave room (first version, empty body form, partial NOTIFYs) and
where their timers force the suite to wait (settle time after PUBLISH, expiry period). A profile
says which, so the oracle can predict the server's output and the suite can wait the right
time. A profile never silences a requirement: a deviation excuses one observation of one
requirement (``C07 = { reason = "...", observed = "..." }``, or ``observed_re`` for a pattern,
never for a MUST), and a fact (``first_version = 1``) makes the oracle expect what the server
does while the rule it contradicts is still reported as a known deviation with the fact as its
observation. docs/VERDICTS.md describes the syntax and how the judge applies it.

Loading is strict: an unknown key, a value of the wrong type or outside its allowed set is a
``UsageError`` that quotes the key and value and says what is allowed, because a typo in a
profile would otherwise silently change verdicts.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from conformance.errors import UsageError
from conformance.oracle import requirements
from conformance.oracle.aggregator import EMPTY_FORMS, FLAVOURS, EmptyForm, Flavour
from conformance.oracle.checks import first_version_observed
from conformance.oracle.verdicts import Deviation, exact_only

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

# Allowed values for the fields that take one of a few words or numbers.
_CHOICES: dict[str, tuple[object, ...]] = {
    "rfc": (6665, 3265),
    "flavour": FLAVOURS,
    "first_version": (0, 1),
    "empty_form": EMPTY_FORMS,
}


@dataclass(frozen=True)
class Profile:
    """A presence server's declared behaviour. Every field has the RFC-strict default."""

    name: str = "generic"
    """Short name shown in reports."""
    description: str = ""
    """One line: which server and version, observed how."""
    rfc: int = 6665
    """SIP events baseline: 6665, or 3265 (202 allowed, ``expires=`` only SHOULD; trap T8)."""
    single_dialog: bool = False
    """The server runs with presence_dialoginfo ``force_single_dialog=1`` (D08-D10)."""
    flavour: Flavour = "strict"
    """Which module's aggregation rules the oracle applies (the single-dialog tie rule: the
    newest publication wins for ``kamailio``, the first for ``opensips`` and ``strict``; the
    latest-state rule)."""
    claims_presence_dialoginfo: bool = False
    """The server claims presence_dialoginfo compatibility: the D rows describing the module's
    aggregation (D01, D03-D06, D08-D10) are judged against ``flavour`` and fail like MUSTs."""
    first_version: int = 0
    """Version of a subscription's first NOTIFY body (RFC 4235 says 0; Kamailio sends 1)."""
    partial_on_publish: bool = False
    """A NOTIFY caused by a PUBLISH with a body is ``state="partial"`` carrying only that body
    (OpenSIPS)."""
    empty_form: EmptyForm = "empty-document"
    """What a NOTIFY says when nothing is published: an empty full document, no body at all,
    or Kamailio's dummy terminated dialog (D11, B27)."""
    settle_time: float = 0.0
    """Seconds to wait after a PUBLISH's 200 before its NOTIFY is due or before a SUBSCRIBE
    should see it (OpenSIPS answers 200 before storing)."""
    expiry_timer: float = 0.0
    """Period of the server's expiry timers in seconds (Kamailio: ``clean_period`` for
    publications, ``db_update_period`` for subscriptions; the kit's config sets both alike);
    0 means things expire exactly on time."""
    expiry_slack: float = 0.0
    """Extra seconds after expiry before the timer acts (OpenSIPS: ``expires < now - 10``)."""
    replaces_on_same_first_id: bool = False
    """A new PUBLISH whose first dialog id matches a stored publication replaces it
    (Kamailio)."""
    stale_removal_notify: bool = False
    """The NOTIFY triggered by a remove (``Expires: 0``) still contains the removed dialogs
    (both modules build it before deleting). The history check expects that NOTIFY; the table
    it leaves is still judged, so C16/D05 stay declared deviations."""
    publish_expires_cap: int = 3600
    """Largest PUBLISH Expires the server grants; larger requests are lowered to it (D15)."""
    timestamp_resolution: float = 0.0
    """Granularity of the clock the server orders publications by (Kamailio: whole seconds).
    Order-sensitive steps are spaced by more than this."""
    entity_rebuilt: bool = False
    """The server writes ``entity`` as ``sip:user@host`` rebuilt from the Request-URI, as
    presence_dialoginfo does (trap T5, D02): a ``sips:`` scheme turned ``sip:`` or a dropped
    port is then judged as D02, not as an A12 failure."""
    call_include_callid: bool = True
    """Calls (group E): the publishing module writes ``call-id`` (pua_dialoginfo
    ``include_callid``)."""
    call_include_tags: bool = True
    """Calls: ``local-tag``/``remote-tag`` are written (``include_tags``)."""
    call_include_localremote: bool = True
    """Calls: ``<local>``/``<remote>`` are written (``include_localremote``)."""
    call_caller_confirmed: bool = False
    """Calls: the caller's early dialog is shown ``confirmed`` (``caller_confirmed``)."""
    call_publish_on_trying: bool = False
    """Calls: the callee's ``trying`` is published (``callee_trying``)."""
    deviations: Mapping[str, tuple[Deviation, ...]] = field(default_factory=dict)
    """case id (or ``*`` for every case) -> the deviations declared there, each excusing one
    observation of one requirement."""
    source: str = ""
    """Where the profile came from (a shipped name or a file path); for reports."""

    def __post_init__(self) -> None:
        # Freeze the table so a shared profile cannot be changed by one test.
        frozen = {case: tuple(devs) for case, devs in self.deviations.items()}
        object.__setattr__(self, "deviations", MappingProxyType(frozen))

    def deviations_for(self, case_id: str, variant: str | None = None) -> tuple[Deviation, ...]:
        """Declared for ``case_id``, or for one parametrised variant of it (``test_x[489]``)."""
        here = self.deviations.get(case_id, ())
        if variant and variant != case_id:
            here = (*here, *self.deviations.get(variant, ()))
        return self._in_mode(here)

    def _in_mode(self, deviations: tuple[Deviation, ...]) -> tuple[Deviation, ...]:
        mode = "single" if self.single_dialog else "aggregate"
        return tuple(d for d in deviations if d.mode in (None, mode))

    def wildcard_deviations(self) -> tuple[Deviation, ...]:
        """Declared for every case (``*``), then those the profile's facts imply: the oracle
        expects what the fact says, and the rule it contradicts is reported as a known
        deviation whose observation is the fact."""
        return (*self._in_mode(self.deviations.get("*", ())), *self.fact_deviations())

    def fact_deviations(self) -> tuple[Deviation, ...]:
        out = []
        if self.first_version != 0:
            out.append(
                Deviation(
                    "A07",
                    f"profile fact first_version = {self.first_version}",
                    observed=first_version_observed(self.first_version),
                    fact="first_version",
                )
            )
        if self.partial_on_publish:
            out.append(
                Deviation(
                    "A17",
                    "profile fact partial_on_publish = true: a partial NOTIFY carries only the "
                    "new publication, so a §4.3 watcher keeps the dialogs it replaced",
                    observed_re=PARTIAL_LEFTOVERS,
                    fact="partial_on_publish",
                )
            )
        return tuple(out)

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType does not pickle; rebuild from plain data (xdist, multiprocessing).
        return (_rebuild, (self.to_dict(),))

    def with_overrides(self, **overrides: Any) -> Profile:
        """A copy with some fields replaced (a command-line option beats the profile file).

        ``None`` values are ignored, so callers can pass every option straight through.
        Values are checked like values read from a file.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        data = _check_fields(given, where="override")
        return dataclasses.replace(self, **data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for reports."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "deviations":
                value = {
                    case: {
                        d.requirement: [x.to_dict() for x in devs if x.requirement == d.requirement]
                        for d in devs
                    }
                    for case, devs in value.items()
                }
            out[f.name] = value
        return out


def _rebuild(data: dict[str, Any]) -> Profile:
    return profile_from_dict(data, source=data.get("source", ""))


PARTIAL_LEFTOVERS = r"watcher table: (?!none;).+; oracle: .+"
"""What the history check observes after partial NOTIFYs replaced a publication: a §4.3 table
that still holds dialogs the oracle no longer has (the A17 observation ``partial_on_publish``
predicts; ``oracle.history`` writes ``watcher table: …; oracle: …``)."""

SHIPPED = ("generic", "kamailio", "opensips", "reference")
"""Profile names that ship with the kit (files in ``conformance/targets/profiles/``)."""


def shipped_path(name: str) -> Path:
    return PROFILE_DIR / f"{name}.toml"


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """Load a shipped profile by name (``kamailio``) or a user's TOML file by path."""
    text = str(name_or_path)
    if text in SHIPPED:
        path = shipped_path(text)
        source = text
    elif text.endswith(".toml") or "/" in text or Path(text).is_file():
        path = Path(text).expanduser()
        source = str(path)
    else:
        raise UsageError(
            f"unknown profile {text!r}: use one of {', '.join(SHIPPED)} or a path to a .toml file"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"profile file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read profile file {str(path)!r}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"profile file {str(path)!r} is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"profile file {str(path)!r} is not valid TOML: {exc}") from None
    return profile_from_dict(data, source=source)


def profile_from_dict(data: Mapping[str, Any], *, source: str = "") -> Profile:
    """Build a profile from a parsed TOML table, checking every key and value."""
    where = f"profile {source!r}" if source else "profile"
    checked = _check_fields(data, where=where)
    if "deviations" in data:  # checked last: MUST-or-not depends on claims_presence_dialoginfo
        checked["deviations"] = _check_deviations(
            data["deviations"], where, claims=bool(checked.get("claims_presence_dialoginfo"))
        )
    checked.setdefault("source", source)
    if "name" not in checked and source:
        checked["name"] = Path(source).stem
    return Profile(**checked)


_FIELDS = {f.name: f for f in dataclasses.fields(Profile)}
_BOOL = {
    "single_dialog",
    "partial_on_publish",
    "replaces_on_same_first_id",
    "stale_removal_notify",
    "claims_presence_dialoginfo",
    "entity_rebuilt",
    "call_include_callid",
    "call_include_tags",
    "call_include_localremote",
    "call_caller_confirmed",
    "call_publish_on_trying",
}
_SECONDS = {"settle_time", "expiry_timer", "expiry_slack", "timestamp_resolution"}
_COUNTS = {"publish_expires_cap"}
_TEXT = {"name", "description", "source"}


def _check_fields(data: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            allowed = ", ".join(sorted(_FIELDS))
            raise UsageError(f"{where}: unknown key {key!r} (allowed: {allowed})")
        out[key] = _check_value(key, value, where)
    return out


def _check_value(key: str, value: Any, where: str) -> Any:
    def bad(what: str) -> UsageError:
        return UsageError(f"{where}: {key} = {value!r} is not allowed: {what}")

    if key in _CHOICES:
        allowed = _CHOICES[key]
        # bool is an int in Python; "true" must not pass as first_version 1.
        if isinstance(value, bool) or value not in allowed:
            raise bad("use one of " + ", ".join(repr(a) for a in allowed))
        return value
    if key in _BOOL:
        if not isinstance(value, bool):
            raise bad("use true or false")
        return value
    if key in _SECONDS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("use a number of seconds")
        if not math.isfinite(value) or value < 0 or value > 3600:
            raise bad("use a number of seconds from 0 to 3600")
        return float(value)
    if key in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("use a whole number of seconds, 0 or more")
        return value
    if key in _TEXT:
        if not isinstance(value, str):
            raise bad("use a string")
        return value
    if key == "deviations":
        return value  # checked by profile_from_dict once every other field is known
    raise AssertionError(f"profile field {key!r} has no check")  # a kit bug, not user input


_DEVIATION_KEYS = {"reason", "observed", "observed_re", "mode"}


def _check_deviations(value: Any, where: str, *, claims: bool) -> dict[str, tuple[Deviation, ...]]:
    example = 'e.g. [deviations."test_x"] C07 = { reason = "...", observed = "..." }'
    if not isinstance(value, Mapping):
        raise UsageError(f"{where}: deviations must be a table of case ids, {example}")
    out: dict[str, tuple[Deviation, ...]] = {}
    for case, reqs in value.items():
        if not isinstance(reqs, Mapping):
            raise UsageError(
                f"{where}: deviations.{case!r} must be a table of requirement ids, {example}"
            )
        found: list[Deviation] = []
        for rid, spec in reqs.items():
            at = f"{where}: deviations.{case!r}.{rid}"
            try:
                requirements.get(rid)
            except KeyError:
                raise UsageError(
                    f"{where}: deviations.{case!r} names unknown requirement {rid!r} "
                    "(ids are listed in REQUIREMENTS.md, e.g. 'C07')"
                ) from None
            specs = spec if isinstance(spec, list) else [spec]
            if isinstance(spec, str):
                raise UsageError(
                    f"{at} is in the old format (a reason only); a deviation must name the "
                    f'observation it excuses: {rid} = {{ reason = "...", observed = "..." }}'
                )
            for one in specs:
                found.append(_check_deviation(one, rid, at, claims=claims))
        out[case] = tuple(found)
    return out


def _check_deviation(spec: Any, rid: str, at: str, *, claims: bool) -> Deviation:
    if not isinstance(spec, Mapping):
        raise UsageError(f'{at} = {spec!r} must be a table {{ reason = "...", observed = "..." }}')
    unknown = set(spec) - _DEVIATION_KEYS
    if unknown:
        raise UsageError(
            f"{at}: unknown key(s) {', '.join(sorted(unknown))} "
            "(allowed: mode, observed, observed_re, reason)"
        )
    reason = spec.get("reason")
    if not isinstance(reason, str) or not reason.strip() or "\n" in reason.strip():
        raise UsageError(f"{at}: reason must be a one-line string")
    observed, pattern = spec.get("observed"), spec.get("observed_re")
    if (observed is None) == (pattern is None):
        raise UsageError(
            f"{at}: name the observation it excuses with exactly one of observed, observed_re"
        )
    for name, text in (("observed", observed), ("observed_re", pattern)):
        if text is not None and (not isinstance(text, str) or not text):
            raise UsageError(f"{at}: {name} must be a non-empty string")
    if pattern is not None:
        if exact_only(rid, claims_module=claims):
            raise UsageError(
                f"{at}: {rid} is binding here (MUST, MUST*, or a module row the profile claims): "
                "only an exact observed is accepted, not observed_re"
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(
                f"{at}: observed_re {pattern!r} is not a regular expression: {exc}"
            ) from None
    mode = spec.get("mode")
    if mode not in (None, "aggregate", "single"):
        raise UsageError(f"{at}: mode = {mode!r} is not allowed: use 'aggregate' or 'single'")
    return Deviation(rid, reason.strip(), observed=observed, observed_re=pattern, mode=mode)
