"""The plugin lives beside other projects: prefixed options, fixtures and markers only; and the
public API (``conformance.testing``) and the README's tables say the same as the code.

Each test here fails on the unprefixed plugin: its ``--slow`` clashed with a project's own
(``ValueError: option dest 'slow' already used``), its ``case`` fixture shadowed the project's,
and ``run --slow`` / ``run --conformance-report`` were refused."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

import conformance.testing
from conformance.commands import run as run_command
from tests.plugin.standin import standin_conftest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"

SHORT_NAMES = (
    "--target",
    "--profile",
    "--slow",
    "--fault",
    "--rfc",
    "--single-dialog",
    "--sip-timeout",
    "--conformance-report",
    "--strict-conformance",
    "--strict-rfc",
)

NEIGHBOUR = """
import pytest

def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False)
    parser.addoption("--profile", default="dev")
    parser.addoption("--target", default="staging")

@pytest.fixture
def case():
    return "the project's own case"

@pytest.fixture
def target(pytestconfig):
    return pytestconfig.getoption("--target")
"""


def test_a_project_with_its_own_options_and_fixtures_runs_green(pytester):
    pytester.makeconftest(NEIGHBOUR)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("mine")
        def test_own(case, target, pytestconfig):
            assert case == "the project's own case"
            assert target == "prod"
            assert pytestconfig.getoption("--slow") is True
            assert pytestconfig.getoption("--profile") == "dev"
        """
    )
    result = pytester.runpytest("--slow", "--target", "prod", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "dialog-info conformance" not in result.stdout.str()  # inert: not a kit case
    assert not (pytester.path / "reports").exists()


def _kit_options(help_text: str) -> list[str]:
    """The options listed in the kit's section of ``pytest --help``."""
    section = help_text.split("dialog-info conformance", 1)[1]
    section = re.split(r"\n\S", section, maxsplit=1)[0]  # up to the next section title
    return re.findall(r"^\s+(--[a-z][\w-]*)", section, flags=re.MULTILINE)


def test_help_shows_no_unprefixed_kit_option(pytester):
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    options = _kit_options(text)
    assert options, "the kit's option group is missing from --help"
    assert all(o.startswith("--dialoginfo-") for o in options), options
    listed = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text))
    assert not listed & set(SHORT_NAMES), listed & set(SHORT_NAMES)


def _table(marker: str) -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    body = text.split(f"<!-- {marker} -->", 1)[1].split(f"<!-- /{marker.split(':')[0]} -->")[0]
    rows = [line for line in body.strip().splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def _names(cell: str) -> set[str]:
    return set(re.findall(r"`(-{1,2}[\w-]+)", cell))


def test_readme_run_options_are_exactly_what_run_accepts():
    parser = argparse.ArgumentParser()
    run_command.add_arguments(parser)
    accepted = {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}
    documented = {name for row in _table("options: run | pytest") for name in _names(row[0])}
    assert documented == accepted


def test_readme_pytest_options_are_exactly_what_the_plugin_registers(pytester):
    config = pytester.parseconfig()
    group = config._parser.getgroup("dialog-info conformance")
    registered = {name for opt in group.options for name in opt.names()}
    documented = {
        name
        for row in _table("options: run | pytest")
        for name in _names(row[1])
        if name.startswith("--dialoginfo-")
    }
    assert documented == registered


@pytest.mark.parametrize(
    "argv",
    [
        ["--slow"],
        ["--conformance-report", "out"],
        ["--report-dir", "out"],
        ["--strict-conformance"],
        ["--strict"],
        ["--sip-timeout", "2"],
    ],
)
def test_run_accepts_the_readme_options(argv):
    from conformance.cli import build_parser

    args = build_parser().parse_args(["run", *argv])
    cmd = run_command.pytest_command(args, "aggregate")
    # pytest's own options (where the suite lives) and the kit's prefixed ones, nothing else.
    own = ("--dialoginfo-", "--pyargs", "--rootdir")
    assert all(not a.startswith("--") or a.startswith(own) for a in cmd)


def test_run_translates_every_option_to_the_prefixed_one():
    from conformance.cli import build_parser

    args = build_parser().parse_args(
        ["run", "--slow", "--strict", "--report-dir", "d", "--sip-timeout", "2", "--rfc", "3265"]
    )
    cmd = run_command.pytest_command(args, "single")
    for flag in ("--dialoginfo-slow", "--dialoginfo-strict", "--dialoginfo-single-dialog"):
        assert flag in cmd
    assert cmd[cmd.index("--dialoginfo-report") + 1] == "d"
    assert cmd[cmd.index("--dialoginfo-sip-timeout") + 1] == "2"
    assert cmd[cmd.index("--dialoginfo-rfc") + 1] == "3265"


def test_testing_exports_match_the_readme():
    documented = [row[0].strip("`") for row in _table("testing-api")]
    assert sorted(documented) == sorted(conformance.testing.__all__)
    for name in conformance.testing.__all__:
        assert hasattr(conformance.testing, name), name
    assert conformance.testing.__doc__


def test_run_exit_codes_match_the_readme():
    documented = {int(row[0]) for row in _table("exit-codes")}
    kit = {
        run_command.EXIT_OK,
        run_command.EXIT_NONCONFORMING,
        run_command.EXIT_USAGE,
        run_command.EXIT_TARGET,
        run_command.EXIT_KIT,
        run_command.EXIT_INTERRUPTED,
    }
    assert documented == kit
    # Never pytest's meaning: its internal error (3) is the kit's "kit failed" (4).
    assert run_command.exit_code(pytest.ExitCode.INTERNAL_ERROR) == run_command.EXIT_KIT
    assert run_command.exit_code(pytest.ExitCode.USAGE_ERROR) == run_command.EXIT_USAGE
    from conformance.pytest_plugin.fixtures import EXIT_TARGET_UNAVAILABLE

    assert EXIT_TARGET_UNAVAILABLE not in {int(c) for c in pytest.ExitCode}
    assert run_command.exit_code(EXIT_TARGET_UNAVAILABLE) == run_command.EXIT_TARGET


def test_an_own_case_is_judged_like_the_suite(pytester):
    hook = (
        "def pytest_dialoginfo_requirements(config):\n"
        "    return [dict(id='X01', ref='ACME-1', level='MUST', title='answers 200')]\n"
    )
    pytester.makeconftest(standin_conftest("{}", extra=hook))
    pytester.makepyfile(
        """
        from conformance.testing import Finding, requirement

        @requirement("X01")
        def test_mine(dialoginfo_case):
            dialoginfo_case.findings.append(Finding("X01", False, "answered 500"))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--dialoginfo-report", "out")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*X01 VIOLATED*answered 500*"])
