"""Rotating the master key re-seals every secret at rest (certificate keys, CA keys, ACME
EAB keys), after which the old master key is no longer needed to open any of them. On a
database and var directory of its own: a rotation changes every sealed row."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from account_api import create_app as create_account_app
from certificate_api import keystore
from certificate_api.main import create_app
from certificate_api.pki.sealing import Keyring, SealedKey, new_master_key, unseal
from schema.acme import AcmeEabKey
from schema.certificates import CertificateKey
from schema.db import make_engine, make_sessionmaker
from tests.conftest import Databases, account_settings, certificate_settings


def test_rotation_reseals_certificate_and_eab_keys_so_the_old_key_can_go(
    databases: Databases, tmp_path: Path
) -> None:
    url, var_dir = databases.create(), tmp_path / "var"
    accounts = create_account_app(account_settings(url, var_dir)).test_client()
    login = {"email": "rotate@example.com", "password": "s3cret-passw0rd"}
    assert accounts.post("/api/accounts", json={**login, "name": "R"}).status_code == 201
    token = accounts.post("/api/auth/token", json=login).json["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(certificate_settings(url, var_dir))) as certs:
        cert = certs.post("/api/certificates", json={"common_name": "r.example.com"}, headers=auth)
        eab = certs.post("/api/acme/eab", headers=auth)
        assert (cert.status_code, eab.status_code) == (201, 201), (cert.text, eab.text)
        old: Keyring = certs.app.state.runtime.keyring  # type: ignore[attr-defined]
    rotated = Keyring(new_master_key(), (old.current, *old.previous))
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as session:
            assert keystore.stale_count(session, rotated) >= 3  # CA keys, leaf key, EAB key
            assert sum(keystore.rotate(session, rotated, batch_size=50)) >= 3
            assert keystore.stale_count(session, rotated) == 0

        only_new = Keyring(rotated.current)
        with sessions() as session:
            row = session.scalars(
                select(CertificateKey).where(
                    CertificateKey.certificate_id == uuid.UUID(cert.json()["id"])
                )
            ).one()
            sealed = SealedKey(row.key_id, row.nonce, row.ciphertext)
            key_pem = unseal(only_new, sealed, row.certificate_id.bytes)
            made: Any = session.get(AcmeEabKey, eab.json()["key_id"])
            mac_key = unseal(
                only_new,
                SealedKey(made.sealed_with, made.nonce, made.ciphertext),
                made.key_id.encode(),
            )
    finally:
        engine.dispose()
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(mac_key) == 32
