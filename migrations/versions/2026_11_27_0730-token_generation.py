"""token generation: signing out and password changes retire older tokens

Revision ID: h1_harden
Revises: 0001
Create Date: 2026-11-27 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'h1_harden'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('token_generation', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('token_generation')
