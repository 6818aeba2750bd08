"""argon2id password hashing through passlib, rehashing when the parameters change."""

from __future__ import annotations

from passlib.context import CryptContext

from account_api.settings import AccountSettings


class Passwords:
    """Hash and verify passwords with the configured argon2id cost."""

    def __init__(self, settings: AccountSettings) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            deprecated="auto",
            argon2__type="ID",
            argon2__time_cost=settings.argon2_time_cost,
            argon2__memory_cost=settings.argon2_memory_cost,
            argon2__parallelism=settings.argon2_parallelism,
        )
        # Verified against when the email is unknown, so both paths cost the same.
        self._dummy_hash = self._context.hash("not a password: equalises timing")

    def hash(self, password: str) -> str:
        """A new argon2id hash."""
        return str(self._context.hash(password))

    def verify_and_update(self, password: str, stored: str) -> tuple[bool, str | None]:
        """Check a password; the second value is a new hash when the cost changed."""
        ok, new_hash = self._context.verify_and_update(password, stored)
        return bool(ok), new_hash

    def burn(self, password: str) -> None:
        """Spend the time of one verification for an unknown email."""
        self._context.verify(password, self._dummy_hash)
