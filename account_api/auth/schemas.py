"""Bodies of the token route: OAuth2 password-grant form, or JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from account_api.schemas import PlainText


class TokenForm(BaseModel):
    """OAuth2 password grant (RFC 6749 §4.3), as Swagger UI's "Authorize" sends it."""

    model_config = ConfigDict(extra="ignore")  # client_id, scope... are allowed and unused

    grant_type: Literal["password"] | None = None
    username: PlainText = Field(min_length=1, max_length=320, description="the account's email")
    password: str = Field(min_length=1, max_length=256)


class TokenJson(BaseModel):
    """The same credentials as JSON."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        },
    )

    email: PlainText = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=256)


class TokenOut(BaseModel):
    """A bearer token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")
