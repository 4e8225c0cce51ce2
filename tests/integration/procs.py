"""Real processes over loopback: a server and agents started as ``python -m flopex``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from flopex.client.http import Client
from flopex.errors import Unavailable

FAST_ENV = {
    "FLOPEX_LEASE_TTL_S": "3",
    "FLOPEX_HEARTBEAT_INTERVAL_S": "0.5",
    "FLOPEX_CLAIM_TTL_S": "10",
    "FLOPEX_REAPER_INTERVAL_S": "0.3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def flopex_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "flopex", *args]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPEX_")}
    return env | FAST_ENV | extra


class ServerProc:
    """A running ``flopex server`` with its admin client."""

    def __init__(self, root: Path, database_url: str | None = None, workers: int = 1) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = base_env(**({"FLOPEX_DATABASE_URL": database_url} if database_url else {}))
        self._workers = workers
        self.log = (root / "server.log").open("wb")
        self.proc = self._start()
        self.admin_token = (root / "server" / "admin.token").read_text().strip()
        self.admin = Client(self.url, self.admin_token)
        self._clients: list[Client] = []

    def _start(self) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen(
            flopex_cmd(
                "server",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.root / "server"),
                "--workers",
                str(self._workers),
            ),
            env=self._env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()
        return self.proc

    def kill(self) -> None:
        """kill -9 the server (its database and data dir stay)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def start_again(self) -> None:
        """Start the server again on the same port and data dir."""
        self._start()

    def client(self, token: str | None) -> Client:
        """A client for ``token``, closed when the server stops."""
        c = Client(self.url, token)
        self._clients.append(c)
        return c

    def _wait(self) -> None:
        probe = Client(self.url, None, timeout_s=2)
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError("server exited:\n" + (self.root / "server.log").read_text())
                try:
                    probe.health()
                    return
                except Unavailable:
                    time.sleep(0.1)
        finally:
            probe.close()
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        for c in (self.admin, *self._clients):
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def start_agent(
    server: ServerProc,
    token: str,
    name: str,
    *,
    region: str = "jp-tokyo",
    price: str = "1",
    cpus: int = 2,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """An agent process with its own data dir (own node key)."""
    with (server.root / f"agent-{name}.log").open("wb") as log:  # the child keeps its own copy
        return _popen_agent(server, token, name, region, price, cpus, extra, log)


def _popen_agent(
    server: ServerProc,
    token: str,
    name: str,
    region: str,
    price: str,
    cpus: int,
    extra: tuple[str, ...],
    log: IO[bytes],
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        flopex_cmd(
            "agent",
            "--server",
            server.url,
            "--token",
            token,
            "--region",
            region,
            "--price-per-hour",
            price,
            "--cpus",
            str(cpus),
            "--memory",
            "1",
            "--claim-wait",
            "2",
            "--drain-timeout",
            "5",
            "--data-dir",
            str(server.root / f"agent-{name}"),
            *extra,
        ),
        env=base_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate: object, timeout_s: float = 30, interval_s: float = 0.1) -> None:
    """Poll ``predicate()`` until true, or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval_s)
    raise AssertionError("condition not met in time")


@contextmanager
def running_server(
    root: Path, database_url: str | None = None, workers: int = 1
) -> Iterator[ServerProc]:
    server = ServerProc(root, database_url, workers)
    try:
        yield server
    finally:
        server.stop()
