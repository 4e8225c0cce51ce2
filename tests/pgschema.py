"""A PostgreSQL schema of its own for a test run or a benchmark, dropped afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    """``FLOPEX_TEST_DATABASE_URL``, else the machine's local ``test`` database."""
    return os.environ.get("FLOPEX_TEST_DATABASE_URL", PG_DEFAULT)


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema; sqlalchemy's OperationalError if PG is down."""
    base = pg_base_url()
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base, connect_args={"connect_timeout": 3})
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base else "?"
        try:
            yield f"{base}{sep}options=-csearch_path%3D{schema}"
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
