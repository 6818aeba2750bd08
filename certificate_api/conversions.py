"""Which column types the async statement layer converts as SQLAlchemy would, and how.

The layer (certificate_api/database.py) hands parameters to psycopg and builds rows from
psycopg's values, skipping SQLAlchemy's type processing. Each statement's parameter and
result types are checked here when it is compiled: a type psycopg converts the same way
passes; a TypeDecorator's `process_bind_param` is applied by the layer; any other type is
refused, so no conversion is ever skipped silently.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.sql.sqltypes import NullType
from sqlalchemy.types import TypeEngine

from schema.base import UtcDateTime


class UnconvertedType(TypeError):
    """A statement binds or returns a type whose conversion this layer would skip."""


# Types psycopg reads and writes as SQLAlchemy would (JSON is wrapped by `_Prepared`;
# NullType is an untyped parameter, which SQLAlchemy does not convert either).
_NATIVE = (Uuid, String, Text, Boolean, Integer, BigInteger, LargeBinary, JSON, NullType)
# TypeDecorators whose results psycopg already gives as `process_result_value` would:
# timestamptz comes back aware, in the session's zone, which the layer pins to UTC.
_NATIVE_RESULTS: tuple[type[TypeDecorator[Any]], ...] = (UtcDateTime,)


def _str_enum_labels(kind: TypeEngine[Any]) -> bool:
    """An Enum column of a StrEnum stored by value: psycopg returns the label, a string
    equal to the member SQLAlchemy would return (and row types declare it `str`)."""
    if type(kind) is not Enum or kind.enum_class is None:
        return False
    members = list(kind.enum_class)
    return issubclass(kind.enum_class, enum.StrEnum) and kind.enums == [m.value for m in members]


def _native_items(kind: ARRAY[Any]) -> bool:
    """An array parameter whose items psycopg converts as SQLAlchemy would: psycopg sends a
    list as a PostgreSQL array of its items (`= ANY(:names)`). Items needing a decorator's
    conversion are not, since the layer would convert the list, not each item."""
    try:
        return column_support(kind.item_type, "bind") == "native"
    except UnconvertedType:
        return False


def column_support(kind: TypeEngine[Any], side: str) -> str:
    """How this layer handles a type on one side (`bind` or `result`): "native", or
    "decorated" (a TypeDecorator whose `process_bind_param` this layer applies); any other
    type is refused with `UnconvertedType`, since its conversion would be skipped."""
    if type(kind) in _NATIVE:
        return "native"
    if isinstance(kind, DateTime) and type(kind) is DateTime and kind.timezone:
        return "native"
    if side == "result" and _str_enum_labels(kind):
        return "native"
    if isinstance(kind, ARRAY) and side == "bind" and _native_items(kind):
        return "native"
    if isinstance(kind, TypeDecorator) and column_support(kind.impl_instance, side) == "native":
        if side == "bind":
            return "decorated"
        if isinstance(kind, _NATIVE_RESULTS):
            return "native"
    raise UnconvertedType(f"{side} of type {kind!r}: this layer does not convert it")
