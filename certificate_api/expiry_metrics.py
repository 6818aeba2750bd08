"""Gauges an operator alerts on before something ends: leaves about to expire, and the
notAfter of the root, the current intermediate, its OCSP responder and the root's CRL.

They are read from the database when Prometheus scrapes (one query each, on indexes), so
every process of every replica reports the same values, whatever it served.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from certificate_api.authority.directory import Authorities
from schema.base import utcnow
from schema.certificates import CaRole, Certificate, CertificateAuthority, CrlState

WINDOWS = {"7d": timedelta(days=7), "30d": timedelta(days=30)}


def expiring_counts(session: Session, now: datetime) -> dict[str, int]:
    """Active, unrevoked certificates whose notAfter is within each window from now."""
    widest = max(WINDOWS.values())
    live = (Certificate.is_active.is_(True), Certificate.revoked_at.is_(None))
    counts = session.execute(
        select(
            *(
                func.count().filter(Certificate.not_after <= now + window)
                for window in WINDOWS.values()
            )
        ).where(Certificate.not_after > now, Certificate.not_after <= now + widest, *live)
    ).one()
    return dict(zip(WINDOWS, (int(count) for count in counts), strict=True))


def ca_not_after(session: Session, authorities: Authorities) -> dict[str, datetime]:
    """notAfter of the current root and intermediate, and of the intermediate's responder."""
    current = authorities.current.id
    rows = session.execute(
        select(CertificateAuthority.role, CertificateAuthority.not_after).where(
            CertificateAuthority.is_current.is_(True),
            or_(
                CertificateAuthority.role != CaRole.OCSP_RESPONDER.value,
                CertificateAuthority.parent_id == current,
            ),
        )
    ).all()
    return {role: not_after for role, not_after in rows}


def render(session: Session, authorities: Authorities) -> bytes:
    """The exposition text of these gauges, read now."""
    now = utcnow()
    registry = CollectorRegistry()
    expiring = Gauge(
        "certificates_expiring",
        "Active, unrevoked certificates whose notAfter is within the window",
        ["within"],
        registry=registry,
    )
    for window, count in expiring_counts(session, now).items():
        expiring.labels(window).set(count)
    ends = Gauge(
        "ca_not_after_timestamp_seconds",
        "notAfter of the current root, issuing intermediate and OCSP responder (Unix time)",
        ["role"],
        registry=registry,
    )
    for role, not_after in ca_not_after(session, authorities).items():
        ends.labels(role).set(not_after.timestamp())
    root_id = authorities.root_ids.get(
        format(authorities.current.root_certificate.serial_number, "x")
    )
    next_update = session.scalar(select(CrlState.next_update).where(CrlState.issuer_id == root_id))
    if next_update is not None:
        Gauge(
            "ca_root_crl_next_update_timestamp_seconds",
            "nextUpdate of the root's CRL (Unix time): re-sign it before",
            registry=registry,
        ).set(next_update.timestamp())
    session.rollback()
    return generate_latest(registry)


__all__ = ["expiring_counts", "render"]
