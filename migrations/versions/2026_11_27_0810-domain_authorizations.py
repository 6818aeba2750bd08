"""domain authorizations: who may have which names

Revision ID: n1_domains
Revises: w1_retention
Create Date: 2026-11-27 08:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.base

revision: str = 'n1_domains'
down_revision: str | None = 'w1_retention'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('domain_authorizations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('include_subdomains', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('expires_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('validated_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('validation_type', sa.String(length=16), nullable=True),
    sa.Column('validation_requested_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('validation_leased_until', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('validation_attempts', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_domain_authorizations_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_authorizations'))
    )
    with op.batch_alter_table('domain_authorizations', schema=None) as batch_op:
        batch_op.create_index('ix_domain_authorizations_account_id_created_at_id', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_domain_authorizations_account_id_name', ['account_id', 'name'], unique=False)
        batch_op.create_index('ix_domain_authorizations_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('uq_domain_authorizations_live', ['account_id', 'name', 'include_subdomains'], unique=True, postgresql_where=sa.text("status IN ('pending', 'valid')"), sqlite_where=sa.text("status IN ('pending', 'valid')"))
        batch_op.create_index('ix_domain_authorizations_validation_queue', ['validation_requested_at'], unique=False, postgresql_where=sa.text("status = 'pending' AND validation_type IS NOT NULL"), sqlite_where=sa.text("status = 'pending' AND validation_type IS NOT NULL"))



def downgrade() -> None:
    with op.batch_alter_table('domain_authorizations', schema=None) as batch_op:
        batch_op.drop_index('ix_domain_authorizations_validation_queue', postgresql_where=sa.text("status = 'pending' AND validation_type IS NOT NULL"), sqlite_where=sa.text("status = 'pending' AND validation_type IS NOT NULL"))
        batch_op.drop_index('uq_domain_authorizations_live', postgresql_where=sa.text("status IN ('pending', 'valid')"), sqlite_where=sa.text("status IN ('pending', 'valid')"))
        batch_op.drop_index('ix_domain_authorizations_created_at_id')
        batch_op.drop_index('ix_domain_authorizations_account_id_name')
        batch_op.drop_index('ix_domain_authorizations_account_id_created_at_id')

    op.drop_table('domain_authorizations')
