"""``dialoginfo-conformance load``: NOTIFY fan-out under many phones (issue 17).

    load --target kamailio --presentities 100 --watchers-per-presentity 20 \\
         --publish-rate 50 --duration 30
    load --target reference --presentities 50 --watchers-per-presentity 10 --step \\
         --rate-start 20 --rate-step 20 --step-seconds 10 --rate-max 400 --max-seconds 120
    load ... --part 2/4            this host's quarter of the presentities (a CI matrix job)
    report --merge a/results.json b/results.json ...   the parts as one distribution

Two SIPp processes carry the load in SIPp's native multi-call mode, users injected from CSV:
one holds the M×K subscriptions (sipp_scenarios/load_watch.xml, one call per subscription),
one publishes each presentity's state in turn at R per second (load_publish.xml, one looping
call per presentity; a new process per rate step, handed the ETags of the last). Neither
writes a message trace: each logs one line per PUBLISH sent and per NOTIFY received, with the
wall clock and the body's version and marker (conformance/load/analysis.py judges them). A
third, small SIPp holds ``--sample`` more subscriptions with a full message trace, whose
NOTIFYs go through the oracle (schema and sequence checks).

A run is only as good as its load generator: SIPp's socket buffers are set (``-buff_size``),
the kernel's UDP counters are printed before and after, and a run in which the kit's own
sockets dropped datagrams is marked invalid rather than blamed on the server.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.errors import HarnessError, UsageError
from conformance.harness.ports import PortBlock, reserve_block
from conformance.harness.sipp import _die_with_parent, _load_libc, sipp_binary
from conformance.load.analysis import Logs, Step, analyse, plan_steps, read_logs
from conformance.oracle import checks, schema
from conformance.oracle.checks import Captured
from conformance.oracle.findings import Verdict
from conformance.report.results import build_results
from conformance.report.run_dir import write_run
from conformance.resources import scenario_path
from conformance.sip.message import Request
from conformance.sip.trace import parse_trace
from conformance.targets import Target, make_target

WATCH_SCENARIO = "load_watch.xml"
PUBLISH_SCENARIO = "load_publish.xml"
SETTLE = 2.0
"""Seconds the watchers stay after the last PUBLISH: late NOTIFYs still count."""
_KNEE_GRACE = 1.2
"""After a step, wait this long before judging it: a NOTIFY 1 s late is already past the knee."""
KNEE_DRAIN = 30.0
"""Seconds at most that a run stopped at the knee waits for the server to catch up."""
STEP_GAP = 1.5
"""Seconds between one step's end and the next one's start: the publisher's exit (within a
chunk), then the judgement of the step."""
CHUNK_MS = 50
"""The publisher waits in pieces of at most this many ms (load_publish.xml): the send jitter."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", default="reference", help="reference (default), kamailio, sip:HOST:PORT"
    )
    parser.add_argument("--profile", help="shipped profile name or TOML file")
    parser.add_argument(
        "--presentities", "-M", type=int, default=10, metavar="M", help="presentities (10)"
    )
    parser.add_argument(
        "--watchers-per-presentity",
        "-K",
        type=int,
        default=5,
        metavar="K",
        help="watchers (BLF keys) per presentity (5): M×K subscriptions",
    )
    parser.add_argument(
        "--publish-rate", "-R", type=float, default=10.0, metavar="R", help="PUBLISH per s (10)"
    )
    parser.add_argument(
        "--duration", "-S", type=float, default=10.0, metavar="S", help="seconds of load (10)"
    )
    step = parser.add_argument_group("stepping (--step): find the knee")
    step.add_argument("--step", action="store_true", help="raise the rate until the knee")
    step.add_argument("--rate-start", type=float, default=10.0, metavar="R", help="(10)")
    step.add_argument("--rate-step", type=float, default=10.0, metavar="R", help="(10)")
    step.add_argument("--step-seconds", type=float, default=10.0, metavar="S", help="(10)")
    step.add_argument("--rate-max", type=float, default=200.0, metavar="R", help="(200)")
    step.add_argument("--max-seconds", type=float, default=120.0, metavar="S", help="(120)")
    parser.add_argument(
        "--part",
        default="1/1",
        metavar="I/N",
        help="run part I of N (presentities split by index; merge with report --merge)",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=4,
        metavar="N",
        help="extra traced subscriptions whose NOTIFYs go through the oracle (4; 0: none)",
    )
    parser.add_argument(
        "--subscribe-rate",
        type=float,
        default=400.0,
        metavar="R",
        help="SUBSCRIBEs per s while the subscriptions are set up (400)",
    )
    parser.add_argument(
        "--buff-size",
        type=int,
        default=8 * 1024 * 1024,
        metavar="BYTES",
        help="SIPp socket buffers, -buff_size (8 MiB; the kernel caps it at rmem_max)",
    )
    parser.add_argument(
        "--report-dir",
        default="reports",
        metavar="DIR",
        help="where the run's folder (results.json, report.html) goes (./reports)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME",
        help="reference target only: inject a fault into the server (to see the load checks fail)",
    )
    parser.add_argument(
        "--trace-watchers",
        action="store_true",
        help="also write a full message trace of the M×K watchers (costly: for debugging and "
        "for measuring what a trace costs)",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the SIPp logs in the run folder"
    )


# ---- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one run does, checked: the rates to try and this part's share of the presentities."""

    target: str
    presentities: int
    watchers: int
    rates: tuple[float, ...]
    step_seconds: float
    stepping: bool
    part: int
    parts: int
    sample: int
    subscribe_rate: float
    buff_size: int
    trace_watchers: bool = False

    @property
    def mine(self) -> list[int]:
        """The presentity indexes this part publishes to and watches."""
        return [i for i in range(self.presentities) if i % self.parts == self.part - 1]

    def options(self) -> dict[str, Any]:
        return {
            "presentities": self.presentities,
            "watchers_per_presentity": self.watchers,
            "rates": list(self.rates),
            "step_seconds": self.step_seconds,
            "step": self.stepping,
            "part": f"{self.part}/{self.parts}",
            "sample": self.sample,
            "subscribe_rate": self.subscribe_rate,
            "buff_size": self.buff_size,
            "trace_watchers": self.trace_watchers,
        }


def parse_part(text: str) -> tuple[int, int]:
    """``I/N`` with 1 <= I <= N; ``UsageError`` quoting the input otherwise."""
    head, sep, tail = text.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise UsageError(f"--part {text!r}: use I/N, e.g. 2/4")
    i, n = int(head), int(tail)
    if not 1 <= i <= n:
        raise UsageError(f"--part {text!r}: I must be between 1 and N")
    return i, n


def _positive(name: str, value: float, *, whole: bool = False) -> None:
    if not math.isfinite(value) or value <= 0 or (whole and value != int(value)):
        kind = "a positive whole number" if whole else "a positive number"
        raise UsageError(f"{name} must be {kind}, got {value:g}")


def make_plan(args: argparse.Namespace) -> Plan:
    """The run's plan from the command line; every bad value is a ``UsageError``."""
    _positive("--presentities", args.presentities, whole=True)
    _positive("--watchers-per-presentity", args.watchers_per_presentity, whole=True)
    _positive("--subscribe-rate", args.subscribe_rate)
    if args.sample < 0:
        raise UsageError(f"--sample must be 0 or more, got {args.sample}")
    if args.buff_size < 4096:
        raise UsageError(f"--buff-size {args.buff_size} is too small (4096 at least)")
    part, parts = parse_part(args.part)
    if parts > args.presentities:
        raise UsageError(
            f"--part {args.part}: more parts than the {args.presentities} presentities"
        )
    if args.step:
        for name in ("rate_start", "rate_step", "step_seconds", "rate_max", "max_seconds"):
            _positive("--" + name.replace("_", "-"), getattr(args, name))
        if args.rate_max < args.rate_start:
            raise UsageError("--rate-max is below --rate-start")
        rates = tuple(
            s.rate
            for s in plan_steps(
                start=0.0,
                rate_start=args.rate_start,
                rate_step=args.rate_step,
                step_seconds=args.step_seconds,
                rate_max=args.rate_max,
                max_seconds=args.max_seconds,
            )
        )
        if not rates:
            raise UsageError("--max-seconds is shorter than one --step-seconds")
        seconds = float(args.step_seconds)
    else:
        _positive("--publish-rate", args.publish_rate)
        _positive("--duration", args.duration)
        rates, seconds = (float(args.publish_rate),), float(args.duration)
    # Each part publishes its share of the rate, so N parts together load the server with R.
    rates = tuple(
        r * len(_share(args.presentities, part, parts)) / args.presentities for r in rates
    )
    return Plan(
        target=args.target,
        presentities=int(args.presentities),
        watchers=int(args.watchers_per_presentity),
        rates=rates,
        step_seconds=seconds,
        stepping=bool(args.step),
        part=part,
        parts=parts,
        sample=int(args.sample),
        subscribe_rate=float(args.subscribe_rate),
        buff_size=int(args.buff_size),
        trace_watchers=bool(getattr(args, "trace_watchers", False)),
    )


def _share(presentities: int, part: int, parts: int) -> list[int]:
    return [i for i in range(presentities) if i % parts == part - 1]


# ---- the kernel's view: UDP counters and CPU ----------------------------------------------------


def udp_counters(path: str = "/proc/net/snmp") -> dict[str, int]:
    """``Udp:`` counters (InDatagrams, InErrors, RcvbufErrors...); empty when unreadable."""
    try:
        lines = [ln.split() for ln in Path(path).read_text().splitlines() if ln.startswith("Udp:")]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    names, values = lines[0][1:], lines[1][1:]
    return {n: int(v) for n, v in zip(names, values, strict=False) if v.lstrip("-").isdigit()}


def socket_drops(ports: Iterable[int]) -> dict[int, int]:
    """Datagrams the kernel dropped on each local UDP port's socket (/proc/net/udp ``drops``)."""
    wanted = set(ports)
    out: dict[int, int] = {}
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 13:
                continue
            port = int(cols[1].rsplit(":", 1)[1], 16)
            if port in wanted:
                out[port] = out.get(port, 0) + int(cols[-1])
    return out


def group_cpu_seconds(pgid: int | None) -> float:
    """User+system CPU of every live process in group ``pgid`` (and its reaped children)."""
    if pgid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 14 and fields[2] == str(pgid):
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


# ---- SIPp processes -----------------------------------------------------------------------------


@dataclass
class Generator:
    """One load SIPp: started in its own session, reaped with ``wait4`` for its CPU time."""

    name: str
    argv: list[str]
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    cpu: float = 0.0
    returncode: int | None = None
    drops: int = 0
    _read: int = 0
    _partial: str = field(default="", repr=False)

    def start(self, cwd: Path) -> Generator:
        _load_libc()  # SIGKILL with the kit (the harness's own helper for long-lived SIPps)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise HarnessError(f"cannot start SIPp ({self.name}): {exc}") from None
        return self

    def poll(self) -> bool:
        """True once the process has ended (and been reaped, its CPU time noted)."""
        if self.proc is None or self.returncode is not None:
            return True
        pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
        if pid == 0:
            self.drops = max(self.drops, socket_drops([self.port]).get(self.port, 0))
            return False
        self._reaped(status, usage)
        return True

    def _reaped(self, status: int, usage: Any) -> None:
        assert self.proc is not None
        self.cpu = usage.ru_utime + usage.ru_stime
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # Popen must not wait for it again

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.poll():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        """SIGTERM its group, then SIGKILL after 3 s; reaps it either way."""
        if self.proc is None or self.poll():
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
            if self.wait(3.0):
                return

    def new_lines(self) -> list[str]:
        """Complete log lines written since the last call (SIPp writes them as they happen)."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self._read)
                data = fh.read()
        except FileNotFoundError:
            return []
        self._read += len(data)
        text = self._partial + data.decode("utf-8", "replace")
        lines = text.split("\n")
        self._partial = lines.pop()
        return lines


def sipp_argv(
    scenario: str,
    target: Target,
    *,
    port: int,
    control: int,
    csv: Path,
    log: Path,
    calls: int,
    rate: float,
    buff_size: int,
    keys: Mapping[str, str],
    sets: Mapping[str, str],
    trace: Path | None = None,
) -> list[str]:
    argv = [
        sipp_binary(),
        target.address,
        "-sf", str(scenario_path(scenario)),
        "-i", target.host if ":" not in target.host else "::1",
        "-p", str(port),
        "-cp", str(control),
        "-nostdin",
        "-default_behaviors", "none",
        "-inf", str(csv),
        "-m", str(calls),
        "-l", str(calls),
        "-r", f"{rate:g}",
        "-buff_size", str(buff_size),
        "-trace_logs", "-log_file", str(log),
        "-max_recv_loops", "10000",
        "-max_sched_loops", "10000",
        "-watchdog_minor_threshold", "2000",
        "-watchdog_major_threshold", "10000",
    ]  # fmt: skip
    if trace is not None:
        argv += ["-trace_msg", "-message_file", str(trace)]
    for name, value in keys.items():
        argv += ["-key", name, value]
    for name, value in sets.items():
        argv += ["-set", name, value]
    return argv


# ---- one run ------------------------------------------------------------------------------------


class Progress:
    """One line per event on the terminal (stderr when stdout is the results' path)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", file=self.stream, flush=True)


@dataclass
class RunOutcome:
    section: dict[str, Any]
    target: dict[str, Any]
    started: str
    finished: str


def run_load(
    plan: Plan, target: Target, block: PortBlock, workdir: Path, say: Progress
) -> dict[str, Any]:
    """Drive one load run against a started ``target``; the ``load`` section of results.json."""
    run_id = secrets.token_hex(3)
    mine = plan.mine
    names = [f"ld{run_id}p{i}" for i in mine]
    domain = target.domain
    expires = str(int(plan.step_seconds * len(plan.rates) + 120))
    watch_csv = workdir / "watchers.csv"
    watch_csv.write_text(
        "SEQUENTIAL\n" + "".join(f"{p};{p}w{k}\n" for p in names for k in range(plan.watchers)),
        encoding="utf-8",
    )
    total_subs = len(names) * plan.watchers
    ports = block.take(6, host=target.host if ":" not in target.host else "::1")
    snmp_before = udp_counters()
    server_drops_before = socket_drops([target.port]).get(target.port, 0)
    server_cpu_before = group_cpu_seconds(_target_pid(target))

    # The whole run follows a wall-clock schedule fixed now, because the watchers must be told
    # when to unsubscribe as they start (a SIPp global): subscriptions (with room to spare),
    # then each step from its start to its end (whole seconds: the scenarios compare seconds),
    # a gap, the next step. A late step is shortened, never shifted. An early knee stops the
    # watchers by signal instead.
    publish_start_at = math.ceil(time.time() + 2.5 * total_subs / plan.subscribe_rate + 1.5)
    schedule = []
    at = float(publish_start_at)
    for _rate in plan.rates:
        end = math.ceil(at + plan.step_seconds)
        schedule.append((at, float(end)))
        at = end + STEP_GAP
    planned_end = schedule[-1][1] + SETTLE

    def watch(name: str, csv: Path, calls: int, port: int, control: int) -> Generator:
        """A watcher SIPp (the M×K, or the traced sample) that unsubscribes at the planned end."""
        log = workdir / f"{name}.log"
        argv = sipp_argv(
            WATCH_SCENARIO,
            target,
            port=port,
            control=control,
            csv=csv,
            log=log,
            calls=calls,
            rate=plan.subscribe_rate,
            buff_size=plan.buff_size,
            keys={"domain": domain, "expires": expires},
            sets={"end_s": str(math.ceil(planned_end))},
            trace=(
                workdir / f"{name}-messages.log"
                if name == "sample" or plan.trace_watchers
                else None
            ),
        )
        return Generator(name, argv, log, port).start(workdir)

    watchers = watch("watchers", watch_csv, total_subs, ports[0], ports[1])
    generators = [watchers]
    sample: Generator | None = None
    if plan.sample:
        sample_csv = workdir / "sample.csv"
        sample_csv.write_text(
            "SEQUENTIAL\n"
            + "".join(f"{names[i % len(names)]};sample{i}\n" for i in range(plan.sample)),
            encoding="utf-8",
        )
        sample = watch("sample", sample_csv, plan.sample, ports[2], ports[3])
        generators.append(sample)
    logs = Logs()
    warnings: list[str] = []
    setup: dict[str, Any] = {}
    steps: list[Step] = []
    knee: dict[str, Any] | None = None
    publishers: list[Generator] = []
    try:
        say(f"subscribing {total_subs} watchers to {len(names)} presentities")
        setup_began = time.monotonic()
        subscribed, notified = _await_subscriptions(
            watchers, logs, total_subs, publish_start_at, say
        )
        setup = {
            "subscriptions_answered": subscribed,
            "initial_notifies": notified,
            "seconds": round(time.monotonic() - setup_began, 3),
        }
        say(
            f"{subscribed}/{total_subs} subscriptions answered, {notified} initial NOTIFYs "
            f"in {setup['seconds']:.1f} s"
        )
        if notified < total_subs:
            warnings.append(
                f"publishing began with {notified}/{total_subs} initial NOTIFYs received: "
                "the server's setup backlog may weigh on the first step"
            )
        etags: dict[str, str] = {}
        for index, rate in enumerate(plan.rates):
            planned_start, step_end = schedule[index]
            time.sleep(max(0.0, planned_start - time.time()))
            step_start = time.time()
            # SIPp starts the calls (one per presentity) at R per second, so a step shorter than
            # M/R s reaches only some presentities: those published longest ago go first.
            last_sent = {pub.presentity: pub.sent for pub in logs.publications}
            order = sorted(names, key=lambda p: last_sent.get(p, 0.0))
            pub_csv = workdir / f"publish-{index}.csv"
            pub_csv.write_text(
                "SEQUENTIAL\n"
                + "".join(
                    f"{p};{'SIP-If-Match: ' + etags[p] if p in etags else 'X-Load: initial'};"
                    f"{index}\n"
                    for p in order
                ),
                encoding="utf-8",
            )
            interval_ms = max(1, round(len(names) * 1000.0 / rate))
            pub = Generator(
                f"publisher step {index}",
                sipp_argv(
                    PUBLISH_SCENARIO,
                    target,
                    port=ports[4],
                    control=ports[5],
                    csv=pub_csv,
                    log=workdir / f"publish-{index}.log",
                    calls=len(names),
                    rate=rate,
                    buff_size=plan.buff_size,
                    keys={"domain": domain, "expires": expires, "run": run_id},
                    sets={
                        "ivs": f"{interval_ms / 1000.0:.6f}",
                        "chunk": str(max(1, min(CHUNK_MS, interval_ms // 5))),
                        "end_s": str(int(step_end)),
                    },
                ),
                workdir / f"publish-{index}.log",
                ports[4],
            ).start(workdir)
            publishers.append(pub)
            generators.append(pub)
            shown = time.monotonic()
            quitting = False
            while not pub.wait(max(0.05, min(1.0, step_end - time.time()))):
                if not quitting and time.time() >= step_end:
                    # SIPp's soft quit ('q'): no new calls; running ones end on their own
                    # clock check within a chunk, each logging its ETag.
                    pub.signal(signal.SIGUSR1)
                    quitting = True
                read_logs(watchers.new_lines(), logs)
                if time.monotonic() - shown >= 5.0:
                    shown = time.monotonic()
                    got = sum(len(v) for v in logs.notifications.values())
                    say(f"  step {index} at {rate:g}/s: {got} NOTIFYs received so far")
                if time.time() > step_end + 30:
                    pub.stop()
                    raise HarnessError(f"the publisher of step {index} did not end")
            read_logs(pub.new_lines(), logs)
            steps.append(Step(index, rate, step_start, max(0.0, step_end - step_start)))
            etags = {p: etag for p, (_s, _n, etag) in logs.etags.items()}
            if not plan.stepping and index == len(plan.rates) - 1:
                break
            time.sleep(_KNEE_GRACE)
            read_logs(watchers.new_lines(), logs)
            judged = analyse(logs, run_id, steps)
            stats = judged.steps[-1]
            summary = stats.latency.summary()
            say(
                f"step {index}: {rate:g}/s (achieved {stats.achieved_rate:.1f}/s), "
                f"{stats.delivered} NOTIFYs, p50 {summary['p50']} ms p99 {summary['p99']} ms, "
                f"lost {stats.lost}"
            )
            if plan.stepping and stats.knee_reason():
                knee = judged.knee()
                say(f"knee at {rate:g}/s: {stats.knee_reason()}")
                break
        # Let late NOTIFYs arrive, then end the watchers: by their own clock (they unsubscribe)
        # when the plan ran to the end, by signal when the knee stopped it early.
        remaining = planned_end - time.time()
        if knee is None and remaining > 0:
            _drain(watchers, logs, remaining + 8.0)
        else:
            # Past the knee the server runs behind: give it time to catch up (until the
            # NOTIFYs stop for SETTLE s, KNEE_DRAIN s at most), so that a final view counted
            # wrong is a lost update, not a late one.
            _drain_until_quiet(watchers, logs, quiet=SETTLE, limit=KNEE_DRAIN)
        kit_drops = {g.name: g.drops for g in generators}
        for g in generators:
            if not g.poll():
                kit_drops[g.name] = max(g.drops, socket_drops([g.port]).get(g.port, 0))
        server_drops = socket_drops([target.port]).get(target.port, 0) - server_drops_before
        server_cpu = group_cpu_seconds(_target_pid(target)) - server_cpu_before
    finally:
        for g in generators:
            g.stop()
    read_logs(watchers.new_lines(), logs)
    snmp_after = udp_counters()
    judged = analyse(logs, run_id, steps)
    if knee is None:
        knee = judged.knee()
    oracle = _oracle_sample(workdir / "sample-messages.log", target) if sample else None
    kit_dropped = sum(kit_drops.values())
    invalid = []
    if kit_dropped:
        invalid.append(
            f"the kit's own sockets dropped {kit_dropped} datagrams ({kit_drops}): "
            "the load generator, not the server, lost them"
        )
    if watchers.returncode not in (0, 1, None) and knee is None:
        invalid.append(f"the watchers' SIPp ended with status {watchers.returncode}")
    totals = dict(sorted(judged.totals.items()))
    return {
        "run_id": run_id,
        "options": plan.options(),
        "valid": not invalid,
        "invalid_reasons": invalid,
        "warnings": warnings,
        "setup": setup,
        "subscriptions": total_subs,
        "totals": totals,
        "loss_ratio": round(judged.loss_ratio, 6),
        "latency": judged.latency.to_json(),
        "latency_ms": judged.latency.summary(),
        "steps": [s.to_json() for s in judged.steps],
        "knee": knee,
        "wrong_views": judged.wrong_views,
        "oracle": oracle,
        "udp": {
            "before": _pick_udp(snmp_before),
            "after": _pick_udp(snmp_after),
            "kit_socket_drops": kit_drops,
            "server_socket_drops": server_drops,
        },
        "cpu_seconds": {
            "kit": round(sum(g.cpu for g in generators), 3),
            "kit_by_process": {g.name: round(g.cpu, 3) for g in generators},
            "server": round(server_cpu, 3),
        },
        "parts": [f"{plan.part}/{plan.parts}"],
    }


def _target_pid(target: Target) -> int | None:
    return getattr(target, "pid", None)


def _pick_udp(counters: Mapping[str, int]) -> dict[str, int]:
    keep = ("InDatagrams", "InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts")
    return {k: counters[k] for k in keep if k in counters}


def _await_subscriptions(
    watchers: Generator, logs: Logs, total: int, deadline: float, say: Progress
) -> tuple[int, int]:
    """Read the watchers' log until every SUBSCRIBE is answered and its first NOTIFY came, or
    ``deadline`` (wall clock); (answered, first NOTIFYs received). A server still working off
    the initial NOTIFYs when the PUBLISHes start would put its setup backlog into step 0."""
    last_report = time.monotonic()
    while True:
        read_logs(watchers.new_lines(), logs)
        done = len(logs.subscribe_status)
        notified = len(logs.notifications)
        if (done >= total and notified >= total) or time.time() >= deadline:
            return done, notified
        if watchers.poll():
            raise HarnessError(
                f"the watchers' SIPp ended early (status {watchers.returncode}) with "
                f"{done}/{total} subscriptions; see {watchers.log}"
            )
        if time.monotonic() - last_report > 5:
            say(f"  {done}/{total} subscribed")
            last_report = time.monotonic()
        time.sleep(0.2)


def _drain_until_quiet(watchers: Generator, logs: Logs, *, quiet: float, limit: float) -> None:
    deadline = time.monotonic() + limit
    last_seen = time.monotonic()
    while time.monotonic() < deadline and not watchers.poll():
        if any(line.startswith("N ") for line in _fold(watchers.new_lines(), logs)):
            last_seen = time.monotonic()
        elif time.monotonic() - last_seen >= quiet:
            return
        time.sleep(0.2)


def _fold(lines: list[str], logs: Logs) -> list[str]:
    read_logs(lines, logs)
    return lines


def _drain(watchers: Generator, logs: Logs, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not watchers.poll():
        read_logs(watchers.new_lines(), logs)
        time.sleep(0.2)


def _oracle_sample(trace: Path, target: Target) -> dict[str, Any]:
    """The traced sample's NOTIFYs through the oracle: schema of each body, sequence rules."""
    try:
        messages = parse_trace(trace.read_bytes())
    except OSError:
        return {"notifies": 0, "verdict": "not run", "failures": ["no sample trace"]}
    # A declared deviation excuses only the observation it names (docs/VERDICTS.md), here as
    # anywhere: the sample is no suite case, so every case's declarations count.
    declared = [d for devs in target.profile.deviations.values() for d in devs]
    declared += target.profile.fact_deviations()
    excused: set[str] = set()
    per_call: dict[str, list[Captured]] = {}
    for traced in messages:
        msg = traced.message
        if (
            traced.direction == "in"
            and not traced.retransmission
            and isinstance(msg, Request)
            and msg.method == "NOTIFY"
        ):
            per_call.setdefault(msg.call_id or "?", []).append(
                Captured(request=msg, timestamp=traced.timestamp)
            )
    failures: list[str] = []
    checked = 0
    for call_id, notifies in per_call.items():
        findings = checks.check_sequence(notifies)
        for n in notifies:
            if n.body.strip():
                checked += 1
                findings += schema.check(n.body, subscribe_uri=_uri(n.request))
        for f in findings:
            if f.verdict() is not Verdict.FAIL:
                continue
            excuse = next((d for d in declared if d.matches(f)), None)
            if excuse is not None:
                excused.add(excuse.key)
            elif len(failures) < 20:
                failures.append(f"{f.requirement}: {f.message} (Call-ID {call_id})")
    return {
        "subscriptions": len(per_call),
        "notifies": sum(len(v) for v in per_call.values()),
        "bodies_checked": checked,
        "verdict": "fail" if failures else "pass",
        "failures": failures,
        "known_deviations_excused": sorted(excused),
    }


def _uri(request: Request) -> str | None:
    value = request.header("From") or ""
    start, end = value.find("<"), value.find(">")
    return value[start + 1 : end] if 0 <= start < end else None


# ---- the command --------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    plan = make_plan(args)
    sipp_binary()  # ToolMissingError says how to install it
    say = Progress()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    base = Path(args.report_dir)
    with reserve_block() as block:
        scratch = base / ".load-work" / f"{os.getpid()}-{secrets.token_hex(2)}"
        scratch.mkdir(parents=True, exist_ok=True)
        target = make_target(
            args.target, profile=args.profile, block=block, workdir=scratch, faults=args.fault
        )
        say(f"starting {args.target}")
        target.start()
        try:
            section = run_load(plan, target, block, scratch, say)
            described = target.describe()
        finally:
            target.stop()
    finished = datetime.now(UTC).isoformat(timespec="seconds")
    results = load_results_document(section, described, started, finished)
    run_dir = write_run(results, base)
    if args.keep_logs:
        scratch.rename(run_dir / "logs")
    else:
        _remove_tree(scratch)
    print_summary(section, say)
    print(run_dir / "results.json")
    return 0 if section["valid"] else 1


def load_results_document(
    section: dict[str, Any], target: dict[str, Any], started: str, finished: str | None
) -> dict[str, Any]:
    """A results.json holding a load run: the usual document (no cases) plus ``load``."""
    info = {
        "kit_version": __version__,
        "target": dict(target, name=f"{target.get('kind', 'target')}-load"),
        "mode": "single" if target.get("single_dialog") else "aggregate",
        "started": started,
        "finished": finished,
        "options": {"command": "load", **section["options"]},
    }
    results = build_results(info, [])
    results["load"] = section
    return results


def print_summary(section: Mapping[str, Any], say: Progress) -> None:
    lat = section["latency_ms"]
    t = section["totals"]
    say(
        f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
        f"max {lat['max']} ms over {lat['count']} NOTIFYs"
    )
    say(
        f"lost: {t.get('versions_missing', 0)} versions missing, "
        f"{t.get('final_view_wrong', 0)} final views wrong (loss {section['loss_ratio']:.3%}); "
        f"skipped {t.get('skipped_intermediate', 0)} (coalesced, info); "
        f"repeats {t.get('version_repeats', 0)}; PUBLISH 5xx {t.get('publish_5xx', 0)}, "
        f"timeouts {t.get('publish_timeout', 0)}; SUBSCRIBE 5xx {t.get('subscribe_5xx', 0)}"
    )
    udp = section["udp"]
    say(f"UDP before {udp['before']}")
    say(f"UDP after  {udp['after']}")
    say(
        f"socket drops: kit {udp['kit_socket_drops']}, server {udp['server_socket_drops']}; "
        f"CPU s: kit {section['cpu_seconds']['kit']}, server {section['cpu_seconds']['server']}"
    )
    if section.get("knee"):
        say(f"knee: {section['knee']}")
    oracle = section.get("oracle")
    if oracle:
        say(f"oracle on {oracle.get('bodies_checked', 0)} sampled bodies: {oracle['verdict']}")
        for line in oracle.get("failures", [])[:5]:
            say(f"  {line}")
    for warning in section.get("warnings", []):
        say(f"warning: {warning}")
    if not section["valid"]:
        for reason in section["invalid_reasons"]:
            say(f"INVALID RUN: {reason}")


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
