"""Certificates signed with names the name parser refuses: found by what was signed (the
certificate's own subject and SAN) and by what was stored, revoked one transaction each."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import sessions as core_sessions
from core.errors import Conflict, NotFound
from core.revocation import revoke_by_id
from pki import names
from schema.base import utcnow
from schema.certificates import Certificate, status_of


class Malformed(NamedTuple):
    """One unrevoked certificate and the names of it that the parser refuses."""

    id: uuid.UUID
    serial_number: str
    account_id: uuid.UUID
    status: str
    refused: list[str]

    def json(self) -> dict[str, Any]:
        """As `ca-admin certificates malformed` prints it."""
        return {
            "id": str(self.id),
            "serial_number": self.serial_number,
            "account_id": str(self.account_id),
            "status": self.status,
            "refused_names": self.refused,
        }


def _signed_names(pem: str) -> list[str]:
    """The subject CNs and SAN DNS names and addresses as signed."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return []
    found = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return found
    found += san.get_values_for_type(x509.DNSName)
    found += [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    return found


def refused_names(row: Any) -> list[str]:
    """The names of a certificate row that `pki.names` does not take exactly as they are."""
    stored = [row.common_name, *(row.dns_names or []), *(row.ip_addresses or [])]
    every = dict.fromkeys([*stored, *_signed_names(row.certificate_pem)])
    return [name for name in every if not names.is_valid_name(str(name))]


def find(sessions: sessionmaker[Session], batch_size: int) -> Iterator[Malformed]:
    """Every unrevoked certificate with a refused name, walked by id in short transactions
    (a large table is never read in one)."""
    c = Certificate
    query = (
        select(
            c.id,
            c.serial_number,
            c.account_id,
            c.common_name,
            c.dns_names,
            c.ip_addresses,
            c.certificate_pem,
            c.revoked_at,
            c.not_after,
            c.is_active,
        )
        .where(c.revoked_at.is_(None))
        .order_by(c.id)
        .limit(batch_size)
    )
    after: uuid.UUID | None = None
    while True:
        with sessions() as session:
            page = session.execute(query if after is None else query.where(c.id > after)).all()
        if not page:
            return
        now = utcnow()
        for row in page:
            refused = refused_names(row)
            if refused:
                status = status_of(row.revoked_at, row.not_after, row.is_active, now)
                yield Malformed(row.id, row.serial_number, row.account_id, status, refused)
        after = page[-1].id


def revoke(sessions: sessionmaker[Session], certificate_id: uuid.UUID, reason: str) -> bool:
    """Revoke one certificate with its history and event (an operator's act); false if it
    was revoked meanwhile."""
    with sessions() as session:
        tx = core_sessions.SessionTransaction(session)
        try:
            core_sessions.run(revoke_by_id(tx, certificate_id, reason, None))
        except (Conflict, NotFound):  # revoked or pruned since it was found
            session.rollback()
            return False
        session.commit()
    return True
