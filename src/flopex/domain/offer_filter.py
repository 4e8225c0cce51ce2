"""The offer filter language of ``flopex market offers``:
``accelerators=H100 price<2.5 region in jp-kyushu,jp-tokyo`` (terms are ANDed; prices in credits
per device-hour, memory in GiB) and sort keys (``price``, ``-price``, ``region``, ...)."""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flopex.domain.devices import canonical_accelerator
from flopex.errors import RequestInvalid

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "!=": operator.ne,
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
}
_TERM = re.compile(r"^([a-z_]+)(<=|>=|!=|=|<|>)(.+)$")
KEYS = {
    "accelerator": "accelerator",
    "accelerators": "accelerator",
    "price": "price",
    "region": "region",
    "devices": "devices_free",
    "cpus": "cpus_free",
    "memory": "memory_gib",
    "interruptible": "interruptible",
    "simulated": "simulated",
}
NUMERIC = {"price", "devices_free", "cpus_free", "memory_gib"}
BOOLEAN = {"interruptible", "simulated"}


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    values: tuple[Any, ...]

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether an offer row satisfies the term."""
        have = row[self.field]
        if self.op == "in":
            return have in self.values
        return bool(_OPS[self.op](have, self.values[0]))


def _field(key: str) -> str:
    if key not in KEYS:
        close = difflib.get_close_matches(key, list(KEYS), n=1)
        tail = f" (did you mean {close[0]}?)" if close else ""
        raise RequestInvalid(
            f"filter: unknown key {key!r}{tail}",
            code="filter.invalid",
            hint="keys: " + ", ".join(sorted(KEYS)),
        )
    return KEYS[key]


def _value(field: str, text: str) -> Any:
    if field in NUMERIC:
        try:
            return Decimal(text)
        except InvalidOperation:
            raise RequestInvalid(
                f"filter: {text!r} is not a number", code="filter.invalid"
            ) from None
    if field in BOOLEAN:
        return text.lower() in ("1", "true", "yes")
    if field == "accelerator":
        return canonical_accelerator(text) or text
    return text


def parse_filter(expr: str) -> list[Term]:
    """Parse a filter expression into terms (empty expression: no terms)."""
    words = expr.split()
    terms: list[Term] = []
    i = 0
    while i < len(words):
        if i + 2 < len(words) and words[i + 1] == "in":
            field = _field(words[i])
            values = tuple(_value(field, v) for v in words[i + 2].split(",") if v)
            terms.append(Term(field, "in", values))
            i += 3
            continue
        m = _TERM.match(words[i])
        if m is None:
            raise RequestInvalid(
                f"filter: cannot read {words[i]!r}",
                code="filter.invalid",
                hint="write KEY=VALUE, KEY<VALUE or KEY in A,B: 'price<2.5 region in jp-tokyo'",
            )
        field = _field(m.group(1))
        terms.append(Term(field, m.group(2), (_value(field, m.group(3)),)))
        i += 1
    return terms


def sort_key(spec: str) -> tuple[str, bool]:
    """A sort spec (``price`` or ``-price``) as (field, descending)."""
    desc = spec.startswith("-")
    return _field(spec.lstrip("-")), desc


def select(rows: list[dict[str, Any]], expr: str = "", sort: str | None = None) -> list[int]:
    """Indices of the rows matching ``expr``, in ``sort`` order (rows carry the KEYS fields)."""
    terms = parse_filter(expr)
    picked = [i for i, row in enumerate(rows) if all(t.matches(row) for t in terms)]
    if sort:
        field, desc = sort_key(sort)
        picked.sort(key=lambda i: (rows[i][field] is None, rows[i][field]), reverse=desc)
    return picked
