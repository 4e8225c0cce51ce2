"""The tamper-evident log over SQL: entries, subtree hashes, checkpoints, cosignatures, openings.

A mixin of :class:`flopex.store.sql.SqlTx`, which gives it the transaction's connection.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, delete, func, select

from flopex.store import schema as t
from flopex.store.statements import inserter

_LOG_MAX = select(func.max(t.log_entries.c.idx))
_LOG_RANGE = (
    select(t.log_entries.c.data)
    .where(t.log_entries.c.idx >= bindparam("w_start"), t.log_entries.c.idx < bindparam("w_end"))
    .order_by(t.log_entries.c.idx)
)
_LOG_NODE = select(t.log_nodes.c.hash).where(
    t.log_nodes.c.level == bindparam("w_level"), t.log_nodes.c.idx == bindparam("w_idx")
)
_LOG_LATEST_CHECKPOINT = (
    select(t.log_checkpoints).order_by(t.log_checkpoints.c.size.desc()).limit(1)
)


class SqlLog:
    """The log's reads and writes inside one open transaction ``conn``."""

    conn: Connection
    _next_log_idx: int | None

    def append_log(self, data: str, now_ms: int) -> int:
        """Append an event; the index is the next free one (writers are serialised)."""
        if self._next_log_idx is None:
            self._next_log_idx = self.log_size()
        idx = self._next_log_idx
        self.conn.execute(inserter(t.log_entries), {"idx": idx, "data": data, "created_ms": now_ms})
        self._next_log_idx = idx + 1
        return idx

    def append_logs(self, datas: list[str], now_ms: int) -> int:
        """Append events in one statement; returns the index of the first."""
        if self._next_log_idx is None:
            self._next_log_idx = self.log_size()
        first = self._next_log_idx
        rows = [{"idx": first + i, "data": d, "created_ms": now_ms} for i, d in enumerate(datas)]
        if rows:
            self.conn.execute(inserter(t.log_entries), rows)
        self._next_log_idx = first + len(rows)
        return first

    def next_log_index(self) -> int:
        """The index the next appended event will get (writers are serialised)."""
        if self._next_log_idx is None:
            self._next_log_idx = self.log_size()
        return self._next_log_idx

    def log_size(self) -> int:
        """How many events the log holds."""
        top = self.conn.execute(_LOG_MAX).scalar()
        return 0 if top is None else int(top) + 1

    def log_entries(self, start: int, end: int) -> list[str]:
        """Events ``[start, end)`` in order."""
        rows = self.conn.execute(_LOG_RANGE, {"w_start": start, "w_end": end}).all()
        return [r.data for r in rows]

    def log_node(self, level: int, index: int) -> bytes:
        """A stored complete-subtree hash."""
        row = self.conn.execute(_LOG_NODE, {"w_level": level, "w_idx": index}).first()
        if row is None:
            raise KeyError((level, index))
        return bytes.fromhex(row.hash)

    def put_log_nodes(self, rows: list[tuple[int, int, bytes]]) -> None:
        """Store complete-subtree hashes."""
        if rows:
            params = [{"level": lv, "idx": i, "hash": h.hex()} for lv, i, h in rows]
            self.conn.execute(inserter(t.log_nodes), params)

    def put_log_opening(self, idx: int, account_id: str | None, fields: str) -> None:
        """Keep the salts and contents behind event ``idx``'s commitments for its party."""
        params = {"idx": idx, "account_id": account_id, "fields": fields}
        self.conn.execute(inserter(t.log_openings), params)

    def log_openings(self, start: int, end: int, account_id: str | None) -> list[tuple[int, str]]:
        """(index, fields JSON) of the openings in ``[start, end)``: one party's, or all."""
        c = t.log_openings.c
        q = select(c.idx, c.fields).where(c.idx >= start, c.idx < end)
        if account_id is not None:
            q = q.where(c.account_id == account_id)
        return [(int(r.idx), str(r.fields)) for r in self.conn.execute(q.order_by(c.idx))]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        """(size, note) of the newest checkpoint."""
        row = self.conn.execute(_LOG_LATEST_CHECKPOINT).first()
        return None if row is None else (int(row.size), row.note)

    def insert_checkpoint(self, size: int, note: str, now_ms: int) -> None:
        """Store a signed checkpoint."""
        params = {"size": size, "note": note, "created_ms": now_ms}
        self.conn.execute(inserter(t.log_checkpoints), params)

    def checkpoint_at(self, size: int) -> str | None:
        """The signed checkpoint note of one size."""
        c = t.log_checkpoints.c
        row = self.conn.execute(select(c.note).where(c.size == size)).first()
        return None if row is None else str(row.note)

    def put_cosignature(self, size: int, witness: str, line: str, now_ms: int) -> None:
        """Store (or replace) a witness's cosignature line."""
        c = t.log_cosignatures.c
        self.conn.execute(delete(t.log_cosignatures).where(c.size == size, c.witness == witness))
        self.conn.execute(
            inserter(t.log_cosignatures),
            {"size": size, "witness": witness, "line": line, "created_ms": now_ms},
        )

    def cosignatures(self, size: int) -> list[str]:
        """Cosignature lines on one checkpoint, by witness name."""
        c = t.log_cosignatures.c
        rows = self.conn.execute(select(c.line).where(c.size == size).order_by(c.witness)).all()
        return [str(r.line) for r in rows]

    def newest_cosigned(self, witnesses: int) -> int | None:
        """The largest size with at least ``witnesses`` cosignatures."""
        c = t.log_cosignatures.c
        row = self.conn.execute(
            select(c.size)
            .group_by(c.size)
            .having(func.count() >= witnesses)
            .order_by(c.size.desc())
            .limit(1)
        ).first()
        return None if row is None else int(row.size)
