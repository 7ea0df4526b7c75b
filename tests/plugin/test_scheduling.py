"""``-n auto`` by waiting and longest case first (``conformance/pytest_plugin/scheduling.py``).

The worker count is checked through real xdist sessions (``pytester``); the rule itself and the
decision to stay inert are checked on the hook directly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from conformance.pytest_plugin import scheduling

pytest_plugins = ["pytester"]


def _config(*args: str, workers: int | None = None) -> object:
    return SimpleNamespace(
        invocation_params=SimpleNamespace(args=args),
        getoption=lambda name: workers,
    )


def test_waiting_workers_is_sum_over_longest_capped():
    assert scheduling.waiting_workers([8.0, 4.0, 4.0]) == 2
    assert scheduling.waiting_workers([8.0, 4.0, 4.1]) == 3
    assert scheduling.waiting_workers([1.0] * 40) == scheduling.MAX_AUTO_WORKERS
    assert scheduling.waiting_workers([]) == 1


def test_auto_is_xdists_own_outside_the_suite(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    assert scheduling.pytest_xdist_auto_num_workers(_config("tests", "-n", "auto")) is None
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "3")
    conformance = _config("--pyargs", "conformance.suite", workers=5)
    assert scheduling.pytest_xdist_auto_num_workers(conformance) is None


def test_auto_follows_the_waits_and_leaves_port_blocks(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setattr(scheduling, "_free_port_blocks", lambda: 30)
    wanted = scheduling.waiting_workers(list(scheduling.expected_durations().values()))
    assert wanted > 2  # the shipped suite waits far more than its longest case
    suite = _config("--pyargs", "conformance.suite")
    assert scheduling.pytest_xdist_auto_num_workers(suite) == wanted
    monkeypatch.setattr(scheduling, "_free_port_blocks", lambda: 4)
    assert scheduling.pytest_xdist_auto_num_workers(suite) == 2
    given = _config("--dialoginfo-target", "kamailio", workers=3)
    assert scheduling.pytest_xdist_auto_num_workers(given) == 3


def test_workers_option_sets_auto_in_a_real_xdist_session(pytester):
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest("-n", "auto", "--dialoginfo-workers", "3")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*3 workers*"])
    bad = pytester.runpytest("--dialoginfo-workers", "zero")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--dialoginfo-workers takes a number, not 'zero'*"])


def test_longest_expected_case_runs_first_under_xdist(pytester):
    known = scheduling.expected_durations()
    longest = max(known, key=known.__getitem__)
    filename, name = longest.split("::")
    assert "[" not in name, "pick a case without parameters for this test"
    mark = "@pytest.mark.dialoginfo_requirement('A01')\n"
    pytester.makepyfile(
        **{
            filename[:-3]: "import pytest\n"
            f"{mark}def test_short():\n    pass\n"
            f"{mark}def {name}():\n    pass\n"
        }
    )
    pytester.makeconftest(
        "import pytest\n"
        "@pytest.hookimpl(wrapper=True)\n"
        "def pytest_runtest_call(item):\n"
        "    return (yield)\n"
    )
    result = pytester.runpytest("-n", "1", "-v", "-p", "no:randomly", "--dialoginfo-report", "o")
    lines = [ln for ln in result.stdout.lines if "PASSED" in ln or "FAILED" in ln]
    assert name in lines[0] and "test_short" in lines[1], result.stdout.str()
