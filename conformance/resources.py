"""Where the shipped data lives: in the wheel, or at the top of a source checkout.

The scenarios and schemas sit at the repository top level, where people edit them; the wheel
maps them into the package (see pyproject.toml). Looking in both places keeps one code path for
an installed kit and a checkout.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (``schemas`` or ``sipp_scenarios``), installed or in the checkout."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the kit's {name}/ folder is missing (looked in {_PACKAGE})")


def schema_path(filename: str) -> Path:
    return data_dir("schemas") / filename


def scenario_path(filename: str) -> Path:
    return data_dir("sipp_scenarios") / filename
