"""Accounts, tokens, credits and balances."""

from __future__ import annotations

from fastapi import APIRouter, Query

from flopex.domain.ledger import PLATFORM, Balance, Purpose, ledger_account_id
from flopex.protocol import (
    AccountCreate,
    AccountCreated,
    Balances,
    LedgerAccount,
    LedgerSummary,
    Mint,
    TokenCreated,
    Transfer,
    TransferPage,
)
from flopex.server import views
from flopex.server.deps import Caller, Ctx, IdemKey
from flopex.service import accounts

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.post("/accounts", response_model=AccountCreated, status_code=201)
def create_account(
    body: AccountCreate, ctx: Ctx, caller: Caller, idem: IdemKey = None
) -> AccountCreated:
    """Admin: create an account; its token is shown once."""
    made = accounts.create_account(ctx, caller, body.name, body.roles, idem)
    return AccountCreated(account=views.account(made.account), token=made.token)


@router.get("/accounts/me", response_model=Balances)
def me(ctx: Ctx, caller: Caller) -> Balances:
    """The caller's account, roles and balances."""
    return views.balances(caller, accounts.balances(ctx, caller))


@router.post("/accounts/me/tokens", response_model=TokenCreated, status_code=201)
def new_token(ctx: Ctx, caller: Caller) -> TokenCreated:
    """A new token for the caller's account (shown once)."""
    token_id, token = accounts.rotate_token(ctx, caller)
    return TokenCreated(id=token_id, token=token)


@router.delete("/tokens/{token_id}", status_code=204)
def revoke(token_id: str, ctx: Ctx, caller: Caller) -> None:
    """Revoke one of the caller's tokens."""
    accounts.revoke_token(ctx, caller, token_id)


@router.post("/credits/mint", response_model=Transfer, status_code=201)
def mint(body: Mint, ctx: Ctx, caller: Caller, idem: IdemKey = None) -> Transfer:
    """Admin: mint credits into an account (double entry from the platform's equity)."""
    return views.transfer(accounts.mint(ctx, caller, body.account, body.amount_ucr, idem))


@router.get("/ledger", response_model=LedgerSummary)
def ledger(ctx: Ctx, caller: Caller) -> LedgerSummary:
    """Admin or auditor: every ledger account and the double-entry sums (always zero)."""
    totals = accounts.ledger_totals(ctx, caller)
    rows = [
        LedgerAccount(
            id=k,
            debits_pending_ucr=b.debits_pending,
            debits_posted_ucr=b.debits_posted,
            credits_pending_ucr=b.credits_pending,
            credits_posted_ucr=b.credits_posted,
        )
        for k, b in sorted(totals.items())
    ]
    fees = totals.get(ledger_account_id(PLATFORM, Purpose.FEES), Balance())
    return LedgerSummary(
        accounts=rows,
        sum_ucr=sum(b.net_posted for b in totals.values()),
        pending_ucr=sum(b.credits_pending - b.debits_pending for b in totals.values()),
        held_ucr=sum(b.debits_pending for b in totals.values()),
        fees_ucr=fees.net_posted,
    )


@router.get("/accounts/me/transfers", response_model=TransferPage)
def my_transfers(
    ctx: Ctx, caller: Caller, limit: int = Query(100, ge=1, le=500), cursor: str | None = None
) -> TransferPage:
    """The caller's own ledger history."""
    rows = accounts.transfers(ctx, caller, limit, cursor)
    nxt = rows[-1].id if len(rows) == limit else None
    return TransferPage(transfers=[views.transfer(r) for r in rows], next_cursor=nxt)
