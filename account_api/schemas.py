"""The problem+json body, for the OpenAPI document of every route."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from flask import Response
from pydantic import AfterValidator, BaseModel


def _no_control_characters(value: str) -> str:
    # NUL cannot be stored in PostgreSQL text at all; other control characters have no
    # place in a name or an address, and would reach logs and other people's screens.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    return value


PlainText = Annotated[str, AfterValidator(_no_control_characters)]
"""A string without control characters (NUL, escapes, newlines...)."""


class FieldError(BaseModel):
    """One invalid field."""

    loc: list[str | int]
    msg: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` inlined, to embed in a response."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return dict(resolve(schema))


PROBLEM_SCHEMA = _inline_schema(ProblemOut)


def problem_responses(*statuses: int) -> dict[str | int, type[BaseModel] | dict[Any, Any] | None]:
    """OpenAPI responses documenting each status as problem+json."""
    return {
        status: {"content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


def no_content() -> Response:
    """A 204: no body, so no media type."""
    response = Response(status=204)
    response.headers.remove("Content-Type")
    return response
