"""ACME issuance beside REST issuance, per certificate, in the same run.

One ACME account is registered with an external account binding made by the bench's
issuing customer, whose names (`*.bench.example`) are granted beforehand, so every order's
authorization is valid at once. A certificate is then what certbot and lego do for names
already authorized: newOrder (the order is `ready`), the authorization read (POST-as-GET,
`valid`), finalize with a CSR (the order comes back `valid`), and the certificate
downloaded (POST-as-GET): four JWS requests, each with the nonce of the answer before it.

wrk cannot replay that (every request needs a fresh nonce and its own signature), so both
sides are driven by the same Python client (asyncio and httpx, `c` certificates in flight),
the REST side with `POST /api/certificates` and the same CSRs, in alternating runs. What is
compared is service CPU per certificate (from /proc, as for every row), latency per
certificate and certificates per second; the client's own CPU is shown too, since it runs
on the same machine.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import httpx

from bench.acme_client import AcmeAccount, AcmeSession, Csr, Outcome, register
from bench.load import LoadResult, settle
from bench.measure import Options
from bench.report import Row
from bench.scenarios import Context
from bench.services import busy_seconds, database_cpu_seconds

ROUNDS = 2
CONCURRENCY = (1, 32)
ACME = "ACME order → certificate"
REST = "REST issue from CSR"
WRK_REST = "issue from CSR"  # the main table's row of the same work, driven by wrk
EXPECTED = [200, 201]
ACME_REQUESTS = 4  # newOrder, authorization, finalize, certificate


Issue = Callable[[Csr], Awaitable[bool]]


async def drive(
    base_url: str,
    make_issue: Callable[[httpx.AsyncClient, Outcome], Awaitable[Issue]],
    csrs: Sequence[Csr],
    concurrency: int,
    seconds: float,
    cap: int,
) -> Outcome:
    """`concurrency` slots issuing certificates one after another for `seconds` (or until
    `cap` certificates were begun)."""
    outcome = Outcome()
    begun = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        issuers = [await make_issue(client, outcome) for _ in range(concurrency)]
        outcome.first = time.monotonic()
        deadline = outcome.first + seconds

        async def slot(issue: Issue, index: int) -> None:
            nonlocal begun
            while time.monotonic() < deadline and begun < cap:
                begun += 1
                started = time.monotonic()
                try:
                    done = await issue(csrs[(index + begun) % len(csrs)])
                except httpx.TimeoutException:
                    outcome.timeouts += 1
                    continue
                except httpx.TransportError:
                    outcome.socket_errors += 1
                    continue
                finished = time.monotonic()
                outcome.last = max(outcome.last, finished)
                if done:
                    outcome.latencies.append(finished - started)

        await asyncio.gather(*(slot(issue, n) for n, issue in enumerate(issuers)))
    return outcome


def acme_side(account: AcmeAccount) -> Callable[[httpx.AsyncClient, Outcome], Awaitable[Issue]]:
    async def make(client: httpx.AsyncClient, outcome: Outcome) -> Issue:
        session = AcmeSession(client, account, outcome)
        await session.fresh_nonce()
        return session.certificate

    return make


def rest_side(token: str) -> Callable[[httpx.AsyncClient, Outcome], Awaitable[Issue]]:
    headers = {"Authorization": f"Bearer {token}"}

    async def make(client: httpx.AsyncClient, outcome: Outcome) -> Issue:
        async def issue(csr: Csr) -> bool:
            body = {"common_name": csr.name, "csr": csr.pem}
            reply = await client.post("/api/certificates", json=body, headers=headers)
            outcome.statuses[reply.status_code] += 1
            if reply.status_code != 201:
                outcome.failed("POST /api/certificates (expected 201)", reply)
            return reply.status_code == 201

        return issue

    return make


def _percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank, in milliseconds."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] * 1000


def run_side(
    ctx: Context,
    scenario: str,
    side: Callable[[httpx.AsyncClient, Outcome], Awaitable[Issue]],
    csrs: Sequence[Csr],
    concurrency: int,
    opts: Options,
) -> Row:
    """A warm-up, then one measured client run, with the CPU of everything in the window."""
    base = ctx.services.certificate_url
    if opts.warmup:
        asyncio.run(drive(base, side, csrs, concurrency, opts.warmup, opts.max_requests))
        settle()
    database = ctx.services.database_name
    before = (ctx.services.cpu_seconds(), database_cpu_seconds(database), busy_seconds())
    client_before, started = time.process_time(), time.monotonic()
    outcome = asyncio.run(drive(base, side, csrs, concurrency, opts.seconds, opts.max_requests))
    wall = time.monotonic() - started
    client = time.process_time() - client_before
    service, db, machine = (
        (after - first) / wall
        for first, after in zip(
            before,
            (ctx.services.cpu_seconds(), database_cpu_seconds(database), busy_seconds()),
            strict=True,
        )
    )
    lat = outcome.latencies
    result = LoadResult(
        concurrency=concurrency,
        answered=len(lat),  # certificates: the rows' req/s is certificates a second
        seconds=max(outcome.last - outcome.first, 1e-9),
        statuses=dict(outcome.statuses),
        retry_after=0,
        socket_errors=outcome.socket_errors,
        timeouts=outcome.timeouts,
        p50_ms=_percentile(lat, 0.50),
        p90_ms=_percentile(lat, 0.90),
        p99_ms=_percentile(lat, 0.99),
        max_ms=max(lat, default=0.0) * 1000,
        generator_cpu=client,
    )
    row = Row(scenario, "certificate", concurrency, EXPECTED, "csr-ec-p256", result)
    row.service_cores, row.database_cores = service, max(0.0, db)
    row.other_cores = max(0.0, machine - service - db - client / wall)
    per = 1000 / result.rps if result.rps else 0.0
    print(
        f"  {scenario:<26} c{concurrency:<3} {result.rps:7,.1f} certificates/s  "
        f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  errors {row.errors}  "
        f"CPU ms per certificate: service {service * per:.2f} PostgreSQL {db * per:.2f} "
        f"client {client / wall * per:.2f}; rest {row.other_cores:.2f} cores",
        file=sys.stderr,
    )
    for failure in outcome.failures:
        print(f"    {failure}", file=sys.stderr)
    settle()
    return row


def compare(ctx: Context, opts: Options) -> list[Row]:
    """REST and ACME issuance of the same CSRs at each concurrency, alternating runs."""
    ctx.refresh_tokens()
    base = ctx.services.certificate_url
    account = register(base, ctx.issuer.token)
    csrs = [Csr.of(pem) for pem in ctx.csrs]
    check = asyncio.run(drive(base, acme_side(account), csrs, 1, 60, 1))
    if len(check.latencies) != 1:
        raise RuntimeError(f"an ACME issuance failed: {check.failures or check.statuses}")
    sides = [(REST, rest_side(ctx.issuer.token)), (ACME, acme_side(account))]
    rows = []
    for concurrency in CONCURRENCY:
        for turn in range(ROUNDS):
            for name, side in sides if turn % 2 == 0 else sides[::-1]:
                rows.append(run_side(ctx, name, side, csrs, concurrency, opts))
    return rows


def _median(rows: Sequence[Row], cost: Callable[[Row], float | None]) -> str:
    values = [v for row in rows if (v := cost(row)) is not None]
    return f"{statistics.median(values):.2f}" if values else "—"


def _per_certificate(field_name: str) -> Callable[[Row], float | None]:
    def cost(row: Row) -> float | None:
        cores = getattr(row, field_name)
        if row.result is None or not row.result.rps or cores is None:
            return None
        return float(cores) * 1000 / row.result.rps

    return cost


def _client(row: Row) -> float | None:
    if row.result is None or not row.result.rps or not row.result.seconds:
        return None
    return row.result.generator_cpu * 1000 / row.result.answered


def table(rows: list[Row], wrk_rows: list[Row]) -> str:
    """Medians per side and concurrency; the main table's wrk row of REST issuance from a
    CSR beside them, when this run measured it."""
    runs: dict[tuple[str, int], list[Row]] = {}
    for row in rows:
        if row.result is not None and not row.errors:
            runs.setdefault((row.scenario, row.concurrency), []).append(row)
    for row in wrk_rows:
        if row.scenario == WRK_REST and row.result is not None and not row.errors:
            runs.setdefault((f"{WRK_REST} (wrk, above)", row.concurrency), []).append(row)
    lines = [
        "| scenario | c | HTTP requests per certificate | runs | median certificates/s "
        "| median p50 ms | median p99 ms "
        "| median CPU ms per certificate: service / PostgreSQL / client |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    order = {REST: 1, ACME: 2}
    for (name, concurrency), done in sorted(
        runs.items(), key=lambda kv: (kv[0][1], order.get(kv[0][0], 0))
    ):
        results = [row.result for row in done if row.result is not None]
        lines.append(
            f"| {name} | {concurrency} | {ACME_REQUESTS if name == ACME else 1} | "
            f"{len(results)} | {statistics.median(r.rps for r in results):,.1f} | "
            f"{statistics.median(r.p50_ms for r in results):.1f} | "
            f"{statistics.median(r.p99_ms for r in results):.1f} | "
            f"{_median(done, _per_certificate('service_cores'))} / "
            f"{_median(done, _per_certificate('database_cores'))} / {_median(done, _client)} |"
        )
    errors = sum(row.errors for row in rows)
    if errors:
        lines.append(f"\n{errors} unexpected answers: those runs are left out of the medians.")
    return "\n".join(lines)
