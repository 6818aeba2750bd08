"""Secrets sealed at rest (private keys, ACME EAB keys): re-sealing everything under a new
master key."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from certificate_api.pki.sealing import Keyring, SealedKey, reseal
from schema.acme import AcmeEabKey
from schema.certificates import CertificateAuthority, CertificateKey


def stale_count(session: Session, keyring: Keyring) -> int:
    """How many sealed keys are not under the current master key."""
    current = keyring.current.key_id
    keys = session.scalar(
        select(func.count()).select_from(CertificateKey).where(CertificateKey.key_id != current)
    )
    cas = session.scalar(
        select(func.count())
        .select_from(CertificateAuthority)
        .where(CertificateAuthority.key_id.is_not(None), CertificateAuthority.key_id != current)
    )
    eabs = session.scalar(
        select(func.count()).select_from(AcmeEabKey).where(AcmeEabKey.sealed_with != current)
    )
    return int(keys or 0) + int(cas or 0) + int(eabs or 0)


def rotate(session: Session, keyring: Keyring, batch_size: int = 500) -> Iterator[int]:
    """Re-seal every key under the current master key, a committed batch at a time.

    Yields the number re-sealed after each batch. Safe to interrupt and run again: each row
    names the key that sealed it, so finished rows are simply skipped.
    """
    current = keyring.current.key_id
    cas = session.scalars(
        select(CertificateAuthority).where(
            CertificateAuthority.key_id.is_not(None), CertificateAuthority.key_id != current
        )
    ).all()
    for ca in cas:
        assert ca.key_id and ca.key_nonce and ca.key_ciphertext
        sealed = reseal(keyring, SealedKey(ca.key_id, ca.key_nonce, ca.key_ciphertext), ca.id.bytes)
        ca.key_id, ca.key_nonce, ca.key_ciphertext = sealed.key_id, sealed.nonce, sealed.ciphertext
    # ACME external account binding keys (HMAC keys, sealed to their key id): few, at once.
    eabs = session.scalars(
        select(AcmeEabKey).where(AcmeEabKey.sealed_with != current).with_for_update()
    ).all()
    for eab in eabs:
        sealed = reseal(
            keyring, SealedKey(eab.sealed_with, eab.nonce, eab.ciphertext), eab.key_id.encode()
        )
        eab.sealed_with, eab.nonce, eab.ciphertext = sealed.key_id, sealed.nonce, sealed.ciphertext
    session.commit()
    if cas or eabs:
        yield len(cas) + len(eabs)
    while True:
        rows = session.scalars(
            select(CertificateKey)
            .where(CertificateKey.key_id != current)
            .order_by(CertificateKey.certificate_id)
            .limit(batch_size)
            .with_for_update()
        ).all()
        if not rows:
            return
        for row in rows:
            sealed = reseal(
                keyring, SealedKey(row.key_id, row.nonce, row.ciphertext), row.certificate_id.bytes
            )
            row.key_id, row.nonce, row.ciphertext = sealed.key_id, sealed.nonce, sealed.ciphertext
        session.commit()
        yield len(rows)
