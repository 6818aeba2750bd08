"""After the name parser became strict: what the old one let through is withdrawn. The
migration marks live authorizations, grants and open ACME orders with refused names
`invalid`; `ca-admin certificates malformed` finds certificates signed with such names and,
with --revoke, revokes them (`privilegeWithdrawn`) with their events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from ca_admin.cli import main
from certificate_api.authority import service as authority
from certificate_api.pki.ca import signature_hash
from certificate_api.runtime import keyring_from
from schema.base import Base, utcnow
from schema.certificates import Certificate
from schema.db import make_engine, make_sessionmaker
from schema.events import Event
from tests.conftest import Customer

LINE_FEED_NAME = "victim.example\n.{zone}"


def _sign_as_the_old_code_did(settings: Any, engine: Any, names: list[str]) -> x509.Certificate:
    """A leaf with these names as they are, signed by the current intermediate (what the old
    parser let through to the signer)."""
    with make_sessionmaker(engine)() as session:
        ca = authority.load(session, keyring_from(settings))
    assert ca is not None
    now = utcnow()
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    )
    key_ = ca.issuer.private_key
    return builder.sign(key_, signature_hash(key_))


def _store_like_the_old_code(engine: Any, model_id: str, cert: x509.Certificate) -> uuid.UUID:
    """A certificate row as the old issuance wrote it, copied from a real one of the account."""
    from cryptography.hazmat.primitives import serialization

    with make_sessionmaker(engine)() as session:
        model = session.get(Certificate, uuid.UUID(model_id))
        assert model is not None
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = sans.get_values_for_type(x509.DNSName)
        row = Certificate(
            id=uuid.uuid4(),
            account_id=model.account_id,
            issuer_id=model.issuer_id,
            serial_number=format(cert.serial_number, "x"),
            common_name=dns_names[0],
            dns_names=dns_names,
            ip_addresses=[],
            key_type=model.key_type,
            is_active=True,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(row)
        session.commit()
        return row.id


def _revoked_events(engine: Any, certificate_id: uuid.UUID) -> list[dict[str, Any]]:
    with make_sessionmaker(engine)() as session:
        query = select(Event.payload).where(
            Event.type == "certificate.revoked", Event.subject_id == certificate_id
        )
        return [dict(payload.get("data", payload)) for payload in session.scalars(query)]


def test_malformed_lists_then_revokes_a_certificate_signed_with_a_line_feed_name(
    make_customer: Callable[..., Customer],
    grant: Callable[..., Any],
    issue_as: Callable[..., Any],
    names_app: Any,
    settings: Any,
    engine: Any,
    database_url: str,
    var_dir: Path,
) -> None:
    customer = make_customer()
    zone = f"zone-{uuid.uuid4().hex[:8]}.test"
    grant(customer, zone, include_subdomains=True)
    good = issue_as(customer, f"www.{zone}")
    assert good.status_code == 201, good.text
    bad_names = [LINE_FEED_NAME.format(zone=zone), f"ok.{zone}"]
    signed = _sign_as_the_old_code_did(settings, engine, bad_names)
    bad_id = _store_like_the_old_code(engine, good.json()["id"], signed)

    env = {"DATABASE_URL": database_url, "VAR_DIR": str(var_dir)}
    listed = CliRunner().invoke(main, ["certificates", "malformed"], env=env)
    assert listed.exit_code == 0, listed.output
    found = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    mine = [f for f in found if f["account_id"] == customer.id]
    assert [f["id"] for f in mine] == [str(bad_id)]  # the good certificate is not listed
    assert mine[0]["refused_names"] == [bad_names[0]]
    assert mine[0]["status"] == "active"
    assert _revoked_events(engine, bad_id) == []  # listing changes nothing

    revoked = CliRunner().invoke(main, ["certificates", "malformed", "--revoke"], env=env)
    assert revoked.exit_code == 0, revoked.output
    got = names_app.get(f"/api/certificates/{bad_id}", headers=customer.auth).json()
    assert got["status"] == "revoked"
    assert got["revocation_reason"] == "privilegeWithdrawn"
    [event] = _revoked_events(engine, bad_id)
    assert event["reason"] == "privilegeWithdrawn"
    fine = names_app.get(f"/api/certificates/{good.json()['id']}", headers=customer.auth).json()
    assert fine["status"] == "active"

    again = CliRunner().invoke(main, ["certificates", "malformed"], env=env)
    listed_again = [json.loads(x) for x in again.stdout.splitlines() if x.startswith("{")]
    assert str(bad_id) not in {f["id"] for f in listed_again}  # revoked: no longer listed


def _insert(conn: Any, table_name: str, /, **values: Any) -> None:
    """One row with just these columns, typed as the models type them (no model defaults:
    the table is at an older revision)."""
    table = Base.metadata.tables[table_name]
    columns = [sa.column(key, table.c[key].type) for key in values]
    conn.execute(sa.insert(sa.table(table_name, *columns)).values(**values))


def _statuses(conn: Any, table: str, key: str = "id") -> dict[Any, str]:
    columns = Base.metadata.tables[table].c
    query = sa.select(sa.table(table, sa.column(key, columns[key].type), sa.column("status")))
    return {row[0]: row[1] for row in conn.execute(query)}


def test_the_migration_withdraws_live_names_the_parser_refuses(databases: Any) -> None:
    from schema.migrate import upgrade

    url = databases.direct(databases.create(migrate=False))
    upgrade(url, "a2_endpoint_keys")  # the revision before the clean-up
    engine = make_engine(url)
    account, acme_account = uuid.uuid4(), uuid.uuid4()
    now = utcnow()
    later = now + timedelta(days=30)
    rows = {
        "lf-valid": ("www.example\n.attacker.test", "valid"),
        "trailing-lf-pending": ("www.attacker.test\n", "pending"),
        "space-valid": ("www.attacker .test", "valid"),
        "trailing-dot-valid": ("www.attacker.test.", "valid"),
        "good-valid": ("www.attacker.test", "valid"),
        "idn-valid": ("xn--fa-hia.test", "valid"),
        "ip-valid": ("2001:db8::1", "valid"),
        "ipv4-pending": ("192.0.2.7", "pending"),
        "lf-expired": ("old.example\n.attacker.test", "expired"),
    }
    ids = {key: uuid.uuid4() for key in rows}
    orders = {
        "ok-pending": (uuid.uuid4(), "pending", "ok.attacker.test"),
        "wildcard-ready": (uuid.uuid4(), "ready", "*.attacker.test"),
        "lf-ready": (uuid.uuid4(), "ready", "www.attacker.test\n"),
        "lf-valid": (uuid.uuid4(), "valid", "done.attacker\n.test"),
    }
    authz_ok, authz_bad = uuid.uuid4(), uuid.uuid4()
    with engine.begin() as conn:
        _insert(
            conn,
            "accounts",
            id=account,
            email=f"{account}@example.com",
            email_key=f"{account}@example.com",
            name="n",
            password_hash="x",
            role="customer",
            created_at=now,
            updated_at=now,
        )
        for key, (name, status) in rows.items():
            _insert(
                conn,
                "domain_authorizations",
                id=ids[key],
                account_id=account,
                name=name,
                include_subdomains=False,
                status=status,
                token="t",
                expires_at=later,
                created_at=now,
                validation_attempts=0,
            )
        _insert(
            conn,
            "acme_eab_keys",
            key_id="k",
            account_id=account,
            sealed_with="s",
            nonce=b"n",
            ciphertext=b"c",
            created_at=now,
            expires_at=later,
        )
        _insert(
            conn,
            "acme_accounts",
            id=acme_account,
            account_id=account,
            thumbprint=uuid.uuid4().hex,
            jwk={},
            status="valid",
            contact=[],
            eab_key_id="k",
            created_at=now,
            updated_at=now,
        )
        for order_id, status, value in orders.values():
            _insert(
                conn,
                "acme_orders",
                id=order_id,
                acme_account_id=acme_account,
                status=status,
                identifiers=[{"type": "dns", "value": value}],
                expires_at=later,
                created_at=now,
                updated_at=now,
            )
        for authz, order_key in ((authz_ok, "ok-pending"), (authz_bad, "lf-ready")):
            order_id, _status, value = orders[order_key]
            _insert(
                conn,
                "acme_authorizations",
                id=authz,
                order_id=order_id,
                identifier_type="dns",
                value=value,
                wildcard=False,
                status="pending",
                expires_at=later,
                created_at=now,
            )
            _insert(
                conn,
                "acme_challenges",
                id=uuid.uuid4(),
                authorization_id=authz,
                type="http-01",
                token="t",
                status="processing",
                attempts=0,
            )

    upgrade(url)

    with engine.connect() as conn:
        domains = _statuses(conn, "domain_authorizations")
        errors = dict(conn.execute(sa.text("SELECT name, error FROM domain_authorizations")).all())
        order_statuses = _statuses(conn, "acme_orders")
        order_table = Base.metadata.tables["acme_orders"]
        order_errors = dict(conn.execute(sa.select(order_table.c.id, order_table.c.error)).all())
        authz_statuses = _statuses(conn, "acme_authorizations")
        challenge_statuses = _statuses(conn, "acme_challenges", "authorization_id")
    engine.dispose()
    assert {key: domains[ids[key]] for key in rows} == {
        "lf-valid": "invalid",
        "trailing-lf-pending": "invalid",
        "space-valid": "invalid",
        "trailing-dot-valid": "invalid",
        "good-valid": "valid",
        "idn-valid": "valid",
        "ip-valid": "valid",
        "ipv4-pending": "pending",
        "lf-expired": "expired",  # not live: left as it was
    }
    assert errors["www.example\n.attacker.test"] == "name no longer accepted"
    assert errors["www.attacker.test"] is None
    assert {key: order_statuses[o[0]] for key, o in orders.items()} == {
        "ok-pending": "pending",
        "wildcard-ready": "ready",
        "lf-ready": "invalid",
        "lf-valid": "valid",  # finalized already: its certificate is the operator's to judge
    }
    assert order_errors[orders["lf-ready"][0]]["detail"] == "name no longer accepted"
    assert order_errors[orders["ok-pending"][0]] is None
    assert authz_statuses == {authz_ok: "pending", authz_bad: "invalid"}
    assert challenge_statuses == {authz_ok: "processing", authz_bad: "invalid"}
