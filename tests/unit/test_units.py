"""Units: decimal credits to exact µcr and back, SkyPilot memory in GiB, durations and hours."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flopex.domain.units import (
    GIB,
    INT64_MAX,
    UCR_PER_CREDIT,
    format_credits,
    parse_credits,
    parse_duration_s,
    parse_hours_s,
    parse_memory_bytes,
)
from flopex.errors import AmountInvalid, RequestInvalid


def test_constants_have_their_documented_values() -> None:
    assert UCR_PER_CREDIT == 1_000_000
    assert INT64_MAX == 9_223_372_036_854_775_807
    assert GIB == 1_073_741_824


@pytest.mark.parametrize(
    ("value", "ucr"),
    [
        ("1.5", 1_500_000),
        ("2", 2_000_000),
        (2, 2_000_000),
        (0.1, 100_000),
        (Decimal("0.000001"), 1),
        ("0.0000010", 1),
        (" 3.25 ", 3_250_000),
        ("1e3", 1_000_000_000),
        ("1.50000000000000000000000000000000", 1_500_000),
    ],
)
def test_credits_parse_exactly_to_microcredits(
    value: str | int | float | Decimal, ucr: int
) -> None:
    assert parse_credits(value, field="budget") == ucr


def test_float_credits_go_through_their_decimal_text_not_binary_arithmetic() -> None:
    # 0.29 * 1e6 == 289999.99999999994 in binary floating point
    assert parse_credits(0.29, field="budget") == 290_000


def test_largest_amount_is_int64_max_microcredits() -> None:
    assert parse_credits("9223372036854.775807", field="budget") == INT64_MAX


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("abc", "not a number"),
        ("", "not a number"),
        ("1,5", "not a number"),
        ([1], "not a number"),
        (True, "not a number"),
        ("NaN", "not a finite number"),
        ("inf", "not a finite number"),
        (float("-inf"), "not a finite number"),
        ("-1", "negative"),
        (-0.5, "negative"),
        ("0", "zero"),
        ("-0.000", "zero"),
        ("0.0000001", "finer than 1 µcr"),
        ("1.0000000000000000000000000001", "finer than 1 µcr"),
        ("9223372036854.775808", "too large"),
        ("1e400", "too large"),
    ],
)
def test_bad_amounts_are_refused_naming_field_and_value(value: object, words: str) -> None:
    with pytest.raises(AmountInvalid) as info:
        parse_credits(value, field="flopex.budget")  # type: ignore[arg-type]
    assert info.value.message.startswith("flopex.budget: ")
    assert repr(value) in info.value.message
    assert words in info.value.message
    assert info.value.details == {"field": "flopex.budget"}
    assert info.value.code == "money.amount_invalid"


def test_zero_is_accepted_only_when_allowed() -> None:
    assert parse_credits("0", field="x", allow_zero=True) == 0
    assert parse_credits(0, field="x", allow_zero=True) == 0
    with pytest.raises(AmountInvalid):
        parse_credits("-1", field="x", allow_zero=True)


@pytest.mark.parametrize(
    ("ucr", "text"),
    [
        (1_500_000, "1.5"),
        (1, "0.000001"),
        (0, "0"),
        (2_000_000, "2"),
        (-1_500_000, "-1.5"),
        (-1, "-0.000001"),
        (INT64_MAX, "9223372036854.775807"),
    ],
)
def test_credits_format_exactly_without_trailing_zeros(ucr: int, text: str) -> None:
    assert format_credits(ucr) == text


@given(st.integers(min_value=1, max_value=INT64_MAX))
def test_format_then_parse_gives_back_the_same_microcredits(ucr: int) -> None:
    assert parse_credits(format_credits(ucr), field="x") == ucr


@given(
    st.one_of(
        st.text(max_size=30),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.decimals(allow_nan=True, allow_infinity=True),
    )
)
def test_parsed_credits_are_never_negative(value: str | int | float | Decimal) -> None:
    try:
        ucr = parse_credits(value, field="x", allow_zero=True)
    except AmountInvalid:
        return
    assert 0 <= ucr <= INT64_MAX


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (16, 16 * GIB),
        ("16", 16 * GIB),
        ("16+", 16 * GIB),
        (0.5, GIB // 2),
        ("0.5", GIB // 2),
        ("512MB", 512 << 20),
        ("512MiB", 512 << 20),
        ("512mb", 512 << 20),
        ("2GB", 2 * GIB),
        ("2GiB", 2 * GIB),
        ("2 GB", 2 * GIB),
        ("1TB", 1 << 40),
        ("1KB", 1024),
        ("100B", 100),
        (0, 0),
    ],
)
def test_memory_is_gib_by_default_and_units_are_binary_as_in_skypilot(
    value: str | int | float, size: int
) -> None:
    assert parse_memory_bytes(value, field="resources.memory") == size


def test_fractional_memory_rounds_up_to_whole_bytes() -> None:
    assert parse_memory_bytes("0.3", field="m") == 322_122_548  # 0.3 GiB = 322122547.2 bytes


@pytest.mark.parametrize("value", ["-1", -1, "lots", "16++", "16 XB", "", True, [16], "1e3"])
def test_bad_memory_is_refused_with_examples(value: object) -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_memory_bytes(value, field="resources.memory")  # type: ignore[arg-type]
    assert info.value.message.startswith("resources.memory: ")
    assert "16+" in info.value.message
    assert info.value.details == {"field": "resources.memory"}


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("6h", 21_600),
        ("1d", 86_400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93_784),
        ("1.5h", 5400),
        ("90", 90),
        (90, 90),
        (0.5, 1),
        ("6H", 21_600),
    ],
)
def test_durations_parse_to_whole_seconds(value: str | int | float, seconds: int) -> None:
    assert parse_duration_s(value, field="deadline") == seconds


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0s", "more than zero"),
        (0, "more than zero"),
        ("-5", "more than zero"),
        ("30ms", "not a duration"),
        ("m", "not a duration"),
        ("6 hours", "not a duration"),
        ("30m1h", "not a duration"),
        ("", "not a duration"),
        (True, "not a duration"),
        ("1e999999", "not a duration"),
        ("99999999999999999999d", "too long"),
    ],
)
def test_bad_durations_are_refused(value: object, words: str) -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_duration_s(value, field="flopex.deadline")  # type: ignore[arg-type]
    assert info.value.message.startswith("flopex.deadline: ")
    assert words in info.value.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0.5, 1800), ("2", 7200), (1, 3600), ("0.0001", 1), ("1.25", 4500)],
)
def test_hours_parse_to_whole_seconds_rounding_up(value: str | int | float, seconds: int) -> None:
    assert parse_hours_s(value, field="flopex.max_hours") == seconds


@pytest.mark.parametrize("value", [0, "0", -1, "2h", "two", None, True, float("nan")])
def test_bad_hours_are_refused(value: object) -> None:
    with pytest.raises(RequestInvalid) as info:
        parse_hours_s(value, field="flopex.max_hours")  # type: ignore[arg-type]
    assert info.value.message.startswith("flopex.max_hours: ")
    assert info.value.details == {"field": "flopex.max_hours"}
