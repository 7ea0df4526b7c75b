"""``dialoginfo-conformance report``: re-render a run's report, or compare runs in a matrix.

    report RESULTS.json                      report.html next to it, and a summary on stdout
    report --html-only RESULTS.json          only the page, nothing printed but its path
    report --matrix reports/*/results.json   matrix.html and matrix.md (newest run per target)
    report --merge part*/results.json        the parts of a ``load --part i/N`` run as one
    report --compare OLD.json NEW.json       new failures, fixed cases, changed deviations;
                                             exit 1 on a regression (see report/compare.py)

Everything is rendered from the ``results.json`` files alone, so a report made on a CI runner
can be re-rendered on a laptop. A file that cannot be read or is not a results document is a
one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.report import compare, html, matrix
from conformance.report.results import NOT_COVERED, REPORT_NAME, load_results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="RESULTS.json", help="results of a run")
    parser.add_argument(
        "--matrix",
        action="store_true",
        help="write a compatibility matrix (requirement x target) of all the files given",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="merge the load sections of `load --part i/N` runs into one distribution "
        "(a new run folder with results.json and report.html)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="compare two runs (OLD.json NEW.json): exit 1 when a case that passed or was a "
        "known deviation fails, or a binding (MUST/MUST*/MAY) requirement newly fails",
    )
    parser.add_argument(
        "--all-runs",
        action="store_true",
        help="with --matrix: one column per file, not only the newest run of each target",
    )
    parser.add_argument(
        "--html-only", action="store_true", help="write report.html only; print no summary"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        type=Path,
        help="where to write (default: beside RESULTS.json; for --matrix, the directory "
        "holding the first run's directory, e.g. reports/)",
    )


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _single(args: argparse.Namespace) -> int:
    if len(args.files) != 1:
        raise UsageError(
            f"one RESULTS.json re-renders one report ({len(args.files)} given); "
            "for several runs use --matrix"
        )
    source = Path(args.files[0])
    results = load_results(source)
    out = (args.output or source.parent) / REPORT_NAME
    _write(out, html.render(results))
    if args.html_only:
        print(out)
        return 0
    summary = results.get("summary") or {}
    reqs = summary.get("requirements") or {}
    cases = summary.get("cases") or {}
    print(f"{results.get('label')}: {out}")
    print(
        "requirements: "
        + ", ".join(
            f"{reqs.get(v, 0)} {v}"
            for v in ("fail", "known deviation", "warn", "pass", NOT_COVERED)
        )
    )
    print(
        "cases: "
        + ", ".join(
            f"{cases.get(v, 0)} {v}" for v in ("fail", "known deviation", "warn", "pass", "skipped")
        )
    )
    failed = [r["id"] for r in results["requirements"] if r.get("verdict") == "fail"]
    if failed:
        print("failed requirements: " + " ".join(failed))
    return 0


def _matrix(args: argparse.Namespace) -> int:
    Run = tuple[str, Mapping[str, Any]]
    runs: list[Run] = [(str(p), load_results(Path(p))) for p in args.files]  # errors first
    if not args.all_runs:
        runs, dropped = matrix.latest_per_label(runs)
        for source in dropped:
            print(f"older run of the same target left out: {source}", file=sys.stderr)
    built = matrix.build_matrix(runs)
    out_dir = args.output or Path(args.files[0]).resolve().parent.parent
    _write(out_dir / "matrix.html", matrix.render_html(built))
    _write(out_dir / "matrix.md", matrix.render_markdown(built))
    print(out_dir / "matrix.html")
    print(out_dir / "matrix.md")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from conformance.load.merge import merge_sections
    from conformance.report.run_dir import write_run

    docs = [(p, load_results(Path(p))) for p in args.files]
    missing = [p for p, doc in docs if not isinstance(doc.get("load"), dict)]
    if missing:
        raise UsageError(f"not a load run (no 'load' section): {', '.join(missing)}")
    merged = dict(docs[0][1])
    merged["load"] = merge_sections([doc["load"] for _, doc in docs])
    merged["label"] = f"{merged.get('label')}-merged"
    base = args.output or Path(args.files[0]).resolve().parent.parent
    run_dir = write_run(merged, base)
    lat = merged["load"]["latency_ms"]
    print(
        f"{len(docs)} parts ({', '.join(merged['load']['parts'])}): p50 {lat['p50']} ms, "
        f"p99 {lat['p99']} ms, max {lat['max']} ms over {lat['count']} NOTIFYs; "
        f"loss {merged['load']['loss_ratio']:.3%}"
    )
    print(run_dir / "results.json")
    return 0


def _compare(args: argparse.Namespace) -> int:
    if len(args.files) != 2:
        raise UsageError(f"--compare takes two files, OLD.json NEW.json ({len(args.files)} given)")
    if args.matrix:
        raise UsageError("--compare and --matrix are two different outputs: choose one")
    old, new = (load_results(Path(p)) for p in args.files)  # a bad file is a one-line error
    result = compare.compare(old, new)
    print(compare.render(result))
    return 1 if result.regressions else 0


def run(args: argparse.Namespace) -> int:
    if sum((args.merge, args.compare, args.matrix)) > 1:
        raise UsageError("--merge, --compare and --matrix do different things: pick one")
    if args.merge:
        return _merge(args)
    if args.compare:
        return _compare(args)
    return _matrix(args) if args.matrix else _single(args)
