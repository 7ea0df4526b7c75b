"""A run's report folder: ``results.json`` and ``report.html`` written side by side.

Kept apart from ``results.py`` (the data) and ``html.py`` (its rendering), which both stay free of
file-system work, so neither needs the other at import time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.errors import UsageError
from conformance.report.html import render
from conformance.report.results import REPORT_NAME, RESULTS_NAME, run_dir_name

_MAX_ATTEMPTS = 1000


def write_run(results: dict[str, Any], base: Path) -> Path:
    """Write ``results.json`` and ``report.html`` into a new directory under ``base``.

    The directory is created with ``exist_ok=False`` and a ``-2``, ``-3``... suffix on
    collision, so two runs that start in the same second (two CI jobs sharing ``reports/``)
    never write into each other's directory."""
    base = Path(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create report directory {base}: {exc.strerror or exc}") from None
    name = run_dir_name(results)
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        run_dir = base / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot create {run_dir}: {exc.strerror or exc}") from None
        break
    else:
        raise UsageError(f"{base}: {_MAX_ATTEMPTS} runs named {name}; clean the directory")
    (run_dir / RESULTS_NAME).write_text(
        json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (run_dir / REPORT_NAME).write_text(render(results), encoding="utf-8")
    return run_dir
