"""Scale: a GPU-hour market of 100,000 agents making 1,000,000 trades, Agora against Mesa.

    python bench/simulation.py [--agents 100000] [--periods 40] [--rounds 5]

What a trade is here: a matched order whose payment moved on the memory ledger (each fill moves
price * qty from the buyer's own account to the seller's, by the allowance the buyer gave the
exchange; checked: the ledger conserves every token). Agora runs on the local runtime with
messages in-process and signing off; its traders are hosted in two cohorts (sellers, buyers;
agents/roles/cohort.py): every trader keeps its own key, address, ledger account, limit, units
and cash, and a cohort sends one message a call for all its members. Metrics stream to Parquet
while the run goes (trades, per-period market metrics, every agent's state at the end).

The same market in Mesa (bench/mesa_market.py, ``Model``, ``Agent``, ``agents.shuffle_do``):
the same population (the same drawn limits), the same trading rule (``rounds`` uniform-price
calls a period, ZI-C quotes for all units left, price-time priority, the same array clearing
function), payments as wealth on the agents, a DataCollector per period.

Printed: build and run time, trades and quotes per second for both, the ratio, and Agora's
resident memory after a quarter of the run and at its end.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.simulations.runner import simulate  # noqa: E402
from agora.simulations.scenario import Scenario  # noqa: E402

FUNDS = 1_000_000


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def scenario(agents: int, periods: int, rounds: int, seed: int, host: str = "cohort") -> Scenario:
    half = agents // 2
    return Scenario.parse(
        {
            "name": "scale",
            "seed": seed,
            "duration": periods * 10,
            "step": 10,
            "markets": {"gpu": {"mechanism": "call", "good": "gpu-hour", "floor": 1, "ceiling": 200, "rounds": rounds}},
            "metrics": {"agent_every": 10**6},  # every agent's state once, at the end
            "agents": [
                {
                    "role": "trader",
                    "host": host,
                    "count": half,
                    "name": "provider-{i}",
                    "label": "providers",
                    "settings": {"market": "gpu", "side": "sell", "units": 1},
                    "draws": {"limit": {"uniform": [10, 110]}},
                    "strategy": {"kind": "zic"},
                },
                {
                    "role": "trader",
                    "host": host,
                    "count": agents - half,
                    "name": "buyer-{i}",
                    "label": "buyers",
                    "funds": FUNDS,
                    "settings": {"market": "gpu", "side": "buy", "units": 1},
                    "draws": {"limit": {"uniform": [30, 200]}},
                    "strategy": {"kind": "zic"},
                },
            ],
        }
    )


def run_agora(sc: Scenario, out: Path, progress: bool = True) -> dict:
    samples: list[tuple[int, float]] = []
    started = time.perf_counter()
    marks: dict[str, float] = {}

    def on_step(step: int, trades: int) -> None:
        if step == 0:
            marks["first"] = time.perf_counter()
        samples.append((step, rss_mib()))

    [summary] = simulate(sc, out, progress=progress, on_step=on_step)
    total = time.perf_counter() - started
    steps = len(samples)
    quarter = samples[max(0, steps // 4 - 1)][1]
    return {"summary": summary, "total": total, "samples": samples, "quarter": quarter, "end": samples[-1][1], "steps": steps}


def run_mesa(sc: Scenario, periods: int, rounds: int) -> dict:
    from bench.mesa_market import MesaMarket

    groups = {g.label: g for g in sc.agents}
    draw = lambda g: [(int(g.settings_for(n, sc.seed)["limit"]), int(g.settings["units"])) for n in g.names()]  # noqa: E731
    sellers, buyers = draw(groups["providers"]), draw(groups["buyers"])
    started = time.perf_counter()
    model = MesaMarket(sellers, buyers, FUNDS, rounds, seed=sc.seed if isinstance(sc.seed, int) else 0)
    built = time.perf_counter()
    for _ in range(periods):
        model.step()
    done = time.perf_counter()
    conserved = sum(a.cash for a in model.agents) == FUNDS * len(buyers)
    return {"build": built - started, "run": done - built, "trades": model.trades, "quotes": model.quotes, "volume": model.volume, "conserved": conserved}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--periods", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-mesa", action="store_true")
    parser.add_argument("--lone-agents", type=int, default=10_000, help="also run one agent per trader at this size (0: skip)")
    parser.add_argument("--lone-periods", type=int, default=5)
    args = parser.parse_args()
    sc = scenario(args.agents, args.periods, args.rounds, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        agora = run_agora(sc, Path(tmp) / "run")
        files = sum(f.stat().st_size for f in (Path(tmp) / "run").iterdir()) / 2**20
    mesa = None if args.no_mesa else run_mesa(sc, args.periods, args.rounds)
    lone = lone_mesa = None
    if args.lone_agents:
        small = scenario(args.lone_agents, args.lone_periods, args.rounds, args.seed, host="agents")
        with tempfile.TemporaryDirectory() as tmp:
            lone = run_agora(small, Path(tmp) / "run", progress=False)
        lone_mesa = None if args.no_mesa else run_mesa(small, args.lone_periods, args.rounds)
    s = agora["summary"]
    console = Console(width=150)
    table = Table(title=f"{args.agents:,} agents, {args.periods} periods x {args.rounds} calls (2 cores, CPU)")
    for c in ("framework", "total s", "trades", "trades/s", "quotes", "quotes/s", "conserved"):
        table.add_column(c, justify="right" if c != "framework" else "left")
    table.add_row(
        "Agora (local runtime, memory ledger, cohorts)",
        f"{agora['total']:.1f}",
        f"{s.trades:,}",
        f"{s.trades / agora['total']:,.0f}",
        f"{s.quotes:,}",
        f"{s.quotes / agora['total']:,.0f}",
        "yes" if s.conserved else "NO",
    )
    if mesa:
        mesa_total = mesa["build"] + mesa["run"]
        table.add_row(
            "Mesa 3 (Model, Agent, shuffle_do)",
            f"{mesa_total:.1f}",
            f"{mesa['trades']:,}",
            f"{mesa['trades'] / mesa_total:,.0f}",
            f"{mesa['quotes']:,}",
            f"{mesa['quotes'] / mesa_total:,.0f}",
            "yes" if mesa["conserved"] else "NO",
        )
    if lone:
        ls = lone["summary"]
        table.add_row(
            f"Agora, one agent per trader ({args.lone_agents:,} agents, {args.lone_periods} periods)",
            f"{lone['total']:.1f}",
            f"{ls.trades:,}",
            f"{ls.trades / lone['total']:,.0f}",
            f"{ls.quotes:,}",
            f"{ls.quotes / lone['total']:,.0f}",
            "yes" if ls.conserved else "NO",
        )
    if lone_mesa:
        t = lone_mesa["build"] + lone_mesa["run"]
        table.add_row(
            f"Mesa 3, same ({args.lone_agents:,} agents, {args.lone_periods} periods)",
            f"{t:.1f}",
            f"{lone_mesa['trades']:,}",
            f"{lone_mesa['trades'] / t:,.0f}",
            f"{lone_mesa['quotes']:,}",
            f"{lone_mesa['quotes'] / t:,.0f}",
            "yes" if lone_mesa["conserved"] else "NO",
        )
    console.print(table)
    floor = s.trades >= 1_000_000 and args.agents >= 100_000 and agora["total"] < 60
    console.print(
        f"Agora: {s.trades:,} trades among {s.agents:,} agents in {agora['total']:.1f} s (floor: 1,000,000 trades, 100,000 agents, < 60 s: {'met' if floor else 'NOT met'}); "
        f"mean allocative efficiency {s.mean_efficiency:.3f}; {files:.1f} MiB of Parquet records"
    )
    growth = (agora["end"] - agora["quarter"]) / agora["quarter"] * 100
    console.print(
        f"Agora resident memory: {agora['quarter']:.0f} MiB after a quarter of the run (period {agora['steps'] // 4}), {agora['end']:.0f} MiB at the end: "
        f"{growth:+.1f}% (floor < 10%); peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    if mesa:
        mesa_total = mesa["build"] + mesa["run"]
        console.print(
            f"Agora / Mesa: trades/s {s.trades / agora['total'] / (mesa['trades'] / mesa_total):.2f}x, quotes/s {s.quotes / agora['total'] / (mesa['quotes'] / mesa_total):.2f}x "
            f"(Mesa built its agents in {mesa['build']:.1f} s and ran {mesa['run']:.1f} s)"
        )


if __name__ == "__main__":
    main()
