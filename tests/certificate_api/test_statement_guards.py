"""The async statement layer skips SQLAlchemy's execution, not its guards: row types match
their statements, TypeDecorators' checks still run, other unconverted types are refused."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Column, MetaData, Numeric, String, Table, TypeDecorator, bindparam, select

from certificate_api.conversions import UnconvertedType
from certificate_api.database import PostgresDatabase
from core import queries, sessions
from core.statements import Query
from schema.certificates import Certificate

# Compiles only: the pool of this database is never opened.
COMPILER = PostgresDatabase("postgresql://nobody@127.0.0.1:1/none", size=1, timeout=1)


class Shouting(TypeDecorator[str]):
    """A decorator whose result conversion the layer would skip."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else str(value).upper()


_things = Table("things", MetaData(), Column("loud", Shouting()), Column("price", Numeric(10, 2)))


def test_a_result_type_the_layer_does_not_convert_is_refused_when_compiled() -> None:
    with pytest.raises(UnconvertedType, match="Shouting"):
        COMPILER.prepared(select(_things.c.loud))
    with pytest.raises(UnconvertedType, match="Numeric"):
        COMPILER.prepared(select(_things.c.price))


def test_a_parameter_type_the_layer_does_not_convert_is_refused_when_compiled() -> None:
    statement = select(_things.c.loud).where(_things.c.price == bindparam("p", type_=Numeric()))
    with pytest.raises(UnconvertedType, match="bind of type Numeric"):
        COMPILER.prepared(statement)


def test_utc_datetime_refuses_a_naive_value_on_the_async_layer_too() -> None:
    prepared = COMPILER.prepared(queries.SET_REVOKED.statement)
    with pytest.raises(ValueError, match="naive"):
        prepared.params({"certificate_id": uuid.uuid4(), "at": datetime(2026, 1, 1), "reason": "x"})


def test_every_core_query_compiles_for_the_async_layer() -> None:
    for name in dir(queries):
        value = getattr(queries, name)
        if isinstance(value, Query):
            COMPILER.prepared(value.statement)


def test_a_row_type_that_does_not_match_its_statement_is_refused() -> None:
    class Wrong(NamedTuple):
        id: uuid.UUID
        serial: str  # the column is serial_number

    with pytest.raises(TypeError, match="serial_number"):
        Query(select(Certificate.id, Certificate.serial_number), Wrong)


def test_core_work_on_a_session_that_would_wait_on_something_else_is_refused() -> None:
    async def waits() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="not the session"):
        sessions.run(waits())


def test_an_array_parameter_of_native_items_is_passed_as_is_and_others_are_refused() -> None:
    from sqlalchemy import ARRAY, Uuid, any_

    from schema.base import UtcDateTime

    ids = select(Certificate.id).where(
        Certificate.id == any_(bindparam("ids", type_=ARRAY(Uuid())))
    )
    prepared = COMPILER.prepared(ids)
    given = [uuid.uuid4(), uuid.uuid4()]
    assert prepared.params({"ids": given}) == {"ids": given}
    for item in (Numeric(), UtcDateTime()):  # a conversion per item would be skipped
        wrong = select(Certificate.id).where(
            Certificate.not_after == any_(bindparam("at", type_=ARRAY(item)))
        )
        with pytest.raises(UnconvertedType, match="ARRAY"):
            COMPILER.prepared(wrong)


def test_the_name_check_statements_compile_for_the_async_layer() -> None:
    from core.name_check import NameRules
    from schema.settings import CommonSettings

    rules = NameRules(CommonSettings(name_authorization="required"), "postgresql")
    for query in (rules.covering, rules.still_valid):
        COMPILER.prepared(query.statement)
