"""a blocked key names the account it is blocked for (NULL: every account)

Revision ID: c2_blocked_key_account
Revises: v1_validation_turns
Create Date: 2026-12-07 18:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c2_blocked_key_account'
down_revision: str | None = 'v1_validation_turns'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep NULL: a key blocked so far stays blocked for every account.
    with op.batch_alter_table('blocked_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_blocked_keys_account_id_accounts'), 'accounts', ['account_id'], ['id']
        )


def downgrade() -> None:
    # Going back blocks every key for every account again, the older rule.
    with op.batch_alter_table('blocked_keys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_blocked_keys_account_id_accounts'), type_='foreignkey')
        batch_op.drop_column('account_id')
