"""Use cases: accounts, tokens, authentication, credits and balances."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from flopex.domain.ids import new_id
from flopex.domain.ledger import PLATFORM, Balance, Purpose, ledger_account_id
from flopex.domain.signing import public_key_b64
from flopex.errors import Conflict, Forbidden, NotFound, RequestInvalid, Unauthorized
from flopex.service import log
from flopex.service.context import Context
from flopex.service.idempotency import idempotent
from flopex.service.ports import Tx
from flopex.service.records import AccountRec, TransferRec
from flopex.service.retry import retrying


class Role(StrEnum):
    CONSUMER = "consumer"
    PROVIDER = "provider"
    VALIDATOR = "validator"
    AUDITOR = "auditor"
    ADMIN = "admin"


ADMIN_NAME = "admin"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
USER_PURPOSES = (Purpose.AVAILABLE, Purpose.EARNINGS)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh secret API token."""
    return "fpx_" + secrets.token_urlsafe(32)


def require(account: AccountRec, role: Role) -> None:
    """Raise :class:`Forbidden` unless the account has ``role`` (admins have every role)."""
    if role.value not in account.roles and Role.ADMIN.value not in account.roles:
        raise Forbidden(f"account {account.name} lacks the {role.value} role")


def authenticate(ctx: Context, token: str | None) -> AccountRec:
    """The account owning a bearer token, or :class:`Unauthorized`."""
    if not token:
        raise Unauthorized("missing bearer token")
    digest = token_hash(token)
    account = ctx.tokens.get(digest)
    if account is not None:
        return account
    with ctx.store.read() as tx:
        account = tx.account_by_token(digest)
    if account is None:
        raise Unauthorized("unknown or revoked token")
    ctx.tokens.put(digest, account)
    return account


def authenticate_cached(ctx: Context, token: str | None) -> AccountRec | None:
    """The account of a token remembered moments ago, without touching the database; else None."""
    return ctx.tokens.get(token_hash(token)) if token else None


def _open_ledger(tx: Tx, owner_id: str) -> None:
    for purpose in USER_PURPOSES:
        tx.ledger.open_account(owner_id, purpose)


def bootstrap(ctx: Context, admin_token: str) -> bool:
    """First start: the platform's ledger accounts and the admin account. True if created now."""
    with ctx.store.write() as tx:
        tx.ledger.open_account(PLATFORM, Purpose.EQUITY)
        tx.ledger.open_account(PLATFORM, Purpose.FEES)
        if tx.account_by_name(ADMIN_NAME) is not None:
            if tx.account_by_token(token_hash(admin_token)) is None:
                admin = tx.account_by_name(ADMIN_NAME)
                assert admin is not None
                _new_token(ctx, tx, admin.id, admin_token)
            return False
        log.record(ctx, tx, "log.genesis", exchange_key=public_key_b64(ctx.key))
        rec = _new_account(ctx, tx, ADMIN_NAME, [Role.ADMIN.value])
        _new_token(ctx, tx, rec.id, admin_token)
        return True


def _new_account(ctx: Context, tx: Tx, name: str, roles: list[str]) -> AccountRec:
    """Log and insert an account (name committed, not shown) with its ledger accounts."""
    account_id = new_id("acc")
    index = log.record(
        ctx,
        tx,
        "account.created",
        account=account_id,
        roles=roles,
        private={"name": name},
        party=account_id,
    )
    rec = AccountRec(account_id, name, tuple(roles), ctx.now_ms(), log_index=index)
    if not tx.insert_account(rec):
        raise Conflict(f"account name {name!r} is taken", code="account.name_taken")
    _open_ledger(tx, rec.id)
    return rec


def _new_token(ctx: Context, tx: Tx, account_id: str, token: str) -> str:
    """Store a token's hash and log that the account has a new credential (not its hash)."""
    token_id = new_id("tok")
    log.record(ctx, tx, "token.created", token=token_id, account=account_id)
    tx.insert_token(token_id, account_id, token_hash(token), ctx.now_ms())
    return token_id


@dataclass(frozen=True)
class NewAccount:
    account: AccountRec
    token: str | None  # shown once; None on an idempotent replay


@retrying
def create_account(
    ctx: Context, actor: AccountRec, name: str, roles: list[str], idem_key: str | None
) -> NewAccount:
    """Admin: create an account with roles and return its first token (shown once)."""
    require(actor, Role.ADMIN)
    if not _NAME.match(name):
        raise RequestInvalid(
            f"bad account name {name!r}",
            hint="use 1-63 lowercase letters, digits, '.', '_' or '-'",
            details={"field": "name"},
        )
    try:
        role_set = sorted({Role(r).value for r in roles} or {Role.CONSUMER.value})
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise RequestInvalid(f"unknown role in {roles}", hint=f"roles: {known}") from None
    with ctx.store.write() as tx:
        replay = idempotent(tx, actor.id, idem_key, "account", {"name": name, "roles": role_set})
        if replay is not None:
            existing = tx.get_account(replay)
            assert existing is not None
            return NewAccount(existing, None)
        rec = _new_account(ctx, tx, name, role_set)
        token = new_token()
        _new_token(ctx, tx, rec.id, token)
        idempotent(tx, actor.id, idem_key, "account", {"name": name, "roles": role_set}, rec.id)
        return NewAccount(rec, token)


@retrying
def rotate_token(ctx: Context, actor: AccountRec) -> tuple[str, str]:
    """A new token for the caller's own account: (token id, token)."""
    token = new_token()
    with ctx.store.write() as tx:
        token_id = _new_token(ctx, tx, actor.id, token)
    return token_id, token


@retrying
def revoke_token(ctx: Context, actor: AccountRec, token_id: str) -> None:
    """Revoke one of the caller's tokens."""
    with ctx.store.write() as tx:
        if not tx.revoke_token(token_id, actor.id, ctx.now_ms()):
            raise NotFound(f"token {token_id} not found", code="token.not_found")
        log.record(ctx, tx, "token.revoked", token=token_id, account=actor.id)
    ctx.tokens.clear()


@retrying
def mint(
    ctx: Context, actor: AccountRec, account_name: str, amount_ucr: int, idem_key: str | None
) -> TransferRec:
    """Admin: credit an account from the platform's equity (double entry)."""
    require(actor, Role.ADMIN)
    if amount_ucr <= 0:
        raise RequestInvalid("amount must be > 0", details={"field": "amount_ucr"})
    with ctx.store.write() as tx:
        target = tx.account_by_name(account_name) or tx.get_account(account_name)
        if target is None:
            raise NotFound(f"account {account_name!r} not found", code="account.not_found")
        transfer_id = f"mint:{idem_key}" if idem_key else new_id("tr")
        replay = tx.ledger.get_transfer(transfer_id)
        done = tx.ledger.transfer(
            transfer_id,
            ledger_account_id(PLATFORM, Purpose.EQUITY),
            ledger_account_id(target.id, Purpose.AVAILABLE),
            amount_ucr,
            pending=False,
            now_ms=ctx.now_ms(),
            memo="mint",
            log_index=tx.next_log_index(),
        )
        if replay is None:
            log.transfer(ctx, tx, done)
        return done


def balances(ctx: Context, account: AccountRec) -> dict[Purpose, Balance]:
    """The account's ledger balances, read from the ledger."""
    with ctx.store.read() as tx:
        return tx.ledger.balances(account.id)


def ledger_totals(ctx: Context, actor: AccountRec) -> dict[str, Balance]:
    """Admin or auditor: every ledger account's totals (they must sum to zero)."""
    if Role.AUDITOR.value not in actor.roles:
        require(actor, Role.ADMIN)
    with ctx.store.read() as tx:
        return tx.ledger.all_balances()


def transfers(
    ctx: Context, account: AccountRec, limit: int, after: str | None
) -> list[TransferRec]:
    """The account's own transfers."""
    with ctx.store.read() as tx:
        return tx.ledger.transfers_of(account.id, limit=limit, after=after)
