"""The root's CRL: it lists revoked intermediates, so relying parties can stop trusting one.

The root signs rarely (an intermediate revoked or rotated, or the CRL nearing its next
update), and its key may be kept offline: so the root CRL is built by the operators'
commands and stored, and the service only serves the stored one. When the root's key is
sealed in the database (the default), the service also builds it itself when none is stored
or the stored one is past half its life.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certificate_api.authority.service import unseal_key
from certificate_api.pki import revocation as pki
from certificate_api.pki.ca import Issuer, load_issuer
from certificate_api.pki.sealing import Keyring
from certificate_api.revocation.service import Crl
from schema.base import utcnow
from schema.certificates import CaRole, CertificateAuthority, CrlState


def root_entries(session: Session, root_id: uuid.UUID) -> list[pki.Revoked]:
    """Every revoked intermediate of the root. Kept after they expire: there are few."""
    rows = session.execute(
        select(
            CertificateAuthority.serial_number,
            CertificateAuthority.revoked_at,
            CertificateAuthority.revocation_reason,
        )
        .where(
            CertificateAuthority.parent_id == root_id,
            CertificateAuthority.role == CaRole.INTERMEDIATE.value,
            CertificateAuthority.revoked_at.is_not(None),
            CertificateAuthority.serial_number.is_not(None),
        )
        .order_by(CertificateAuthority.serial_number)
    ).all()
    return [
        pki.Revoked(int(serial, 16), revoked_at, reason or "unspecified")
        for serial, revoked_at, reason in rows
        if serial is not None and revoked_at is not None  # as the query says; for the types
    ]


def publish_root_crl(
    session: Session, root_id: uuid.UUID, root: Issuer, validity: timedelta
) -> Crl:
    """Sign and store the next root CRL in the session; the caller commits (with the
    revocation it publishes, when there is one)."""
    state = session.get(CrlState, root_id, with_for_update=True)
    if state is None:
        state = CrlState(issuer_id=root_id, crl_number=0, entries=0)
        session.add(state)
    now = utcnow().replace(microsecond=0)
    entries = root_entries(session, root_id)
    number = state.crl_number + 1
    state.der = pki.build_crl(root, entries, number, now, now + validity)
    state.crl_number, state.entries = number, len(entries)
    state.this_update, state.next_update, state.built_at = now, now + validity, utcnow()
    return Crl(number, state.der, now, now + validity)


def stored_root_crl(session: Session, root_id: uuid.UUID) -> Crl | None:
    """The root CRL last published, if any."""
    state = session.get(CrlState, root_id)
    session.rollback()
    if state is None or state.der is None or state.this_update is None:
        return None
    assert state.next_update is not None
    return Crl(state.crl_number, state.der, state.this_update, state.next_update)


def _fresh(crl: Crl | None, now: datetime) -> bool:
    return crl is not None and now < crl.this_update + (crl.next_update - crl.this_update) / 2


def root_crl(
    session: Session, keyring: Keyring, root_id: uuid.UUID, validity: timedelta
) -> Crl | None:
    """The root CRL to serve: the stored one, re-signed first if it is missing or past half its
    life and the root's key is in the database. None when there is none and the key is
    offline (an operator runs `ca-admin sign-root-crl --root-key FILE`)."""
    stored = stored_root_crl(session, root_id)
    if _fresh(stored, utcnow()):
        return stored
    row = session.get(CertificateAuthority, root_id)
    if row is None or row.key_ciphertext is None:
        session.rollback()
        return stored
    root = load_issuer(row.certificate_pem.encode(), unseal_key(row, keyring))
    again = stored_root_crl(session, root_id)  # another process may have just signed one
    if _fresh(again, utcnow()):
        return again
    crl = publish_root_crl(session, root_id, root, validity)
    try:
        session.commit()
    except IntegrityError:  # another process signed the very first one at the same moment
        session.rollback()
        return stored_root_crl(session, root_id)
    return crl


__all__ = ["publish_root_crl", "root_crl", "root_entries", "stored_root_crl"]
