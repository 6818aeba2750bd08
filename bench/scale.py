"""Fetch and list at two table sizes (`--scale`, `--full`): two copies of the seeded
database, one topped up to `--rows` certificates, each served by a certificate service of
its own, measured in alternating runs."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from bench import scenarios
from bench.measure import Options, measure
from bench.report import ScalePoint
from bench.scenarios import Context
from bench.seed import count_rows, explain_service_queries, vacuum_analyze
from bench.services import BenchDatabase, Services

SCALE_QUERIES = ("fetch JSON", "list active")
SCALE_ROUNDS = 3


def compare_at_scale(
    ctx: Context,
    copies: tuple[BenchDatabase, BenchDatabase],
    args: argparse.Namespace,
    opts: Options,
) -> tuple[list[ScalePoint], dict[str, str]]:
    """Fetch and list against two copies of the seeded database, one topped up to
    `--rows`, each served by a certificate service of its own, measured in alternating runs.

    The two sizes are measured side by side, round after round (small, large, then large,
    small), instead of minutes apart, so that what the machine does between them (and this
    machine's speed drifts by tens of percent over minutes) falls on both alike.
    """
    small, large = copies
    vacuum_analyze(small.url)  # as fresh as the large side will be after its seeding
    print(
        f"scaling a copy to {args.rows:,} certificates, {args.accounts:,} accounts",
        file=sys.stderr,
    )
    started = time.perf_counter()
    scenarios.scale_to(dataclasses.replace(ctx, database_url=large.url), args.rows, args.accounts)
    seeded = time.perf_counter() - started
    print(f"  seeded in {seeded:.0f} s", file=sys.stderr)
    main = ctx.services
    twins = [
        Services(
            copy.url,
            main.var_dir,
            main.log_path,
            account_workers=0,
            certificate_workers=main.certificate_workers,
            account_port=main.account_port,  # tokens come from the one account service
        )
        for copy in copies
    ]
    try:
        for twin in twins:
            twin.start(("certificate-api",))
        for twin in twins:
            twin.wait_idle()
        points = [ScalePoint(*count_rows(copy.url)) for copy in copies]
        points[1].seed_seconds = seeded
        sides = [
            (point, dataclasses.replace(ctx, services=twin, database_url=copy.url))
            for point, twin, copy in zip(points, twins, copies, strict=True)
        ]
        sizes = " vs ".join(f"{point.certificates:,}" for point in points)
        print(f"scale: {sizes} certificates, {SCALE_ROUNDS} alternating rounds", file=sys.stderr)
        for name in SCALE_QUERIES:
            for concurrency in (1, 32):
                for turn in range(SCALE_ROUNDS):
                    for point, side in sides if turn % 2 == 0 else sides[::-1]:
                        print(f"  {point.certificates:>9,}", end="", file=sys.stderr)
                        point.rows.append(measure(side, scenarios.by_name(name), concurrency, opts))
        plans = explain_service_queries(large.url, ctx.reader.id, ctx.reader_ids[0])
    finally:
        for twin in twins:
            twin.stop()
    return points, plans
