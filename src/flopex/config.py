"""Settings read at the edges only (env prefix ``FLOPEX_``); the domain takes plain arguments."""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """The server's default data dir: the user data dir of flopex."""
    return Path(platformdirs.user_data_dir("flopex")) / "server"


class ServerSettings(BaseSettings):
    """Everything ``flopex server`` can be told, from flags or ``FLOPEX_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="FLOPEX_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8750
    fee_bps: int = Field(default=500, ge=0, le=10_000)
    lease_ttl_s: float = Field(default=15.0, gt=0)
    claim_ttl_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=3.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    default_time_limit_s: int = Field(default=3600, gt=0)
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    max_blob_bytes: int = Field(default=256 << 20, gt=0)
    reaper_interval_s: float = Field(default=1.0, gt=0)
    workers: int = Field(default=1, ge=1, le=64)
    checkpoint_interval_s: float = Field(default=1.0, gt=0)
    log_origin: str = Field(default="flopex.local/exchange", pattern=r"^[^\s+]+$")

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, else SQLite (WAL) in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'flopex.db'}"


class ClientSettings(BaseSettings):
    """Where the CLI finds the exchange: flags, then ``FLOPEX_SERVER``/``FLOPEX_TOKEN``, login."""

    model_config = SettingsConfigDict(env_prefix="FLOPEX_", extra="ignore")

    server: str | None = None
    token: str | None = None


def user_config_path() -> Path:
    """Where ``flopex login`` saves the server and token (mode 0600)."""
    return Path(platformdirs.user_config_dir("flopex")) / "credentials.json"


def default_agent_dir() -> Path:
    """The agent's default data dir (node key, cache, workspaces)."""
    return Path(platformdirs.user_data_dir("flopex")) / "agent"
