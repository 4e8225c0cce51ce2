"""``flopex``: the command line of the exchange (composition root: it may start the server and
agents; nothing imports it)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from flopex.cli import audit as audit_cli
from flopex.cli import jobs as jobs_cli
from flopex.cli import market as market_cli
from flopex.cli import processes
from flopex.cli import witness as witness_cli
from flopex.cli.output import emit_json, friendly, out
from flopex.cli.settings import client, save
from flopex.domain.units import format_credits, parse_credits

app = typer.Typer(
    name="flopex",
    help="flopex: a verifiable compute exchange for generative AI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
account_app = typer.Typer(help="Accounts (admin).", no_args_is_help=True)
credits_app = typer.Typer(help="Credits (admin).", no_args_is_help=True)
app.add_typer(account_app, name="account")
app.add_typer(credits_app, name="credits")
app.add_typer(jobs_cli.app, name="job")
app.add_typer(market_cli.app, name="market")
app.add_typer(processes.db_app, name="db")
app.command("server")(processes.server)
app.command("agent")(processes.agent)
app.command("demo")(processes.demo)
app.command("audit")(audit_cli.audit)
app.command("witness")(witness_cli.witness)

Server = Annotated[str | None, typer.Option("--server", help="exchange URL (FLOPEX_SERVER)")]
Token = Annotated[str | None, typer.Option("--token", help="API token (FLOPEX_TOKEN)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON on stdout")]


@app.command()
@friendly
def login(
    server: Annotated[str, typer.Option("--server", prompt=True)],
    token: Annotated[str, typer.Option("--token", prompt=True, hide_input=True)],
) -> None:
    """Check a server and token, then save them for later commands (mode 0600)."""
    with client(server, token) as c:
        me = c.me()
    save(server, token)
    out.print(f"logged in to {server} as {me.account.name} ({', '.join(me.account.roles)})")


@account_app.command("create")
@friendly
def account_create(
    name: str,
    role: Annotated[
        list[str] | None, typer.Option("--role", help="consumer, provider, ...")
    ] = None,
    server: Server = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Create an account; prints its token once."""
    with client(server, token) as c:
        made = c.create_account(name, role or ["consumer"])
    if json:
        emit_json(made)
        return
    out.print(
        f"account {made.account.name} ({made.account.id}) roles: {', '.join(made.account.roles)}"
    )
    if made.token:
        out.print(f"token (shown once): {made.token}")


# A negative amount must reach parse_credits (a clear money error), not be read as an option.
@credits_app.command("mint", context_settings={"ignore_unknown_options": True})
@friendly
def credits_mint(
    account: str,
    amount: Annotated[str, typer.Argument(help="decimal credits, e.g. 100 or 2.5")],
    server: Server = None,
    token: Token = None,
    json: Json = False,
) -> None:
    """Mint credits into an account (double entry from the platform's equity)."""
    amount_ucr = parse_credits(amount, field="AMOUNT")
    with client(server, token) as c:
        t = c.mint(account, amount_ucr)
    if json:
        emit_json(t)
    else:
        out.print(f"minted {format_credits(t.amount_ucr)} credits to {account} (transfer {t.id})")


@app.command()
@friendly
def balance(server: Server = None, token: Token = None, json: Json = False) -> None:
    """Your account's balances (available, held in escrow, earnings)."""
    with client(server, token) as c:
        me = c.me()
    if json:
        emit_json(me)
        return
    table = Table(title=f"{me.account.name} ({', '.join(me.account.roles)})")
    for col in ("available", "held in escrow", "earnings"):
        table.add_column(col, justify="right")
    table.add_row(*(format_credits(v) for v in (me.available_ucr, me.held_ucr, me.earnings_ucr)))
    out.print(table)


def main() -> None:
    """Console entry point."""
    app()
