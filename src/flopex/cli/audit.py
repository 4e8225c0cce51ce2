"""``flopex audit``: verify the exchange's log without trusting anything the server computed.

It checks the checkpoint's signature (with ``--key``, or the key it pinned on its first run),
that the new checkpoint is consistent with the one it verified last time (a rewritten or forked
history fails here), recomputes the root from the entries it downloads (an edited or missing
event fails here), replays every event with the ledger's rules (an impossible transfer or state
change fails here, naming its index) and, with an admin or auditor token, compares every ledger
account's totals with what the server reports. It resumes from the size it verified last.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import platformdirs
import typer

from flopex.cli.audit_compare import (
    AuditFailed,
    Compared,
    Opened,
    check_openings,
    compare,
    scan,
)
from flopex.cli.audit_replay import replay_events
from flopex.cli.output import emit_json, err, friendly, out
from flopex.cli.settings import client
from flopex.client.http import Client
from flopex.domain import merkle
from flopex.domain.note import (
    NoteError,
    parse_checkpoint,
    parse_verifier_key,
    verify_cosignature,
    verify_note,
)
from flopex.domain.replay import Replay, ReplayError

PAGE = 1000
STATE_FORMAT = 2  # what the saved replay holds; another format is replayed again from zero


def _state_path(server: str) -> Path:
    tag = hashlib.sha256(server.encode()).hexdigest()[:16]
    return Path(platformdirs.user_data_dir("flopex")) / "audit" / f"{tag}.json"


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise AuditFailed(f"cannot read the audit state {path}: {exc}") from None
    return data


def _save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    tmp.replace(path)


def _frontier(tree: merkle.MemoryTree) -> dict[str, str]:
    """The complete subtrees a tree of this size keeps appending from (O(log n) hashes)."""
    out, start = {}, 0
    for level in reversed(range(tree.size.bit_length())):
        if tree.size >> level & 1:
            key = (level, start >> level)
            out[f"{key[0]}:{key[1]}"] = tree.nodes[key].hex()
            start += 1 << level
    return out


def _tree_from(state: dict[str, Any]) -> merkle.MemoryTree:
    tree = merkle.MemoryTree()
    tree.size = int(state.get("size", 0))
    for key, h in state.get("frontier", {}).items():
        level, index = (int(x) for x in key.split(":"))
        tree.nodes[(level, index)] = bytes.fromhex(h)
    return tree


def _witnessed(note: str, witness_keys: list[str], needed: int) -> int:
    """How many distinct trusted witnesses validly cosigned ``note``; AuditFailed if too few."""
    good = 0
    for wk in witness_keys:
        try:
            verify_cosignature(note, parse_verifier_key(wk))
            good += 1
        except NoteError:
            continue
    if good < needed:
        raise AuditFailed(
            f"the checkpoint carries {good} valid cosignatures of the trusted witnesses, "
            f"{needed} required"
        )
    return good


def run_audit(
    c: Client,
    key: str | None,
    state_path: Path,
    witness_keys: list[str] | None = None,
    min_witnesses: int = 0,
) -> dict[str, Any]:
    """Verify and replay; the summary, or :class:`AuditFailed` naming what and where."""
    state = _load(state_path)
    vkey = key or state.get("verifier_key") or c.log_key().verifier_key
    if state.get("verifier_key") and state["verifier_key"] != vkey:
        raise AuditFailed("the log's key differs from the one pinned on the first audit")
    if min_witnesses > len(witness_keys or []):
        raise AuditFailed(
            f"--min-witnesses {min_witnesses} needs as many --witness-key", code="audit.usage"
        )
    note = c.log_checkpoint(witnesses=min_witnesses)
    try:
        verifier = parse_verifier_key(vkey)
        cp = parse_checkpoint(verify_note(note, verifier))
    except NoteError as exc:
        raise AuditFailed(f"checkpoint: {exc}") from None
    witnessed = _witnessed(note, witness_keys or [], min_witnesses) if witness_keys else 0
    _consistent(c, state, cp.size, cp.root)
    if state.get("format") == STATE_FORMAT:  # resume where the last audit stopped
        old_size = int(state.get("size", 0))
        tree, replay = _tree_from(state), Replay.from_state(state.get("replay", {}))
    else:  # first audit, or a state an older flopex wrote: replay everything again
        old_size, tree, replay = 0, merkle.MemoryTree(), Replay()
    replay.events = old_size
    fresh = _download(c, tree, old_size, cp.size)
    if tree.root() != cp.root:
        raise AuditFailed(
            f"the events [0, {cp.size}) do not hash to the signed root: an event was edited, "
            "added or removed"
        )
    try:
        replay_events(replay, old_size, fresh)
        replay.check_invariants()
    except ReplayError as exc:
        raise AuditFailed(str(exc)) from None
    exchange_key = base64.b64encode(verifier.public_key).decode()
    if replay.exchange_key not in (None, exchange_key):
        raise AuditFailed("the log's genesis names an exchange key other than the log's key")
    done = Compared()
    opened = check_openings(c, fresh, old_size, done) if c.token else Opened()
    compare(c, replay, cp.size, (scan(fresh, old_size), opened), exchange_key, done)
    _save(
        state_path,
        {
            "format": STATE_FORMAT,
            "verifier_key": vkey,
            "size": cp.size,
            "root": base64.b64encode(cp.root).decode(),
            "frontier": _frontier(tree),
            "replay": replay.to_state(),
        },
    )
    return {
        "origin": cp.origin,
        "size": cp.size,
        "root": base64.b64encode(cp.root).decode(),
        "verified_from": old_size,
        "ledger_accounts_compared": done.ledger_accounts,
        "witnesses": witnessed,
        "jobs": len(replay.jobs),
        "jobs_compared": done.jobs,
        "all_jobs": done.all_jobs,
        "openings_verified": done.openings,
        "specs_compared": done.specs,
        "logs_compared": done.logs,
        "contracts_verified": done.contracts,
        "state": str(state_path),
    }


def _consistent(c: Client, state: dict[str, Any], size: int, root: bytes) -> None:
    """The new checkpoint extends the one the last audit verified (whatever state format)."""
    old_size = int(state.get("size", 0))
    if size < old_size:
        raise AuditFailed(f"the log shrank from {old_size} to {size} events")
    if old_size:
        old_root = base64.b64decode(state["root"])
        proof = c.log_consistency(old_size, size)
        if not merkle.verify_consistency(old_size, size, proof, old_root, root):
            raise AuditFailed(
                f"the checkpoint at size {size} is not consistent with the one verified at "
                f"size {old_size}: history was rewritten or forked"
            )


def _download(c: Client, tree: merkle.MemoryTree, start: int, size: int) -> list[str]:
    """Events ``[start, size)``, hashed into ``tree`` as they arrive."""
    fresh: list[str] = []
    while start + len(fresh) < size:
        at = start + len(fresh)
        page = c.log_entries(at, min(size, at + PAGE)).entries
        if not page:
            raise AuditFailed(f"the server serves no event at index {at}")
        for data in page:
            tree.append(data.encode())
        fresh += page
    return fresh[: size - start]


@friendly
def audit(
    server: Annotated[str | None, typer.Option("--server", help="exchange URL")] = None,
    token: Annotated[str | None, typer.Option("--token", help="admin/auditor token")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="the log's verifier key (name+id+base64)")
    ] = None,
    state: Annotated[Path | None, typer.Option("--state", help="where progress is kept")] = None,
    witness_key: Annotated[
        list[str] | None, typer.Option("--witness-key", help="a trusted witness (repeatable)")
    ] = None,
    min_witnesses: Annotated[
        int, typer.Option("--min-witnesses", help="cosignatures required", min=0)
    ] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON on stdout")] = False,
) -> None:
    """Verify the exchange's log: signature, consistency, every event, every balance."""
    with client(server, token, need_token=False) as c:
        summary = run_audit(c, key, state or _state_path(c.server), witness_key, min_witnesses)
    if json_out:
        emit_json(summary)
        return
    compared = summary["ledger_accounts_compared"]
    out.print(
        f"audit OK: {summary['origin']} at size {summary['size']} "
        f"(verified {summary['size'] - summary['verified_from']} new events), "
        f"root {summary['root']}"
    )
    if summary["witnesses"]:
        out.print(f"witnessed: {summary['witnesses']} trusted witnesses cosigned it")
    if summary["jobs_compared"]:
        whose = "every account's" if summary["all_jobs"] else "your"
        out.print(f"jobs: {whose} {summary['jobs_compared']} jobs match the replayed events")
    if summary["openings_verified"]:
        out.print(
            f"commitments: {summary['openings_verified']} openings match the log "
            f"({summary['specs_compared']} job specs and {summary['logs_compared']} attempts' "
            "logs as the server shows them)"
        )
    if summary["contracts_verified"]:
        out.print(
            f"contracts: {summary['contracts_verified']} signed contracts match their logged hash"
        )
    if compared < 0:
        err.print("ledger not compared: that needs an admin or auditor token")
    else:
        out.print(f"ledger: {compared} accounts match the replayed events")
