"""Run a write use case again when its transaction lost a race (PostgreSQL deadlock or
serialization failure). Every use case is one transaction whose effects outside the database
happen only after commit, so running it again is safe; the number of tries is bounded."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flopex.errors import TransientConflict

P = ParamSpec("P")
R = TypeVar("R")

MAX_TRIES = 5
BACKOFF_S = 0.002


def retrying(fn: Callable[P, R]) -> Callable[P, R]:
    """Retry ``fn`` on :class:`TransientConflict`, with jittered exponential backoff."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(MAX_TRIES - 1):
            try:
                return fn(*args, **kwargs)
            except TransientConflict:
                time.sleep(random.uniform(0, BACKOFF_S * 2**attempt))
        return fn(*args, **kwargs)

    return wrapper
