"""add rate counters

Revision ID: f1_rates
Revises: l1_lifecycle
Create Date: 2026-11-27 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.base

revision: str = 'f1_rates'
down_revision: str | None = 'l1_lifecycle'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rate_counters',
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('window_start', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'key', name=op.f('pk_rate_counters'))
    )


def downgrade() -> None:
    op.drop_table('rate_counters')
