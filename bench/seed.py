"""Bulk rows with COPY: accounts and certificates, fast, reusing a few real certificate PEMs.

Real certificates issued through the API are the templates; each seeded row gets its own
id, serial, names and dates (the PEM bytes are shared, which no query here looks into).
"""

from __future__ import annotations

import contextlib
import secrets
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from sqlalchemy.engine import make_url

CHUNK = 20_000
NULL = "\\N"  # COPY text format
CERT_COLUMNS = (
    "id, account_id, issuer_id, serial_number, common_name, dns_names, ip_addresses, key_type, "
    "is_active, held_at, revoked_at, revocation_reason, not_before, not_after, "
    "certificate_pem, created_at, updated_at"
)


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


@dataclass(frozen=True)
class Templates:
    """What every seeded certificate borrows: the issuing CA and some real PEMs."""

    issuer_id: uuid.UUID
    pems: tuple[str, ...]

    @classmethod
    def load(cls, url: str) -> Templates:
        """Take the certificates already issued through the API as templates."""
        with psycopg.connect(libpq_url(url)) as conn:
            rows = conn.execute("SELECT issuer_id, certificate_pem FROM certificates").fetchall()
        if not rows:
            raise RuntimeError("issue some certificates through the API before seeding")
        return cls(rows[0][0], tuple(_copy_text(pem) for _, pem in rows))


def _progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(time.perf_counter() - started, 1e-9)
    print(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f} rows/s)", end="", file=sys.stderr)
    if done >= total:
        print(file=sys.stderr)


def _bulk_session(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET synchronous_commit = off")
    try:
        # Skip per-row foreign-key triggers: the rows are consistent by construction.
        conn.execute("SET session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        conn.execute("SET synchronous_commit = off")


def copy_accounts(url: str, count: int, prefix: str) -> list[uuid.UUID]:
    """`count` customer accounts that never log in; returns their ids."""
    ids = [uuid.uuid4() for _ in range(count)]
    now = _stamp(datetime.now(UTC))
    # A real argon2id hash of a password nobody knows: seeded accounts never log in.
    password_hash = PasswordHasher().hash(secrets.token_urlsafe(16))
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        _bulk_session(conn)
        with conn.cursor().copy(
            "COPY accounts (id, email, email_key, name, password_hash, role, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for start in range(0, count, CHUNK):
                lines = []
                for n in range(start, min(start + CHUNK, count)):
                    email = f"{prefix}-{n}@seed.example.com"
                    lines.append(
                        f"{ids[n]}\t{email}\t{email}\tSeeded {n}\t{password_hash}\tcustomer"
                        f"\t{now}\t{now}\n"
                    )
                copy.write("".join(lines))
                _progress("accounts", min(start + CHUNK, count), count, started)
    return ids


def copy_certificates(
    url: str,
    templates: Templates,
    owners: Sequence[uuid.UUID],
    count: int,
    label: str,
    held_every: int = 10,
    revoked_every: int = 50,
    csr_every: int = 10,
) -> list[uuid.UUID]:
    """`count` certificates dealt round-robin to `owners`; every n-th held or revoked.

    Created over the last few hours, valid for 90 days. Like issued ones, each has a sealed
    private key row except every `csr_every`-th (issued from a CSR); the sealed bytes are
    random, never opened here. Returns the ids.
    """
    ids = [uuid.uuid4() for _ in range(count)]
    now = datetime.now(UTC)
    pems, issuer = templates.pems, templates.issuer_id
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        _bulk_session(conn)
        with conn.cursor().copy(f"COPY certificates ({CERT_COLUMNS}) FROM STDIN") as copy:
            for start in range(0, count, CHUNK):
                lines = []
                for n in range(start, min(start + CHUNK, count)):
                    ident = ids[n]
                    created = now - timedelta(microseconds=(count - n) * 9_973)
                    stamp = _stamp(created)
                    name = f"{label}-{n}.seed.example"
                    held = n % held_every == held_every - 1
                    revoked = n % revoked_every == revoked_every - 1
                    fields = (
                        str(ident),
                        str(owners[n % len(owners)]),
                        str(issuer),
                        ident.hex.lstrip("0"),
                        name,
                        f'["{name}"]',
                        "[]",
                        "ec-p256",
                        "f" if held else "t",
                        stamp if held else NULL,
                        stamp if revoked else NULL,
                        "superseded" if revoked else NULL,
                        _stamp(created - timedelta(minutes=5)),
                        _stamp(created + timedelta(days=90)),
                        pems[n % len(pems)],
                        stamp,
                        stamp,
                    )
                    lines.append("\t".join(fields) + "\n")
                copy.write("".join(lines))
                _progress(f"certificates ({label})", min(start + CHUNK, count), count, started)
        sealed = "\\\\x" + secrets.token_bytes(257).hex()  # sealed P-256 PKCS#8 PEM size
        nonce, stamp = "\\\\x" + secrets.token_bytes(12).hex(), _stamp(now)
        with conn.cursor().copy(
            "COPY certificate_keys (certificate_id, key_id, nonce, ciphertext, created_at) "
            "FROM STDIN"
        ) as copy:
            for start in range(0, count, CHUNK):
                copy.write(
                    "".join(
                        f"{ids[n]}\tmk-seeded\t{nonce}\t{sealed}\t{stamp}\n"
                        for n in range(start, min(start + CHUNK, count))
                        if n % csr_every
                    )
                )
    return ids


def vacuum_analyze(url: str) -> None:
    """Fresh planner statistics and visibility map, as autovacuum would leave them."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for table in ("certificates", "certificate_keys", "accounts"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        # Write the load's dirty pages now, not during the next measurement.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")


def count_rows(url: str) -> tuple[int, int]:
    """(certificates, accounts)."""
    with psycopg.connect(libpq_url(url)) as conn:
        certs = conn.execute("SELECT count(*) FROM certificates").fetchone()
        accounts = conn.execute("SELECT count(*) FROM accounts").fetchone()
    assert certs is not None and accounts is not None
    return int(certs[0]), int(accounts[0])


def explain_service_queries(
    url: str, account_id: uuid.UUID, certificate_id: uuid.UUID
) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the service runs to fetch one and list active.

    The statements are the service's own (`core.queries` and
    `core.certificates.list_statement`), compiled as the service compiles them, so the plans follow
    the service code as it changes.
    """
    from certificate_api.database import PostgresDatabase
    from core import queries
    from core.certificates import list_statement

    compiler = PostgresDatabase(url, size=1, timeout=1)  # compiles only: its pool never opens
    statements: dict[str, tuple[Any, dict[str, Any]]] = {
        "fetch by id": (
            queries.VISIBLE.statement,
            {"certificate_id": certificate_id, "account_id": account_id},
        ),
        "list active (limit 100)": (
            list_statement(by_owner=True, active=True, status=None, after=False).statement,
            {"owner": account_id, "now": datetime.now(UTC), "limit": 101},
        ),
    }
    plans: dict[str, str] = {}
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for name, (statement, params) in statements.items():
            prepared = compiler.prepared(statement)
            rows = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + prepared.sql, prepared.params(params)
            ).fetchall()
            plans[name] = "\n".join(str(row[0]) for row in rows)
    return plans
