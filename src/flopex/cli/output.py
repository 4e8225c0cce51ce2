"""How the CLI talks to people: data on stdout (tables or ``--json``), progress and errors on
stderr as ``error[code]: message`` plus a ``hint:`` line, never a traceback."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from flopex.errors import FlopexError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def report_error(exc: FlopexError) -> None:
    """Print a flopex error the house way."""
    # Text, not markup: a code in brackets or a message with brackets must print as written.
    err.print(Text.assemble((f"error[{exc.code}]", "bold red"), ": ", exc.message))
    if exc.hint:
        err.print(Text.assemble(("hint:", "dim"), " ", exc.hint))


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn flopex errors (and Ctrl-C) into a message and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FlopexError as exc:
            report_error(exc)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except OSError as exc:
            report_error(
                FlopexError(str(exc), code="local.os_error", hint="check the path and disk")
            )
            raise typer.Exit(1) from None

    return wrapper


def emit_json(data: Any) -> None:
    """Write data as JSON on stdout."""
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(
            data, indent=2, default=lambda o: o.model_dump() if isinstance(o, BaseModel) else str(o)
        )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
