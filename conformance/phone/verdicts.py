"""Conclusions a deployer needs, derived from the probe outcomes alone.

Pure: a list of ``ProbeResult`` in, a list of ``Conclusion`` out. No guessing from the phone's
User-Agent: every sentence points at the probes it rests on, so a reader can check it in the
report. A probe that did not run contributes nothing (an untested count is "not tested", never
"accepted").

Settings named here are the presence_dialoginfo module parameters (seed text, D08-D11):
``force_single_dialog`` only applies when at least two publications exist (D10), so it helps a
phone that chokes on several dialogs only if each dialog is published separately;
``force_dummy_dialog`` (Kamailio) replaces the body-less idle NOTIFY by one terminated dialog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from conformance.phone.probes import UDP_SAFE_BYTES
from conformance.phone.session import ProbeResult

Level = Literal["ok", "info", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Conclusion:
    key: str
    """Stable id: ``max-dialogs``, ``force_single_dialog``, ``force_dummy_dialog``, ..."""
    level: Level
    text: str
    probes: tuple[str, ...] = ()
    """Names of the probes the conclusion rests on."""


def _ran(r: ProbeResult) -> bool:
    return r.outcome != "skipped"


def _ok(r: ProbeResult) -> bool:
    return r.outcome == "accepted"


def _how(r: ProbeResult) -> str:
    if r.outcome == "fatal":
        return "no answer (crashed or hung)"
    if r.outcome == "rejected":
        return f"{r.status} {r.reason}".strip()
    return r.outcome


def conclude(results: Sequence[ProbeResult], *, transport: str = "udp") -> list[Conclusion]:
    """Every conclusion the results support, most important first."""
    by_name = {r.probe.name: r for r in results if _ran(r)}
    out: list[Conclusion] = []
    out += _dialog_count(results)
    out += _idle_forms(by_name)
    out += _single(by_name, "partial", "partial-state", "rejects partial state", _PARTIAL_ADVICE)
    out += _states(results)
    out += _sizes(results, transport)
    out += _single(
        by_name,
        "version-jump",
        "version-jump",
        "rejects a version jump",
        "after a server restart or a lost NOTIFY its BLF state would stop updating",
    )
    out += _single(
        by_name,
        "version-repeat",
        "version-repeat",
        "rejects a repeated version",
        "RFC 4235 §4.3 lets a watcher discard such a document; answering 200 is usual",
        level="info",
    )
    for name, what in (
        ("extension", "unknown extension elements"),
        ("sa", "RFC 7463 sa: elements (shared appearances)"),
        ("utf8", "UTF-8 display names"),
    ):
        out += _single(by_name, name, name, f"rejects {what}", "")
    fatal = [r.probe.name for r in results if r.outcome == "fatal"]
    if fatal:
        out.append(
            Conclusion(
                "fatal",
                "fail",
                f"stopped answering after: {', '.join(fatal)} (crash or hang)",
                tuple(fatal),
            )
        )
    skipped = [r.probe.name for r in results if not _ran(r)]
    if skipped:
        out.append(Conclusion("not-run", "info", f"{len(skipped)} probes not run", tuple(skipped)))
    bad = [r for r in results if _ran(r) and not _ok(r)]
    if not bad and any(_ran(r) for r in results):
        out.insert(
            0,
            Conclusion(
                "no-restrictions",
                "ok",
                "no restrictions found: every probe that ran was accepted",
                tuple(r.probe.name for r in results if _ran(r)),
            ),
        )
    return out


_PARTIAL_ADVICE = (
    "OpenSIPS sends state=partial NOTIFYs on PUBLISH; Kamailio always sends full state"
)


def _single(
    by_name: dict[str, ProbeResult],
    name: str,
    key: str,
    text: str,
    advice: str,
    *,
    level: Level = "warn",
) -> list[Conclusion]:
    r = by_name.get(name)
    if r is None or _ok(r):
        return []
    lvl: Level = "fail" if r.outcome == "fatal" else level
    tail = f"; {advice}" if advice else ""
    return [Conclusion(key, lvl, f"{text} ({_how(r)}){tail}", (name,))]


def _plain_counts(results: Sequence[ProbeResult]) -> list[ProbeResult]:
    """Probes that vary only the number of dialogs: the count probes and one confirmed dialog."""
    return sorted(
        (
            r
            for r in results
            if _ran(r)
            and (r.probe.group == "count" or r.probe.name == "state-confirmed")
            and r.probe.form == "dialogs"
        ),
        key=lambda r: r.probe.dialogs,
    )


def _dialog_count(results: Sequence[ProbeResult]) -> list[Conclusion]:
    counts = _plain_counts(results)
    if not counts:
        return [Conclusion("max-dialogs", "info", "dialog count not tested")]
    names = tuple(r.probe.name for r in counts)
    first_bad = next((r for r in counts if not _ok(r)), None)
    good = [
        r.probe.dialogs
        for r in counts
        if _ok(r) and (first_bad is None or r.probe.dialogs < first_bad.probe.dialogs)
    ]
    n = max(good, default=0)
    if first_bad is None:
        return [
            Conclusion("max-dialogs", "ok", f"accepts up to {n} dialogs (the most tried)", names)
        ]
    m = first_bad.probe.dialogs
    out = [
        Conclusion(
            "max-dialogs",
            "fail",
            f"accepts up to {n} dialogs, fails at {m} ({_how(first_bad)})",
            names,
        )
    ]
    if n <= 1:
        out.append(
            Conclusion(
                "force_single_dialog",
                "fail",
                "needs force_single_dialog: the phone cannot take a body with several dialogs. "
                "The parameter only applies with two or more publications (D10): each dialog "
                "must be published separately (pua_dialoginfo does)",
                names,
            )
        )
    else:
        out.append(
            Conclusion(
                "force_single_dialog",
                "warn",
                f"fails with {m} dialogs: force_single_dialog avoids it (one dialog shown)",
                names,
            )
        )
    return out


def _idle_forms(by_name: dict[str, ProbeResult]) -> list[Conclusion]:
    nb, em, du = (by_name.get(n) for n in ("no-body", "empty", "dummy"))
    names = tuple(n for n, r in (("no-body", nb), ("empty", em), ("dummy", du)) if r is not None)
    bad_nb = nb is not None and not _ok(nb)
    bad_em = em is not None and not _ok(em)
    ok_du = du is not None and _ok(du)
    out: list[Conclusion] = []
    if bad_nb and bad_em and ok_du:
        out.append(
            Conclusion(
                "force_dummy_dialog",
                "fail",
                "needs force_dummy_dialog: it rejects a body-less NOTIFY "
                f"({_how(nb)}) and an empty <dialog-info> ({_how(em)}) "  # type: ignore[arg-type]
                "but accepts Kamailio's dummy dialog; with OpenSIPS (empty document) it fails",
                names,
            )
        )
    elif bad_nb and bad_em and du is not None:
        out.append(
            Conclusion(
                "idle-forms",
                "fail",
                "rejects every idle form (no body, empty document, dummy dialog)",
                names,
            )
        )
    else:
        if bad_nb:
            out.append(
                Conclusion(
                    "no-body",
                    "warn",
                    f"rejects a body-less NOTIFY ({_how(nb)}): with Kamailio set "  # type: ignore[arg-type]
                    "force_dummy_dialog=1",
                    ("no-body",),
                )
            )
        if bad_em:
            out.append(
                Conclusion(
                    "empty-document",
                    "warn",
                    f"rejects an empty <dialog-info> ({_how(em)}): OpenSIPS sends one "  # type: ignore[arg-type]
                    "when nothing is published",
                    ("empty",),
                )
            )
        if du is not None and not ok_du:
            out.append(
                Conclusion(
                    "dummy",
                    "warn",
                    f"rejects Kamailio's dummy dialog ({_how(du)}): keep force_dummy_dialog=0",
                    ("dummy",),
                )
            )
    return out


def _states(results: Sequence[ProbeResult]) -> list[Conclusion]:
    bad = [r for r in results if _ran(r) and r.probe.group == "state" and not _ok(r)]
    if not bad:
        return []
    states = ", ".join(f"{r.probe.state} ({_how(r)})" for r in bad)
    level: Level = "fail" if any(r.outcome == "fatal" for r in bad) else "warn"
    return [
        Conclusion(
            "states", level, f"rejects dialogs in state {states}", tuple(r.probe.name for r in bad)
        )
    ]


def _sizes(results: Sequence[ProbeResult], transport: str) -> list[Conclusion]:
    sized = sorted(
        (r for r in results if _ran(r) and r.probe.group == "size" and r.body_bytes is not None),
        key=lambda r: r.body_bytes or 0,
    )
    if not sized:
        return []
    first_bad = next((r for r in sized if not _ok(r)), None)
    if first_bad is None:
        return []
    good = [
        r.body_bytes or 0
        for r in sized
        if _ok(r) and (r.body_bytes or 0) < (first_bad.body_bytes or 0)
    ]
    limit = max(good, default=0)
    text = (
        f"body size limit: accepts {limit} bytes, fails at {first_bad.body_bytes} bytes "
        f"with one dialog ({_how(first_bad)})"
    )
    if transport == "udp" and (first_bad.message_bytes or 0) > UDP_SAFE_BYTES:
        text += (
            f"; over UDP a message above ~{UDP_SAFE_BYTES} bytes may be fragmented or refused "
            "(RFC 3261 §18.1.1): run again with --transport tcp to tell the two apart"
        )
    counts = _plain_counts(results)
    mixed = [
        r.probe.name
        for r in counts
        if not _ok(r) and (r.body_bytes or 0) >= (first_bad.body_bytes or 0)
    ]
    if mixed:
        text += f"; the failure of {', '.join(mixed)} may be this size limit, not the count"
    level: Level = "fail" if first_bad.outcome == "fatal" else "warn"
    return [Conclusion("body-size", level, text, tuple(r.probe.name for r in sized))]


def settings(conclusions: Sequence[Conclusion]) -> list[str]:
    """The server settings the conclusions call for, as one-liners for the report's head."""
    keys = {c.key for c in conclusions if c.level == "fail"}
    out = []
    if "force_single_dialog" in keys:
        out.append("force_single_dialog=1")
    if "force_dummy_dialog" in keys:
        out.append("force_dummy_dialog=1 (Kamailio)")
    return out
