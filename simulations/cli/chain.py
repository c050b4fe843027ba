"""`agora chain deploy | check`: the settlement contracts on a chain."""

from __future__ import annotations

from pathlib import Path

import typer

from agora.simulations.cli.app import app

chain_app = typer.Typer(help="Deploy and check the settlement contracts on a chain.", no_args_is_help=True)

app.add_typer(chain_app, name="chain")


@chain_app.command("deploy")
def chain_deploy(
    rpc: str = typer.Option(..., help="JSON-RPC URL of the node (its first account deploys)"),
    out: Path = typer.Option(Path("addressbook.json"), help="where to write the address book"),
) -> None:
    """Deploy Token, Escrow, PaymentChannel, BatchSettlement and Staking once; write the address book."""
    from agora.chain import EVMLedger

    book = EVMLedger.connect(rpc).address_book()
    book.save(out)
    for name, deployed in book.contracts.items():
        typer.echo(f"{name:16} {deployed.address}  code {deployed.code_hash[:18]}…")
    typer.echo(f"chain {book.chain_id}: address book written to {out}")


@chain_app.command("check")
def chain_check(
    rpc: str = typer.Option(..., help="JSON-RPC URL of the node"),
    book: Path = typer.Option(Path("addressbook.json"), help="the address book to check"),
) -> None:
    """Check that the node runs exactly the contracts the address book and this source describe."""
    from agora.chain import ChainError, EVMLedger

    try:
        ledger = EVMLedger.connect(rpc, address_book=str(book))
    except ChainError as exc:
        typer.echo(f"address book does not match: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"ok: chain {ledger.chain_id}, token supply {ledger.total_supply()}, {len(ledger.accounts())} holders")
