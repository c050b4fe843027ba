"""`agora demo | simulate | scenarios | report | sweep | trace | version | chaos`: runs."""

from __future__ import annotations

from pathlib import Path

import typer

from agora.simulations.cli.app import _finish, _load_scenario, _overrides, _start_ray, app


@app.command()
def demo(
    runtime: str = typer.Option("ray", help="ray (agents as Ray actors) or local (one process)"),
    ledger: str = typer.Option("evm", help="evm (embedded py-evm chain) or memory"),
    rpc_url: str | None = typer.Option(None, help="with --ledger evm: settle on this JSON-RPC node (anvil, a devnet)"),
    address: str | None = typer.Option(None, help="join an existing Ray cluster at this address"),
    gpus: int = typer.Option(1, help="logical GPUs for the local Ray head (no GPU needed)"),
    seed: int = typer.Option(7, help="run seed: same seed, same keys and outcome"),
) -> None:
    """Run one AI trade end to end and print who paid and earned what."""
    from agora.simulations.demo import TradeConfig, run_trade
    from agora.simulations.report import render

    # validated from the command line's strings (the model checks runtime and ledger)
    config = TradeConfig.model_validate({"runtime": runtime, "ledger": ledger, "seed": seed, "gpus": min(1, gpus), "rpc_url": rpc_url})
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


@app.command()
def simulate(
    scenario: str = typer.Argument(..., help="a scenario file (YAML) or a built-in name (agora scenarios)"),
    runtime: str | None = typer.Option(None, help="local (one process, virtual clock) or ray"),
    address: str | None = typer.Option(None, help="with --runtime ray: the cluster to join (default: a local Ray)"),
    ledger: str | None = typer.Option(None, help="memory, embedded (py-evm chain) or a JSON-RPC URL"),
    seed: int | None = typer.Option(None, help="the run seed (same seed, same run)"),
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
    address: str | None = typer.Option(None, help="the Ray cluster to spread the points over (default: a local Ray)"),
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
    duration: float | None = typer.Option(None, help="seconds of market (default: the scenario's)"),
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
        config = ChaosConfig.model_validate(  # from the command line's strings (the model checks chain)
            {
                "chain": chain,
                "seed": seed,
                "duration": duration,
                "scenario": scenario,
                "shards": shards,
                "shard_kills": shard_kills,
                "job_kills": job_kills,
                "chain_restarts": chain_restarts,
                "drop_rate": drop_rate,
                "rpc_fault_rate": rpc_fault_rate,
            }
        )
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
