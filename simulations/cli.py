"""The `agora` command line. Entry points start or join Ray; library code never does."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

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
    from agora.simulations.demo import TradeConfig, run_trade
    from agora.simulations.report import render

    config = TradeConfig(runtime=runtime, ledger=ledger, seed=seed, gpus=min(1, gpus), rpc_url=rpc_url)
    if runtime == "ray":
        import ray

        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(address="local", num_gpus=gpus, include_dashboard=False, log_to_driver=False)  # a Ray of its own, never one running here
    try:
        report = run_trade(config)
    finally:
        if runtime == "ray":
            import ray

            ray.shutdown()
    render(report)
    if report.deal.status != "settled" or not report.conserved:
        raise typer.Exit(code=1)


def _join(address: Optional[str]) -> None:
    """Join the cluster at ``address`` in Agora's namespace, refusing one without Ray's token
    authentication (tests, only, may run a cluster without it)."""
    import ray

    from agora.agents.ray.deployment import NAMESPACE

    if os.environ.get("RAY_AUTH_MODE", "disabled") != "token" and os.environ.get("AGORA_TESTING_WITHOUT_RAY_AUTH") != "1":
        typer.echo(
            "Ray token authentication is off: set RAY_AUTH_MODE=token and the cluster's token "
            "(RAY_AUTH_TOKEN or `ray get-auth-token`) before deploying; only tests may turn it off",
            err=True,
        )
        raise typer.Exit(code=2)
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)


@app.command()
def deploy(
    population: Path = typer.Argument(..., help="the population file (YAML)"),
    address: Optional[str] = typer.Option(None, help="the Ray cluster (default: RAY_ADDRESS or the local one)"),
    name: str = typer.Option("agora", help="the deployment's name: its actors are NAME-shard-i, NAME-ledger, NAME-registry"),
    state: Path = typer.Option(Path(".agora/deployments/agora"), help="folder every node reaches: journals, and what `stop` keeps"),
    shards: int = typer.Option(2, min=1, help="shard actors hosting the agents"),
    rpc_url: Optional[str] = typer.Option(None, help="settle on this JSON-RPC node (default: a memory ledger kept across stop)"),
    address_book: Optional[str] = typer.Option(None, help="with --rpc-url: the contracts' address book"),
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
    address: Optional[str] = typer.Option(None, help="the Ray cluster"),
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
    address: Optional[str] = typer.Option(None, help="the Ray cluster"),
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


def _overrides(pairs: list[str]) -> dict[str, object]:
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        path, sep, value = pair.partition("=")
        if not sep or not path:
            typer.echo(f"--set takes PATH=VALUE (markets.gpu.mechanism=call), got {pair!r}", err=True)
            raise typer.Exit(code=2)
        out[path.strip()] = yaml.safe_load(value)
    return out


def _load_scenario(name: str, overrides: dict[str, object]):  # noqa: ANN202 - a Scenario
    from agora.simulations.errors import ScenarioError
    from agora.simulations.scenario import Scenario

    try:
        scenario = Scenario.load(name)
        return scenario.with_overrides(overrides) if overrides else scenario
    except ScenarioError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


def _start_ray(address: Optional[str], gpus: int = 0) -> None:
    """Join the cluster at ``address``, or start a local Ray with ``gpus`` logical GPUs (GPU
    jobs are scheduled on them; no GPU needed)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_gpus=gpus, include_dashboard=False, log_to_driver=False)  # a Ray of its own, never one running here


def _summary_table(results: list) -> None:  # noqa: ANN001 - RunSummary objects
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Runs")
    for column in ("run", "agents", "steps", "trades", "units", "turnover", "efficiency", "conserved", "errors", "wall s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in results:
        eff = "–" if r.mean_efficiency is None else f"{r.mean_efficiency:.3f}"
        table.add_row(f"{r.name}/{r.variant}", f"{r.agents:,}", str(r.steps), f"{r.trades:,}", f"{r.volume:,}", f"{int(r.turnover):,}", eff,
                      "[green]yes[/]" if r.conserved else "[red]NO[/]", str(r.errors), f"{r.wall_s:.1f}")
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def _finish(runs, out: Path, report: bool, failure: int) -> None:  # noqa: ANN001 - a thunk giving RunSummary objects
    """Run, print the summary table, write the report; exit non-zero when a run failed or
    did not conserve money."""
    from agora.simulations.errors import SimulationsError

    try:
        results = runs()
    except SimulationsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=failure) from None
    _summary_table(results)
    if report:
        from agora.simulations.htmlreport import write_report

        typer.echo(f"report: {write_report(out)}")
    if not all(r.conserved for r in results):
        raise typer.Exit(code=1)


@app.command()
def simulate(
    scenario: str = typer.Argument(..., help="a scenario file (YAML) or a built-in name (agora scenarios)"),
    runtime: Optional[str] = typer.Option(None, help="local (one process, virtual clock) or ray"),
    address: Optional[str] = typer.Option(None, help="with --runtime ray: the cluster to join (default: a local Ray)"),
    ledger: Optional[str] = typer.Option(None, help="memory, embedded (py-evm chain) or a JSON-RPC URL"),
    seed: Optional[int] = typer.Option(None, help="the run seed (same seed, same run)"),
    out: Path = typer.Option(Path("runs/latest"), help="folder for the run records (Parquet), summary and report"),
    set_: list[str] = typer.Option([], "--set", help="override a field: PATH=VALUE (agents.buyers.count=500)"),
    report: bool = typer.Option(True, help="write report.html when done"),
    gpus: int = typer.Option(1, help="with --runtime ray and no --address: logical GPUs for the local Ray"),
) -> None:
    """Run a scenario with a progress bar, stream its metrics to Parquet, print a summary."""
    from agora.simulations.runner import simulate as run

    overrides = _overrides(set_)
    for key, value in (("runtime.kind", runtime), ("runtime.address", address), ("ledger", ledger), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    chosen = _load_scenario(scenario, overrides)
    if chosen.runtime.kind == "ray":
        _start_ray(chosen.runtime.address, gpus)
    _finish(lambda: run(chosen, out), out, report, failure=1)


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    from rich.console import Console
    from rich.table import Table

    from agora.simulations.scenario import builtins

    table = Table(title="Built-in scenarios (agora simulate NAME)")
    for column in ("name", "agents", "markets", "steps", "variants", "what it is"):
        table.add_column(column)
    for name, sc in builtins().items():
        markets = ", ".join(f"{m}:{spec.mechanism}" for m, spec in sc.markets.items()) or "deals"
        table.add_row(name, f"{sc.size():,}", markets, str(sc.steps()), ", ".join(sc.variants) or "–", sc.description)
    Console().print(table)


@app.command("report")
def report_cmd(out: Path = typer.Argument(..., help="a run folder (or a folder of variants / sweep points)")) -> None:
    """Write a self-contained HTML report with plots of a run (or a comparison of runs)."""
    from agora.simulations.errors import ReportError
    from agora.simulations.htmlreport import write_report

    try:
        typer.echo(f"report: {write_report(out)}")
    except ReportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


@app.command()
def sweep(
    scenario: str = typer.Argument(..., help="a scenario file or a built-in name"),
    param: list[str] = typer.Option(..., "--param", help="PATH=V1,V2,...: a parameter and the values it takes (repeat for a grid)"),
    out: Path = typer.Option(Path("runs/sweep"), help="folder for the points (one run folder each) and sweep.json"),
    address: Optional[str] = typer.Option(None, help="the Ray cluster to spread the points over (default: a local Ray)"),
    local: bool = typer.Option(False, "--local", help="run the points one by one in this process, without Ray"),
    report: bool = typer.Option(True, help="write the comparison report when done"),
) -> None:
    """Run a grid of parameter values, each point a Ray task; points already done are skipped."""
    import yaml

    from agora.simulations.sweep import sweep as run_sweep

    params: dict[str, list[object]] = {}
    for item in param:
        path, sep, values = item.partition("=")
        if not sep or not values:
            typer.echo(f"--param takes PATH=V1,V2 (seed=1,2,3), got {item!r}", err=True)
            raise typer.Exit(code=2)
        params[path.strip()] = [yaml.safe_load(v) for v in values.split(",")]
    chosen = _load_scenario(scenario, {})
    if not local:
        _start_ray(address)
    _finish(lambda: run_sweep(chosen, params, out, parallel=not local), out, report, failure=2)


@app.command()
def trace(
    deal_id: str = typer.Argument(..., help="a deal id (whole deals), or an exchange settlement's tx hash"),
    out: Path = typer.Option(Path("runs/latest"), help="the run folder"),
) -> None:
    """Tell one deal's story from a run's records: messages, contract states, job, transactions."""
    from agora.simulations.errors import ReportError
    from agora.simulations.trace import render, story

    try:
        render(story(out, deal_id))
    except ReportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as v

    typer.echo(v("agora-economy"))


@app.command()
def chaos(
    chain: str = typer.Option("embedded", help="embedded (py-evm in the ledger actor) or anvil (a node the run starts, behind a faulty proxy)"),
    seed: int = typer.Option(1, help="the fault plan's seed: same seed, same faults at the same moments"),
    duration: Optional[float] = typer.Option(None, help="seconds of market (default: the scenario's)"),
    scenario: str = typer.Option("chaos-economy", help="the economy to run (a built-in name or a file)"),
    shards: int = typer.Option(3, help="shard actors (durable) hosting the agents"),
    shard_kills: int = typer.Option(2, help="shard processes to kill"),
    job_kills: int = typer.Option(1, help="running inference job workers to SIGKILL"),
    chain_restarts: int = typer.Option(1, help="anvil restarts (state dumped and reloaded)"),
    drop_rate: float = typer.Option(0.05, help="share of cross-shard deliveries lost before acceptance"),
    rpc_fault_rate: float = typer.Option(0.01, help="share of JSON-RPC requests refused, lost or stalled (anvil)"),
    out: Path = typer.Option(Path("runs/chaos"), help="folder for the run's records and chaos.json"),
    gpus: int = typer.Option(2, help="logical GPUs for the local Ray"),
) -> None:
    """Run the full economy on Ray under faults drawn from a seed; print what was injected and
    the exact end checks (exit 1 if any fails)."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.table import Table

    from agora.simulations.chaos import ChaosConfig, run_chaos

    try:
        config = ChaosConfig(chain=chain, seed=seed, duration=duration, scenario=scenario, shards=shards, shard_kills=shard_kills,
                             job_kills=job_kills, chain_restarts=chain_restarts, drop_rate=drop_rate, rpc_fault_rate=rpc_fault_rate)
    except ValidationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None
    _start_ray(None, gpus)
    report = run_chaos(config, out)
    console = Console()
    injected = Table(title=f"Injected (seed {seed}, {chain} chain)")
    for column in ("at s", "fault", "target", "outcome"):
        injected.add_column(column)
    for f in report.faults:
        injected.add_row(f"{f.at:.1f}", f.kind, f.target, f.outcome)
    console.print(injected)
    console.print(", ".join(f"{k}: {v}" for k, v in report.counts.items()))
    checked = Table(title="Checked")
    for column in ("", "check", "expected", "found"):
        checked.add_column(column)
    for c in report.checks:
        checked.add_row("[green]ok[/]" if c.ok else "[red]FAIL[/]", c.name, c.expected, c.found)
    console.print(checked)
    console.print(f"{report.trades} trades, deals {report.deals}, {report.wall_s} s; records in {out}")
    if not report.ok:
        raise typer.Exit(code=1)


@app.command()
def gateway(
    scenario: str = typer.Option("gateway-market", help="the market to host in this process (a built-in name or a scenario file)"),
    host: str = typer.Option("127.0.0.1", help="the address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, min=0, max=65535, help="the port to listen on"),
    ledger: Optional[str] = typer.Option(None, help="memory, embedded or a JSON-RPC URL (default: the scenario's)"),
    rate: float = typer.Option(20.0, help="requests per second per address (and per unsigned client), on average"),
    burst: int = typer.Option(40, help="requests per address in a burst"),
    faucet: int = typer.Option(0, min=0, help="base units POST /v1/faucet mints once to each caller (a trial market; 0: none)"),
    write_timeout: float = typer.Option(60.0, min=0.1, help="seconds a relayed write waits for the chain node to mine it; past it the caller gets a 503 naming the node"),
    runtime: str = typer.Option("local", help="host the market in this process (local) or on Ray (ray: a local Ray, or the cluster at --address)"),
    address: Optional[str] = typer.Option(None, help="the Ray cluster where the deployment to join runs (alone: join the one named agora), or to host the market on (--runtime ray)"),
    join: Optional[str] = typer.Option(None, help="join the running deployment of this name (agora deploy --name) instead of hosting a market"),
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


sign_app = typer.Typer(help="Sign for the gateway with your key, for curl and other HTTP clients (nothing leaves this machine).", no_args_is_help=True)
app.add_typer(sign_app, name="sign")


def _signer(key: Optional[str], seed: Optional[str]) -> Any:
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
    key: Optional[str] = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: Optional[str] = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
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
    key: Optional[str] = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: Optional[str] = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
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
    key: Optional[str] = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: Optional[str] = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
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
    key: Optional[str] = typer.Option(None, help="your private key, hex (default: $AGORA_KEY)"),
    seed: Optional[str] = typer.Option(None, help="SEED:NAME, a key derived for trying things out (default: $AGORA_SEED)"),
) -> None:
    """Print {"signed": "0x..."} for POST /v1/tx/{prepared_id}: the transaction signed with your key."""
    import json

    text = sys.stdin.read() if tx == "-" else Path(tx[1:]).read_text() if tx.startswith("@") else tx
    data = json.loads(text)
    data = data.get("tx", data)  # the whole answer of POST /v1/tx, or just its tx
    typer.echo(json.dumps({"signed": "0x" + bytes(_signer(key, seed).sign_transaction(data)).hex()}))


if __name__ == "__main__":
    app()
