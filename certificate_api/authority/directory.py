"""Every issuing CA a process answers for: the current one, and older ones that have leaves.

After `ca-admin rotate-intermediate` (or `init-ca --force`, `import-ca`) new leaves are signed
by the new intermediate, while the leaves of the older ones keep their CRL and OCSP. Each
process learns of a rotation by re-reading the CA rows: every `CA_REFRESH_SECONDS` in the
background, and at once when a request names an issuer it does not know yet.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from certificate_api.authority.service import IssuingCa, issuing_ca
from certificate_api.pki.sealing import Keyring
from schema.base import utcnow
from schema.certificates import CaRole, CertificateAuthority

log = logging.getLogger(__name__)


class Authorities:
    """The issuing CAs this process knows, by row id and by serial; one of them is current."""

    def __init__(self, keyring: Keyring, current: IssuingCa, min_interval: float = 1.0) -> None:
        self.keyring = keyring
        self.current = current
        self.by_id: dict[uuid.UUID, IssuingCa] = {current.id: current}
        self.roots: dict[str, bytes] = {}  # root serial -> DER, for /api/ca/issuer/{serial}.cer
        self.root_ids: dict[str, uuid.UUID] = {}
        self.lock = threading.Lock()
        self.min_interval = min_interval  # on-demand refreshes at most this often
        self.refreshed_at = 0.0

    def all(self) -> Iterable[IssuingCa]:
        """Every issuing CA known, current first."""
        current = self.current
        yield current
        yield from (ca for ca in self.by_id.values() if ca.id != current.id)

    def by_serial(self, serial: str) -> IssuingCa | None:
        """The intermediate with this serial (lowercase hex), if known."""
        return next((ca for ca in self.all() if ca.serial_number == serial), None)

    def chain_pem(self, issuer_id: uuid.UUID) -> str:
        """The chain of a leaf's own issuer (intermediate then root); the current one's for
        an issuer this process has not loaded (it never drops one that has live leaves)."""
        ca = self.by_id.get(issuer_id)
        return (ca or self.current).chain_pem

    def refresh(self, session: Session) -> bool:
        """Re-read the CA rows: load intermediates not yet known, switch to the current one.
        Returns whether anything changed. One small query when nothing did."""
        parent = aliased(CertificateAuthority)
        rows = session.execute(
            select(CertificateAuthority, parent)
            .join(parent, parent.id == CertificateAuthority.parent_id)
            .where(
                CertificateAuthority.role == CaRole.INTERMEDIATE.value,
                CertificateAuthority.not_after > utcnow(),
            )
        ).all()
        session.rollback()
        changed = False
        with self.lock:
            # Built aside and swapped in whole: request threads and the event loop read these
            # maps without the lock.
            by_id, roots, root_ids = dict(self.by_id), dict(self.roots), dict(self.root_ids)
            current = self.current
            for inter, root in rows:
                if inter.serial_number is None or root.serial_number is None:
                    continue
                if root.serial_number not in roots:
                    roots[root.serial_number] = _der(root.certificate_pem)
                    root_ids[root.serial_number] = root.id
                if inter.id not in by_id:
                    by_id[inter.id] = issuing_ca(inter, root, self.keyring)
                    changed = True
                if inter.is_current and current.id != inter.id:
                    current = by_id[inter.id]
                    log.info(
                        "issuing with a new intermediate",
                        extra={"serial_number": current.serial_number},
                    )
                    changed = True
            self.roots, self.root_ids, self.by_id = roots, root_ids, by_id
            self.current = current
            self.refreshed_at = time.monotonic()
        return changed

    def refresh_soon(self, session: Session) -> bool:
        """Refresh unless one ran within `min_interval`: for requests naming an unknown CA,
        so a stream of them cannot turn into a stream of queries."""
        if time.monotonic() - self.refreshed_at < self.min_interval:
            return False
        return self.refresh(session)


def _der(pem: str) -> bytes:
    return x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)


__all__ = ["Authorities"]
