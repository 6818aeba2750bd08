"""No private key is stored in the clear: not in any row, not in a database dump."""

from __future__ import annotations

import base64
import shutil
import subprocess
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import MetaData, select

from tests.conftest import Customer, postgres_only


def issued_keys(issue: Any, customer: Customer) -> list[str]:
    """Issue one certificate of each key family; return their private keys' PEM."""
    return [
        issue(customer, key_type=key_type)["private_key_pem"]
        for key_type in ("ec-p256", "rsa-2048", "ed25519")
    ]


def der_of(pem: str) -> bytes:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def base64_body(pem: str) -> str:
    """The base64 lines of a PEM, joined: what a store without the armour would hold."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def every_value(engine: Any) -> list[tuple[str, str, Any]]:
    """(table, column, value) for every column of every row of every table."""
    metadata = MetaData()
    metadata.reflect(bind=engine)
    assert "certificate_keys" in metadata.tables and "certificates" in metadata.tables
    values = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                values += [(table.name, column, value) for column, value in row.items()]
    return values


def test_no_table_holds_a_private_key_in_the_clear(
    certs: Any, make_customer: Any, issue: Any, engine: Any
) -> None:
    customer: Customer = make_customer()
    pems = issued_keys(issue, customer)
    ders = [der_of(pem) for pem in pems]
    bodies = [base64_body(pem) for pem in pems]
    values = every_value(engine)
    sealed = [
        v for table, column, v in values if table == "certificate_keys" and column == "ciphertext"
    ]
    assert len(sealed) >= len(pems)  # the keys are there, sealed
    for table, column, value in values:
        where = f"{table}.{column}"
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            assert b"PRIVATE KEY" not in raw, where
            assert not any(der in raw for der in ders), where
            text = raw.decode("latin-1")
        else:
            text = str(value)
        assert "PRIVATE KEY" not in text, where
        assert not any(body[:64] in text for body in bodies), where


@postgres_only
def test_pg_dump_of_the_database_holds_no_private_key(
    certs: Any, make_customer: Any, issue: Any, engine: Any
) -> None:
    pg_dump = shutil.which("pg_dump")
    assert pg_dump, "pg_dump must be installed for this test"
    customer: Customer = make_customer()
    pems = issued_keys(issue, customer)
    url = engine.url
    command = [pg_dump, "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    command += ["-U", url.username or "postgres", url.database]
    dump = subprocess.run(command, capture_output=True, text=True, check=False)
    assert dump.returncode == 0, dump.stderr
    assert "COPY public.certificate_keys" in dump.stdout  # the dump did read the keys' table
    assert customer.id in dump.stdout
    assert "PRIVATE KEY" not in dump.stdout
    for pem in pems:
        assert base64_body(pem)[:64] not in dump.stdout
        # bytea is dumped as hex: the key's DER must not be in there either.
        assert der_of(pem).hex() not in dump.stdout
        assert base64.b64encode(der_of(pem)).decode()[:64] not in dump.stdout
