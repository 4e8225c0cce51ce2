"""Apply Alembic migrations programmatically (``flopex db upgrade``; the server on start).

``python -m flopex.store.migrate heads`` prints one line per head (CI checks there is one).
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_DIR))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema."""
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def heads() -> list[str]:
    """The revision ids of the migration graph's heads."""
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


if __name__ == "__main__":
    if sys.argv[1:] == ["heads"]:
        print("\n".join(heads()))
    else:
        print("usage: python -m flopex.store.migrate heads", file=sys.stderr)
        sys.exit(2)
