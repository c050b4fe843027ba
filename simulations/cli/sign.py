"""`agora sign ...`: sign for the gateway with your key, for curl and other HTTP clients."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from agora.simulations.cli.app import app

sign_app = typer.Typer(help="Sign for the gateway with your key, for curl and other HTTP clients (nothing leaves this machine).", no_args_is_help=True)

app.add_typer(sign_app, name="sign")


def _signer(key: str | None, seed: str | None) -> Any:
    from agora.agents.identity import Identity

    key, seed = key or os.environ.get("AGORA_KEY"), seed or os.environ.get("AGORA_SEED")
    if key:
        return Identity(key)
    if seed and ":" in seed:
        s, name = seed.split(":", 1)
        return Identity.from_seed(s, name)
    typer.echo("give --key HEX (or AGORA_KEY), or --seed SEED:NAME (or AGORA_SEED: a throwaway key for trying things out)", err=True)
    raise typer.Exit(code=2)


@sign_app.command("request")
def sign_request_cmd(
    method: str = typer.Argument(..., help="GET or POST"),
    path: str = typer.Argument(..., help="the path with its query, exactly as sent: /v1/jobs?wait=10"),
    body: str = typer.Option("", help="the request body, exactly as sent (@FILE reads a file)"),
    url: str = typer.Option("http://127.0.0.1:8000", help="the gateway the request is for (asked for its signing domain, which names it)"),
    key: str | None = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: str | None = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
) -> None:
    """Print the four signature headers as curl -H arguments: curl $(agora sign request GET /v1/jobs) ..."""
    from agora.gateway import GatewayClient, sign_request

    data = Path(body[1:]).read_bytes() if body.startswith("@") else body.encode()
    with GatewayClient(url) as gateway:
        domain = gateway.request_domain
    headers = sign_request(_signer(key, seed), domain, method, path, data)
    typer.echo(" ".join(f"-H {k}:{v}" for k, v in headers.items()))


@sign_app.command("id")
def sign_id_cmd(
    salt: str = typer.Argument("", help="anything that makes the id yours alone to tell apart (default: random)"),
    key: str | None = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: str | None = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
) -> None:
    """Print a new channel or escrow id that only your key may open (it begins with your address)."""
    import secrets

    from agora.chain.types import owned_id

    typer.echo(owned_id(_signer(key, seed).address, salt or secrets.token_hex(16)))


@sign_app.command("voucher")
def sign_voucher_cmd(
    channel: str = typer.Argument(..., help="the channel id"),
    amount: int = typer.Argument(..., help="the cumulative amount owed since the channel's last claim, this call included"),
    url: str = typer.Option("http://127.0.0.1:8000", help="the gateway (asked for the channel's nonce and the signing domain)"),
    key: str | None = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: str | None = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
) -> None:
    """Print the payment JSON for POST /v1/jobs: a voucher for AMOUNT on the channel's current nonce."""
    import json

    from agora.chain.offchain import voucher_typed_data
    from agora.gateway import GatewayClient

    with GatewayClient(url) as gateway:
        domain, nonce = gateway.chain()["domains"]["channel"], int(gateway.channel(channel)["nonce"])
    signature = _signer(key, seed).sign_typed_data(voucher_typed_data(domain, channel, nonce, amount))
    typer.echo(json.dumps({"kind": "channel", "channel_id": channel, "amount": amount, "signature": signature}))


@sign_app.command("tx")
def sign_tx_cmd(
    tx: str = typer.Argument("-", help="the tx object POST /v1/tx answered with (JSON; - reads stdin, @FILE a file)"),
    key: str | None = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: str | None = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
) -> None:
    """Print {"signed": "0x..."} for POST /v1/tx/{prepared_id}: the transaction signed with your key."""
    import json

    text = sys.stdin.read() if tx == "-" else Path(tx[1:]).read_text() if tx.startswith("@") else tx
    data = json.loads(text)
    data = data.get("tx", data)  # the whole answer of POST /v1/tx, or just its tx
    typer.echo(json.dumps({"signed": "0x" + bytes(_signer(key, seed).sign_transaction(data)).hex()}))
