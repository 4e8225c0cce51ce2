"""Build exchange state through the service's public use cases (no direct table writes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex.domain.ledger import sums_to_zero
from flopex.domain.signing import public_key_b64, sign
from flopex.domain.usage import Outcome, OutputEntry, UsageReport
from flopex.service import accounts, attempts, market
from flopex.service.context import Context
from flopex.service.records import AccountRec, AttemptRec, JobRec, NodeRec, OfferRec
from tests.conftest import ADMIN_TOKEN

CREDIT = 1_000_000


def admin(ctx: Context) -> AccountRec:
    return accounts.authenticate(ctx, ADMIN_TOKEN)


def account(ctx: Context, name: str, *roles: str, credits: int = 0) -> AccountRec:
    made = accounts.create_account(ctx, admin(ctx), name, list(roles), None)
    if credits:
        accounts.mint(ctx, admin(ctx), name, credits * CREDIT, None)
    return made.account


@dataclass
class Provider:
    account: AccountRec
    key: Ed25519PrivateKey
    node: NodeRec
    offer: OfferRec


def provider(
    ctx: Context,
    name: str,
    *,
    region: str = "jp-tokyo",
    price_credits: float = 1.0,
    cpus: int = 4,
    accelerator: str | None = None,
    devices: int = 0,
) -> Provider:
    acc = account(ctx, name, "provider")
    key = Ed25519PrivateKey.generate()
    node = market.register_node(
        ctx,
        acc,
        public_key=public_key_b64(key),
        hardware={"cpus": cpus},
        region=region,
        simulated=True,
    )
    offer = market.create_offer(
        ctx,
        acc,
        market.OfferInput(
            node_id=node.id,
            accelerator=accelerator,
            devices=devices,
            cpus=cpus,
            memory_bytes=8 << 30,
            region=region,
            price_ucr_per_device_hour=int(price_credits * CREDIT),
            interruptible=False,
        ),
    )
    return Provider(acc, key, node, offer)


def heartbeat(ctx: Context, p: Provider) -> market.HeartbeatResult:
    """The node says it is alive (holding nothing)."""
    return market.heartbeat(ctx, p.account, p.node.id, [], False)


def spec(**flopex: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "t", "resources": {"cpus": 1}, "run": "echo hi"}
    if flopex:
        body["flopex"] = flopex
    return body


def claim_one(ctx: Context, p: Provider) -> attempts.Assignment:
    got = attempts.claim(ctx, p.account, p.node.id, 1)
    assert len(got) == 1
    return got[0]


def report(
    p: Provider,
    attempt: AttemptRec,
    *,
    duration_ms: int = 60_000,
    outcome: Outcome = Outcome.COMPLETED,
    exit_code: int = 0,
    outputs: tuple[OutputEntry, ...] = (),
) -> tuple[UsageReport, str]:
    r = UsageReport(
        attempt.id, attempt.lease_epoch, p.node.id, duration_ms, exit_code, outcome, outputs
    )
    return r, sign(p.key, r.payload())


def output(data: bytes, path: str = "out.txt") -> OutputEntry:
    return OutputEntry(path, hashlib.sha256(data).hexdigest(), len(data))


def assert_money_conserved(ctx: Context) -> None:
    with ctx.store.read() as tx:
        balances = tx.ledger.all_balances()
    assert sums_to_zero(list(balances.values()))
    for account_id, b in balances.items():
        if not account_id.endswith(":equity"):
            assert b.available >= 0, account_id


def job_done(job: JobRec) -> bool:
    return job.settled_ms is not None
