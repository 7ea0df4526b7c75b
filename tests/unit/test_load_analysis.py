"""The pure half of ``load``: histograms that merge, the judgement of the generators' log lines,
the merge of parts, the report section and the command's option checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.commands.load import load_results_document
from conformance.errors import UsageError
from conformance.load.analysis import Step, analyse, plan_steps, read_logs
from conformance.load.histogram import SIGNIFICANT_BITS, Histogram, bucket_bounds, bucket_of
from conformance.load.merge import merge_sections
from conformance.report import load as load_report

RUN = "abc123"


# -- histogram ----------------------------------------------------------------------------------


def test_buckets_are_monotonic_and_cover_their_values() -> None:
    values = sorted({*range(0, 600), *random.Random(1).sample(range(600, 10**9), 2000)})
    previous = -1
    for value in values:
        index = bucket_of(value)
        low, high = bucket_bounds(index)
        assert low <= value <= high
        assert index >= previous
        previous = index
        # never wider than 1/64 of its values: the stated precision
        assert high - low <= max(0, low >> (SIGNIFICANT_BITS - 1))


def test_quantiles_are_within_a_bucket_of_the_truth_and_never_below() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(9, 1.2)) for _ in range(20000)]
    h = Histogram()
    for v in values:
        h.record(v)
    ordered = sorted(values)
    for q in (0.5, 0.95, 0.99, 1.0):
        exact = ordered[max(0, -(-int(q * len(ordered)) // 1) - 1)]
        got = h.quantile(q)
        assert got is not None
        assert exact <= got <= exact + (exact >> (SIGNIFICANT_BITS - 1)) + 1
    assert h.quantile(1.0) == max(values)


def test_merged_parts_equal_the_whole() -> None:
    rng = random.Random(3)
    values = [rng.randrange(0, 5_000_000) for _ in range(5000)]
    whole, a, b = Histogram(), Histogram(), Histogram()
    for i, v in enumerate(values):
        whole.record(v)
        (a if i % 2 else b).record(v)
    merged = Histogram.from_json(a.to_json()).merge(Histogram.from_json(b.to_json()))
    assert merged.to_json() == whole.to_json()
    assert merged.summary() == whole.summary()


def test_a_foreign_or_broken_histogram_is_refused() -> None:
    h = Histogram()
    h.record(5)
    data = h.to_json()
    with pytest.raises(UsageError, match="cannot be merged"):
        Histogram.from_json({**data, "significant_bits": 3})
    with pytest.raises(UsageError, match="do not add up"):
        Histogram.from_json({**data, "count": 7})
    with pytest.raises(ValueError):
        h.record(-1)


# -- analysis -----------------------------------------------------------------------------------


def _pub(p: str, n: int, state: str, t: float, status: str = "200", step: int = 0) -> list[str]:
    s, us = int(t), round((t - int(t)) * 1e6)
    return [f"P {p} {step} {n}.000000 {state} {s}.000000 {us}.000000", f"R {p} {step} {n} {status}"]


def _note(w: str, p: str, cseq: int, version: int, n: int | None, state: str, t: float) -> str:
    s, us = int(t), round((t - int(t)) * 1e6)
    mark = f"load-{RUN}-0-{n}" if n is not None else ""
    st = state if n is not None else ""
    return f"N {w} {p} {cseq} {version} {mark} {st} active {s}.000000 {us}.000000"


def _judge(lines: list[str]):  # type: ignore[no-untyped-def]
    logs = read_logs(lines)
    return analyse(logs, RUN, [Step(0, 10.0, 100.0, 10.0)])


def test_a_clean_sequence_is_timed_and_nothing_is_lost() -> None:
    lines = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    lines += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 101.004)]
    lines += [*_pub("p", 2, "confirmed", 102.0), _note("w1", "p", 3, 2, 2, "confirmed", 102.01)]
    result = _judge(lines)
    assert result.totals["versions_missing"] == 0
    assert result.totals["final_view_wrong"] == 0
    assert result.latency.count == 2
    assert result.latency.minimum == 4000 and result.latency.maximum == 10000
    assert result.loss_ratio == 0.0
    assert result.knee() is None


def test_a_missing_version_and_a_wrong_final_view_are_lost() -> None:
    lines = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    lines += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 101.004)]
    lines += _pub("p", 2, "confirmed", 102.0) + _pub("p", 3, "early", 102.02)
    # version 2 never came; version 3 shows publication 2, not the last one (3)
    lines += [_note("w1", "p", 4, 3, 2, "confirmed", 102.03)]
    result = _judge(lines)
    assert result.totals["versions_missing"] == 1
    assert result.totals["final_view_wrong"] == 1
    assert result.wrong_views[0]["expected"].endswith("-3 early")
    assert result.loss_ratio > 0.001
    knee = result.knee()
    assert knee is not None and "loss" in knee["reason"]


def test_coalesced_states_are_skipped_not_lost_and_repeats_are_counted() -> None:
    lines = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    lines += _pub("p", 1, "early", 101.0) + _pub("p", 2, "confirmed", 101.1)
    lines += [_note("w1", "p", 2, 1, 2, "confirmed", 101.2)]  # 1 coalesced into 2
    lines += [_note("w1", "p", 3, 1, 2, "confirmed", 101.3)]  # the same version again
    result = _judge(lines)
    assert result.totals["skipped_intermediate"] == 1
    assert result.totals["versions_missing"] == 0
    assert result.totals["final_view_wrong"] == 0
    assert result.totals["version_repeats"] == 1


def test_late_notifies_pass_the_knee_and_statuses_are_counted() -> None:
    lines = ["S w1 p 200", "S w2 p 503", _note("w1", "p", 1, 0, None, "", 100.0)]
    lines += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 102.5)]
    lines += _pub("p", 2, "confirmed", 103.0, status="500") + _pub("p", 3, "x", 104, "timeout")
    lines += ["garbage line"]
    result = _judge(lines)
    assert result.totals["subscribe_5xx"] == 1
    assert result.totals["publish_5xx"] == 1
    assert result.totals["publish_timeout"] == 1
    assert result.totals["malformed_log_lines"] == 1
    knee = result.knee()
    assert knee is not None and knee["reason"].startswith("p99 1500 ms")


def test_a_retransmitted_notify_is_not_a_repeat() -> None:
    lines = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    lines += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 101.01)]
    lines += [_note("w1", "p", 2, 1, 1, "early", 101.51)]  # same CSeq: a retransmission
    result = _judge(lines)
    assert result.totals["notify_retransmissions"] == 1
    assert result.totals["version_repeats"] == 0
    assert result.totals["notifies"] == 2
    assert result.latency.count == 1


def test_notifies_after_the_unsubscribe_do_not_count() -> None:
    lines = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    lines += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 101.01)]
    lines += ["U w1 p 105.000000 0.000000", _note("w1", "p", 3, 5, None, "", 105.2)]
    result = _judge(lines)
    assert result.totals["notifies"] == 2
    assert result.totals["versions_missing"] == 0


def test_plan_steps_stops_at_the_rate_or_time_limit() -> None:
    steps = plan_steps(
        start=0, rate_start=10, rate_step=20, step_seconds=5, rate_max=60, max_seconds=100
    )
    assert [s.rate for s in steps] == [10, 30, 50]
    steps = plan_steps(
        start=0, rate_start=10, rate_step=20, step_seconds=5, rate_max=600, max_seconds=12
    )
    assert [s.rate for s in steps] == [10, 30]


# -- merge and report ----------------------------------------------------------------------------


def _section(lines: list[str], part: str) -> dict[str, object]:
    result = _judge(lines)
    return {
        "run_id": part,
        "options": {"presentities": 2, "watchers_per_presentity": 1},
        "valid": True,
        "invalid_reasons": [],
        "subscriptions": 1,
        "totals": dict(result.totals),
        "loss_ratio": result.loss_ratio,
        "latency": result.latency.to_json(),
        "latency_ms": result.latency.summary(),
        "steps": [s.to_json() for s in result.steps],
        "knee": result.knee(),
        "cpu_seconds": {"kit": 1.0, "server": 2.0},
        "udp": {"kit_socket_drops": {"watchers": 0}, "server_socket_drops": 0},
        "parts": [part],
    }


def test_merge_adds_counts_and_histograms() -> None:
    a = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    a += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 101.004)]
    b = ["S w2 q 200", _note("w2", "q", 1, 0, None, "", 100.0)]
    b += [*_pub("q", 1, "early", 101.0), _note("w2", "q", 2, 1, 1, "early", 101.9)]
    merged = merge_sections([_section(a, "1/2"), _section(b, "2/2")])
    assert merged["latency_ms"]["count"] == 2
    assert merged["latency_ms"]["max"] == pytest.approx(900.0, rel=0.02)
    assert merged["totals"]["notifies"] == 4
    assert merged["steps"][0]["rate"] == 20.0
    assert merged["parts"] == ["1/2", "2/2"]
    assert merged["cpu_seconds"] == {"kit": 2.0, "server": 4.0}
    with pytest.raises(UsageError):
        merge_sections([{"totals": {}}])


def test_the_report_section_is_self_contained() -> None:
    a = ["S w1 p 200", _note("w1", "p", 1, 0, None, "", 100.0)]
    a += [*_pub("p", 1, "early", 101.0), _note("w1", "p", 2, 1, 1, "early", 101.004)]
    section = _section(a, "1/1")
    section["invalid_reasons"] = ["<script>x</script>"]
    section["valid"] = False
    page = load_report.section(section)
    assert "<svg" in page and "<polyline" not in page  # one step: points, no line
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "INVALID run" in page


# -- the command's options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--part", "3/2"], "--part '3/2'"),
        (["--part", "x"], "use I/N"),
        (["--presentities", "0"], "--presentities must be"),
        (["--step", "--rate-start", "50", "--rate-max", "10"], "--rate-max is below"),
        (["--publish-rate", "nan"], "--publish-rate must be"),
    ],
)
def test_bad_options_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["load", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_report_merge_writes_one_run_and_refuses_other_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = []
    for i, presentity in enumerate(("p", "q")):
        lines = [f"S w{i} {presentity} 200", _note(f"w{i}", presentity, 1, 0, None, "", 100.0)]
        lines += [*_pub(presentity, 1, "early", 101.0)]
        lines += [_note(f"w{i}", presentity, 2, 1, 1, "early", 101.01 + i)]
        doc = load_results_document(
            _section(lines, f"{i + 1}/2"), {"kind": "reference"}, "2026-01-01T00:00:00", None
        )
        path = tmp_path / f"part{i}" / "results.json"
        path.parent.mkdir()
        path.write_text(json.dumps(doc))
        files.append(str(path))
    assert main(["report", "--merge", *files, "-o", str(tmp_path / "out")]) == 0
    (merged,) = (tmp_path / "out").glob("*/results.json")
    load = json.loads(merged.read_text())["load"]
    assert load["parts"] == ["1/2", "2/2"]
    assert load["latency_ms"]["count"] == 2
    assert (merged.parent / "report.html").read_text().count("<svg") == 1
    plain = json.loads(Path(files[0]).read_text())
    del plain["load"]
    Path(files[1]).write_text(json.dumps(plain))
    capsys.readouterr()
    assert main(["report", "--merge", *files]) == 2
    assert "not a load run" in capsys.readouterr().err
