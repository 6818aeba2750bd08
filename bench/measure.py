"""One measured wrk run of a scenario (`measure`), what every table row of `make bench` is;
the side-by-side comparisons (bench/names.py, bench/pooled.py, bench/scale.py) call it too."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.load import run_wrk, settle
from bench.report import Row
from bench.scenarios import Context, Scenario
from bench.services import busy_seconds, database_cpu_seconds


@dataclass(frozen=True)
class Options:
    seconds: float
    warmup: float
    max_requests: int
    threads: int
    profile: list[str]


def base_url(ctx: Context, scenario: Scenario) -> str:
    services = ctx.services
    return services.certificate_url if scenario.service == "certificate" else services.account_url


def start_profiler(
    ctx: Context, scenario: Scenario, concurrency: int, opts: Options
) -> subprocess.Popen[bytes] | None:
    if concurrency != 32 or not any(fnmatch.fnmatch(scenario.name, p) for p in opts.profile):
        return None
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("  --profile needs py-spy (pip install py-spy)", file=sys.stderr)
        return None
    name = "certificate-api" if scenario.service == "certificate" else "account-api"
    slug = "".join(ch if ch.isalnum() else "-" for ch in scenario.name)
    out = report.RESULTS_DIR / f"{ctx.stem}-profile-{slug}-c{concurrency}.txt"
    report.RESULTS_DIR.mkdir(exist_ok=True)
    command = [py_spy, "record", "--format", "raw", "--rate", "100", "--nonblocking"]
    command += ["--subprocesses"]
    command += ["--duration", str(round(opts.seconds)), "--output", str(out)]
    command += ["--pid", str(ctx.services.procs[name].pid)]
    print(f"  profiling {name} into {out}", file=sys.stderr)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(ctx: Context, scenario: Scenario, concurrency: int, opts: Options) -> Row:
    """Warm up, then one bounded wrk run of the scenario at this concurrency."""
    ctx.refresh_tokens()
    row = Row(
        scenario.name, scenario.service, concurrency, sorted(scenario.expected), scenario.crypto
    )
    if scenario.before and (note := scenario.before(ctx)):
        row.note = note
        print(f"  {scenario.name} c{concurrency}: {note}", file=sys.stderr)
        return row
    cap = scenario.cap or opts.max_requests
    url = base_url(ctx, scenario)
    if opts.warmup:
        run_wrk(url, scenario.build(ctx, cap), concurrency, opts.warmup, cap, opts.threads)
        if scenario.before:
            scenario.before(ctx)
        settle()
    profiler = start_profiler(ctx, scenario, concurrency, opts)
    requests = scenario.build(ctx, cap)
    database = ctx.services.database_name
    before = (ctx.services.cpu_seconds(), database_cpu_seconds(database), busy_seconds())
    started = time.monotonic()
    peek = threading.Timer(
        min(1.0, opts.seconds / 2),
        lambda: row.connections.extend(ctx.services.connection_split(scenario.service)),
    )
    peek.start()
    row.result = run_wrk(url, requests, concurrency, opts.seconds, cap, opts.threads)
    peek.join()
    wall = time.monotonic() - started  # wrk's whole life, the window the CPU deltas cover
    service, db, machine = (
        (after - first) / wall
        for first, after in zip(
            before,
            (ctx.services.cpu_seconds(), database_cpu_seconds(database), busy_seconds()),
            strict=True,
        )
    )
    row.service_cores, row.database_cores = service, max(0.0, db)
    row.other_cores = max(0.0, machine - service - db - row.result.generator_cpu / wall)
    if profiler is not None:
        profiler.wait()
    r = row.result
    print(
        f"  {scenario.name:<22} c{concurrency:<4} {r.rps:9,.0f} req/s  p50 {r.p50_ms:7.1f} ms  "
        f"p99 {r.p99_ms:7.1f} ms  errors {row.errors}  statuses {r.statuses}  "
        f"CPU service {service:.2f} PostgreSQL {db:.2f} rest {row.other_cores:.2f} "
        f"wrk {r.generator_cpu / wall:.2f}  connections per worker {row.connections}",
        file=sys.stderr,
    )
    settle()
    return row
