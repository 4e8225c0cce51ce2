"""``flopex job ...``: validate, submit (--wait, --follow), list, show, logs, cancel, explain,
outputs."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import typer
import yaml
from rich.live import Live
from rich.table import Table

from flopex import protocol as p
from flopex.cli.output import emit_json, err, friendly, out
from flopex.cli.settings import client
from flopex.client.http import Client
from flopex.client.workdir import pack_workdir
from flopex.domain.spec import JobSpec, parse_spec_yaml
from flopex.domain.units import format_credits
from flopex.errors import LocalError, SpecInvalid

app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)
Server = Annotated[str | None, typer.Option("--server", help="exchange URL (FLOPEX_SERVER)")]
Token = Annotated[str | None, typer.Option("--token", help="API token (FLOPEX_TOKEN)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]
POLL_S = 0.5


def load_spec(path: Path) -> tuple[JobSpec, dict[str, Any]]:
    """Read and validate a task YAML: (parsed spec, JSON-safe mapping to send)."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise LocalError(f"{path}: no such file", code="local.file_not_found") from None
    spec = parse_spec_yaml(text, now=dt.datetime.now(dt.UTC))
    data = yaml.safe_load(text)
    return spec, _json_safe(data)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@app.command()
@friendly
def validate(task: Path) -> None:
    """Check a task YAML without submitting (exit 0 valid, 1 invalid)."""
    spec, _ = load_spec(task)
    opts = ", ".join(
        f"{o.accelerator}:{o.accelerator_count}" if o.accelerator else f"cpu:{o.cpus}"
        for o in spec.options
    )
    out.print(f"{task}: valid {spec.kind.value} job {spec.name or ''} ({opts})")


def _upload_workdir(c: Client, spec: JobSpec, task: Path) -> str | None:
    if not spec.workdir:
        return None
    root = (task.parent / spec.workdir).resolve()
    packed = pack_workdir(root)
    if c.has_blob(packed.sha256):
        err.print(f"workdir {root}: already uploaded ({packed.sha256[:12]})")
    else:
        err.print(f"workdir {root}: {packed.file_count} files, {len(packed.data)} bytes packed")
        c.put_blob(packed.sha256, packed.data)
    return packed.sha256


@app.command()
@friendly
def submit(
    task: Path,
    wait: Annotated[
        bool, typer.Option("--wait", help="show a live view until the job ends")
    ] = False,
    follow: Annotated[bool, typer.Option("--follow", help="stream the job's logs")] = False,
    server: Server = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Submit a task YAML; with --wait or --follow, stay until it ends."""
    spec, data = load_spec(task)
    with client(server, token) as c:
        workdir = _upload_workdir(c, spec, task)
        job = c.submit(data, workdir)
        err.print(f"submitted {job.id} ({job.state.value})")
        if follow:
            _follow(c, job.id)
        if wait or follow:
            job = _wait(c, job.id, live=wait and not json)
    if json:
        emit_json(job)
    else:
        out.print(job.id)
    if (wait or follow) and job.state != "succeeded":
        raise typer.Exit(1)


def _follow(c: Client, job_id: str) -> None:
    try:
        for chunk in c.follow_logs(job_id):
            sys.stdout.write(chunk.data)
            sys.stdout.flush()
    except KeyboardInterrupt:
        err.print(f"\nleft the log stream; the job goes on (`flopex job show {job_id}`)")
        raise typer.Exit(0) from None


def _status_table(job: p.Job, started: float) -> Table:
    table = Table(show_header=True)
    for col in ("job", "state", "node", "region", "attempts", "elapsed", "cost so far"):
        table.add_column(col)
    table.add_row(
        job.id,
        job.state.value + (f" ({job.reason.value})" if job.reason else ""),
        job.node_id or "-",
        job.region or "-",
        str(len(job.attempts)),
        f"{time.monotonic() - started:.1f}s",
        format_credits(job.running_cost_ucr + job.fee_ucr),
    )
    return table


def _wait(c: Client, job_id: str, *, live: bool) -> p.Job:
    started = time.monotonic()
    job = c.job(job_id)
    if not live:
        while not job.settled_at:
            time.sleep(POLL_S)
            job = c.job(job_id)
        return job
    with Live(_status_table(job, started), console=err, refresh_per_second=4) as view:
        while not job.settled_at:
            time.sleep(POLL_S)
            job = c.job(job_id)
            view.update(_status_table(job, started))
    return job


def _jobs_table(jobs: list[p.Job]) -> Table:
    table = Table()
    for col in ("id", "name", "state", "reason", "node", "region", "attempts", "cost"):
        table.add_column(col)
    for j in jobs:
        table.add_row(
            j.id,
            j.name or "",
            j.state.value,
            j.reason.value if j.reason else "",
            j.node_id or "",
            j.region or "",
            str(len(j.attempts)),
            format_credits(j.running_cost_ucr + j.fee_ucr),
        )
    return table


@app.command("list")
@friendly
def list_jobs(
    state: Annotated[str | None, typer.Option("--state")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    server: Server = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Your jobs, newest first."""
    with client(server, token) as c:
        page = c.jobs(limit=limit, state=state)
    if json:
        emit_json(page)
    else:
        out.print(_jobs_table(page.jobs))


@app.command()
@friendly
def show(job_id: str, server: Server = None, token: Token = None, json: Json = False) -> None:
    """One job: state, attempts, node, region, cost."""
    with client(server, token) as c:
        job = c.job(job_id)
    if json:
        emit_json(job)
        return
    out.print(_jobs_table([job]))
    table = Table(title="attempts")
    for col in ("attempt", "node", "region", "state", "reason", "exit", "billed s", "cost"):
        table.add_column(col)
    for a in job.attempts:
        table.add_row(
            a.id,
            a.node_id,
            a.region,
            a.state.value,
            a.reason.value if a.reason else "",
            "" if a.exit_code is None else str(a.exit_code),
            "" if a.billed_ms is None else f"{a.billed_ms / 1000:.1f}",
            "" if a.cost_ucr is None else format_credits(a.cost_ucr + (a.fee_ucr or 0)),
        )
    out.print(table)


@app.command()
@friendly
def logs(
    job_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    server: Server = None,
    token: Token = None,
) -> None:
    """Print a job's logs (``--follow`` streams until it ends; Ctrl-C leaves the stream)."""
    with client(server, token) as c:
        if follow:
            _follow(c, job_id)
            return
        cursor = 0
        while True:
            page = c.logs(job_id, cursor)
            for chunk in page.chunks:
                sys.stdout.write(chunk.data)
            if not page.chunks:
                break
            cursor = page.next_cursor
        sys.stdout.flush()


@app.command()
@friendly
def cancel(job_id: str, server: Server = None, token: Token = None, json: Json = False) -> None:
    """Cancel a job; a running one is stopped at its node's next heartbeat."""
    with client(server, token) as c:
        job = c.cancel(job_id)
    if json:
        emit_json(job)
    else:
        out.print(f"{job.id}: {job.state.value}")


@app.command()
@friendly
def explain(job_id: str, server: Server = None, token: Token = None, json: Json = False) -> None:
    """Every offer considered for a job and why it was or was not chosen."""
    with client(server, token) as c:
        ex = c.explain(job_id)
    if json:
        emit_json(ex)
        return
    table = Table(title=ex.summary)
    for col in ("offer", "region", "accelerator", "price/h", "verdict", "why"):
        table.add_column(col)
    for v in ex.verdicts:
        verdict = "chosen" if v.chosen else ("feasible" if v.feasible else "rejected")
        table.add_row(
            v.offer_id,
            v.region,
            v.accelerator or "cpu",
            format_credits(v.price_ucr_per_device_hour),
            verdict,
            "; ".join(v.reasons)
            or (f"hold {format_credits(v.hold_ucr or 0)}" if v.feasible else ""),
        )
    out.print(table)


@app.command()
@friendly
def outputs(
    job_id: str,
    dest: Annotated[Path, typer.Argument(help="directory to write the files into")],
    server: Server = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Download a job's output files into DEST, checking each SHA-256."""
    with client(server, token) as c:
        files = c.outputs(job_id).outputs
        for f in files:
            target = _safe_target(dest, f.path)
            data = c.get_blob(f.sha256)
            if hashlib.sha256(data).hexdigest() != f.sha256:
                raise LocalError(
                    f"{f.path}: downloaded bytes do not match {f.sha256}", code="blob.corrupt"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            err.print(f"{target} ({f.size_bytes} bytes, sha256 {f.sha256[:12]})")
    if json:
        emit_json(p.OutputList(outputs=files))


def _safe_target(dest: Path, rel: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or ".." in parts:
        raise SpecInvalid(f"refusing output path {rel!r}", code="blob.unsafe_path")
    return dest.joinpath(*parts)
