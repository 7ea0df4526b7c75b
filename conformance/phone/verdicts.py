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

from collections.abc import Callable, Iterable, Sequence
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
    """The outcome in words, for inside a conclusion's parentheses."""
    if r.outcome == "crashed":
        return "crashed: no answer to anything afterwards"
    if r.outcome == "dropped":
        return "no answer, though the phone stays alive"
    if r.outcome == "rejected":
        return f"rejected with {r.status} {r.reason}".strip()
    return r.outcome


def restrictions_found(results: Sequence[ProbeResult]) -> bool:
    """Did any probe that ran end other than accepted? (Exit status 1 of ``phone``.)"""
    return any(_ran(r) and not _ok(r) for r in results)


def conclude(results: Sequence[ProbeResult], *, transport: str = "udp") -> list[Conclusion]:
    """Every conclusion the results support, most important first."""
    by_name: dict[str, ProbeResult] = {}
    for r in results:
        if _ran(r):
            by_name.setdefault(r.probe.name, r)
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
    crashed = _names(r for r in results if r.outcome == "crashed")
    if crashed:
        out.append(
            Conclusion(
                "crashed",
                "fail",
                f"the phone crashed (stopped answering anything) after: {', '.join(crashed)}. "
                "Keep the server from sending such bodies (settings below) and report the "
                "crash to the phone's vendor with this report",
                crashed,
            )
        )
    dropped = _names(r for r in results if r.outcome == "dropped")
    if dropped:
        out.append(
            Conclusion(
                "dropped",
                "warn",
                f"the phone ignores (never answers) NOTIFYs like: {', '.join(dropped)}, but stays "
                "alive: its BLF keys keep showing the previous state, and the server may end "
                "the subscription after its transaction times out",
                dropped,
            )
        )
    skipped = [r for r in results if not _ran(r)]
    if skipped:
        reasons = sorted({r.note or "not reached" for r in skipped})
        out.append(
            Conclusion(
                "not-run",
                "info",
                f"{len(skipped)} probes not run, so not tested: "
                f"{', '.join(r.probe.name for r in skipped)} ({'; '.join(reasons)})",
                tuple(r.probe.name for r in skipped),
            )
        )
    ran = [r for r in results if _ran(r)]
    if ran and not restrictions_found(results):
        if skipped:
            text = (
                f"no restriction found in the {len(ran)} probes that ran; "
                f"{len(skipped)} were not run (see above), so the phone is not fully tested"
            )
            level: Level = "info"
        else:
            text = "no restrictions found: every probe was sent and accepted"
            level = "ok"
        out.insert(0, Conclusion("no-restrictions", level, text, _names(ran)))
    return out


def _names(results: Iterable[ProbeResult]) -> tuple[str, ...]:
    """Probe names, each once, in order."""
    return tuple(dict.fromkeys(r.probe.name for r in results))


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
    lvl: Level = "fail" if r.outcome == "crashed" else level
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


def _limit(
    results: Sequence[ProbeResult], value: Callable[[ProbeResult], int]
) -> tuple[int, ProbeResult | None, list[str]]:
    """(largest accepted below the first failure, that failure, crashes not reproduced)."""
    first_bad = min((r for r in results if not _ok(r)), key=value, default=None)
    good = [value(r) for r in results if _ok(r)]
    flaky: list[str] = []
    if first_bad is not None:
        flaky = [r.probe.name for r in results if _ok(r) and value(r) >= value(first_bad)]
        good = [v for v in good if v < value(first_bad)]
    return max(good, default=0), first_bad, flaky


def _unfinished(results: Sequence[ProbeResult], group: str) -> str:
    """The probes of a search that did not run (empty: the search finished), for "ok" is
    only said of what was tested."""
    return ", ".join(r.probe.name for r in results if r.probe.group == group and not _ran(r))


def _dialog_count(results: Sequence[ProbeResult]) -> list[Conclusion]:
    counts = _plain_counts(results)
    if not counts:
        return [Conclusion("max-dialogs", "info", "dialog count not tested")]
    names = _names(counts)
    n, first_bad, flaky = _limit(counts, lambda r: r.probe.dialogs)
    if first_bad is None:
        untried = _unfinished(results, "count")
        if untried:
            text = f"accepts at least {n} dialogs; the search stopped before {untried} ran"
            return [Conclusion("max-dialogs", "info", text, names)]
        return [
            Conclusion(
                "max-dialogs",
                "ok",
                f"accepts up to {n} dialogs (the most tried; --max-dialogs raises it)",
                names,
            )
        ]
    m = first_bad.probe.dialogs
    if m <= 1:
        return [
            Conclusion(
                "max-dialogs",
                "fail",
                f"fails with a single dialog ({_how(first_bad)}): the phone does not take "
                "dialog-info bodies at all; check its BLF settings (Event: dialog, "
                "application/dialog-info+xml) before any server setting",
                names,
            )
        ]
    exact = "" if m - n == 1 else f" (between {n + 1} and {m - 1} not tested)"
    text = f"accepts up to {n} dialogs, fails at {m} ({_how(first_bad)}){exact}"
    if flaky:
        text += f"; yet {', '.join(flaky)} was accepted when sent again: the failure is not steady"
    out = [Conclusion("max-dialogs", "fail", text, names)]
    if first_bad.outcome == "crashed":
        effect = f"a NOTIFY with {m} dialogs crashes the phone"
    elif first_bad.outcome == "dropped":
        effect = (
            f"the phone ignores NOTIFYs with {m} or more dialogs but stays alive (its BLF keys "
            "freeze on the last state it took)"
        )
    else:
        effect = f"the phone rejects NOTIFYs with {m} dialogs"
    if n <= 1:
        out.append(
            Conclusion(
                "force_single_dialog",
                "fail",
                f"needs force_single_dialog: {effect}. The parameter only applies with two or "
                "more publications (D10): each dialog must be published separately "
                "(pua_dialoginfo does)",
                names,
            )
        )
    else:
        out.append(
            Conclusion(
                "force_single_dialog",
                "fail" if first_bad.outcome == "crashed" else "warn",
                f"{effect}: force_single_dialog avoids it (one dialog shown), or keep fewer "
                f"than {m} calls on one monitored line",
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
    level: Level = "fail" if any(r.outcome == "crashed" for r in bad) else "warn"
    return [
        Conclusion(
            "states", level, f"rejects dialogs in state {states}", tuple(r.probe.name for r in bad)
        )
    ]


def _sizes(results: Sequence[ProbeResult], transport: str) -> list[Conclusion]:
    sized = [r for r in results if _ran(r) and r.probe.group == "size" and r.body_bytes is not None]
    if not sized:
        return []
    names = _names(sized)
    limit, first_bad, _flaky = _limit(sized, lambda r: r.body_bytes or 0)
    if first_bad is None:
        untried = _unfinished(results, "size")
        if untried:
            text = (
                f"accepts bodies of at least {limit} bytes; the search stopped before {untried} ran"
            )
            return [Conclusion("body-size", "info", text, names)]
        return [
            Conclusion(
                "body-size",
                "ok",
                f"accepts bodies up to {limit} bytes with one dialog (the most tried; "
                "--max-body raises it)",
                names,
            )
        ]
    text = (
        f"body size limit: accepts {limit} bytes, fails at {first_bad.body_bytes} bytes "
        f"with one dialog ({_how(first_bad)})"
    )
    if transport == "udp" and (first_bad.message_bytes or 0) > UDP_SAFE_BYTES:
        text += (
            f"; over UDP a message above ~{UDP_SAFE_BYTES} bytes may be fragmented or refused "
            "(RFC 3261 §18.1.1): run again with --transport tcp to tell the two apart"
        )
    mixed = [
        r.probe.name
        for r in _plain_counts(results)
        if not _ok(r) and (r.body_bytes or 0) >= (first_bad.body_bytes or 0)
    ]
    if mixed:
        text += f"; the failure of {', '.join(mixed)} may be this size limit, not the count"
    level: Level = "fail" if first_bad.outcome == "crashed" else "warn"
    return [Conclusion("body-size", level, text, names)]


def settings(conclusions: Sequence[Conclusion]) -> list[str]:
    """The server settings the conclusions call for, as one-liners for the report's head."""
    keys = {c.key for c in conclusions if c.level == "fail"}
    out = []
    if "force_single_dialog" in keys:
        out.append("force_single_dialog=1")
    if "force_dummy_dialog" in keys:
        out.append("force_dummy_dialog=1 (Kamailio)")
    return out
