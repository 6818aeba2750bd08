"""name webhook endpoints whose URL carries a secret by a digest instead

Revision ID: a2_endpoint_keys
Revises: a1_acme
Create Date: 2026-11-27 08:50:00
"""

import hashlib
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision: str = 'a2_endpoint_keys'
down_revision: str | None = 'a1_acme'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(url: str) -> str:
    # schema.events.endpoint_key as of this revision (a migration keeps its own copy).
    parts = urlsplit(url)
    if not (parts.query or parts.fragment or parts.username or parts.password):
        return url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return f"{parts.scheme}://{host}{port}{parts.path}#sha256:{digest}"


def upgrade() -> None:
    endpoints = sa.table('webhook_endpoints', sa.column('url', sa.String))
    conn = op.get_bind()
    for (url,) in conn.execute(sa.select(endpoints.c.url)).all():
        if _key(url) != url:
            conn.execute(
                sa.update(endpoints).where(endpoints.c.url == url).values(url=_key(url))
            )


def downgrade() -> None:
    pass  # a digest cannot be turned back into the URL; the rows stay as they are
