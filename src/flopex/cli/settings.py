"""Where the CLI finds its server and token: flags, then env, then ``flopex login``."""

from __future__ import annotations

import json

from flopex.client.http import Client
from flopex.config import ClientSettings, user_config_path
from flopex.errors import LocalError, Unauthorized
from flopex.keyfiles import write_private_text

DEFAULT_SERVER = "http://127.0.0.1:8750"


def saved() -> dict[str, str]:
    """What ``flopex login`` saved (empty when nothing)."""
    path = user_config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise LocalError(
            f"{path} is not readable JSON", code="config.invalid", hint="run `flopex login` again"
        ) from None
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save(server: str, token: str) -> None:
    """Save server and token for later commands (mode 0600)."""
    write_private_text(user_config_path(), json.dumps({"server": server, "token": token}))


def client(server: str | None, token: str | None, *, need_token: bool = True) -> Client:
    """A client from flags, ``FLOPEX_SERVER``/``FLOPEX_TOKEN`` or the saved login."""
    env = ClientSettings()
    stored = saved()
    url = server or env.server or stored.get("server") or DEFAULT_SERVER
    tok = token or env.token or stored.get("token")
    if need_token and not tok:
        raise Unauthorized("no token given")
    return Client(url, tok)
