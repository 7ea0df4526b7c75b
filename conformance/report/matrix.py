"""The compatibility matrix: requirement x target, from several results documents.

A vendor wants one table that says "reference passes A07, Kamailio declares it a known
deviation, Kamailio in single-dialog mode fails D01". Each column is one run (its ``label``:
``reference``, ``kamailio``, ``kamailio-single``...), each row one catalogue requirement, each
cell the verdict that run's ``results.json`` gives it, so the matrix matches the JSON by
construction. Pure: documents in, text out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.report.html import CSS, badge, esc
from conformance.report.results import NOT_COVERED, REQUIREMENT_VERDICTS


@dataclass(frozen=True)
class Column:
    label: str
    """Unique within the matrix (a repeated label gets `` (2)``...)."""
    results: Mapping[str, Any]
    source: str
    """Where the document came from (a path), for the reader who wants the full report."""

    def verdict(self, rid: str) -> str:
        for r in self.results.get("requirements") or []:
            if r.get("id") == rid:
                return str(r.get("verdict") or NOT_COVERED)
        return NOT_COVERED


@dataclass(frozen=True)
class Matrix:
    columns: tuple[Column, ...]
    rows: tuple[Mapping[str, Any], ...]
    """One requirement entry (id, ref, level, title) per row, in catalogue order."""

    def cell(self, rid: str, column: Column) -> str:
        return column.verdict(rid)


def latest_per_label(
    runs: Sequence[tuple[str, Mapping[str, Any]]],
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[str]]:
    """Keep the newest run of each label (``reports/*/results.json`` collects every run ever
    made); returns (kept, sources dropped)."""
    newest: dict[str, tuple[str, Mapping[str, Any]]] = {}
    dropped: list[str] = []
    for run in runs:
        source, doc = run
        label = str(doc.get("label") or "?")
        old = newest.get(label)
        if old is None or str(doc.get("started") or "") >= str(old[1].get("started") or ""):
            if old is not None:
                dropped.append(old[0])
            newest[label] = run
        else:
            dropped.append(source)
    kept = [run for run in runs if any(run is n for n in newest.values())]
    return kept, dropped


def column_order(run: tuple[str, Mapping[str, Any]]) -> tuple[bool, str]:
    """The reference first (it is the yardstick), then the other targets by label."""
    label = str(run[1].get("label") or "?")
    return (label != "reference", label)


def build_matrix(runs: Sequence[tuple[str, Mapping[str, Any]]], *, sort: bool = True) -> Matrix:
    """Columns by ``column_order`` (or as given); rows: the union of the runs' requirement
    ids, in the order they first appear (every results document lists the whole catalogue)."""
    columns: list[Column] = []
    seen_labels: dict[str, int] = {}
    rows: dict[str, Mapping[str, Any]] = {}
    for source, doc in sorted(runs, key=column_order) if sort else runs:
        label = str(doc.get("label") or "?")
        seen_labels[label] = seen_labels.get(label, 0) + 1
        if seen_labels[label] > 1:
            label = f"{label} ({seen_labels[label]})"
        columns.append(Column(label, doc, source))
        for r in doc.get("requirements") or []:
            rows.setdefault(str(r.get("id")), r)
    return Matrix(tuple(columns), tuple(rows.values()))


def _counts(column: Column) -> dict[str, int]:
    counts = dict.fromkeys(REQUIREMENT_VERDICTS, 0)
    for r in column.results.get("requirements") or []:
        v = str(r.get("verdict") or NOT_COVERED)
        counts[v] = counts.get(v, 0) + 1
    return counts


_MD_CELL = {
    "fail": "**FAIL**",
    "known deviation": "known",
    "warn": "warn",
    "info": "info",
    "pass": "pass",
    NOT_COVERED: "–",
}


def _md_escape(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(matrix: Matrix) -> str:
    """A GitHub-flavoured Markdown table (pipes in titles escaped)."""
    head = ["id", "level", "RFC", *(c.label for c in matrix.columns), "requirement"]
    lines = [
        "# dialog-info conformance: compatibility matrix",
        "",
        "Cells: **FAIL** (a binding requirement violated), known (a deviation the target's "
        "profile declares), warn (SHOULD/DEF violated), info, pass, – (not covered by the run).",
        "",
        "| " + " | ".join(_md_escape(h) for h in head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in matrix.rows:
        cells = [_MD_CELL.get(matrix.cell(str(r["id"]), c), "?") for c in matrix.columns]
        lines.append(
            "| "
            + " | ".join(
                [
                    _md_escape(r.get("id")),
                    _md_escape(r.get("level")),
                    _md_escape(r.get("ref")),
                    *cells,
                    _md_escape(r.get("title")),
                ]
            )
            + " |"
        )
    lines += [
        "",
        "| run | fail | known | warn | pass | not covered | kit | started |",
        "|" + "---|" * 8,
    ]
    for c in matrix.columns:
        n = _counts(c)
        lines.append(
            f"| {_md_escape(c.label)} | {n['fail']} | {n['known deviation']} | {n['warn']} | "
            f"{n['pass']} | {n[NOT_COVERED]} | {_md_escape(c.results.get('kit_version'))} | "
            f"{_md_escape(c.results.get('started'))} |"
        )
    return "\n".join(lines) + "\n"


def _target(column: Column) -> Mapping[str, Any]:
    return column.results.get("target") or {}


def render_html(matrix: Matrix) -> str:
    """A self-contained page, same conventions as report.html."""
    head = "".join(
        f"<th>{esc(c.label)}<br><span class='muted'>{esc(_target(c).get('address'))} "
        f"{esc(str(_target(c).get('transport') or 'udp').upper())}</span></th>"
        for c in matrix.columns
    )
    body = []
    for r in matrix.rows:
        rid = str(r.get("id"))
        cells = "".join(f"<td>{badge(matrix.cell(rid, c))}</td>" for c in matrix.columns)
        body.append(
            f"<tr><td><strong>{esc(rid)}</strong></td><td>{esc(r.get('level'))}</td>"
            f"<td>RFC {esc(r.get('ref'))}</td>{cells}<td>{esc(r.get('title'))}</td></tr>"
        )
    totals = []
    for v in ("fail", "known deviation", "warn", "pass", NOT_COVERED):
        cells = "".join(f"<td>{_counts(c)[v]}</td>" for c in matrix.columns)
        totals.append(f"<tr><td colspan='3'>{badge(v)}</td>{cells}<td></td></tr>")
    sources = "".join(
        f"<li><strong>{esc(c.label)}</strong>: {esc(c.source)} (kit "
        f"{esc(c.results.get('kit_version'))}, started {esc(c.results.get('started'))}, "
        f"User-Agent {esc(_target(c).get('user_agent') or 'not seen')})</li>"
        for c in matrix.columns
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>dialog-info conformance: compatibility matrix</title><style>{CSS}</style>"
        "</head><body><header><h1>dialog-info conformance: compatibility matrix</h1>"
        f"<ul>{sources}</ul></header><main>"
        '<table class="grid" id="matrix"><thead><tr><th>id</th><th>level</th><th>RFC</th>'
        f"{head}<th>requirement</th></tr></thead><tbody>{''.join(body)}</tbody>"
        f"<tfoot>{''.join(totals)}</tfoot></table></main></body></html>\n"
    )
