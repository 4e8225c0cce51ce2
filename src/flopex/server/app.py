"""The exchange server: builds the service context from settings and serves ``/v1``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import flopex
from flopex.config import ServerSettings
from flopex.domain.signing import public_key_b64
from flopex.errors import FlopexError, http_status
from flopex.keyfiles import load_or_create_key, load_or_create_token
from flopex.protocol import Health
from flopex.server.limits import BodyLimit
from flopex.server.notify import WorkNotifier
from flopex.server.routes import accounts, agent, blobs, jobs, market
from flopex.server.routes import log as log_routes
from flopex.service import accounts as account_service
from flopex.service import attempts
from flopex.service import log as log_service
from flopex.service.context import Context, Rules
from flopex.store.blobs import FileBlobStore
from flopex.store.engine import Database, make_engine
from flopex.store.migrate import upgrade
from flopex.store.sql import SqlStore

log = logging.getLogger("flopex.server")


@dataclass(frozen=True)
class ServerInfo:
    """What the server tells its operator on start."""

    data_dir: Path
    database: str
    admin_token_path: Path
    admin_created: bool
    exchange_public_key: str


def build_context(settings: ServerSettings) -> tuple[Context, ServerInfo, Database]:
    """Open the database (migrated), the exchange key and admin token; build the context."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(make_engine(settings.resolved_database_url()))
    upgrade(db.engine)
    key, _ = load_or_create_key(data_dir / "exchange.key")
    token_path = data_dir / "admin.token"
    admin_token, _ = load_or_create_token(token_path, "fpx_admin_")
    rules = Rules(
        fee_bps=settings.fee_bps,
        lease_ttl_s=settings.lease_ttl_s,
        claim_ttl_s=settings.claim_ttl_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        max_attempts=settings.max_attempts,
        default_time_limit_s=settings.default_time_limit_s,
        max_blob_bytes=settings.max_blob_bytes,
        log_origin=settings.log_origin,
    )
    ctx = Context(store=SqlStore(db), blobs=FileBlobStore(data_dir / "blobs"), key=key, rules=rules)
    created = account_service.bootstrap(ctx, admin_token)
    info = ServerInfo(data_dir, db.kind, token_path, created, public_key_b64(key))
    return ctx, info, db


async def _reaper(ctx: Context, interval_s: float) -> None:
    # Leases ran out while this server was down too: give every node one lease TTL to heartbeat
    # after a start before any lease counts as lost (the provider did nothing wrong).
    await asyncio.sleep(ctx.rules.lease_ttl_s)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(attempts.reap, ctx)
        except Exception:  # keep reaping; the next round retries
            log.exception("reaper round failed")


async def _checkpointer(ctx: Context, interval_s: float) -> None:
    """Hash new events into the tree and sign a checkpoint, each round the log grew."""
    while True:
        try:
            await run_in_threadpool(log_service.integrate, ctx)
        except Exception:  # keep going; the next round retries
            log.exception("checkpoint round failed")
        await asyncio.sleep(interval_s)


def app_from_env() -> FastAPI:
    """The app of one worker process when ``flopex server --workers N`` runs several.

    Each worker opens its own engine and pool from the same settings (``FLOPEX_*``), reads the
    same exchange key and admin token from the data dir, and runs its own reaper; every claim and
    transition is a conditional UPDATE, so workers may race freely. A placement wakes long-polls
    in its own worker at once and in the others within the claim's fallback poll.
    """
    settings = ServerSettings()
    ctx, info, _db = build_context(settings)
    return create_app(ctx, settings=settings, database=info.database)


def create_app(ctx: Context, *, settings: ServerSettings, database: str) -> FastAPI:
    """The FastAPI app over a built context."""
    notifier = WorkNotifier()
    ctx.on_work = notifier.wake

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        notifier.bind(asyncio.get_running_loop())
        tasks = [
            asyncio.create_task(_reaper(ctx, settings.reaper_interval_s)),
            asyncio.create_task(_checkpointer(ctx, settings.checkpoint_interval_s)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="flopex exchange", version=flopex.__version__, lifespan=lifespan)
    app.state.ctx = ctx
    app.state.notifier = notifier
    for module in (accounts, market, jobs, agent, blobs, log_routes):
        app.include_router(module.router)
    _errors(app)

    @app.get("/v1/health", response_model=Health, tags=["health"])
    def health() -> Health:
        """Liveness, version and database kind."""
        return Health(
            status="ok",
            version=flopex.__version__,
            database=database,
            exchange_public_key=public_key_b64(ctx.key),
        )

    app.add_middleware(
        BodyLimit, max_body_bytes=settings.max_body_bytes, max_blob_bytes=settings.max_blob_bytes
    )
    return app


def _errors(app: FastAPI) -> None:
    """The one place errors become HTTP answers."""

    @app.exception_handler(FlopexError)
    async def flopex_error(_: Request, exc: FlopexError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        path = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        err = FlopexError(
            f"{path or 'request'}: {first.get('msg', 'invalid')}",
            code="request.invalid",
            hint="see /openapi.json for the expected shape",
            details={"field": path, "errors": [_plain(e) for e in exc.errors()[:10]]},
        )
        return JSONResponse(err.to_body(), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "request.method_not_allowed"}.get(exc.status_code, "http")
        err = FlopexError(str(exc.detail), code=code)
        return JSONResponse(err.to_body(), status_code=exc.status_code)


def _plain(e: object) -> dict[str, object]:
    d = dict(e) if isinstance(e, dict) else {}
    return {
        "loc": [str(x) for x in d.get("loc", ())],
        "msg": str(d.get("msg", "")),
        "type": str(d.get("type", "")),
    }
