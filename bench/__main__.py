"""`python -m bench` (`make bench`): load both services in a throwaway database and report.

Short by default (a few minutes); `--full` runs longer and adds the 1,000,000-row scale
comparison, which `--scale` adds on its own too. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from account_api.settings import AccountSettings
from bench import acme, names, pooled, report, scale, scenarios
from bench.ceilings import crypto_ceilings
from bench.cfssl import run_cfssl
from bench.load import wrk_available
from bench.measure import Options, measure
from bench.report import Row, Run
from bench.scenarios import Context
from bench.services import BenchDatabase, Services, default_server


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="longer runs, plus --scale")
    parser.add_argument("--scale", action="store_true", help="fetch/list at 10k vs --rows rows")
    parser.add_argument("--duration", type=float, help="seconds per run (5; --full: 15)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (1; --full: 3)")
    parser.add_argument(
        "--max-requests", type=int, help="most answers per run (50,000; --full: 500,000)"
    )
    parser.add_argument("--workers", type=int, help="processes per service (CPU count)")
    parser.add_argument("--uvicorn-workers", type=int, help="certificate service processes")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="certificates at scale")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts at scale")
    parser.add_argument(
        "--only", action="append", default=[], metavar="GLOB", help="scenarios to run (all)"
    )
    parser.add_argument("--no-cfssl", action="store_true", help="skip the cfssl comparison")
    parser.add_argument("--no-overload", action="store_true", help="skip the c256 runs")
    parser.add_argument(
        "--no-pgbouncer", action="store_true", help="skip the rows through PgBouncer"
    )
    parser.add_argument(
        "--no-names", action="store_true", help="skip issuance with vs without name checks"
    )
    parser.add_argument(
        "--no-acme", action="store_true", help="skip ACME issuance beside REST issuance"
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="GLOB",
        help="py-spy the service during these scenarios at c32 (raw stacks in bench/results/)",
    )
    parser.add_argument(
        "--database-url",
        default=default_server(),
        help="PostgreSQL server to create the throwaway database on",
    )
    parser.add_argument("--keep-db", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="set up and seed as for a run, then keep the services up until Ctrl-C (for Locust)",
    )
    return parser.parse_args(argv)


def run_all(
    run: Run,
    ctx: Context,
    args: argparse.Namespace,
    opts: Options,
    copies: tuple[BenchDatabase, BenchDatabase] | None,
) -> None:
    def wanted(name: str) -> bool:
        return not args.only or any(fnmatch.fnmatch(name, p) for p in args.only)

    print("crypto ceilings (in process, one core)", file=sys.stderr)
    account_settings = AccountSettings(_env_file=None)
    run.crypto = crypto_ceilings(
        max(1.0, opts.seconds / 2),
        account_settings.argon2_time_cost,
        account_settings.argon2_memory_cost,
        account_settings.argon2_parallelism,
    )
    for key, value in run.crypto.items():
        print(f"  {key:<14} {value:9,.1f} /s", file=sys.stderr)

    print("framework ceilings (GET /healthz)", file=sys.stderr)
    for service, ceiling in scenarios.CEILINGS.items():
        for concurrency in (1, 32):
            row = measure(ctx, ceiling, concurrency, opts)
            run.rows.append(row)
            if row.result:
                run.framework.setdefault(service, {})[concurrency] = row.result.rps

    print("scenarios", file=sys.stderr)
    for scenario in scenarios.SCENARIOS:
        if wanted(scenario.name):
            for concurrency in (1, 32):
                run.rows.append(measure(ctx, scenario, concurrency, opts))

    through = [name for name in pooled.POOLED if wanted(name)]
    if not args.no_pgbouncer and through:
        print("through PgBouncer (transaction mode, deploy/pgbouncer.ini)", file=sys.stderr)
        run.rows += pooled.through_pgbouncer(ctx, through, opts)

    if not args.no_overload:
        print("overload (c256)", file=sys.stderr)
        for name in scenarios.OVERLOAD:
            if wanted(name):
                # Longer: at c256 a request may queue for seconds before its first answer.
                longer = dataclasses.replace(opts, seconds=max(15.0, opts.seconds))
                row = measure(ctx, scenarios.by_name(name), 256, longer)
                row.recovery_s = ctx.services.wait_responsive(row.service)
                print(f"  answering /readyz within 1 s again after {row.recovery_s:.1f} s")
                run.overload.append(row)

    if not args.no_cfssl and wanted("issue ec-p256"):
        print("cfssl side by side (c16)", file=sys.stderr)
        run.cfssl.append(measure(ctx, scenarios.by_name("issue ec-p256"), 16, opts))
        outcome = run_cfssl(16, opts.seconds, opts.max_requests, opts.warmup, opts.threads)
        row = Row("cfssl newcert ec-p256", "cfssl", 16, [200], "ec-p256")
        if isinstance(outcome, str):
            row.note = outcome
        else:
            row.result = outcome
        run.cfssl.append(row)
        print(f"  cfssl: {outcome if isinstance(outcome, str) else f'{outcome.rps:,.0f} req/s'}")

    if not args.no_names and wanted("issue ec-p256 (names *)"):
        print("name checks side by side", file=sys.stderr)
        run.names = names.compare(ctx, opts, measure, scenarios.by_name("issue ec-p256"))

    if not args.no_acme and wanted("acme"):
        print(
            "ACME issuance beside REST issuance (one Python client, alternating)", file=sys.stderr
        )
        run.acme = acme.compare(ctx, opts)

    if copies is not None:
        run.scale, run.plans = scale.compare_at_scale(ctx, copies, args, opts)


def serve(ctx: Context) -> None:
    print(f"certificate service: {ctx.services.certificate_url}")
    print(f"account service:     {ctx.services.account_url}")
    print(f"a seeded customer:   {ctx.reader.email} / {scenarios.PASSWORD}")
    print("Ctrl-C (or SIGTERM) stops the services and drops the database.")

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)  # also when started in the background
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if not wrk_available():
        print("bench needs wrk on PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    workers = args.workers or os.cpu_count() or 1
    opts = Options(
        seconds=args.duration or (15.0 if args.full else 5.0),
        warmup=args.warmup if args.warmup is not None else (3.0 if args.full else 1.0),
        max_requests=args.max_requests or (500_000 if args.full else 50_000),
        threads=args.wrk_threads,
        profile=args.profile,
    )
    run = Run(
        command=shlex.join(
            ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]
        ),
        machine=report.machine(),
        settings={
            "workers": {"account-api": workers, "certificate-api": args.uvicorn_workers or workers},
            "seconds": opts.seconds,
            "warmup": opts.warmup,
            "max_requests": opts.max_requests,
            "wrk_threads": opts.threads,
        },
    )
    database = BenchDatabase(args.database_url)
    print(f"database {database.name}", file=sys.stderr)
    database.create()
    var_dir = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    report.RESULTS_DIR.mkdir(exist_ok=True)
    services = Services(
        database.url,
        var_dir,
        report.RESULTS_DIR / f"{run.stem}-services.log",
        account_workers=workers,
        certificate_workers=args.uvicorn_workers or workers,
    )
    copies: tuple[BenchDatabase, BenchDatabase] | None = None
    try:
        services.start()
        print("seeding", file=sys.stderr)
        ctx = scenarios.prepare(services, database.url)
        ctx.stem = run.stem
        waited = services.wait_idle()
        print(f"services idle after {waited:.0f} s (start-up work done)", file=sys.stderr)
        if args.serve:
            serve(ctx)
            return 0
        if args.scale or args.full:
            # Two copies of the seeded tables, before the scenarios add rows: the small
            # point stays as seeded, the large one is topped up later.
            copies = (BenchDatabase(args.database_url), BenchDatabase(args.database_url))
            for copy in copies:
                copy.create(like=database)
        run_all(run, ctx, args, opts, copies)
    finally:
        leftovers = services.stop()
        if leftovers:
            run.notes.append(
                f"{len(leftovers)} process(es) of the services outlived their shutdown "
                "and were killed: " + "; ".join(leftovers)
            )
        if not args.keep_db:
            for db in (*(copies or ()), database):
                try:
                    db.drop()
                except Exception as exc:  # drop the others; say which failed
                    print(f"could not drop {db.name}: {exc}", file=sys.stderr)
        shutil.rmtree(var_dir, ignore_errors=True)
    path = report.save(run)
    print(report.markdown(run))
    print(f"results: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
