"""GET /api/certificates?expires_before=: with the other filters and the cursor, and read
through an index (the plans PostgreSQL chooses, checked with EXPLAIN)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.dialects import postgresql

from core.certificates import list_statement
from schema.base import rfc3339, utcnow
from schema.db import normalize_url
from tests.certificate_api.conftest import error_locs
from tests.conftest import Customer, Databases, postgres_only


def listed(certs: Any, customer: Customer, **query: Any) -> tuple[list[str], str | None]:
    response = certs.get("/api/certificates", params=query, headers=customer.auth)
    assert response.status_code == 200, response.text
    body = response.json()
    return [item["id"] for item in body["items"]], body["next_cursor"]


def test_expires_before_with_the_other_filters_and_the_cursor(
    certs: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    by_days = {days: issue(customer, validity_days=days)["id"] for days in (1, 2, 3, 10, 30)}
    held = issue(customer, validity_days=2, is_active=False)["id"]
    cutoff = utcnow() + timedelta(days=5)
    soon = [held, by_days[3], by_days[2], by_days[1]]  # newest first

    assert listed(certs, customer, expires_before=rfc3339(cutoff))[0] == soon
    # The same instant with another offset.
    shifted = (cutoff + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    assert listed(certs, customer, expires_before=shifted)[0] == soon
    assert listed(certs, customer, expires_before=rfc3339(cutoff), active="true")[0] == soon[1:]
    assert listed(certs, customer, expires_before=rfc3339(cutoff), status="inactive")[0] == [held]
    assert listed(certs, customer, expires_before=rfc3339(utcnow()))[0] == []

    pages, cursor = [], None
    while True:
        query = {"expires_before": rfc3339(cutoff), "limit": 3}
        got, cursor = listed(certs, customer, **query, **({"cursor": cursor} if cursor else {}))
        pages.append(got)
        if cursor is None:
            break
    assert pages == [soon[:3], soon[3:]]


def test_expires_before_must_be_an_rfc3339_time_with_an_offset(
    certs: Any, make_customer: Any
) -> None:
    customer: Customer = make_customer()
    for bad in ("2026-11-30T00:00:00", "tomorrow", "2026-13-01T00:00:00Z"):
        response = certs.get(
            "/api/certificates", params={"expires_before": bad}, headers=customer.auth
        )
        assert error_locs(response) == [["query", "expires_before"]], bad


def _seeded(databases: Databases) -> tuple[Engine, uuid.UUID]:
    """A database with 4,000 certificates of one account (and 4,000 of others), few ending
    soon, analyzed: the shape where an index on notAfter pays."""
    engine = create_engine(normalize_url(databases.create()))
    account = uuid.uuid4()
    with engine.begin() as conn:
        ca = uuid.uuid4()
        conn.execute(
            text(
                "INSERT INTO certificate_authorities (id, role, subject, certificate_pem,"
                " not_after, is_current, created_at) VALUES (:id, 'intermediate', 'CN=x', 'x',"
                " now() + interval '1 year', true, now())"
            ),
            {"id": ca},
        )
        for owner in (account, uuid.uuid4()):
            conn.execute(
                text(
                    "INSERT INTO accounts (id, email, email_key, name, password_hash, role,"
                    " created_at, updated_at) VALUES (:id, :e, :e, 'n', 'x', 'customer',"
                    " now(), now())"
                ),
                {"id": owner, "e": f"{owner}@example.com"},
            )
            conn.execute(
                text(
                    "INSERT INTO certificates (id, account_id, issuer_id, serial_number,"
                    " common_name, dns_names, ip_addresses, key_type, is_active, not_before,"
                    " not_after, certificate_pem, created_at, updated_at)"
                    " SELECT gen_random_uuid(), :owner, :ca, md5(random()::text), 'a.example',"
                    " '[]', '[]', 'ec-p256', true, now(),"
                    " now() + (CASE WHEN i % 1000 = 0 THEN 1 ELSE 90 END) * interval '1 day',"
                    " 'x', now() - i * interval '1 second', now()"
                    " FROM generate_series(1, 4000) AS i"
                ),
                {"owner": owner, "ca": ca},
            )
        conn.execute(text("ANALYZE certificates"))
    return engine, account


def _plan(engine: Engine, statement: Any, **params: Any) -> str:
    compiled = statement.compile(dialect=postgresql.dialect())
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "EXPLAIN " + compiled.string, compiled.construct_params(params)
        ).all()
    return "\n".join(row[0] for row in rows)


@postgres_only
def test_expires_before_reads_an_index_on_not_after(databases: Databases) -> None:
    engine, account = _seeded(databases)
    try:
        cutoff = utcnow() + timedelta(days=7)
        common = {"now": utcnow(), "limit": 101, "expires_before": cutoff}
        own_list = list_statement(True, None, None, False, True).statement
        own = _plan(engine, own_list, owner=account, **common)
        assert "ix_certificates_not_after" in own, own
        admin = _plan(engine, list_statement(False, None, None, False, True).statement, **common)
        assert "ix_certificates_not_after" in admin, admin
    finally:
        engine.dispose()


@postgres_only
def test_the_expiry_notice_scan_reads_its_partial_index(databases: Databases) -> None:
    from sqlalchemy import select

    from schema.certificates import EXPIRY_DUE, Certificate

    engine, _account = _seeded(databases)
    try:
        now = utcnow()
        due = (
            select(Certificate.id)
            .where(
                text(EXPIRY_DUE),
                Certificate.not_after > now,
                Certificate.not_after <= now + timedelta(days=14),
            )
            .order_by(Certificate.not_after)
            .limit(500)
        )
        plan = _plan(engine, due)
        assert "ix_certificates_expiry_due_not_after" in plan, plan
    finally:
        engine.dispose()
