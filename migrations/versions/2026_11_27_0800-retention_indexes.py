"""retention indexes: find the oldest delivered events and login failures at once

Revision ID: w1_retention
Revises: c1_core
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'w1_retention'
down_revision: str | None = 'c1_core'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_delivered_delivered_at', ['delivered_at'], unique=False, postgresql_where=sa.text("state = 'delivered'"), sqlite_where=sa.text("state = 'delivered'"))

    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_failed_at', ['failed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_failed_at')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_delivered_delivered_at', postgresql_where=sa.text("state = 'delivered'"), sqlite_where=sa.text("state = 'delivered'"))
