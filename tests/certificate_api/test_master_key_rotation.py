"""Rotating the master key re-seals every secret at rest (certificate keys, CA keys, ACME
EAB keys), after which the old master key is no longer needed to open any of them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from certificate_api import keystore
from certificate_api.pki.sealing import Keyring, SealedKey, new_master_key, unseal
from schema.acme import AcmeEabKey
from schema.certificates import CertificateKey
from schema.db import make_sessionmaker
from tests.conftest import Customer


def test_rotation_reseals_certificate_and_eab_keys_so_the_old_key_can_go(
    certs: Any, engine: Any, make_customer: Any, issue: Any
) -> None:
    customer: Customer = make_customer()
    cert = issue(customer)
    eab = certs.post("/api/acme/eab", headers=customer.auth)
    assert eab.status_code == 201, eab.text
    old: Keyring = certs.app.state.runtime.keyring
    rotated = Keyring(new_master_key(), (old.current, *old.previous))
    sessions = make_sessionmaker(engine)

    with sessions() as session:
        assert keystore.stale_count(session, rotated) > 0
        done = sum(keystore.rotate(session, rotated, batch_size=50))
        assert done > 0 and keystore.stale_count(session, rotated) == 0

    only_new = Keyring(rotated.current)
    with sessions() as session:
        row = session.scalars(
            select(CertificateKey).where(CertificateKey.certificate_id == cert["id"])
        ).one()
        key_pem = unseal(
            only_new, SealedKey(row.key_id, row.nonce, row.ciphertext), row.certificate_id.bytes
        )
        assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        made = session.get(AcmeEabKey, eab.json()["key_id"])
        assert made is not None and made.sealed_with == rotated.current.key_id
        mac_key = unseal(
            only_new, SealedKey(made.sealed_with, made.nonce, made.ciphertext), made.key_id.encode()
        )
    assert len(mac_key) == 32
