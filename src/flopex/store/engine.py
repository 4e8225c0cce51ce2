"""The one database session factory: engines for SQLite (WAL) and PostgreSQL, and transactions.

SQLite allows one writer. Our write transactions queue on a lock instead of spinning on ``database
is locked``: a thread lock within the process, then an advisory ``flock`` on ``<db>.writelock``
across processes (``flopex server --workers N``), which hands the turn over at once, where SQLite's
own busy handler would sleep up to 100 ms between tries. Other programs still meet busy_timeout.

PostgreSQL write transactions are serialised the same way, by a transaction-scoped advisory lock:
every job touches a few hot rows (the consumer's and the platform's ledger accounts, an offer's
capacity), so letting writers interleave row locks only bought deadlocks and retries, and the
tamper-evident log to come appends in one order anyway. Reads never wait for it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from flopex.errors import LocalError, TransientConflict

# The advisory lock every PostgreSQL write transaction takes first (an arbitrary constant: "fpx").
WRITER_LOCK_KEY = 0x667078

# PostgreSQL's deadlock_detected and serialization_failure: the transaction lost a race and
# changed nothing; running the use case again is safe.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # pysqlite's implicit transactions are off (isolation_level=None); begin explicitly.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LocalError(
                    f"cannot create the data dir: {exc}", code="store.unavailable"
                ) from None
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "isolation_level": None, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return create_engine(url, poolclass=NullPool)


class _FileLock:
    """An exclusive advisory lock on a file, held across processes while a writer writes."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None

    def close(self) -> None:
        return None


def _process_lock(engine: Engine) -> _FileLock | _NoLock:
    database = engine.url.database
    if not database or database == ":memory:":
        return _NoLock()
    return _FileLock(database + ".writelock")


class Database:
    """Engine plus transaction contexts; ``write()`` for use cases that change state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.kind = engine.dialect.name
        self._write_lock = threading.Lock() if self.kind == "sqlite" else None
        self._file_lock = _process_lock(engine) if self.kind == "sqlite" else _NoLock()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (committed on success, rolled back on error)."""
        if self._write_lock is not None:
            with self._write_lock, self._file_lock, self.engine.connect() as conn:
                conn.info["write"] = True
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info["write"] = False
            return
        try:
            with self.engine.begin() as conn:
                # One writer at a time, across every server process sharing this database.
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})")
                yield conn
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
                raise TransientConflict(f"transaction lost a race: {exc.orig}") from exc
            raise

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """One read-only transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close pooled connections (and the cross-process lock file)."""
        self.engine.dispose()
        self._file_lock.close()
        self._file_lock = _NoLock()
