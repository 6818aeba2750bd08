"""Bodies of the token route: OAuth2 password-grant form, or JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# No account's email holds a control character, and PostgreSQL refuses NUL in text: such
# a login is a 422, never a query.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class TokenForm(BaseModel):
    """OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's "Authorize" sends it."""

    model_config = ConfigDict(extra="ignore")  # client_id, scope... are allowed and unused

    grant_type: Literal["password"] | None = None
    username: str = Field(
        min_length=1, max_length=320, pattern=PRINTABLE, description="the account's email"
    )
    password: str = Field(min_length=1, max_length=256)


class TokenJson(BaseModel):
    """The same credentials as JSON."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        },
    )

    email: str = Field(min_length=1, max_length=320, pattern=PRINTABLE)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    """A bearer token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
