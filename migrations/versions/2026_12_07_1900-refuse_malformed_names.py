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


def _withdraw(
    conn: sa.Connection, table: sa.TableClause, live: Any, column: str, bad: Any, **values: Any
) -> list[Any]:
    """Set `values` on every live row whose `column` `bad` picks; returns their ids. The rows
    are read in a stream (tables may be large), then updated in chunks, each update checking
    again that its row is still live."""
    query = sa.select(table.c.id, table.c[column]).where(live)
    # The options on the statement: on a Connection they would stay for every later one.
    result = conn.execute(query.execution_options(stream_results=True, yield_per=BATCH))
    ids = [row.id for row in result if bad(row[1])]
    for chunk in _chunks(ids):
        conn.execute(sa.update(table).where(table.c.id.in_(chunk), live).values(**values))
    return ids


def _refused(name: Any) -> bool:
    return not is_valid_name(str(name))


def _any_refused(identifiers: Any) -> bool:
    return not all(
        isinstance(item, dict) and is_valid_name(str(item.get('value', '')))
        for item in identifiers or []
    )


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
    _withdraw(
        conn, domains, domains.c.status.in_(('pending', 'valid')), 'name', _refused,
        status='invalid', error=REASON, validation_leased_until=None,
    )

    authorizations = sa.table(
        'acme_authorizations',
        sa.column('id', sa.Uuid),
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
    withdrawn = _withdraw(
        conn, authorizations, authorizations.c.status.in_(('pending', 'valid')), 'value',
        _refused, status='invalid',
    )
    for chunk in _chunks(withdrawn):
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
    _withdraw(
        conn, orders, orders.c.status.in_(('pending', 'ready')), 'identifiers', _any_refused,
        status='invalid', error=ACME_ERROR, updated_at=datetime.now(UTC),
    )


def downgrade() -> None:
    pass  # a withdrawn name stays withdrawn: nothing to restore it to
