"""admin holds and blocked keys

Revision ID: c1_core
Revises: h1_harden
Create Date: 2026-11-27 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.base

revision: str = 'c1_core'
down_revision: str | None = 'h1_harden'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('held_by_admin', sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    op.create_table('blocked_keys',
    sa.Column('certificate_id', sa.Uuid(), nullable=False),
    sa.Column('spki_sha256', sa.String(length=64), nullable=False),
    sa.Column('blocked_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_blocked_keys_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('certificate_id', name=op.f('pk_blocked_keys'))
    )
    with op.batch_alter_table('blocked_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blocked_keys_spki_sha256'), ['spki_sha256'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('blocked_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_blocked_keys_spki_sha256'))

    op.drop_table('blocked_keys')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_column('held_by_admin')
