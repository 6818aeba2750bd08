"""lifecycle: CA serials and revocation, one OCSP responder per intermediate, renewal and
expiry-notice columns, expiry indexes

Revision ID: l1_lifecycle
Revises: n1_domains
Create Date: 2026-11-27 08:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from cryptography import x509

import schema.base

revision: str = 'l1_lifecycle'
down_revision: str | None = 'n1_domains'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CURRENT = sa.text('is_current')
CURRENT_CA = sa.text("is_current AND role <> 'ocsp_responder'")
CURRENT_RESPONDER = sa.text("is_current AND role = 'ocsp_responder'")
EXPIRY_DUE = sa.text('expiry_notified_at IS NULL AND is_active AND revoked_at IS NULL')


def upgrade() -> None:
    with op.batch_alter_table('certificate_authorities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('serial_number', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', schema.base.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('revocation_reason', sa.String(length=32), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_certificate_authorities_serial_number'), ['serial_number'])
        batch_op.drop_index('uq_certificate_authorities_current_role', postgresql_where=OLD_CURRENT, sqlite_where=OLD_CURRENT)
        batch_op.create_index('uq_certificate_authorities_current_role', ['role'], unique=True, postgresql_where=CURRENT_CA, sqlite_where=CURRENT_CA)
        batch_op.create_index('uq_certificate_authorities_current_responder_parent_id', ['parent_id'], unique=True, postgresql_where=CURRENT_RESPONDER, sqlite_where=CURRENT_RESPONDER)

    # Existing CA rows get the serial of their certificate.
    bind = op.get_bind()
    cas = sa.table('certificate_authorities', sa.column('id', sa.Uuid()), sa.column('certificate_pem', sa.Text()), sa.column('serial_number', sa.String(40)))
    for row in bind.execute(sa.select(cas.c.id, cas.c.certificate_pem)).all():
        serial = format(x509.load_pem_x509_certificate(row.certificate_pem.encode()).serial_number, 'x')
        bind.execute(sa.update(cas).where(cas.c.id == row.id).values(serial_number=serial))

    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('renewed_from', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('expiry_notified_at', schema.base.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_certificates_renewed_from_certificates'), 'certificates', ['renewed_from'], ['id'])
        batch_op.create_index('ix_certificates_not_after', ['not_after'], unique=False)
        batch_op.create_index('ix_certificates_expiry_due_not_after', ['not_after'], unique=False, postgresql_where=EXPIRY_DUE, sqlite_where=EXPIRY_DUE)


def downgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_certificates_expiry_due_not_after', postgresql_where=EXPIRY_DUE, sqlite_where=EXPIRY_DUE)
        batch_op.drop_index('ix_certificates_not_after')
        batch_op.drop_constraint(batch_op.f('fk_certificates_renewed_from_certificates'), type_='foreignkey')
        batch_op.drop_column('expiry_notified_at')
        batch_op.drop_column('renewed_from')

    with op.batch_alter_table('certificate_authorities', schema=None) as batch_op:
        batch_op.drop_index('uq_certificate_authorities_current_responder_parent_id', postgresql_where=CURRENT_RESPONDER, sqlite_where=CURRENT_RESPONDER)
        batch_op.drop_index('uq_certificate_authorities_current_role', postgresql_where=CURRENT_CA, sqlite_where=CURRENT_CA)
        batch_op.create_index('uq_certificate_authorities_current_role', ['role'], unique=True, postgresql_where=OLD_CURRENT, sqlite_where=OLD_CURRENT)
        batch_op.drop_constraint(batch_op.f('uq_certificate_authorities_serial_number'), type_='unique')
        batch_op.drop_column('revocation_reason')
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('serial_number')
