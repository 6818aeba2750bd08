"""The delegated OCSP responder certificate: shared by every process, renewed when due."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from certificate_api.pki.keys import KeyType
from certificate_api.revocation.service import ResponderKeeper
from schema.certificates import CaRole, CertificateAuthority


def test_another_process_signs_with_the_stored_responder(certs: Any) -> None:
    runtime = certs.app.state.runtime
    with runtime.sessions() as session:
        first = runtime.responder.get(session, runtime.ca)
    # A second worker process starts with nothing in memory and loads the row.
    other = ResponderKeeper(runtime.keyring, KeyType.EC_P256, 30)
    with runtime.sessions() as session:
        loaded = other.get(session, runtime.ca)
    assert loaded.certificate == first.certificate
    assert loaded.private_key.public_key() == first.private_key.public_key()


def test_a_responder_is_renewed_when_little_of_its_life_is_left(certs: Any) -> None:
    runtime = certs.app.state.runtime
    with runtime.sessions() as session:
        current = runtime.responder.get(session, runtime.ca)
    # To a keeper whose responders live 300 days, a 30-day one is due at once.
    longer = ResponderKeeper(runtime.keyring, KeyType.EC_P256, 300)
    with runtime.sessions() as session:
        renewed = longer.get(session, runtime.ca)
        current_rows = session.scalar(
            select(func.count()).where(
                CertificateAuthority.role == CaRole.OCSP_RESPONDER.value,
                CertificateAuthority.is_current.is_(True),
            )
        )
    assert renewed.certificate != current.certificate
    assert renewed.certificate.not_valid_after_utc > current.certificate.not_valid_after_utc
    assert current_rows == 1
