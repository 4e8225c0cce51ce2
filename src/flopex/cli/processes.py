"""Long-running commands: ``flopex server``, ``agent``, ``db upgrade`` and ``demo``."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from flopex.agent.hardware import detect
from flopex.agent.loop import Agent, AgentConfig
from flopex.cli.output import err, friendly, out
from flopex.cli.settings import client
from flopex.config import ServerSettings, default_agent_dir
from flopex.domain.units import GIB, parse_credits
from flopex.errors import FlopexError
from flopex.keyfiles import load_or_create_key
from flopex.server.app import build_context, create_app
from flopex.store.engine import Database, make_engine
from flopex.store.migrate import upgrade

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def _settings(
    data_dir: Path | None, host: str | None, port: int | None, workers: int | None = None
) -> ServerSettings:
    overrides: dict[str, object] = {}
    if workers is not None:
        overrides["workers"] = workers
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    return ServerSettings(**overrides)  # type: ignore[arg-type]


@friendly
def server(
    host: Annotated[str | None, typer.Option("--host", help="default 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option("--port", help="default 8750")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="FLOPEX_DATA_DIR")] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="server processes (FLOPEX_WORKERS, default 1)")
    ] = None,
) -> None:
    """Run the exchange server (SQLite in the data dir, or FLOPEX_DATABASE_URL)."""
    settings = _settings(data_dir, host, port, workers)
    ctx, info, _db = build_context(settings)
    err.print(f"flopex server on http://{settings.host}:{settings.port} ({info.database})")
    err.print(f"data dir: {info.data_dir}")
    err.print(
        f"admin token: {info.admin_token_path}" + (" (created now)" if info.admin_created else "")
    )
    err.print(f"exchange public key: {info.exchange_public_key}")
    if settings.workers > 1:
        err.print(f"workers: {settings.workers} processes")
        _db.dispose()
        # The workers rebuild their settings from the environment: pass what the flags said.
        os.environ["FLOPEX_DATA_DIR"] = str(settings.data_dir)
        if settings.database_url:
            os.environ["FLOPEX_DATABASE_URL"] = settings.database_url
        uvicorn.run(
            "flopex.server.app:app_from_env",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
        return
    app = create_app(ctx, settings=settings, database=info.database)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


@db_app.command("upgrade")
@friendly
def db_upgrade(
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
) -> None:
    """Apply the database migrations (the server also does this on start)."""
    settings = _settings(data_dir, None, None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(make_engine(settings.resolved_database_url()))
    upgrade(db.engine)
    out.print(f"database at head ({db.kind})")


@friendly
def agent(
    region: Annotated[str, typer.Option("--region", help="e.g. jp-kyushu")],
    price_per_hour: Annotated[
        str, typer.Option("--price-per-hour", help="credits per device-hour")
    ],
    server: Annotated[str | None, typer.Option("--server")] = None,
    token: Annotated[str | None, typer.Option("--token")] = None,
    devices: Annotated[str | None, typer.Option("--devices", help="e.g. H100:1")] = None,
    simulated: Annotated[bool, typer.Option("--simulated", help="list simulated devices")] = False,
    interruptible: Annotated[bool, typer.Option("--interruptible")] = False,
    cpus: Annotated[int | None, typer.Option("--cpus", help="vCPUs to offer")] = None,
    memory: Annotated[float | None, typer.Option("--memory", help="GiB to offer")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="node key and work")] = None,
    drain_timeout: Annotated[float, typer.Option("--drain-timeout", help="seconds")] = 30.0,
    claim_wait: Annotated[float, typer.Option("--claim-wait", help="long-poll seconds")] = 20.0,
) -> None:
    """Run a provider agent: list this machine, pull matched work, run it, report usage."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(message)s")
    price = parse_credits(price_per_hour, field="--price-per-hour")
    root = data_dir or default_agent_dir()
    key, created = load_or_create_key(root / "node.key")
    hardware = detect(devices=devices, simulated=simulated)
    config = AgentConfig(
        region=region,
        price_ucr_per_device_hour=price,
        interruptible=interruptible,
        cpus=cpus,
        memory_bytes=int(memory * GIB) if memory is not None else None,
        drain_timeout_s=drain_timeout,
        claim_wait_s=claim_wait,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        err.print(f"agent: signal {signum}, draining")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with client(server, token) as c:
        node = Agent(c, key, hardware, config, root / "work")
        node.register()
        sim = " simulated" if hardware.simulated else ""
        err.print(
            f"agent: node {node.node_id} ({'new key' if created else 'key'} {root / 'node.key'}), "
            f"offer {node.offer_id}: {hardware.accelerator or 'cpu'}{sim} in {region}"
        )
        try:
            node.run(stop)
        except FlopexError:
            stop.set()
            raise
    err.print("agent: drained, bye")


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="leave the server running")] = False,
    jobs: Annotated[int, typer.Option("--jobs", help="how many jobs")] = 10,
) -> None:
    """Run the whole exchange on loopback: server, 4 agents, real jobs, failover, settlement."""
    from flopex.cli.demo import run_demo

    raise typer.Exit(run_demo(keep=keep, job_count=jobs))
