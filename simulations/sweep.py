"""Parameter sweeps: every point of a grid of overrides, each run a Ray task, resumable.

``sweep(scenario, {"markets.gpu.mechanism": ["cda", "call"], "seed": [1, 2, 3]}, out)`` runs
the six points (times the scenario's variants) as Ray tasks of one CPU each, spread over
whatever cluster this process joined (the entry point starts or joins Ray; ``parallel=False``
runs them one after another in this process). Each point is a local-runtime run in its own
folder under ``out``; a point whose folder already holds a ``summary.json`` is not run again,
so a sweep that was stopped picks up where it was. ``sweep.json`` lists the points and their
overrides; ``agora report OUT`` compares them.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from agora.agents.population import from_spec, to_spec
from agora.simulations.runner import RunSummary, run
from agora.simulations.scenario import Scenario


def grid(params: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the parameters' values, the first parameter varying slowest."""
    keys = list(params)
    return [dict(zip(keys, values, strict=False)) for values in itertools.product(*(params[k] for k in keys))]


def point_name(index: int, overrides: dict[str, Any], variant: str | None = None) -> str:
    parts = [f"{k.split('.')[-1]}={v}" for k, v in overrides.items()] + ([variant] if variant else [])
    slug = re.sub(r"[^A-Za-z0-9=._-]+", "_", "-".join(parts))[:80]
    return f"p{index:03d}-{slug}" if slug else f"p{index:03d}"


def plan(scenario: Scenario, params: dict[str, list[Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(folder name, overrides) for every point, the scenario's variants expanded (a point's
    values win over a variant's); each validated now, so a bad value stops the sweep before
    anything runs."""
    points: list[tuple[str, dict[str, Any]]] = []
    for i, overrides in enumerate(grid(params)):
        for variant, changes in (scenario.variants or {"": {}}).items():
            merged = {**changes, **overrides, "variants": {}, "runtime.kind": "local"}
            scenario.with_overrides(merged, f"sweep point {overrides}{' ' + variant if variant else ''}")
            points.append((point_name(i, overrides, variant or None), merged))
    return points


def _run_point(spec: dict[str, Any], out: str, overrides: dict[str, Any], name: str) -> dict[str, Any]:
    scenario = from_spec(spec)
    assert isinstance(scenario, Scenario)
    return run(scenario.with_overrides(overrides, f"point {name}"), Path(out), variant=name, progress=False).model_dump()


def sweep(scenario: Scenario, params: dict[str, list[Any]], out: Path | str, parallel: bool = True, progress: bool = True) -> list[RunSummary]:
    """Run every point not already done; returns every point's summary, in grid order."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    points = plan(scenario, params)
    (out / "sweep.json").write_text(
        json.dumps({"scenario": scenario.name, "params": params, "points": [{"name": n, "overrides": o} for n, o in points]}, indent=1, default=str)
    )
    todo = [(n, o) for n, o in points if not (out / n / "summary.json").exists()]
    spec = to_spec(scenario)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]sweep {scenario.name}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not progress) as bar:
        task = bar.add_task("points", total=len(points), completed=len(points) - len(todo))
        if parallel and todo:
            from agora.tasks.ray_executor import map_tasks

            for _ in map_tasks(_run_point, [(spec, str(out / n), o, n) for n, o in todo]):
                bar.update(task, advance=1)
        else:
            for n, o in todo:
                _run_point(spec, str(out / n), o, n)
                bar.update(task, advance=1)
    return [RunSummary.model_validate_json((out / n / "summary.json").read_text()) for n, _ in points]
