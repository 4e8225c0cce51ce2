"""Shared fixtures: databases (SQLite file, PostgreSQL schema per run), service contexts, clocks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from flopex.service import accounts
from flopex.service.context import Context, Rules
from flopex.store.blobs import FileBlobStore
from flopex.store.engine import Database, make_engine
from flopex.store.migrate import upgrade
from flopex.store.sql import SqlStore
from tests.pgschema import pg_base_url, pg_schema

ADMIN_TOKEN = "fpx_admin_test_token"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now_ms: int = 1_800_000_000_000) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@contextmanager
def _new_pg_schema(prefix: str) -> Iterator[str]:
    """A fresh schema (tests/pgschema.py); fail, or skip with the reason, if PG is unreachable."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(pg_schema(prefix))
        except OperationalError as exc:
            reason = f"PostgreSQL unreachable at {pg_base_url()}: {exc.orig}"
            if os.environ.get("FLOPEX_REQUIRE_POSTGRES") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
        yield url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL schema for the whole run (contract tests empty its tables per test)."""
    with _new_pg_schema("flopex_test") as url:
        yield url


@pytest.fixture
def own_pg_url() -> Iterator[str]:
    """A PostgreSQL schema of this test's own (for server processes)."""
    with _new_pg_schema("flopex_it") as url:
        yield url


def _fresh_pg_schema(pg_url: str) -> str:
    """Empty every table of the run's schema so each test starts clean."""
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).all()
        names = [r[0] for r in rows if r[0] != "alembic_version"]
        if names:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " CASCADE"))
    engine.dispose()
    return pg_url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flopex.db'}"
    url: str = request.getfixturevalue("pg_url")
    db = Database(make_engine(url))
    upgrade(db.engine)
    db.dispose()
    return _fresh_pg_schema(url)


def make_context(
    url: str, blob_dir: Path, clock: FakeClock | None = None, **rules: object
) -> Context:
    """A migrated, bootstrapped service context over ``url``."""
    db = Database(make_engine(url))
    upgrade(db.engine)
    ctx = Context(
        store=SqlStore(db),
        blobs=FileBlobStore(blob_dir),
        key=Ed25519PrivateKey.generate(),
        rules=Rules(**rules),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )
    accounts.bootstrap(ctx, ADMIN_TOKEN)
    return ctx


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Context]:
    """A service context on each database."""
    c = make_context(db_url, tmp_path / "blobs", clock)
    yield c
    c.store.db.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def sqlite_ctx(tmp_path: Path, clock: FakeClock) -> Iterator[Context]:
    """A service context on SQLite only (fast service tests)."""
    c = make_context(f"sqlite:///{tmp_path / 'flopex.db'}", tmp_path / "blobs", clock)
    yield c
    c.store.db.dispose()  # type: ignore[attr-defined]
