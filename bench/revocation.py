"""CRL build time and size at scale: `python -m bench.revocation [--revoked 100000]`.

Seeds a throwaway PostgreSQL database with N revoked certificates, then times what a relying
party's `GET /api/ca/crl` costs: the first (building) request, a cached one, and a rebuild
after one more revocation. In-process, through the service's own functions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from sqlalchemy import update

from bench.load import Request, run_wrk
from bench.seed import Templates, copy_accounts, copy_certificates, vacuum_analyze
from bench.services import BenchDatabase, Services, default_server
from certificate_api.revocation.service import CrlCache, current_crl, revoked_entries
from certificate_api.runtime import build_runtime
from certificate_api.settings import CertificateSettings
from core import sessions
from core.issuance import issue_certificate
from core.orders import IssueRequest
from core.revocation import revoke_by_id
from schema.base import utcnow
from schema.certificates import Certificate, CrlRevision
from schema.tokens import TokenClaims


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revoked", type=int, default=100_000)
    parser.add_argument("--server", default=default_server(), help="PostgreSQL server")
    args = parser.parse_args()
    database = BenchDatabase(args.server)
    database.create()
    try:
        run(database.url, args.revoked)
    finally:
        database.drop()


def timed(work: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000, result


def run(url: str, count: int) -> None:
    asyncio.run(_run(url, count))


async def _run(url: str, count: int) -> None:
    with tempfile.TemporaryDirectory() as var:
        settings = CertificateSettings(_env_file=None, database_url=url, var_dir=Path(var))  # type: ignore[call-arg]
        runtime = await build_runtime(settings)
        validity = timedelta(hours=settings.crl_validity_hours)
        owners = copy_accounts(url, max(count // 100, 1), "crl")
        # One real certificate to borrow a PEM from: the seeding only needs the shape.
        seed = IssueRequest("seed.example", key_type="ec-p256", validity_days=90)
        await issue_certificate(runtime.issuer, TokenClaims(owners[0], "seed", 0), seed)
        templates = Templates.load(url)
        copy_certificates(url, templates, owners, count, "crl", held_every=10**12, revoked_every=1)
        vacuum_analyze(url)
        with runtime.sessions() as session:
            # The rows were copied in behind the service's back: say that the CRL changed.
            session.execute(update(CrlRevision).values(revision=CrlRevision.revision + 1))
            session.commit()

        cache = CrlCache()
        with runtime.sessions() as session:
            read_ms, entries = timed(
                lambda: revoked_entries(session, runtime.ca.id, utcnow(), validity)
            )
            session.rollback()
            build_ms, crl = timed(lambda: current_crl(session, runtime.ca, cache, validity))
            cached = [
                timed(lambda: current_crl(session, runtime.ca, cache, validity))[0]
                for _ in range(50)
            ]
            cold_cache = [
                timed(lambda: current_crl(session, runtime.ca, CrlCache(), validity))[0]
                for _ in range(5)
            ]
            victim = session.query(Certificate).filter(Certificate.revoked_at.is_(None)).first()
            assert victim is not None
            victim_pem = victim.certificate_pem
            tx = sessions.SessionTransaction(session)
            sessions.run(revoke_by_id(tx, victim.id, "keyCompromise", None))
            session.commit()
            rebuild_ms, rebuilt = timed(lambda: current_crl(session, runtime.ca, cache, validity))
        await runtime.close()
        ocsp_figures = measure_ocsp(url, Path(var), runtime.ca.certificate, victim_pem)

    parsed = x509.load_der_x509_crl(rebuilt.der)  # type: ignore[attr-defined]
    print(f"entries on the CRL:           {len(parsed):,} (read {len(entries):,} rows)")  # type: ignore[arg-type]
    print(f"CRL size:                     {len(crl.der) / 1e6:.2f} MB DER")  # type: ignore[attr-defined]
    print(f"read rows only:               {read_ms:,.0f} ms")
    print(f"first request (read + build): {build_ms:,.0f} ms")
    print(f"rebuild after one revocation: {rebuild_ms:,.0f} ms")
    print(f"cached, this process:         p50 {statistics.median(cached):.2f} ms")
    print(f"cached, fresh process cache:  p50 {statistics.median(cold_cache):.1f} ms (reads DER)")
    print("OCSP, one Uvicorn worker (wrk, 10 s per row):")
    for line in ocsp_figures:
        print(f"  {line}")


def measure_ocsp(
    url: str, var: Path, issuer: x509.Certificate, leaf_pem: str, seconds: float = 10
) -> list[str]:
    """OCSP responses per second from one worker, for a revoked serial among 100,000."""
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    request = Request("POST", "/api/ocsp", {"Content-Type": "application/ocsp-request"}, der)
    services = Services(url, var, var / "services.log", 1, 1)
    services.start()
    lines = []
    try:
        run_wrk(services.certificate_url, [request], 4, 2, 10**6)  # warm up
        for concurrency in (1, 16):
            result = run_wrk(services.certificate_url, [request], concurrency, seconds, 10**7)
            lines.append(
                f"c={concurrency:<3} {result.rps:7,.0f} responses/s  p50 {result.p50_ms:.1f} ms"
                f"  p99 {result.p99_ms:.1f} ms  non-200 {result.unexpected(frozenset({200}))}"
            )
    finally:
        services.stop()
    return lines


if __name__ == "__main__":
    main()
