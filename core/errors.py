"""Domain errors: what went wrong, in the domain's words. Each front door turns them into
its own format in one place (certificate_api/errors.py, account_api/errors.py); a field
is named by its domain path (`("dns_names", 0)`, `("idempotency_key",)`), never by where
a door happened to carry it (a body, a query string, a header)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One refused field: its domain path and why."""

    field: tuple[str | int, ...]
    msg: str


class DomainError(Exception):
    """A rule said no. `fields` names the fields at fault, when there are any."""

    def __init__(self, detail: str, fields: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = tuple(fields)


class NotFound(DomainError):
    """No such thing, or not the caller's to see."""


class Conflict(DomainError):
    """The thing is in a state that does not allow this."""


class Forbidden(DomainError):
    """The caller may see the thing but not do this to it."""


class Gone(DomainError):
    """The thing existed and was destroyed."""


class Unauthorized(DomainError):
    """The caller is not (or no longer) a live account."""

    def __init__(self, detail: str = "missing, invalid or expired access token") -> None:
        super().__init__(detail)


class Invalid(DomainError):
    """A value of the request breaks a rule."""

    @classmethod
    def field(cls, path: Sequence[str | int], msg: str) -> Invalid:
        """Invalid, naming one field."""
        where = ".".join(map(str, path))
        return cls(f"invalid request: {where}: {msg}", [FieldError(tuple(path), msg)])


class TryLater(DomainError):
    """Not now: the same request may succeed after `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class RateLimited(TryLater):
    """Too many of these, too fast, from this caller."""


class Busy(TryLater):
    """The service has as much of this work in progress as it takes at once."""
