"""The migration tree builds exactly the models' schema, from empty, on the test backend."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from schema.db import make_engine
from schema.migrate import MIGRATIONS_DIR, alembic_config
from schema.models import Base


def test_upgrade_from_empty_matches_the_models(databases: Any) -> None:
    url = databases.create(migrate=False)
    engine = make_engine(url)
    try:
        assert inspect(engine).get_table_names() == []
        from schema.migrate import upgrade

        upgrade(url)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert tables == set(Base.metadata.tables)
    finally:
        engine.dispose()


def test_history_is_linear_and_files_are_dated() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    names = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert names and all(name[:4].isdigit() and name[4] == "_" for name in names)
