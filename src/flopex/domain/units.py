"""Units people type and the integers flopex keeps: credits, memory, durations (pure, no I/O).

Money is integer micro-credits (1 credit = 1,000,000 µcr), parsed with :class:`~decimal.Decimal`
and exact integer arithmetic, never floats. Sizes are bytes; times are whole seconds.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from flopex.errors import AmountInvalid, RequestInvalid

UCR_PER_CREDIT = 1_000_000
UCR_DECIMALS = 6
INT64_MAX = 2**63 - 1
GIB = 1 << 30
# Whole seconds whose milliseconds still fit an int64 (callers multiply by 1000).
MAX_SECONDS = INT64_MAX // 1000

# SkyPilot reads KB/MB/GB/TB/PB as powers of two (KiB, MiB, ...); flopex does the same so a
# task means one thing on both. A bare number is GiB.
_MEMORY_UNITS = {
    "b": 1,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "p": 1 << 50,
}
_MEMORY_RE = re.compile(
    r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:(?P<unit>[kmgtp])(?:i?b)?|(?P<bytes>b))?\s*(?P<plus>\+)?$",
    re.IGNORECASE,
)
_NUM = r"[0-9]+(?:\.[0-9]+)?"
_DURATION_RE = re.compile(
    rf"^(?:(?P<d>{_NUM})d)?(?:(?P<h>{_NUM})h)?(?:(?P<m>{_NUM})m)?(?:(?P<s>{_NUM})s)?$"
)
_DURATION_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_MAX_ADJUSTED_EXPONENT = 30


def parse_credits(
    value: str | int | float | Decimal, *, field: str, allow_zero: bool = False
) -> int:
    """Decimal credits (``"1.5"``, ``2``, ``0.000001``) to integer µcr, exactly or not at all."""
    number = _decimal(value, field=field)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by _decimal
    if sign and any(digits):
        raise _amount(field, value, "is negative; write a positive number of credits")
    if not any(digits):
        if allow_zero:
            return 0
        raise _amount(field, value, "is zero; write a positive number of credits")
    kept = list(digits)
    while kept and kept[-1] == 0:  # normalise by hand: Decimal.normalize() rounds to 28 digits
        kept.pop()
        exponent += 1
    if exponent < -UCR_DECIMALS:
        raise _amount(field, value, "is finer than 1 µcr; use at most 6 decimals")
    if len(kept) + exponent + UCR_DECIMALS > 19:  # more than 19 digits of µcr cannot fit int64
        raise _amount(field, value, f"is too large; the most is {format_credits(INT64_MAX)}")
    scale: int = 10 ** (exponent + UCR_DECIMALS)  # exponent >= -6 here, so an int
    ucr = int("".join(map(str, kept))) * scale
    if ucr > INT64_MAX:
        raise _amount(field, value, f"is too large; the most is {format_credits(INT64_MAX)}")
    return ucr


def _decimal(value: str | int | float | Decimal, *, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _amount(field, value, "is not a number; write decimal credits such as 1.5")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _amount(field, value, "is not a number; write decimal credits such as 1.5") from None
    if not number.is_finite():
        raise _amount(field, value, "is not a finite number; write decimal credits such as 1.5")
    return number


def _amount(field: str, value: object, problem: str) -> AmountInvalid:
    return AmountInvalid(f"{field}: {value!r} {problem}", details={"field": field})


def format_credits(ucr: int) -> str:
    """Exact decimal credits of an integer µcr amount, trailing zeros stripped (1500000 -> 1.5)."""
    sign = "-" if ucr < 0 else ""
    whole, frac = divmod(abs(ucr), UCR_PER_CREDIT)
    tail = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{tail}" if tail else f"{sign}{whole}"


def parse_memory_bytes(value: str | int | float, *, field: str) -> int:
    """SkyPilot memory to bytes: GiB when bare (``16``, ``"16+"``, ``"0.5"``), or with a unit
    (``"512MB"``, ``"2GiB"``, ``"1TB"``; KB/MB/GB/TB/PB are binary, as in SkyPilot)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _memory_error(field, value)
    text = str(value).strip()
    match = _MEMORY_RE.match(text)
    if match is None:
        raise _memory_error(field, value)
    scale = 1 if match["bytes"] else _MEMORY_UNITS[(match["unit"] or "g").lower()]
    size = math.ceil(Fraction(match["num"]) * scale)  # exact: Decimal products round
    if size > INT64_MAX:
        raise RequestInvalid(f"{field}: {value!r} is too large", details={"field": field})
    return size


def _memory_error(field: str, value: object) -> RequestInvalid:
    return RequestInvalid(
        f"{field}: {value!r} is not a memory size; write GiB such as 16, 16+ or 0.5, "
        "or a size with a unit such as 512MB or 2GB",
        details={"field": field},
    )


def parse_duration_s(value: str | int | float, *, field: str) -> int:
    """A duration to whole seconds (rounded up): ``"90s"``, ``"30m"``, ``"1h30m"``, ``"1d"``,
    or a bare number of seconds; it must be > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _duration_error(field, value)
    text = str(value).strip().lower()
    seconds = _bare_number(text)
    if seconds is None:
        match = _DURATION_RE.match(text)
        if match is None or not any(match.groups()):
            raise _duration_error(field, value)
        parts = match.groupdict().items()
        seconds = sum((Fraction(n) * _DURATION_UNITS[u] for u, n in parts if n), Fraction(0))
    return _positive_seconds(seconds, field=field, value=value)


def _bare_number(text: str) -> Fraction | None:
    """A plain decimal number as an exact fraction; ``None`` when it is not one."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or abs(number.adjusted()) > _MAX_ADJUSTED_EXPONENT:
        return None  # 1e-999999 is no one's duration, and its exact fraction is costly
    return Fraction(number)


def _duration_error(field: str, value: object) -> RequestInvalid:
    return RequestInvalid(
        f"{field}: {value!r} is not a duration; write seconds, or a duration such as "
        "90s, 30m, 6h, 1d or 1h30m",
        details={"field": field},
    )


def _positive_seconds(seconds: Fraction, *, field: str, value: object) -> int:
    if seconds <= 0:
        raise RequestInvalid(f"{field}: {value!r} must be more than zero", details={"field": field})
    if seconds > MAX_SECONDS:
        raise RequestInvalid(f"{field}: {value!r} is too long", details={"field": field})
    return math.ceil(seconds)


def parse_hours_s(value: str | int | float, *, field: str) -> int:
    """Decimal hours (``0.5``, ``"2"``) to whole seconds, rounded up; it must be > 0."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _hours_error(field, value)
    hours = _bare_number(str(value).strip())
    if hours is None:
        raise _hours_error(field, value)
    return _positive_seconds(hours * 3600, field=field, value=value)


def _hours_error(field: str, value: object) -> RequestInvalid:
    return RequestInvalid(
        f"{field}: {value!r} is not a number of hours; write decimal hours such as 0.5 or 2",
        details={"field": field},
    )
