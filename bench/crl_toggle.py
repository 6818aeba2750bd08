"""One customer toggling a hold as fast as it can, beside other customers' fetches:
`python -m bench.crl_toggle [--revoked 100000] [--seconds 20] [--refresh 5]`.

Seeds N revoked certificates (the CRL's entries), starts both services, and measures other
customers' `GET /api/certificates/{id}` latency with wrk twice: quiet, then while one
customer flips `is_active` on its own certificate in a loop. A relying party fetches the
CRL every half second throughout, so without coalescing every toggle would be followed by
a full rebuild of the 100,000-entry CRL. The target: toggling p99 below 2x quiet p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from bench.load import LoadResult, Request, run_wrk
from bench.seed import Templates, copy_accounts, copy_certificates, vacuum_analyze
from bench.services import BenchDatabase, Services, default_server
from certificate_api.runtime import build_runtime
from certificate_api.settings import CertificateSettings
from schema.certificates import CrlRevision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revoked", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--refresh", type=float, default=5.0, help="CRL_REFRESH_SECONDS")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="processes per service")
    parser.add_argument("--server", default=default_server(), help="PostgreSQL server")
    args = parser.parse_args()
    database = BenchDatabase(args.server)
    database.create()
    try:
        with tempfile.TemporaryDirectory() as var:
            seed(database.url, Path(var), args.revoked)
            os.environ["CRL_REFRESH_SECONDS"] = str(args.refresh)
            services = Services(
                database.url, Path(var), Path(var) / "services.log", args.workers, args.workers
            )
            services.start()
            try:
                measure(services, args)
            finally:
                services.stop()
    finally:
        database.drop()


def seed(url: str, var: Path, count: int) -> None:
    """The CA, one real certificate to copy the shape of, and `count` revoked ones."""

    async def first_certificate() -> None:
        from certificate_api.certificates import issuance
        from certificate_api.certificates import service as certs

        settings = CertificateSettings(_env_file=None, database_url=url, var_dir=var)  # type: ignore[call-arg]
        runtime = await build_runtime(settings)
        order = issuance.prepare("seed.example", [], [], "ec-p256", 90, None, True, 90, 199)
        issued = issuance.sign(order, runtime.ca, settings.public_base_url)
        await certs.store_issued(
            runtime.db, runtime.keyring, owners[0], order, issued, None, "", timedelta(hours=1)
        )
        await runtime.close()

    owners = copy_accounts(url, max(count // 100, 1), "crl")
    asyncio.run(first_certificate())
    copy_certificates(url, Templates.load(url), owners, count, "crl", 10**12, 1)
    vacuum_analyze(url)
    from schema.db import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:  # copied in behind the service's back: the CRL changed
        conn.execute(update(CrlRevision).values(revision=CrlRevision.revision + 1))
    engine.dispose()


def customer(services: Services) -> tuple[dict[str, str], str]:
    """A new customer's auth header and the id of a certificate it was issued."""
    email, password = f"toggle-{uuid.uuid4().hex[:8]}@example.com", "s3cret-passw0rd"
    httpx.post(
        f"{services.account_url}/api/accounts",
        json={"email": email, "password": password, "name": "Bench"},
    ).raise_for_status()
    token = httpx.post(
        f"{services.account_url}/api/auth/token", json={"email": email, "password": password}
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    issued = httpx.post(
        f"{services.certificate_url}/api/certificates",
        json={"common_name": f"{uuid.uuid4().hex[:8]}.example.com"},
        headers=auth,
        timeout=60,
    )
    issued.raise_for_status()
    return auth, issued.json()["id"]


class Background(threading.Thread):
    """A loop run until stopped, counting its rounds."""

    def __init__(self, step: object) -> None:
        super().__init__(daemon=True)
        self.step = step
        self.rounds = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.step()  # type: ignore[operator]
            self.rounds += 1

    def stop(self) -> int:
        self.stopping.set()
        self.join()
        return self.rounds


def measure(services: Services, args: argparse.Namespace) -> None:
    base = services.certificate_url
    fetchers = [customer(services) for _ in range(4)]
    toggler_auth, toggled = customer(services)
    requests = [Request("GET", f"/api/certificates/{cid}", auth) for auth, cid in fetchers]
    crl_numbers: set[str] = set()
    relying_party = httpx.Client(base_url=base, timeout=120)

    def fetch_crl() -> None:
        crl_numbers.add(relying_party.get("/api/ca/crl").headers.get("ETag", ""))
        time.sleep(0.5)

    toggler = httpx.Client(base_url=base, headers=toggler_auth, timeout=120)
    state = [True]

    def toggle() -> None:
        state[0] = not state[0]
        toggler.patch(f"/api/certificates/{toggled}", json={"is_active": state[0]})

    fetch_crl()  # the first build of the big CRL is not part of either phase
    crl_numbers.clear()
    run_wrk(base, requests, args.concurrency, 3, 10**7)  # warm up
    poller = Background(fetch_crl)
    poller.start()
    quiet = run_wrk(base, requests, args.concurrency, args.seconds, 10**7)
    quiet_crls = len(crl_numbers)
    crl_numbers.clear()
    flipping = Background(toggle)
    flipping.start()
    busy = run_wrk(base, requests, args.concurrency, args.seconds, 10**7)
    toggles = flipping.stop()
    poller.stop()
    report(args, quiet, busy, toggles, quiet_crls, len(crl_numbers))


def report(
    args: argparse.Namespace,
    quiet: LoadResult,
    busy: LoadResult,
    toggles: int,
    quiet_crls: int,
    busy_crls: int,
) -> None:
    ratio = busy.p99_ms / quiet.p99_ms if quiet.p99_ms else float("inf")
    print(f"CRL entries {args.revoked:,}, CRL_REFRESH_SECONDS={args.refresh:g}, ", end="")
    print(f"{args.workers} worker(s) per service, wrk c={args.concurrency}, {args.seconds:g} s")
    for name, result, crls in (("quiet", quiet, quiet_crls), ("toggling", busy, busy_crls)):
        print(
            f"  {name:<9} fetch p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"{result.rps:7,.0f} req/s  non-200 {result.unexpected(frozenset({200}))}  "
            f"distinct CRLs served {crls}"
        )
    print(f"  toggles: {toggles} ({toggles / args.seconds:.0f}/s)")
    print(f"  toggling p99 / quiet p99 = {ratio:.2f} (target < 2)")


if __name__ == "__main__":
    main()
