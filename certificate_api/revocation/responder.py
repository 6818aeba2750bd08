"""The delegated OCSP responders: one per intermediate, loaded from the database, renewed
before they end."""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from certificate_api.authority.service import IssuingCa, unseal_key
from certificate_api.pki import revocation as pki
from certificate_api.pki.ca import Issuer, load_signer, serial_hex
from certificate_api.pki.keys import KeyType, private_key_to_pem
from certificate_api.pki.sealing import Keyring, seal
from schema.base import utcnow
from schema.certificates import CaRole, CertificateAuthority

log = logging.getLogger(__name__)


class ResponderKeeper:
    """The delegated OCSP signing certificate: loaded from the database, renewed before it ends.

    It is renewed once less than a third of its life is left, so relying parties that cache
    it never hold an expired one; a renewal by any process is picked up by all of them.
    Each intermediate has its own responder: a relying party checks that the responder was
    issued by the leaf's own issuer.
    """

    def __init__(
        self,
        keyring: Keyring,
        key_type: KeyType,
        days: int,
        answers_valid_for: timedelta = timedelta(hours=1),
    ) -> None:
        self.keyring = keyring
        self.key_type = key_type
        self.lifetime = timedelta(days=days)
        self.answers_valid_for = answers_valid_for  # nextUpdate - thisUpdate of each answer
        self.responders: dict[uuid.UUID, Issuer] = {}
        self.lock = threading.Lock()

    def ready(self, ca: IssuingCa) -> Issuer | None:
        """The responder this process holds for `ca`, unless it has none yet or it is due."""
        current = self.responders.get(ca.id)
        if current is not None and not self._due(current, ca):
            return current
        return None

    def get(self, session: Session, ca: IssuingCa) -> Issuer:
        """A responder valid for well beyond now."""
        current = self.ready(ca)
        if current is not None:
            return current
        with self.lock:
            current = self.responders.get(ca.id)
            if current is None or self._due(current, ca):
                self.responders[ca.id] = current = self._load_or_renew(session, ca)
        return current

    def _due(self, responder: Issuer, ca: IssuingCa) -> bool:
        """Less than a third of its life left, unless it already ends with its issuer (a new
        one could not live longer, so renewing would only repeat itself)."""
        not_after = responder.certificate.not_valid_after_utc
        if not_after >= ca.certificate.not_valid_after_utc:
            return False
        return not_after - utcnow() < self.lifetime / 3

    def _load_or_renew(self, session: Session, ca: IssuingCa) -> Issuer:
        row = session.scalars(
            select(CertificateAuthority).where(
                CertificateAuthority.role == CaRole.OCSP_RESPONDER.value,
                CertificateAuthority.is_current.is_(True),
                CertificateAuthority.parent_id == ca.id,
            )
        ).first()
        if row is not None:
            loaded = load_signer(row.certificate_pem.encode(), unseal_key(row, self.keyring))
            if not self._due(loaded, ca):
                session.rollback()
                return loaded
        responder = pki.build_responder(ca.issuer, self.key_type, utcnow(), self.lifetime.days)
        session.execute(
            update(CertificateAuthority)
            .where(
                CertificateAuthority.role == CaRole.OCSP_RESPONDER.value,
                CertificateAuthority.parent_id == ca.id,
            )
            .values(is_current=False)
        )
        new_row = CertificateAuthority(
            id=uuid.uuid4(),
            role=CaRole.OCSP_RESPONDER.value,
            parent_id=ca.id,
            subject=responder.certificate.subject.rfc4514_string(),
            certificate_pem=responder.certificate.public_bytes(serialization.Encoding.PEM).decode(),
            not_after=responder.certificate.not_valid_after_utc,
            serial_number=serial_hex(responder.certificate),
            is_current=True,
        )
        sealed = seal(self.keyring, private_key_to_pem(responder.private_key), new_row.id.bytes)
        new_row.key_id, new_row.key_nonce, new_row.key_ciphertext = (
            sealed.key_id,
            sealed.nonce,
            sealed.ciphertext,
        )
        session.add(new_row)
        try:
            session.commit()
        except (IntegrityError, OperationalError):
            session.rollback()  # another process renewed at the same moment: use theirs
            return self._load_or_renew(session, ca)
        log.info(
            "issued OCSP responder certificate",
            extra={"not_after": responder.certificate.not_valid_after_utc.isoformat()},
        )
        return responder


__all__ = ["ResponderKeeper"]
