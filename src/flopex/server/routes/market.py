"""Nodes, heartbeats and offers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query

from flopex.domain import offer_filter
from flopex.domain.units import GIB, UCR_PER_CREDIT
from flopex.protocol import (
    Heartbeat,
    HeartbeatReply,
    Node,
    NodeCreate,
    Offer,
    OfferCreate,
    OfferList,
)
from flopex.server import views
from flopex.server.deps import Caller, Ctx
from flopex.service import market

router = APIRouter(prefix="/v1", tags=["market"])


@router.post("/nodes", response_model=Node, status_code=201)
def register(body: NodeCreate, ctx: Ctx, caller: Caller) -> Node:
    """Register (or re-register) a node by its Ed25519 public key."""
    rec = market.register_node(
        ctx,
        caller,
        public_key=body.public_key,
        hardware=body.hardware,
        region=body.region,
        simulated=body.simulated,
    )
    return views.node(rec)


@router.get("/nodes/{node_id}", response_model=Node)
def get_node(node_id: str, ctx: Ctx, caller: Caller) -> Node:
    """Public facts of a node."""
    return views.node(market.get_node(ctx, node_id))


@router.post("/nodes/{node_id}/heartbeat", response_model=HeartbeatReply)
def heartbeat(node_id: str, body: Heartbeat, ctx: Ctx, caller: Caller) -> HeartbeatReply:
    """Renew the node's leases; learn what to cancel and what was fenced."""
    running = [(r.attempt_id, r.lease_epoch) for r in body.running]
    res = market.heartbeat(ctx, caller, node_id, running, body.draining)
    return HeartbeatReply(
        renewed=res.renewed, cancel=res.cancel, fenced=res.fenced, lease_ttl_s=res.lease_ttl_s
    )


@router.post("/offers", response_model=Offer, status_code=201)
def create_offer(body: OfferCreate, ctx: Ctx, caller: Caller) -> Offer:
    """Publish an offer of a node's capacity."""
    rec = market.create_offer(
        ctx,
        caller,
        market.OfferInput(
            node_id=body.node_id,
            accelerator=body.accelerator,
            devices=body.devices,
            cpus=body.cpus,
            memory_bytes=body.memory_bytes,
            region=body.region,
            price_ucr_per_device_hour=body.price_ucr_per_device_hour,
            interruptible=body.interruptible,
        ),
    )
    return views.offer(rec, online=True)


@router.get("/offers", response_model=OfferList)
def list_offers(
    ctx: Ctx,
    caller: Caller,
    filter_expr: Annotated[str, Query(alias="filter", max_length=500)] = "",
    sort: Annotated[str | None, Query(max_length=40)] = None,
) -> OfferList:
    """Active offers (capacity left, node online), filtered (``price<2.5 region in a``), sorted."""
    recs, online = market.list_offers_with_liveness(ctx)
    rows = [views.offer(r, online[r.id]) for r in recs]
    picked = offer_filter.select([_filter_row(o) for o in rows], filter_expr, sort)
    return OfferList(offers=[rows[i] for i in picked])


def _filter_row(o: Offer) -> dict[str, Any]:
    return {
        "accelerator": o.accelerator,
        "price": Decimal(o.price_ucr_per_device_hour) / UCR_PER_CREDIT,
        "region": o.region,
        "devices_free": o.devices_free,
        "cpus_free": o.cpus_free,
        "memory_gib": Decimal(o.memory_bytes) / GIB,
        "interruptible": o.interruptible,
        "simulated": o.simulated,
    }


@router.delete("/offers/{offer_id}", status_code=204)
def withdraw(offer_id: str, ctx: Ctx, caller: Caller) -> None:
    """The owner withdraws an offer."""
    market.withdraw_offer(ctx, caller, offer_id)
