"""Request dependencies: the service context and the authenticated account."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from flopex.service import accounts
from flopex.service.context import Context
from flopex.service.records import AccountRec


def context(request: Request) -> Context:
    """The service context the app was built with."""
    ctx: Context = request.app.state.ctx
    return ctx


async def current_account(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> AccountRec:
    """The account of the bearer token (401 when missing, unknown or revoked)."""
    token = None
    if authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    ctx = context(request)
    cached = accounts.authenticate_cached(ctx, token)  # no thread hop for a busy client
    if cached is not None:
        return cached
    return await run_in_threadpool(accounts.authenticate, ctx, token)


Ctx = Annotated[Context, Depends(context)]
Caller = Annotated[AccountRec, Depends(current_account)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
