"""The RFC 4235 §4.3 watcher: rebuild the dialog table from a sequence of NOTIFY bodies.

A server may send full or partial documents (A16), so the suite never compares raw bodies with
the expected aggregate: it feeds every NOTIFY body of one subscription to a ``WatcherView`` and
compares the view's table (A17). On the way the view judges the version sequence the way a
watcher experiences it: a repeated or lower version is discarded unprocessed (A09, a hard
failure because the update is lost), a jump by more than one is tolerated but warned (A08, DEF),
and a partial document after a jump leaves the view ``desynchronised`` until the next full one,
since the watcher cannot know what it missed (it should refresh).

Pure and cheap: no I/O, a dict keyed by dialog id, one parse per body.
"""

from __future__ import annotations

from dataclasses import dataclass

from conformance.errors import BodyError
from conformance.oracle import dialoginfo
from conformance.oracle.dialoginfo import Dialog, DialogInfo
from conformance.oracle.findings import Finding
from conformance.oracle.requirements import Level

__all__ = ["WatcherView"]

_STATES = ("full", "partial")


@dataclass(frozen=True, slots=True)
class _Decision:
    apply: bool
    findings: list[Finding]


class WatcherView:
    """One watcher's view of one subscription. Feed bodies in arrival order with ``apply``.

    Example::

        view = WatcherView()
        view.apply(first_notify_body, label="initial NOTIFY")
        assert set(view.dialogs) == {"d1", "d2"}
    """

    def __init__(self) -> None:
        self._table: dict[str, Dialog] = {}
        self._version: int | None = None
        self._desynchronised = False
        self._received = 0
        self.findings: list[Finding] = []
        """Every finding so far, in order."""

    @property
    def dialogs(self) -> dict[str, Dialog]:
        """The current table keyed by dialog id; terminated dialogs have left it (a copy)."""
        return dict(self._table)

    @property
    def version(self) -> int | None:
        """The version of the last document processed; None before the first one."""
        return self._version

    @property
    def desynchronised(self) -> bool:
        """A partial document arrived after a version gap: the table may miss changes until the
        next full document (RFC 4235 §4.3: the watcher should refresh)."""
        return self._desynchronised

    def apply(self, body: bytes | None, *, label: str = "") -> list[Finding]:
        """Process one NOTIFY body and return the findings it produced (also kept in
        ``findings``). ``label`` names the NOTIFY in messages (e.g. "NOTIFY #3")."""
        self._received += 1
        found = self._apply(body, label or f"document #{self._received}")
        self.findings.extend(found)
        return found

    # ------------------------------------------------------------------ internals

    def _apply(self, body: bytes | None, label: str) -> list[Finding]:
        if body is None or not bytes(body).strip():
            # An empty body tells the watcher nothing, so neither the table nor the version
            # moves. Whether it was allowed (B27: only when nothing is published) is not the
            # view's to say: it does not know the state; checks.check_idle_notify does.
            return []
        try:
            doc = dialoginfo.parse(bytes(body))
        except BodyError as exc:
            return [Finding(exc.requirement, False, f"{label}: {exc.message}; view unchanged")]
        version = doc.version_number()
        if version is None:
            return [
                Finding(
                    "A11",
                    False,
                    f"{label}: version {doc.version!r} is not a 32-bit unsigned number; "
                    "document cannot be ordered and is discarded",
                    path="/dialog-info/@version",
                )
            ]
        if doc.state not in _STATES:
            return [
                Finding(
                    "A13",
                    False,
                    f"{label}: state {doc.state!r} is neither full nor partial; discarded",
                    path="/dialog-info/@state",
                )
            ]
        decision = self._judge_version(version, doc.state, label)
        if decision.apply:
            self._merge(doc)
            self._version = version
        return decision.findings

    def _judge_version(self, version: int, state: str | None, label: str) -> _Decision:
        current = self._version
        if current is None:
            # The watcher starts from whatever version it first sees (§4.3); A07 ("start at 0")
            # is judged by the subscription checks, not here.
            full = state == "full"
            return _Decision(
                True,
                [
                    Finding(
                        "A14",
                        full,
                        f"{label}: first document is {state}"
                        + ("" if full else "; the initial NOTIFY should carry the full state"),
                        level=Level.SHOULD,
                        evidence={"version": version},
                    )
                ],
            )
        evidence = {"previous": current, "version": version}
        if version <= current:
            verb = "repeats" if version == current else "goes down from"
            return _Decision(
                False,
                [
                    Finding(
                        "A09",
                        False,
                        f"{label}: version {version} {verb} {current}; a watcher discards it "
                        "without processing, so this update is lost",
                        path="/dialog-info/@version",
                        evidence=evidence,
                    )
                ],
            )
        increased = Finding(
            "A09", True, f"{label}: version {version} > {current}", evidence=evidence
        )
        if version == current + 1:
            return _Decision(
                True,
                [Finding("A08", True, f"{label}: version {current} -> {version}"), increased],
            )
        gap = Finding(
            "A08",
            False,
            f"{label}: version jumps from {current} to {version} ({version - current - 1} "
            "missing)"
            + (
                "; partial state after a gap: the watcher should refresh" if state != "full" else ""
            ),
            path="/dialog-info/@version",
            level=Level.DEF,
            evidence=evidence,
        )
        if state != "full":
            self._desynchronised = True
        return _Decision(True, [gap, increased])

    def _merge(self, doc: DialogInfo) -> None:
        if doc.state == "full":
            self._table = {}
            self._desynchronised = False
        for d in doc.dialogs:
            if d.id is None:
                continue  # no key to merge on; A18 reports the missing id
            if d.state_key == "terminated":
                self._table.pop(d.id, None)
            else:
                self._table[d.id] = d
