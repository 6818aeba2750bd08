"""validation turns: when the worker last took a validation of each customer

Revision ID: v1_validation_turns
Revises: a2_endpoint_keys
Create Date: 2026-12-07 18:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.base

revision: str = 'v1_validation_turns'
down_revision: str | None = 'a2_endpoint_keys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('validation_turns',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('claimed_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_validation_turns_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_validation_turns'))
    )


def downgrade() -> None:
    op.drop_table('validation_turns')
