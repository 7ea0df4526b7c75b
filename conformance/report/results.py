"""The result model of one run: ``results.json``, from which every rendering is made.

``build_results`` is pure: it takes what the plugin gathered on the xdist controller (run info
and one JSON-able dict per case) and returns the document that ``reports/README.md`` describes,
with a verdict for every catalogue requirement, not only the ones some case touched, so a
reader sees at once what a run did not cover. The HTML report and the compatibility matrix are
rendered from this document alone (never from pytest objects), so ``report`` can re-render an
old run and ``--matrix`` can compare runs made by different kit versions of the same format.

It touches no file: ``report/run_dir.py`` writes a run's folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.oracle.findings import Finding
from conformance.oracle.requirements import CATALOGUE, GROUPS, Level

FORMAT_VERSION = 2
"""Bumped when a key changes meaning or disappears; adding keys keeps the version. 2: findings
carry ``observed``, ``skipped`` and ``excused_by``; a case's verdict follows the verdict table
(``warn`` is a pass with a mark); findings of skipped or erroring cases are judged."""

RESULTS_NAME = "results.json"
REPORT_NAME = "report.html"

NOT_COVERED = "not covered"
SKIPPED = "skipped"

SEVERITY: dict[str, int] = {
    "fail": 5,
    "known deviation": 4,
    "warn": 3,
    "info": 2,
    "pass": 1,
}
"""Worst wins when findings disagree: a requirement failed once is failed, whatever else passed.
``info`` (a non-binding row violated) ranks below ``warn`` so it never hides one."""

REQUIREMENT_VERDICTS = (*SEVERITY, NOT_COVERED)
CASE_VERDICTS = (*SEVERITY, SKIPPED)
OUTCOMES = ("passed", "failed", "skipped", "xfailed")


def worst(verdicts: Iterable[str]) -> str | None:
    """The most severe verdict of ``verdicts``; None when there are none."""
    ranked = [v for v in verdicts if v in SEVERITY]
    return max(ranked, key=SEVERITY.__getitem__) if ranked else None


def finding_verdict(finding: Mapping[str, Any]) -> str:
    """The verdict the plugin judged; when the case died before judging (verdict null), the
    one the catalogue level gives, so an unjudged violation still shows as what it is."""
    verdict = finding.get("verdict")
    if finding.get("skipped") or verdict == SKIPPED:
        return SKIPPED  # the case stopped before judging it: covers nothing
    if verdict in SEVERITY:
        return str(verdict)
    rid = finding.get("requirement")
    if rid not in CATALOGUE:
        return "pass" if finding.get("passed") else "fail"
    probe = Finding(rid, bool(finding.get("passed")), str(finding.get("message", "")))
    return str(probe.verdict())


def case_verdict(case: Mapping[str, Any]) -> str:
    """One word for a case, by the verdict table (docs/VERDICTS.md) the plugin applied.

    A failed case is ``fail`` even when no finding failed (a harness error, a stale declared
    deviation); an xfailed case is a ``known deviation``; a passed case earns the outcome the
    judge gave it (``warn``: a pass with a mark), or, from an older run, the worst of its
    findings' verdicts. A skipped case whose findings failed is ``fail``: findings are never
    lost to a skip."""
    outcome = case.get("outcome")
    judged = case.get("judged")
    if outcome == "skipped":
        return "fail" if judged == "fail" else SKIPPED
    if outcome == "xfailed":
        return "known deviation"
    if outcome != "passed":
        return "fail"
    if judged in SEVERITY:
        return str(judged)
    return worst(finding_verdict(f) for f in case.get("findings") or ()) or "pass"


def target_name(run_info: Mapping[str, Any]) -> str:
    """The target's short name, safe in a directory name: the ``--label`` the user gave
    (``staging``), else ``reference``, ``kamailio``... with the transport when it is not UDP
    (``kamailio-tcp``), so runs of different servers or transports never share a column."""
    target = run_info.get("target") or {}
    if target.get("label"):
        raw = str(target["label"])
    else:
        raw = str(target.get("name") or target.get("kind") or "target")
        transport = str(target.get("transport") or "udp")
        if transport != "udp":
            raw = f"{raw}-{transport}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-.") or "target"


def _single(run_info: Mapping[str, Any]) -> bool:
    target = run_info.get("target") or {}
    return run_info.get("mode") == "single" or bool(target.get("single_dialog"))


def run_label(run_info: Mapping[str, Any]) -> str:
    """The column name in a compatibility matrix: the target name, ``-single`` in that mode."""
    name = target_name(run_info)
    return f"{name}-single" if _single(run_info) and not name.endswith("-single") else name


def build_results(run_info: dict[str, Any], cases: list[dict[str, Any]]) -> dict[str, Any]:
    """The results document of one run (see ``reports/README.md``); pure, input untouched."""
    out_cases: list[dict[str, Any]] = []
    by_requirement: dict[str, list[tuple[str, str]]] = {rid: [] for rid in CATALOGUE}
    declared: dict[str, list[str]] = {rid: [] for rid in CATALOGUE}
    for index, raw in enumerate(cases):
        case = json.loads(json.dumps(raw))  # a deep copy that also proves it is JSON-able
        case.setdefault("nodeid", case.get("case") or f"case-{index}")
        case.setdefault("case", case["nodeid"].rsplit("::", 1)[-1].split("[", 1)[0])
        case.setdefault("requirements", [])
        case.setdefault("findings", [])
        case.setdefault("warnings", [])
        case.setdefault("messages", [])
        case.setdefault("notifies", [])
        case.setdefault("outcome", "failed")
        for finding in case["findings"]:
            finding["verdict"] = finding_verdict(finding)
            rid = finding.get("requirement")
            if rid in by_requirement:
                by_requirement[rid].append((case["nodeid"], finding["verdict"]))
        for rid in case["requirements"]:
            if rid in declared and case["nodeid"] not in declared[rid]:
                declared[rid].append(case["nodeid"])
        case["verdict"] = case_verdict(case)
        out_cases.append(case)

    requirements = []
    for rid, req in CATALOGUE.items():
        seen = by_requirement[rid]
        counts = {v: sum(1 for _, got in seen if got == v) for v in SEVERITY}
        requirements.append(
            {
                "id": rid,
                "group": req.group,
                "ref": req.ref,
                "level": str(req.level),
                "level_text": req.level_text,
                "title": req.title,
                "verdict": worst(v for _, v in seen) or NOT_COVERED,
                "cases": list(dict.fromkeys(nodeid for nodeid, _ in seen)),
                "declared_by": declared[rid],
                "findings": {v: n for v, n in counts.items() if n},
            }
        )

    coverage = {}
    for group, title in GROUPS.items():
        rows = [r for r in requirements if r["group"] == group]
        must = [r for r in rows if r["level"] in (Level.MUST, Level.MUST_STAR)]
        coverage[group] = {
            "title": title,
            "total": len(rows),
            "covered": sum(1 for r in rows if r["verdict"] != NOT_COVERED),
            "must_total": len(must),
            "must_covered": sum(1 for r in must if r["verdict"] != NOT_COVERED),
        }

    target = dict(run_info.get("target") or {})
    target.setdefault("name", target_name(run_info))
    return {
        "format_version": FORMAT_VERSION,
        "kit_version": run_info.get("kit_version"),
        "label": run_label(run_info),
        "target": target,
        "mode": run_info.get("mode") or ("single" if _single(run_info) else "aggregate"),
        "started": run_info.get("started"),
        "finished": run_info.get("finished"),
        "options": run_info.get("options") or {},
        "summary": {
            "cases": {
                "total": len(out_cases),
                **{v: sum(1 for c in out_cases if c["verdict"] == v) for v in CASE_VERDICTS},
            },
            "outcomes": {o: sum(1 for c in out_cases if c["outcome"] == o) for o in OUTCOMES},
            "requirements": {
                "total": len(requirements),
                **{
                    v: sum(1 for r in requirements if r["verdict"] == v)
                    for v in REQUIREMENT_VERDICTS
                },
            },
        },
        "coverage": coverage,
        "requirements": requirements,
        "cases": out_cases,
    }


def load_results(path: Path) -> dict[str, Any]:
    """A results document read back; a ``UsageError`` naming the file when it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text, not a results.json") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or "format_version" not in data:
        raise UsageError(f"{path}: not a results.json (no format_version)")
    if data["format_version"] != FORMAT_VERSION:
        raise UsageError(
            f"{path}: results format {data['format_version']!r}; this kit reads {FORMAT_VERSION}"
        )
    for key, kind in (("requirements", list), ("cases", list), ("target", dict)):
        if not isinstance(data.get(key), kind):
            raise UsageError(f"{path}: not a results.json ({key!r} missing or malformed)")
    return data


def _stamp(results: Mapping[str, Any]) -> str:
    started = results.get("started")
    when = None
    if isinstance(started, str):
        try:
            when = datetime.fromisoformat(started)
        except ValueError:
            when = None
    if when is None:
        when = datetime.now(UTC)
    elif when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_dir_name(results: Mapping[str, Any]) -> str:
    """``<UTC timestamp>-<label>``, e.g. ``20261127T095301Z-kamailio-single``."""
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", str(results.get("label") or "target"))
    return f"{_stamp(results)}-{label}"
