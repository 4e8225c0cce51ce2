"""``flopex market offers``: what is for sale, filtered and sorted."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flopex.cli.output import emit_json, friendly, out
from flopex.cli.settings import client
from flopex.domain.units import format_credits

app = typer.Typer(help="The market: offers and prices.", no_args_is_help=True)


@app.command()
@friendly
def offers(
    filter_expr: Annotated[
        str, typer.Argument(help="e.g. 'accelerators=H100 price<2.5 region in jp-kyushu,jp-tokyo'")
    ] = "",
    sort: Annotated[str | None, typer.Option("--sort", help="price, -price, region, ...")] = None,
    server: Annotated[str | None, typer.Option("--server")] = None,
    token: Annotated[str | None, typer.Option("--token")] = None,
    json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Active offers with price per hour, capacity left and whether the node is online."""
    with client(server, token) as c:
        found = c.offers(filter_expr, sort).offers
    if json:
        emit_json(found)
        return
    table = Table()
    for col in ("offer", "region", "device", "free", "cpus free", "mem GiB", "price/h", "kind"):
        table.add_column(col)
    for o in found:
        device = o.accelerator or "cpu"
        total = o.devices if o.accelerator else o.cpus
        free = o.devices_free if o.accelerator else o.cpus_free
        kind = ("simulated " if o.simulated else "") + (
            "interruptible" if o.interruptible else "on-demand"
        )
        table.add_row(
            o.id,
            o.region,
            device,
            f"{free}/{total}",
            str(o.cpus_free),
            f"{o.memory_bytes / 2**30:.0f}",
            format_credits(o.price_ucr_per_device_hour),
            kind + ("" if o.node_online else " (offline)"),
        )
    out.print(table)
