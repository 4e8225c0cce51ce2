"""Typed readers for the fields of a job spec: one place that turns a bad value into a
:class:`~flopex.errors.SpecInvalid` naming the dotted field, the expected type and a fix."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

from flopex.domain.units import (
    INT64_MAX,
    MAX_SECONDS,
    parse_credits,
    parse_hours_s,
    parse_memory_bytes,
)
from flopex.errors import InvalidInput, SpecInvalid

T = TypeVar("T")
# Explicit bounds (TigerBeetle style): beyond these a spec is a mistake, not a job.
MAX_LIST_ITEMS = 1 << 20  # long enough for any prompt's token ids
MAX_JSON_DEPTH = 32
_REGION = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def invalid(path: str, problem: str, *, hint: str | None = None, **details: Any) -> SpecInvalid:
    """A spec error whose message starts with the dotted field path."""
    message = f"{path}: {problem}" if path else f"task spec: {problem}"
    return SpecInvalid(message, hint=hint, details={"field": path or None, **details})


def type_name(value: object) -> str:
    """How a value's type reads in an error message."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if type(value) in names:
        return f"{names[type(value)]} ({value!r})"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, date):
        return f"a timestamp ({value.isoformat()})"
    return type(value).__name__


def wrap(path: str, parse: Callable[..., T], value: Any) -> T:
    """Call a units/devices parser with ``field=path``, turning its error into SpecInvalid."""
    try:
        return parse(value, field=path)
    except InvalidInput as exc:
        raise SpecInvalid(
            exc.message, hint=exc.hint, details={**exc.details, "field": path}
        ) from None


def join(prefix: str, key: str) -> str:
    """The dotted path of ``key`` under ``prefix``."""
    return f"{prefix}.{key}" if prefix else key


def to_int(value: Any, path: str, *, minimum: int, maximum: int = INT64_MAX) -> int:
    """A whole number in [minimum, maximum] (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, f"expected a whole number, got {type_name(value)}")
    if not minimum <= value <= maximum:
        raise invalid(path, f"must be between {minimum} and {maximum}, got {value}")
    return value


def to_number(value: Any, path: str, *, minimum: float, maximum: float = math.inf) -> float:
    """A finite number in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(path, f"expected a number, got {type_name(value)}")
    if not minimum <= value <= maximum:
        raise invalid(path, f"must be between {minimum:g} and {maximum:g}, got {value}")
    return float(value)


def to_text(value: Any, path: str, *, allow_empty: bool = True) -> str:
    """A string (``run: {}`` is refused here, not stringified)."""
    if not isinstance(value, str):
        raise invalid(path, f"expected a string, got {type_name(value)}")
    if not allow_empty and not value.strip():
        raise invalid(path, "must not be empty")
    return value


def to_bool(value: Any, path: str) -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise invalid(path, f"expected true or false, got {type_name(value)}")
    return value


def to_mapping(value: Any, path: str) -> Mapping[str, Any]:
    """A mapping of fields."""
    if not isinstance(value, Mapping):
        raise invalid(path, f"expected a mapping, got {type_name(value)}")
    return value


def to_list(value: Any, path: str) -> list[Any]:
    """A list of at most :data:`MAX_LIST_ITEMS` items."""
    if not isinstance(value, list | tuple):
        raise invalid(path, f"expected a list, got {type_name(value)}")
    if len(value) > MAX_LIST_ITEMS:
        raise invalid(path, f"lists {len(value)} items; the most is {MAX_LIST_ITEMS}")
    return list(value)


def to_region(value: Any, path: str) -> str:
    """A region name: lowercase words joined by ``-`` (``jp-tokyo``)."""
    text = to_text(value, path)
    if _REGION.fullmatch(text):
        return text
    fixed = text.strip().lower().replace("_", "-").replace(" ", "-")
    if _REGION.fullmatch(fixed):
        problem = f"{text!r}: regions are lowercase (did you mean {fixed!r}?)"
        raise invalid(path, problem, suggestion=fixed)
    raise invalid(
        path, f"{text!r} is not a region; write lowercase words joined by -, e.g. jp-tokyo"
    )


def to_json(value: Any, path: str, depth: int = 0) -> Any:
    """A copy of plain JSON data (string keys, finite numbers) no deeper than a bound."""
    if depth > MAX_JSON_DEPTH:
        raise invalid(path, f"nested more than {MAX_JSON_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, Mapping):
        return {
            to_text(k, join(path, str(k))): to_json(v, join(path, str(k)), depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [to_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise invalid(
        path, f"expected JSON data (strings, numbers, lists, mappings), got {type_name(value)}"
    )


class Block:
    """One mapping of the spec: refuses unknown keys on creation, then reads typed fields.

    A key given as null counts as absent (as in SkyPilot)."""

    def __init__(
        self,
        data: Mapping[str, Any],
        prefix: str,
        allowed: Sequence[str],
        unsupported: Mapping[str, str] | None = None,
    ) -> None:
        self.data = data
        self.prefix = prefix
        for key in data:
            _check_key(str(key), prefix, allowed, unsupported or {})

    def path(self, key: str) -> str:
        """The dotted path of one of this block's keys."""
        return join(self.prefix, key)

    def get(self, key: str, *, required: bool = False) -> Any:
        """The raw value, ``None`` when absent or null."""
        value = self.data.get(key)
        if value is None and required:
            raise invalid(self.path(key), "this field is required")
        return value

    def text(self, key: str, *, required: bool = False, allow_empty: bool = True) -> str | None:
        """An optional string field."""
        value = self.get(key, required=required)
        return None if value is None else to_text(value, self.path(key), allow_empty=allow_empty)

    def required_text(self, key: str) -> str:
        """A string field that must be given and not blank."""
        return to_text(self.get(key, required=True), self.path(key), allow_empty=False)

    def integer(
        self, key: str, *, minimum: int, maximum: int = INT64_MAX, required: bool = False
    ) -> int | None:
        """An optional whole-number field."""
        value = self.get(key, required=required)
        if value is None:
            return None
        return to_int(value, self.path(key), minimum=minimum, maximum=maximum)

    def number(
        self, key: str, *, minimum: float, maximum: float = math.inf, default: float
    ) -> float:
        """A number field with a default."""
        value = self.get(key)
        if value is None:
            return default
        return to_number(value, self.path(key), minimum=minimum, maximum=maximum)

    def mapping(self, key: str, *, required: bool = False) -> Mapping[str, Any] | None:
        """An optional nested mapping."""
        value = self.get(key, required=required)
        return None if value is None else to_mapping(value, self.path(key))

    def sequence(self, key: str) -> list[Any] | None:
        """An optional list."""
        value = self.get(key)
        return None if value is None else to_list(value, self.path(key))

    def choice(self, key: str, choices: Sequence[str]) -> str | None:
        """One of a few words."""
        value = self.text(key)
        if value is not None and value not in choices:
            raise invalid(self.path(key), f"{value!r} is not one of {', '.join(choices)}")
        return value

    def regions(self, key: str) -> tuple[str, ...] | None:
        """A non-empty list of region names, duplicates dropped."""
        items = self.sequence(key)
        if items is None:
            return None
        if not items:
            raise invalid(self.path(key), "must list at least one region")
        path = self.path(key)
        return tuple(dict.fromkeys(to_region(r, f"{path}[{i}]") for i, r in enumerate(items)))

    def json_mapping(self, key: str) -> dict[str, Any] | None:
        """A mapping of plain JSON data, copied."""
        value = self.mapping(key)
        return None if value is None else dict(to_json(value, self.path(key)))

    def exact_or(
        self,
        human: str,
        exact: str,
        parse_human: Callable[[Any, str], int],
        parse_exact: Callable[[Any, str], int],
    ) -> int | None:
        """A quantity people write with a unit (``budget``) or machines write exactly
        (``budget_ucr``); giving both is an error."""
        given_human, given_exact = self.get(human), self.get(exact)
        if given_human is not None and given_exact is not None:
            raise invalid(self.path(exact), f"give {human} or {exact}, not both")
        if given_human is not None:
            return parse_human(given_human, self.path(human))
        if given_exact is not None:
            return parse_exact(given_exact, self.path(exact))
        return None


def _check_key(
    key: str, prefix: str, allowed: Sequence[str], unsupported: Mapping[str, str]
) -> None:
    if key in allowed:
        return
    path = join(prefix, key)
    if key in unsupported:
        raise SpecInvalid(
            f"{path} is a SkyPilot field that flopex does not support",
            hint=unsupported[key],
            details={"field": path},
        )
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    suggestion = close[0] if close else None
    tail = f" (did you mean {suggestion!r}?)" if suggestion else ""
    raise invalid(
        path,
        f"unknown field{tail}",
        hint=f"fields allowed in {prefix or 'the top level'}: {', '.join(allowed)}",
        suggestion=suggestion,
    )


def parse_money(value: Any, path: str) -> int:
    """Decimal credits to µcr (> 0)."""
    return wrap(path, parse_credits, value)


def ucr(value: Any, path: str) -> int:
    """An exact µcr amount (> 0)."""
    return to_int(value, path, minimum=1)


def parse_hours(value: Any, path: str) -> int:
    """Decimal hours to whole seconds (> 0)."""
    return wrap(path, parse_hours_s, value)


def seconds(value: Any, path: str) -> int:
    """An exact number of seconds (> 0)."""
    return to_int(value, path, minimum=1, maximum=MAX_SECONDS)


def parse_memory(value: Any, path: str) -> int:
    """SkyPilot memory (GiB, or with a unit) to bytes."""
    return wrap(path, parse_memory_bytes, value)


def byte_count(value: Any, path: str) -> int:
    """An exact number of bytes (>= 0)."""
    return to_int(value, path, minimum=0)


def parse_size(value: Any, path: str) -> int:
    """A data size: bytes as an integer, or a string with a unit (``2GB``, binary as SkyPilot)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, str):
        return parse_memory(value, path)
    return byte_count(value, path)
