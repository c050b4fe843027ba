"""`agora deploy | status | stop | gateway`: long-lived markets on a Ray cluster, and their HTTP front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from agora.simulations.cli.app import _join, _start_ray, app


@app.command()
def deploy(
    population: Path = typer.Argument(..., help="the population file (YAML)"),
    address: str | None = typer.Option(None, help="the Ray cluster (default: RAY_ADDRESS or the local one)"),
    name: str = typer.Option("agora", help="the deployment's name: its actors are NAME-shard-i, NAME-ledger, NAME-registry"),
    state: Path = typer.Option(Path(".agora/deployments/agora"), help="folder every node reaches: journals, and what `stop` keeps"),
    shards: int = typer.Option(2, min=1, help="shard actors hosting the agents"),
    rpc_url: str | None = typer.Option(None, help="settle on this JSON-RPC node (default: a memory ledger kept across stop)"),
    address_book: str | None = typer.Option(None, help="with --rpc-url: the contracts' address book"),
) -> None:
    """Start a population as detached, named actors that outlive this command (or resume it)."""
    from agora.agents.ray.deployment import DeploymentError
    from agora.agents.ray.deployment import deploy as start

    _join(address)
    try:
        manifest = start(population, name, state, shards=shards, rpc_url=rpc_url, address_book=address_book)
    except DeploymentError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    how = "resumed from its last stop" if manifest["resumed"] else "started"
    typer.echo(f"deployment {name}: {len(manifest['agents'])} agents in {shards} shards {how}; state in {manifest['state']}")


@app.command()
def status(
    address: str | None = typer.Option(None, help="the Ray cluster"),
    name: str = typer.Option("agora", help="the deployment's name"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
) -> None:
    """List a deployment's agents: balance, open contracts, queued envelopes."""
    from rich.console import Console
    from rich.table import Table

    from agora.agents.ray.deployment import DeploymentError
    from agora.agents.ray.deployment import status as rows_of

    _join(address)
    try:
        rows = rows_of(name)
    except DeploymentError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        import json

        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"deployment {name}")
    numbers = ("balance", "open contracts", "queued", "handled")
    for column in ("agent", "address", "kind", "shard@node", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for r in rows:
        where = f"{r['shard']}@{r['node'][:8]}"
        table.add_row(r["name"], r["address"], r["class"], where, f"{r['balance']:,}", str(r["open_contracts"]), str(r["queued"]), str(r["handled"]))
    Console(width=160).print(table)


@app.command()
def stop(
    address: str | None = typer.Option(None, help="the Ray cluster"),
    name: str = typer.Option("agora", help="the deployment's name"),
    drain_timeout: float = typer.Option(60.0, help="seconds to wait for queues to empty"),
) -> None:
    """Drain a deployment, snapshot its agents (a later deploy resumes them) and stop its actors."""
    from agora.agents.ray.deployment import DeploymentError
    from agora.agents.ray.deployment import stop as halt

    _join(address)
    try:
        kept = halt(name, drain_timeout)
    except DeploymentError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"deployment {name} stopped: {kept['agents']} agents snapshotted in {kept['state']}")


@app.command()
def gateway(
    scenario: str = typer.Option("gateway-market", help="the market to host in this process (a built-in name or a scenario file)"),
    host: str = typer.Option("127.0.0.1", help="the address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=0, max=65535, help="the port to listen on"),
    ledger: str | None = typer.Option(None, help="memory, embedded or a JSON-RPC URL (default: the scenario's)"),
    rate: float = typer.Option(20.0, help="requests per second per address (and per unsigned client), on average"),
    burst: int = typer.Option(40, help="requests per address in a burst"),
    faucet: int = typer.Option(0, min=0, help="base units POST /v1/faucet mints once to each caller (a trial market; 0: none)"),
    write_timeout: float = typer.Option(
        60.0, min=0.1, help="seconds a relayed write waits for the chain node to mine it; past it the caller gets a 503 naming the node"
    ),
    runtime: str = typer.Option("local", help="host the market in this process (local) or on Ray (ray: a local Ray, or the cluster at --address)"),
    address: str | None = typer.Option(
        None, help="the Ray cluster where the deployment to join runs (alone: join the one named agora), or to host the market on (--runtime ray)"
    ),
    join: str | None = typer.Option(None, help="join the running deployment of this name (agora deploy --name) instead of hosting a market"),
    gpus: int = typer.Option(2, help="logical GPUs for a local Ray"),
) -> None:
    """Serve the market over HTTP: the API under /v1 (OpenAPI at /docs), the explorer at /."""
    import uvicorn

    from agora.agents.ray.deployment import DeploymentError
    from agora.gateway import JoinedMarket, create_app
    from agora.simulations.hosted import hosted

    if runtime not in ("local", "ray"):
        typer.echo(f"--runtime is local or ray, not {runtime!r}", err=True)
        raise typer.Exit(code=2)
    if address and runtime == "local" and not join:
        join = "agora"  # a cluster's address and nothing to host: join its deployment (agora deploy's default name)
    if join:
        _join(address)  # the deployment's cluster, in Agora's namespace, with its token
        try:
            market: Any = JoinedMarket(join)
        except DeploymentError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from None
        typer.echo(f"joined deployment {join} ({len(market.names)} agents)", err=True)
    else:
        if runtime == "ray":
            _start_ray(address, gpus)
        typer.echo(f"hosting {scenario} on the {runtime} runtime ...", err=True)
        market = hosted(scenario, runtime=runtime, ledger=ledger)
    try:
        typer.echo(f"gateway {market.gateway} on http://{host}:{port} (explorer at /, API docs at /docs)", err=True)
        uvicorn.run(create_app(market, rate=rate, burst=burst, faucet=faucet, write_timeout=write_timeout), host=host, port=port, log_level="warning")
    finally:
        market.close()
