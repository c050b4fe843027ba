"""The `agora` command line. Entry points start or join Ray; library code never does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Agora: a multi-agent economy for AI work.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@app.command()
def demo(
    runtime: str = typer.Option("ray", help="ray (agents as Ray actors) or local (one process)"),
    ledger: str = typer.Option("evm", help="evm (embedded py-evm chain) or memory"),
    rpc_url: Optional[str] = typer.Option(None, help="with --ledger evm: settle on this JSON-RPC node (anvil, a devnet)"),
    address: Optional[str] = typer.Option(None, help="join an existing Ray cluster at this address"),
    gpus: int = typer.Option(1, help="logical GPUs for the local Ray head (no GPU needed)"),
    seed: int = typer.Option(7, help="run seed: same seed, same keys and outcome"),
) -> None:
    """Run one AI trade end to end and print who paid and earned what."""
    from simulations.demo import TradeConfig, run_trade
    from simulations.report import render

    config = TradeConfig(runtime=runtime, ledger=ledger, seed=seed, gpus=min(1, gpus), rpc_url=rpc_url)
    if runtime == "ray":
        import ray

        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:
        report = run_trade(config)
    finally:
        if runtime == "ray":
            import ray

            ray.shutdown()
    render(report)
    if report.deal.status != "settled" or not report.conserved:
        raise typer.Exit(code=1)


chain_app = typer.Typer(help="Deploy and check the settlement contracts on a chain.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")


@chain_app.command("deploy")
def chain_deploy(
    rpc: str = typer.Option(..., help="JSON-RPC URL of the node (its first account deploys)"),
    out: Path = typer.Option(Path("addressbook.json"), help="where to write the address book"),
) -> None:
    """Deploy Token, Escrow, PaymentChannel, BatchSettlement and Staking once; write the address book."""
    from chain import EVMLedger

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
    from chain import ChainError, EVMLedger

    try:
        ledger = EVMLedger.connect(rpc, address_book=str(book))
    except ChainError as exc:
        typer.echo(f"address book does not match: {exc}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"ok: chain {ledger.chain_id}, token supply {ledger.total_supply()}, {len(ledger.accounts())} holders")


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as v

    typer.echo(v("agora-economy"))


if __name__ == "__main__":
    app()
