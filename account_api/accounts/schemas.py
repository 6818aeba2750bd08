"""Request and response bodies of the account routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, PlainSerializer, StringConstraints

from schema.base import rfc3339

Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
Password = Annotated[str, Field(min_length=8, max_length=256, description="8 to 256 characters")]
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"
    ),
]


class AccountCreate(BaseModel):
    """A sign-up."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
            ]
        },
    )

    email: EmailStr = Field(max_length=320)
    password: Password
    name: Name


class AccountOut(BaseModel):
    """An account as clients see it: never a password or its hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    role: str
    created_at: Timestamp


class AccountPath(BaseModel):
    """The account id in a path."""

    id: uuid.UUID = Field(description="account id (UUID)")
