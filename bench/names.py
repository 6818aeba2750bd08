"""Issuance with the name checks (NAME_AUTHORIZATION=required, the default) beside the same
issuance without them (`open`): the same database and account service, a second
certificate service with `open`, measured in alternating runs, medians compared."""

from __future__ import annotations

import dataclasses
import statistics
import sys
import uuid
from collections.abc import Callable
from typing import Any

from bench.report import Row
from bench.services import Services

ROUNDS = 3
SCENARIO = "issue ec-p256"
BENCH_DOMAIN = "bench.example"  # every name the bench issues is under it


def grant_bench_names(database_url: str, account_id: uuid.UUID) -> None:
    """What `ca-admin domains grant <issuer> bench.example --include-subdomains` does."""
    from core import domains
    from core.policy import NamePolicy
    from schema.accounts import Account
    from schema.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            account = session.get(Account, account_id)
            assert account is not None
            wanted = domains.subject(BENCH_DOMAIN, True, NamePolicy.parse("", ""))
            domains.grant(session, account, wanted, 30)
            session.commit()
    finally:
        engine.dispose()


def compare(ctx: Any, opts: Any, measure: Callable[..., Row], scenario: Any) -> list[Row]:
    """Alternating runs at c1 and c32: checked, open, then open, checked, ..."""
    main: Services = ctx.services
    twin = Services(
        main.database_url,
        main.var_dir,
        main.log_path,
        account_workers=0,
        certificate_workers=main.certificate_workers,
        account_port=main.account_port,  # tokens come from the one account service
        extra_env={"NAME_AUTHORIZATION": "open"},
    )
    rows: list[Row] = []
    try:
        twin.start(("certificate-api",))
        twin.wait_idle()
        sides = [("checked", ctx), ("open", dataclasses.replace(ctx, services=twin))]
        for concurrency in (1, 32):
            for turn in range(ROUNDS):
                for label, side in sides if turn % 2 == 0 else sides[::-1]:
                    print(f"  names {label:<8}", end="", file=sys.stderr)
                    row = measure(side, scenario, concurrency, opts)
                    row.scenario = f"{SCENARIO} (names {label})"
                    rows.append(row)
    finally:
        twin.stop()
    return rows


def table(rows: list[Row]) -> str:
    """Medians per side and concurrency, and checked over open."""
    runs: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        if row.result is not None and not row.errors:
            runs.setdefault((row.scenario, row.concurrency), []).append(row)
    lines = [
        "| scenario | c | runs | median req/s | median p50 ms | median p99 ms "
        "| median CPU ms per request: service / PostgreSQL |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for (name, concurrency), done in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        results = [row.result for row in done if row.result is not None]
        lines.append(
            f"| {name} | {concurrency} | {len(results)} | "
            f"{statistics.median(r.rps for r in results):,.0f} | "
            f"{statistics.median(r.p50_ms for r in results):.2f} | "
            f"{statistics.median(r.p99_ms for r in results):.2f} | "
            f"{_cpu_ms(done, 'service_cores')} / {_cpu_ms(done, 'database_cores')} |"
        )
    errors = sum(row.errors for row in rows)
    if errors:
        lines.append(f"\n{errors} unexpected answers: those runs are left out of the medians.")
    return "\n".join(lines)


def _cpu_ms(rows: list[Row], field: str) -> str:
    """CPU time per answered request: steadier than req/s on a shared, noisy machine."""
    costs = [
        getattr(row, field) * 1000 / row.result.rps
        for row in rows
        if row.result is not None and row.result.rps and getattr(row, field) is not None
    ]
    return f"{statistics.median(costs):.2f}" if costs else "—"
