"""Scenarios through PgBouncer: the same requests against a second certificate service
whose DATABASE_URL is a PgBouncer in transaction mode in front of the same database."""

from __future__ import annotations

import dataclasses

from bench import scenarios
from bench.measure import Options, measure
from bench.pgbouncer import PgBouncer
from bench.report import Row
from bench.scenarios import Context
from bench.services import Services, free_port

# Beside their direct rows in the main table.
POOLED = ("fetch JSON", "issue ec-p256")
# The bench server is shared: fewer server connections than the shipped example's 40.
BENCH_PGBOUNCER = {"default_pool_size": "20", "reserve_pool_size": "0", "max_db_connections": "20"}


def through_pgbouncer(ctx: Context, names: list[str], opts: Options) -> list[Row]:
    """`names` at c1 and c32 against a certificate service behind PgBouncer."""
    main = ctx.services
    with PgBouncer(ctx.database_url, free_port(), BENCH_PGBOUNCER) as bouncer:
        twin = Services(
            bouncer.url_for(ctx.database_url),
            main.var_dir,
            main.log_path,
            account_workers=0,
            certificate_workers=main.certificate_workers,
            account_port=main.account_port,  # tokens come from the one account service
        )
        rows = []
        try:
            twin.start(("certificate-api",))
            twin.wait_idle()
            side = dataclasses.replace(ctx, services=twin)
            for name in names:
                scenario = scenarios.by_name(name)
                pooled = dataclasses.replace(scenario, name=f"{scenario.name} via pgbouncer")
                for concurrency in (1, 32):
                    rows.append(measure(side, pooled, concurrency, opts))
        finally:
            twin.stop()
    return rows
