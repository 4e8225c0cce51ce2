"""``flopex witness``: cosign the exchange's checkpoints after checking they only ever grow.

A witness keeps its own Ed25519 key and the last checkpoint it cosigned. For each new checkpoint
it checks the log's signature (the key pinned on its first run, or ``--log-key``) and a
consistency proof from the last one; only then it cosigns (C2SP cosignature/v1) and posts the
cosignature. A server showing different histories to different people cannot get the same
witnesses to cosign both.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Annotated, Any

import platformdirs
import typer

from flopex.cli.output import err, friendly, out
from flopex.cli.settings import client
from flopex.client.http import Client
from flopex.domain import merkle
from flopex.domain.note import (
    ALG_COSIGNATURE_V1,
    NoteError,
    cosign,
    parse_checkpoint,
    parse_verifier_key,
    verifier_key,
    verify_note,
)
from flopex.errors import FlopexError
from flopex.keyfiles import load_or_create_key


class WitnessRefused(FlopexError):
    code = "witness.refused"
    default_hint = "the exchange showed a history that does not extend the one cosigned before"


def _state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def witness_once(c: Client, key_path: Path, name: str, log_key: str | None) -> dict[str, Any]:
    """Verify the newest checkpoint against the last cosigned one and cosign it."""
    key, _ = load_or_create_key(key_path)
    state_path = key_path.with_suffix(".state.json")
    state = _state(state_path)
    pinned = log_key or state.get("log_key") or c.log_key().verifier_key
    if state.get("log_key") and state["log_key"] != pinned:
        raise WitnessRefused("the log's key differs from the one this witness pinned")
    note = c.log_checkpoint()
    try:
        text = verify_note(note, parse_verifier_key(pinned))
        cp = parse_checkpoint(text)
    except NoteError as exc:
        raise WitnessRefused(f"checkpoint: {exc}") from None
    old = int(state.get("size", 0))
    if cp.size < old:
        raise WitnessRefused(f"the log shrank from {old} to {cp.size}")
    if old:
        proof = c.log_consistency(old, cp.size)
        old_root = base64.b64decode(state["root"])
        if not merkle.verify_consistency(old, cp.size, proof, old_root, cp.root):
            raise WitnessRefused(
                f"size {cp.size} is not consistent with size {old} cosigned before: "
                "history was rewritten or forked"
            )
    line = cosign(text, name, key, int(time.time())).line()
    c.post_cosignature(cp.size, line, verifier_key(name, key, ALG_COSIGNATURE_V1))
    state_path.write_text(
        json.dumps({"log_key": pinned, "size": cp.size, "root": base64.b64encode(cp.root).decode()})
    )
    state_path.chmod(0o600)
    return {"size": cp.size, "witness_key": verifier_key(name, key, ALG_COSIGNATURE_V1)}


@friendly
def witness(
    name: Annotated[str, typer.Option("--name", help="this witness's name, e.g. w1.example")],
    server: Annotated[str | None, typer.Option("--server", help="exchange URL")] = None,
    token: Annotated[str | None, typer.Option("--token", help="any account's token")] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Ed25519 key (created 0600)")
    ] = None,
    log_key: Annotated[str | None, typer.Option("--log-key", help="the log's verifier key")] = None,
    interval_s: Annotated[float, typer.Option("--interval", help="seconds between rounds")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="one round, then exit")] = False,
) -> None:
    """Cosign the exchange's checkpoints after verifying they extend what it saw before."""
    path = key_file or Path(platformdirs.user_data_dir("flopex")) / "witness" / f"{name}.key"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with client(server, token) as c:
        while True:
            done = witness_once(c, path, name, log_key)
            out.print(f"cosigned size {done['size']} as {done['witness_key']}")
            if once:
                return
            try:
                time.sleep(interval_s)
            except KeyboardInterrupt:
                err.print("witness stopped")
                return
