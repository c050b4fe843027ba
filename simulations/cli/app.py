"""The `agora` command line: the app, and what every command shares (starting or joining Ray:
entry points do it, library code never does)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Agora: a multi-agent economy for AI work.", no_args_is_help=True, add_completion=False)


@app.callback()
def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _join(address: str | None) -> None:
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


def _start_ray(address: str | None, gpus: int = 0) -> None:
    """Join the cluster at ``address``, or start a local Ray with ``gpus`` logical GPUs (GPU
    jobs are scheduled on them; no GPU needed)."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_gpus=gpus, include_dashboard=False, log_to_driver=False)  # a Ray of its own, never one running here


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


def _summary_table(results: list) -> None:  # noqa: ANN001 - RunSummary objects
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Runs")
    for column in ("run", "agents", "steps", "trades", "units", "turnover", "efficiency", "conserved", "errors", "wall s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in results:
        eff = "–" if r.mean_efficiency is None else f"{r.mean_efficiency:.3f}"
        table.add_row(
            f"{r.name}/{r.variant}",
            f"{r.agents:,}",
            str(r.steps),
            f"{r.trades:,}",
            f"{r.volume:,}",
            f"{int(r.turnover):,}",
            eff,
            "[green]yes[/]" if r.conserved else "[red]NO[/]",
            str(r.errors),
            f"{r.wall_s:.1f}",
        )
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
