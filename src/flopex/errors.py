"""The one exception tree of flopex; every error a user can cause has a stable dotted code.

    FlopexError                      code            HTTP
    ├── InvalidInput                 (422 family)
    │   ├── SpecInvalid              job.spec_invalid      422
    │   ├── PriceInvalid             money.amount_invalid  422
    │   └── RequestInvalid           request.invalid       422
    ├── Unauthorized                 auth.unauthorized     401
    ├── Forbidden                    auth.forbidden        403
    ├── NotFound                     *.not_found           404
    ├── Conflict                     (409 family)
    │   ├── InsufficientFunds        ledger.insufficient_funds 402
    │   ├── AttemptFenced            attempt.fenced        409
    │   ├── TransientConflict        store.conflict        409 (retried by the server first)
    │   ├── InvalidTransition        job.invalid_state     409
    │   └── IdempotencyConflict      idempotency.key_reused 409
    ├── TooLarge                     request.too_large     413
    ├── Unavailable                  server.unreachable    503 (client side)
    └── LocalError                   local.*               (CLI/agent: file missing, disk full)

The server maps errors to HTTP with :data:`HTTP_STATUS` (one table); the CLI prints
``error[code]: message`` and ``hint: ...``; the client rebuilds the same error from the body.
"""

from __future__ import annotations

from typing import Any


class FlopexError(Exception):
    """Base of every flopex error: a stable ``code``, a message, a hint and details."""

    code: str = "internal"
    default_hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hint = hint if hint is not None else self.default_hint
        self.details = details or {}

    def to_body(self) -> dict[str, Any]:
        """The wire shape: ``{"error": {"code", "message", "hint", "details"}}``."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "hint": self.hint,
                "details": self.details,
            }
        }


class InvalidInput(FlopexError):
    code = "request.invalid"
    default_hint = "fix the value named in the message and try again"


class SpecInvalid(InvalidInput):
    code = "job.spec_invalid"
    default_hint = "check the task YAML; `flopex job validate FILE` checks it without submitting"


class AmountInvalid(InvalidInput):
    code = "money.amount_invalid"
    default_hint = "amounts are decimal credits, > 0, at most 6 decimals (1 credit = 1,000,000 µcr)"


class RequestInvalid(InvalidInput):
    code = "request.invalid"


class Unauthorized(FlopexError):
    code = "auth.unauthorized"
    default_hint = "pass --token, set FLOPEX_TOKEN or run `flopex login`"


class Forbidden(FlopexError):
    code = "auth.forbidden"
    default_hint = "this action needs another role; ask an admin"


class NotFound(FlopexError):
    code = "not_found"
    default_hint = "check the id; `flopex job list` shows your jobs"


class Conflict(FlopexError):
    code = "conflict"


class InsufficientFunds(Conflict):
    code = "ledger.insufficient_funds"
    default_hint = "ask an admin to mint credits (`flopex credits mint`), or lower the budget"


class AttemptFenced(Conflict):
    code = "attempt.fenced"
    default_hint = "this attempt's lease moved on; drop the work, it will not be paid"


class TransientConflict(Conflict):
    code = "store.conflict"
    default_hint = "the exchange was busy with a conflicting change; retry the request"


class InvalidTransition(Conflict):
    code = "job.invalid_state"
    default_hint = "`flopex job show ID` shows the job's state"


class IdempotencyConflict(Conflict):
    code = "idempotency.key_reused"
    default_hint = "use a new Idempotency-Key for a different request"


class TooLarge(FlopexError):
    code = "request.too_large"
    default_hint = "send less: the server's limit is in the message"


class Unavailable(FlopexError):
    code = "server.unreachable"
    default_hint = "is `flopex server` running? check --server / FLOPEX_SERVER"


class LocalError(FlopexError):
    code = "local.error"


HTTP_STATUS: dict[type[FlopexError], int] = {
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    InsufficientFunds: 402,
    Conflict: 409,
    TooLarge: 413,
    Unavailable: 503,
    LocalError: 400,
    FlopexError: 500,
}


def http_status(error: FlopexError) -> int:
    """The HTTP status for an error: the entry of its nearest class in :data:`HTTP_STATUS`."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


_BY_STATUS: dict[int, type[FlopexError]] = {
    401: Unauthorized,
    402: InsufficientFunds,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: InvalidInput,
    503: Unavailable,
}


def _by_code() -> dict[str, type[FlopexError]]:
    """Every error class by its class-level code."""
    found: dict[str, type[FlopexError]] = {}
    todo: list[type[FlopexError]] = [FlopexError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo.extend(cls.__subclasses__())
    return found


def from_body(status: int, body: Any) -> FlopexError:
    """Rebuild the error a server sent (client side), keeping its code, hint and details."""
    cls = _BY_STATUS.get(status, FlopexError)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        exact = _by_code().get(str(err.get("code")))
        if exact is not None and http_status(exact("")) == status:
            cls = exact  # the most specific class, so callers may catch e.g. AttemptFenced
        return cls(
            str(err.get("message", "")),
            code=str(err.get("code", cls.code)),
            hint=err.get("hint"),
            details=err.get("details") or {},
        )
    return cls(f"server answered HTTP {status}", code=cls.code)


def from_info(info: dict[str, Any]) -> FlopexError:
    """Rebuild an error from the ``error`` object of a body (one entry of a batch's results),
    as the most specific class of its code."""
    cls = _by_code().get(str(info.get("code")), FlopexError)
    return cls(
        str(info.get("message", "")),
        code=str(info.get("code", cls.code)),
        hint=info.get("hint"),
        details=info.get("details") or {},
    )
