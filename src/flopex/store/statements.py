"""Statements built once and reused with bound parameters.

Building a SQLAlchemy Core statement (``select(t).where(t.c.id == x)``) and computing its cache key
costs more CPU than SQLite takes to run it. The hot paths of a job's lifecycle therefore execute
statements made once per shape, here, with ``bindparam`` placeholders: SQLAlchemy memoises the
cache key of a statement object, so only the parameters change from call to call.

Parameter names: ``k_id`` for the key of :func:`by_id`, ``w_<column>`` for WHERE equality,
``w_in`` for an expanding IN list and ``v_<column>`` for SET values (SQLAlchemy reserves plain
column names for its own use in UPDATE).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Insert, Select, Table, Update, and_, bindparam, insert, select, update


@functools.cache
def by_id(table: Table) -> Select[Any]:
    """``SELECT * FROM table WHERE id = :k_id``."""
    return select(table).where(table.c.id == bindparam("k_id"))


@functools.cache
def inserter(table: Table) -> Insert:
    """``INSERT INTO table`` taking its columns from the parameters."""
    return insert(table)


@functools.cache
def updater(
    table: Table, set_cols: tuple[str, ...], where_eq: tuple[str, ...], where_in: str | None = None
) -> Update:
    """``UPDATE table SET c = :v_c ... WHERE w = :w_w ... [AND where_in IN :w_in]``."""
    cond = [table.c[c] == bindparam(f"w_{c}") for c in where_eq]
    if where_in is not None:
        cond.append(table.c[where_in].in_(bindparam("w_in", expanding=True)))
    return update(table).where(and_(*cond)).values({c: bindparam(f"v_{c}") for c in set_cols})


def update_params(
    values: dict[str, Any], where: dict[str, Any], where_in: list[Any] | None = None
) -> dict[str, Any]:
    """The parameters for a statement from :func:`updater`."""
    params = {f"v_{k}": v for k, v in values.items()} | {f"w_{k}": v for k, v in where.items()}
    if where_in is not None:
        params["w_in"] = where_in
    return params


def run_update(
    conn: Any,
    table: Table,
    values: dict[str, Any],
    where: dict[str, Any],
    *,
    in_column: str | None = None,
    in_values: list[Any] | None = None,
) -> int:
    """Execute a cached UPDATE; returns the number of rows changed."""
    stmt = updater(table, tuple(values), tuple(where), in_column)
    result = conn.execute(stmt, update_params(values, where, in_values))
    return int(result.rowcount)


__all__ = ["by_id", "inserter", "run_update", "update_params", "updater"]
