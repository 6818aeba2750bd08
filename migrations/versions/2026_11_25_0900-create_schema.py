"""create schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import schema.base

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('customer', 'admin', name='account_role'), nullable=False),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index('uq_accounts_live_email_key', ['email_key'], unique=True, postgresql_where=sa.text('deleted_at IS NULL'), sqlite_where=sa.text('deleted_at IS NULL'))

    op.create_table('certificate_authorities',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('not_after', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=True),
    sa.Column('key_nonce', sa.LargeBinary(), nullable=True),
    sa.Column('key_ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['certificate_authorities.id'], name=op.f('fk_certificate_authorities_parent_id_certificate_authorities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_authorities'))
    )
    with op.batch_alter_table('certificate_authorities', schema=None) as batch_op:
        batch_op.create_index('uq_certificate_authorities_current_role', ['role'], unique=True, postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))

    op.create_table('events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('subject_id', sa.Uuid(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('leased_until', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('retry_until', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_pending_next_attempt_at', ['next_attempt_at'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index('ix_events_pending_subject_id_seq', ['subject_id', 'seq'], unique=False, postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.create_index('ix_events_state_seq', ['state', 'seq'], unique=False)

    op.create_table('login_failures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('failed_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_client_failed_at', ['client', 'failed_at'], unique=False)
        batch_op.create_index('ix_login_failures_email_key_failed_at', ['email_key', 'failed_at'], unique=False)

    op.create_table('webhook_endpoints',
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('disabled_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('url', name=op.f('pk_webhook_endpoints'))
    )
    op.create_table('certificates',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('issuer_id', sa.Uuid(), nullable=False),
    sa.Column('serial_number', sa.String(length=40), nullable=False),
    sa.Column('common_name', sa.String(length=255), nullable=False),
    sa.Column('dns_names', sa.JSON(), nullable=False),
    sa.Column('ip_addresses', sa.JSON(), nullable=False),
    sa.Column('key_type', sa.String(length=16), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('held_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('not_before', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('not_after', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_certificates_account_id_accounts')),
    sa.ForeignKeyConstraint(['issuer_id'], ['certificate_authorities.id'], name=op.f('fk_certificates_issuer_id_certificate_authorities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('serial_number', name=op.f('uq_certificates_serial_number'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index('ix_certificates_account_id_created_at_id', ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_certificates_active_account_id_created_at_id', ['account_id', 'created_at', 'id'], unique=False, postgresql_where=sa.text('is_active AND revoked_at IS NULL'), sqlite_where=sa.text('is_active AND revoked_at IS NULL'))
        batch_op.create_index('ix_certificates_off_serial_number', ['issuer_id', 'serial_number'], unique=False, postgresql_where=sa.text('NOT is_active OR revoked_at IS NOT NULL'), sqlite_where=sa.text('NOT is_active OR revoked_at IS NOT NULL'))

    op.create_table('crl_revisions',
    sa.Column('issuer_id', sa.Uuid(), nullable=False),
    sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('revision', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['issuer_id'], ['certificate_authorities.id'], name=op.f('fk_crl_revisions_issuer_id_certificate_authorities')),
    sa.PrimaryKeyConstraint('issuer_id', 'slot', name=op.f('pk_crl_revisions'))
    )
    op.create_table('crl_state',
    sa.Column('issuer_id', sa.Uuid(), nullable=False),
    sa.Column('built_revision', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('crl_number', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=True),
    sa.Column('this_update', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('next_update', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('built_at', schema.base.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['issuer_id'], ['certificate_authorities.id'], name=op.f('fk_crl_state_issuer_id_certificate_authorities')),
    sa.PrimaryKeyConstraint('issuer_id', name=op.f('pk_crl_state'))
    )
    op.create_table('certificate_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('certificate_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('actor_id', sa.Uuid(), nullable=True),
    sa.Column('at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_certificate_history_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_history'))
    )
    with op.batch_alter_table('certificate_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_history_certificate_id'), ['certificate_id'], unique=False)

    op.create_table('certificate_keys',
    sa.Column('certificate_id', sa.Uuid(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.LargeBinary(), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_certificate_keys_certificate_id_certificates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('certificate_id', name=op.f('pk_certificate_keys'))
    )
    with op.batch_alter_table('certificate_keys', schema=None) as batch_op:
        batch_op.create_index('ix_certificate_keys_key_id', ['key_id'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('account_id', sa.Uuid(), nullable=False),
    sa.Column('operation', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('certificate_id', sa.Uuid(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('created_at', schema.base.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_idempotency_keys_account_id_accounts')),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_idempotency_keys_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('account_id', 'operation', 'key', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_created_at'), ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_keys_created_at'))

    op.drop_table('idempotency_keys')
    with op.batch_alter_table('certificate_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_certificate_keys_key_id')

    op.drop_table('certificate_keys')
    with op.batch_alter_table('certificate_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_certificate_history_certificate_id'))

    op.drop_table('certificate_history')
    op.drop_table('crl_state')
    op.drop_table('crl_revisions')
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.drop_index('ix_certificates_off_serial_number', postgresql_where=sa.text('NOT is_active OR revoked_at IS NOT NULL'), sqlite_where=sa.text('NOT is_active OR revoked_at IS NOT NULL'))
        batch_op.drop_index('ix_certificates_active_account_id_created_at_id', postgresql_where=sa.text('is_active AND revoked_at IS NULL'), sqlite_where=sa.text('is_active AND revoked_at IS NULL'))
        batch_op.drop_index('ix_certificates_account_id_created_at_id')

    op.drop_table('certificates')
    op.drop_table('webhook_endpoints')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_email_key_failed_at')
        batch_op.drop_index('ix_login_failures_client_failed_at')

    op.drop_table('login_failures')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_state_seq')
        batch_op.drop_index('ix_events_pending_subject_id_seq', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))
        batch_op.drop_index('ix_events_pending_next_attempt_at', postgresql_where=sa.text("state = 'pending'"), sqlite_where=sa.text("state = 'pending'"))

    op.drop_table('events')
    with op.batch_alter_table('certificate_authorities', schema=None) as batch_op:
        batch_op.drop_index('uq_certificate_authorities_current_role', postgresql_where=sa.text('is_current'), sqlite_where=sa.text('is_current'))

    op.drop_table('certificate_authorities')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('uq_accounts_live_email_key', postgresql_where=sa.text('deleted_at IS NULL'), sqlite_where=sa.text('deleted_at IS NULL'))

    op.drop_table('accounts')
