"""Accounts and the failed-login record that throttling reads."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import BIGINT_PK, Base, utcnow


class Role(enum.StrEnum):
    """What an account may do: customers own certificates, admins see everything."""

    CUSTOMER = "customer"
    ADMIN = "admin"


class Account(Base):
    """A customer or an admin. Deleted accounts keep their row for the audit trail."""

    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(320))
    # Lower-cased email: uniqueness is case-insensitive, and only among live accounts,
    # so an address can sign up again after its account was deleted.
    email_key: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="account_role", values_callable=lambda e: [m.value for m in e]),
        default=Role.CUSTOMER,
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    # Copied into every access token; signing out everywhere or changing the password adds
    # one, and both services refuse a token whose number is older. A counter, not a time:
    # a token minted in the same second as the sign-out, before or after, is told apart.
    token_generation: Mapped[int] = mapped_column(default=0, server_default=text("0"))

    __table_args__ = (
        Index(
            "uq_accounts_live_email_key",
            "email_key",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    @property
    def is_deleted(self) -> bool:
        """Whether the account was deleted (its tokens are refused)."""
        return self.deleted_at is not None


class LoginFailure(Base):
    """One failed login; recent rows per email or client drive the 429 throttle."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BIGINT_PK, primary_key=True, autoincrement=True)
    email_key: Mapped[str] = mapped_column(String(320))
    client: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_login_failures_email_key_failed_at", "email_key", "failed_at"),
        Index("ix_login_failures_client_failed_at", "client", "failed_at"),
        Index("ix_login_failures_failed_at", "failed_at"),  # retention: oldest first
    )
