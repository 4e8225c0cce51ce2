"""Use cases: nodes register, publish and withdraw offers, and heartbeat."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from flopex.domain.devices import parse_accelerator
from flopex.domain.ids import new_id
from flopex.domain.signing import load_public_key
from flopex.domain.states import AttemptState
from flopex.errors import AmountInvalid, Conflict, NotFound, RequestInvalid
from flopex.service import log
from flopex.service.accounts import Role, require
from flopex.service.context import Context
from flopex.service.placement import match_queued, offer_views
from flopex.service.records import AccountRec, NodeRec, OfferRec
from flopex.service.retry import retrying

_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_PRICE_UCR = 10**15  # 1e9 credits per device-hour: far beyond any real price


def check_region(region: str) -> str:
    """Regions are lowercase names like ``jp-kyushu``."""
    if not _REGION.match(region):
        raise RequestInvalid(
            f"bad region {region!r}",
            hint="use lowercase letters, digits and '-', e.g. jp-tokyo",
            details={"field": "region"},
        )
    return region


@retrying
def register_node(
    ctx: Context,
    actor: AccountRec,
    *,
    public_key: str,
    hardware: dict[str, Any],
    region: str,
    simulated: bool,
) -> NodeRec:
    """Register a node by its Ed25519 key; re-registering the same key updates its facts."""
    require(actor, Role.PROVIDER)
    if load_public_key(public_key) is None:
        raise RequestInvalid(
            "public_key is not a base64 Ed25519 key", details={"field": "public_key"}
        )
    check_region(region)
    now = ctx.now_ms()
    with ctx.store.write() as tx:
        existing = tx.node_by_key(public_key)
        if existing is not None:
            if existing.account_id != actor.id:
                raise Conflict("this node key belongs to another account", code="node.key_taken")
            tx.update_node(
                existing.id,
                hardware=json.dumps(hardware),
                region=region,
                simulated=simulated,
                last_seen_ms=now,
                draining=False,
            )
            node = tx.get_node(existing.id)
            assert node is not None
            log.record(ctx, tx, "node.updated", node=node.id, region=region, simulated=simulated)
            return node
        node_id = new_id("node")
        idx = log.record(
            ctx,
            tx,
            "node.registered",
            node=node_id,
            account=actor.id,
            public_key=public_key,
            region=region,
            simulated=simulated,
        )
        node = NodeRec(
            id=node_id,
            account_id=actor.id,
            public_key=public_key,
            hardware=json.dumps(hardware),
            region=region,
            simulated=simulated,
            created_ms=now,
            last_seen_ms=now,
            draining=False,
            log_index=idx,
        )
        tx.insert_node(node)
        return node


def get_node(ctx: Context, node_id: str) -> NodeRec:
    """Public facts of a node."""
    with ctx.store.read() as tx:
        node = tx.get_node(node_id)
    if node is None:
        raise NotFound(f"node {node_id} not found", code="node.not_found")
    return node


def _own_node(ctx: Context, actor: AccountRec, node_id: str) -> NodeRec:
    node = get_node(ctx, node_id)
    if node.account_id != actor.id:
        raise NotFound(f"node {node_id} not found", code="node.not_found")
    return node


@dataclass(frozen=True)
class OfferInput:
    node_id: str
    accelerator: str | None
    devices: int
    cpus: int
    memory_bytes: int
    region: str | None
    price_ucr_per_device_hour: int
    interruptible: bool


@retrying
def create_offer(ctx: Context, actor: AccountRec, offer: OfferInput) -> OfferRec:
    """Publish an offer of a node's capacity, then place queued jobs that now fit."""
    require(actor, Role.PROVIDER)
    node = _own_node(ctx, actor, offer.node_id)
    if offer.price_ucr_per_device_hour <= 0 or offer.price_ucr_per_device_hour > MAX_PRICE_UCR:
        raise AmountInvalid(
            f"price_ucr_per_device_hour must be > 0 and <= {MAX_PRICE_UCR}, "
            f"got {offer.price_ucr_per_device_hour}",
            details={"field": "price_ucr_per_device_hour"},
        )
    accelerator = None
    if offer.accelerator:
        accelerator, _ = parse_accelerator(offer.accelerator, field="accelerator")
    if accelerator is not None and offer.devices < 1:
        raise RequestInvalid(
            "an accelerator offer needs devices >= 1", details={"field": "devices"}
        )
    if offer.cpus < 1 or offer.memory_bytes < 0 or offer.devices < 0:
        raise RequestInvalid("cpus must be >= 1, memory and devices >= 0")
    rec = OfferRec(
        id=new_id("off"),
        node_id=node.id,
        account_id=actor.id,
        accelerator=accelerator,
        devices=offer.devices if accelerator else 0,
        cpus=offer.cpus,
        memory_bytes=offer.memory_bytes,
        region=check_region(offer.region or node.region),
        price_ucr_per_device_hour=offer.price_ucr_per_device_hour,
        interruptible=offer.interruptible,
        simulated=node.simulated,
        active=True,
        used_devices=0,
        used_cpus=0,
        used_memory_bytes=0,
        created_ms=ctx.now_ms(),
    )
    with ctx.store.write() as tx:
        idx = log.record(
            ctx,
            tx,
            "offer.created",
            offer=rec.id,
            node=rec.node_id,
            account=rec.account_id,
            accelerator=rec.accelerator,
            devices=rec.devices,
            cpus=rec.cpus,
            memory_bytes=rec.memory_bytes,
            region=rec.region,
            price_ucr_per_device_hour=rec.price_ucr_per_device_hour,
            interruptible=rec.interruptible,
            simulated=rec.simulated,
        )
        rec = replace(rec, log_index=idx)
        tx.insert_offer(rec)
        woken = match_queued(ctx, tx)
    ctx.on_work(woken)
    return rec


@retrying
def withdraw_offer(ctx: Context, actor: AccountRec, offer_id: str) -> None:
    """The owner withdraws an offer: no new matches; running work continues."""
    with ctx.store.write() as tx:
        rec = tx.get_offer(offer_id)
        if rec is None or rec.account_id != actor.id:
            raise NotFound(f"offer {offer_id} not found", code="offer.not_found")
        tx.set_offer_active(offer_id, False)
        log.record(ctx, tx, "offer.withdrawn", offer=offer_id)


def list_offers_with_liveness(ctx: Context) -> tuple[list[OfferRec], dict[str, bool]]:
    """Active offers, and per offer whether its node heartbeats."""
    with ctx.store.read() as tx:
        recs = tx.offers()
        views = offer_views(ctx, tx, recs)
    return recs, {v.id: v.node_alive for v in views}


@dataclass(frozen=True)
class HeartbeatResult:
    renewed: list[str]
    cancel: list[str]
    fenced: list[str]
    lease_ttl_s: float


@retrying
def heartbeat(
    ctx: Context, actor: AccountRec, node_id: str, running: list[tuple[str, int]], draining: bool
) -> HeartbeatResult:
    """A node is alive: renew the leases it holds, tell it what to cancel and what it lost.

    Liveness (``last_seen``) is not logged: it is the server's observation, not a state a party
    agreed to; a node starting or stopping to drain is."""
    node = _own_node(ctx, actor, node_id)
    now = ctx.now_ms()
    expires = now + int(ctx.rules.lease_ttl_s * 1000)
    renewed: list[str] = []
    cancel: list[str] = []
    fenced: list[str] = []
    with ctx.store.write() as tx:
        tx.update_node(node_id, last_seen_ms=now, draining=draining)
        if draining != node.draining:
            log.record(ctx, tx, "node.draining", node=node_id, draining=draining)
        for attempt_id, epoch in running:
            if tx.renew_lease(attempt_id, epoch, node_id, expires):
                renewed.append(attempt_id)
                attempt = tx.get_attempt(attempt_id)
                if attempt is not None and attempt.cancel_requested:
                    cancel.append(attempt_id)
            else:
                attempt = tx.get_attempt(attempt_id)
                if attempt is None or attempt.node_id != node_id:
                    continue
                if attempt.state != AttemptState.RUNNING or attempt.lease_epoch != epoch:
                    fenced.append(attempt_id)
    return HeartbeatResult(renewed, cancel, fenced, ctx.rules.lease_ttl_s)
