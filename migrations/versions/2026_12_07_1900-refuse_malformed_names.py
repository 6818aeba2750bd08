"""withdraw stored names the name parser refuses: live domain authorizations and grants,
live ACME authorizations and their challenges, and ACME orders not yet finalized

Names with a line feed, whitespace or other characters outside the rules were once accepted
(a trailing `\\n` passed a `$`-anchored pattern). Each such row still live is marked
`invalid` with the error "name no longer accepted", so nothing is ever validated or signed
for it; issued certificates are the operator's (`ca-admin certificates malformed`).

Revision ID: h2_names
Revises: c2_blocked_key_account
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from schema.base import UtcDateTime

# The parser itself, not a copy: "fails the parser" is what this revision withdraws, and
# pki.names imports nothing of the project, so it loads anywhere migrations run.
from pki.names import is_valid_name

revision: str = 'h2_names'
down_revision: str | None = 'c2_blocked_key_account'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REASON = "name no longer accepted"
ACME_ERROR = {"type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": REASON}
BATCH = 1000


def _chunks(ids: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


def _bad_ids(conn: sa.Connection, query: sa.Select[Any], bad: Any) -> list[Any]:
    """The ids of the rows `bad(row)` picks, read in a stream (tables may be large)."""
    # The options on the statement: on a Connection they would stay for every later one.
    result = conn.execute(query.execution_options(stream_results=True, yield_per=BATCH))
    return [row.id for row in result if bad(row)]


def upgrade() -> None:
    conn = op.get_bind()

    domains = sa.table(
        'domain_authorizations',
        sa.column('id', sa.Uuid),
        sa.column('name', sa.String),
        sa.column('status', sa.String),
        sa.column('error', sa.Text),
        sa.column('validation_leased_until', UtcDateTime(timezone=True)),
    )
    live = domains.c.status.in_(('pending', 'valid'))
    ids = _bad_ids(
        conn,
        sa.select(domains.c.id, domains.c.name).where(live),
        lambda row: not is_valid_name(row.name),
    )
    for chunk in _chunks(ids):
        conn.execute(
            sa.update(domains)
            .where(domains.c.id.in_(chunk), live)
            .values(status='invalid', error=REASON, validation_leased_until=None)
        )

    authorizations = sa.table(
        'acme_authorizations',
        sa.column('id', sa.Uuid),
        sa.column('order_id', sa.Uuid),
        sa.column('value', sa.String),
        sa.column('status', sa.String),
    )
    challenges = sa.table(
        'acme_challenges',
        sa.column('authorization_id', sa.Uuid),
        sa.column('status', sa.String),
        sa.column('error', sa.JSON),
        sa.column('leased_until', UtcDateTime(timezone=True)),
    )
    live_authz = authorizations.c.status.in_(('pending', 'valid'))
    ids = _bad_ids(
        conn,
        sa.select(authorizations.c.id, authorizations.c.value).where(live_authz),
        lambda row: not is_valid_name(row.value),
    )
    for chunk in _chunks(ids):
        conn.execute(
            sa.update(authorizations)
            .where(authorizations.c.id.in_(chunk), live_authz)
            .values(status='invalid')
        )
        conn.execute(
            sa.update(challenges)
            .where(
                challenges.c.authorization_id.in_(chunk),
                challenges.c.status.in_(('pending', 'processing')),
            )
            .values(status='invalid', error=ACME_ERROR, leased_until=None)
        )

    orders = sa.table(
        'acme_orders',
        sa.column('id', sa.Uuid),
        sa.column('status', sa.String),
        sa.column('identifiers', sa.JSON),
        sa.column('error', sa.JSON),
        sa.column('updated_at', UtcDateTime(timezone=True)),
    )
    open_order = orders.c.status.in_(('pending', 'ready'))
    ids = _bad_ids(
        conn,
        sa.select(orders.c.id, orders.c.identifiers).where(open_order),
        lambda row: not all(
            isinstance(item, dict) and is_valid_name(str(item.get('value', '')))
            for item in row.identifiers or []
        ),
    )
    for chunk in _chunks(ids):
        conn.execute(
            sa.update(orders)
            .where(orders.c.id.in_(chunk), open_order)
            .values(status='invalid', error=ACME_ERROR, updated_at=datetime.now(UTC))
        )


def downgrade() -> None:
    pass  # a withdrawn name stays withdrawn: nothing to restore it to
