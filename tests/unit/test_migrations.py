"""The packaged Alembic migrations build exactly the schema the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flopex.store.engine import make_engine
from flopex.store.migrate import heads, upgrade
from flopex.store.schema import metadata


def test_migrations_have_a_single_head() -> None:
    assert len(heads()) == 1


def test_upgraded_database_matches_the_declared_schema(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"schema.py and the migrations differ: {diff}"
