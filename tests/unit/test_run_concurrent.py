"""``run`` with both modes at once: each child's output stays whole, progress shows live, and
two pytest sessions never share a JUnit file or a base temp (``commands/concurrent.py``,
``commands/run.py``). The children are real processes (Python one-liners), no mocks."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from conformance.commands.concurrent import Job, run_at_once
from conformance.commands.run import with_scratch


def _child(name: str, code: int) -> list[str]:
    script = (
        "import sys, time\n"
        f"for i in range(3):\n"
        f"    print('{name} line', i, flush=True)\n"
        f"    print('dialog-info conformance: {name}', i, 'cases done', flush=True)\n"
        "    time.sleep(0.05)\n"
        f"print('{name} to stderr', file=sys.stderr, flush=True)\n"
        f"sys.exit({code})\n"
    )
    return [sys.executable, "-c", script]


def test_each_childs_output_is_printed_whole_under_its_header():
    out = io.StringIO()
    jobs = [Job(n, _child(n, c), f"== {n} ==") for n, c in (("one", 0), ("two", 1))]
    assert run_at_once(jobs, out=out) == [0, 1]
    lines = out.getvalue().splitlines()
    for name in ("one", "two"):
        start = lines.index(f"== {name} ==")
        block = lines[start + 1 : start + 5]
        assert block == [f"{name} line 0", f"{name} line 1", f"{name} line 2", f"{name} to stderr"]
        progress = [ln for ln in lines if ln.startswith(f"[{name}] ")]
        assert progress == [
            f"[{name}] dialog-info conformance: {name} {i} cases done" for i in range(3)
        ]
        assert lines.index(progress[-1]) < start  # shown live, before the held output


def test_both_modes_get_their_own_junit_and_basetemp(tmp_path: Path):
    cmd = ["pytest", "--junitxml=out/junit.xml", "--basetemp", "tmp/base", "-q"]
    single = with_scratch(cmd, tmp_path / "single", "single")
    assert "--junitxml=out/junit-single.xml" in single
    assert single[single.index("--basetemp") + 1] == "tmp/base-single"
    one_mode = with_scratch(["pytest"], tmp_path / "aggregate")
    assert one_mode[1:] == [
        f"--junitxml={tmp_path / 'aggregate' / 'junit.xml'}",
        f"--basetemp={tmp_path / 'aggregate' / 'pytest'}",
    ]


def test_a_bad_target_is_refused_in_one_line_before_pytest_starts(capsys) -> None:
    """Under xdist a session fixture's refusal showed as an INTERNALERROR traceback per
    worker; ``run`` now builds the target first and says what is wrong in one line."""
    import pytest

    from conformance import cli
    from conformance.commands.run import check_target
    from conformance.errors import UsageError

    with pytest.raises(UsageError, match="kamailio mode 'bogus'"):
        check_target("kamailio:bogus")
    check_target("reference")  # a good one builds (never started)
    assert cli.main(["run", "--target", "kamailio:bogus", "-n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad target" in err and "Traceback" not in err
