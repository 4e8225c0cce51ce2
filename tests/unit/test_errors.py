"""Error codes map to HTTP statuses in one table and survive the wire."""

from __future__ import annotations

from flopex.errors import (
    AttemptFenced,
    InsufficientFunds,
    NotFound,
    SpecInvalid,
    TooLarge,
    Unauthorized,
    from_body,
    http_status,
)


def test_status_table() -> None:
    assert http_status(SpecInvalid("x")) == 422
    assert http_status(Unauthorized("x")) == 401
    assert http_status(NotFound("x")) == 404
    assert http_status(AttemptFenced("x")) == 409
    assert http_status(InsufficientFunds("x")) == 402
    assert http_status(TooLarge("x")) == 413


def test_error_round_trips_through_its_body() -> None:
    sent = SpecInvalid("resources.accelerators: unknown device 'H10'", details={"field": "f"})
    got = from_body(422, sent.to_body())
    assert got.code == "job.spec_invalid"
    assert got.message == sent.message
    assert got.hint == sent.hint
    assert got.details == {"field": "f"}


def test_the_client_rebuilds_the_most_specific_class() -> None:
    got = from_body(409, AttemptFenced("attempt a is ended").to_body())
    assert isinstance(got, AttemptFenced)
    assert got.code == "attempt.fenced"


def test_a_code_sent_with_an_unexpected_status_falls_back_to_the_status_class() -> None:
    got = from_body(404, AttemptFenced("odd").to_body())
    assert type(got) is NotFound
    assert got.code == "attempt.fenced"
