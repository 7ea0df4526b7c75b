"""Target profiles: what a presence server is known to do, declared in TOML.

Servers differ where the RFCs leave room (first version, empty body form, partial NOTIFYs) and
where their timers force the suite to wait (settle time after PUBLISH, expiry period). A profile
says which, so the oracle can predict the server's output and the suite can wait the right
time. A profile never silences a requirement: ``deviations`` only lets a case report a known
deviation as "known" (keyed by case id and requirement id, with a one-line reason).

Loading is strict: an unknown key, a value of the wrong type or outside its allowed set is a
``UsageError`` that quotes the key and value and says what is allowed, because a typo in a
profile would otherwise silently change verdicts.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from conformance.errors import UsageError
from conformance.oracle import requirements

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"

Flavour = Literal["strict", "opensips", "kamailio"]
EmptyForm = Literal["empty-document", "no-body", "dummy-dialog"]
TieBreak = Literal["first", "last"]

# Allowed values for the fields that take one of a few words or numbers.
_CHOICES: dict[str, tuple[object, ...]] = {
    "rfc": (6665, 3265),
    "flavour": ("strict", "opensips", "kamailio"),
    "first_version": (0, 1),
    "empty_form": ("empty-document", "no-body", "dummy-dialog"),
    "tie_break": ("first", "last"),
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
    flavour: Flavour = "kamailio"
    """Which module's aggregation rules the oracle applies (tie-break, latest-state rule)."""
    first_version: int = 0
    """Version of a subscription's first NOTIFY body (RFC 4235 says 0; Kamailio sends 1)."""
    partial_on_publish: bool = False
    """A NOTIFY caused by a PUBLISH with a body is ``state="partial"`` carrying only that body
    (OpenSIPS)."""
    notify_on_refresh_publish: bool = False
    """A body-less refresh PUBLISH causes a NOTIFY with unchanged content (Kamailio)."""
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
    tie_break: TieBreak = "first"
    """Single-dialog mode, equal priority: the first or the last candidate in aggregation
    order wins (D09)."""
    replaces_on_same_first_id: bool = False
    """A new PUBLISH whose first dialog id matches a stored publication replaces it
    (Kamailio)."""
    stale_removal_notify: bool = False
    """The NOTIFY triggered by a remove (``Expires: 0``) still contains the removed dialogs."""
    publish_expires_cap: int = 3600
    """Largest PUBLISH Expires the server grants; larger requests are lowered to it."""
    subscribe_expires_cap: int = 3600
    """Largest SUBSCRIBE Expires the server grants."""
    sub_min_expires: int = 0
    """Smallest SUBSCRIBE Expires accepted without 423; 0 means no minimum."""
    timestamp_resolution: float = 0.0
    """Granularity of the clock the server orders publications by (Kamailio: whole seconds).
    Order-sensitive steps are spaced by more than this."""
    entity_rebuilt: bool = False
    """The server writes ``entity`` as ``sip:user@host`` rebuilt from the Request-URI, as
    presence_dialoginfo does (trap T5, D02): a ``sips:`` scheme turned ``sip:`` or a dropped
    port is then judged as D02, not as an A12 failure."""
    deviations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """case id -> requirement id -> one-line reason citing BEHAVIOUR.md or a trace."""
    source: str = ""
    """Where the profile came from (a shipped name or a file path); for reports."""

    def __post_init__(self) -> None:
        # Freeze the nested table so a shared profile cannot be changed by one test.
        frozen = {case: MappingProxyType(dict(reqs)) for case, reqs in self.deviations.items()}
        object.__setattr__(self, "deviations", MappingProxyType(frozen))

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

    def deviation(self, case: str, requirement: str) -> str | None:
        """The declared reason why ``case`` deviates from ``requirement``, or None."""
        return self.deviations.get(case, {}).get(requirement)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for reports."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "deviations":
                value = {case: dict(reqs) for case, reqs in value.items()}
            out[f.name] = value
        return out


def _rebuild(data: dict[str, Any]) -> Profile:
    return Profile(**data)


SHIPPED = ("generic", "kamailio", "opensips", "reference")
"""Profile names that ship with the kit (files in ``conformance/targets/profiles/``)."""


def shipped_path(name: str) -> Path:
    return PROFILE_DIR / f"{name}.toml"


def load_profile(name_or_path: str | Path) -> Profile:
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
    checked.setdefault("source", source)
    if "name" not in checked and source:
        checked["name"] = Path(source).stem
    return Profile(**checked)


_FIELDS = {f.name: f for f in dataclasses.fields(Profile)}
_BOOL = {
    "single_dialog",
    "partial_on_publish",
    "notify_on_refresh_publish",
    "replaces_on_same_first_id",
    "stale_removal_notify",
    "entity_rebuilt",
}
_SECONDS = {"settle_time", "expiry_timer", "expiry_slack", "timestamp_resolution"}
_COUNTS = {"publish_expires_cap", "subscribe_expires_cap", "sub_min_expires"}
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
        return _check_deviations(value, where)
    raise AssertionError(f"profile field {key!r} has no check")  # a kit bug, not user input


def _check_deviations(value: Any, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(value, Mapping):
        raise UsageError(
            f"{where}: deviations must be a table of case ids, e.g. "
            '[deviations."test_x"] C07 = "reason"'
        )
    out: dict[str, dict[str, str]] = {}
    for case, reqs in value.items():
        if not isinstance(reqs, Mapping):
            raise UsageError(
                f"{where}: deviations.{case!r} = {reqs!r} must be a table of requirement ids"
            )
        out[case] = {}
        for rid, reason in reqs.items():
            try:
                requirements.get(rid)
            except KeyError:
                raise UsageError(
                    f"{where}: deviations.{case!r} names unknown requirement {rid!r} "
                    "(ids are listed in REQUIREMENTS.md, e.g. 'C07')"
                ) from None
            if not isinstance(reason, str) or not reason.strip() or "\n" in reason.strip():
                raise UsageError(
                    f"{where}: deviations.{case!r}.{rid} = {reason!r} must be a one-line reason"
                )
            out[case][rid] = reason.strip()
    return out
