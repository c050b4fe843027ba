"""Soak: a sustained run of thousands of agents, minutes long; memory stays flat, throughput
steady, no errors. Not part of ``make test``.

    python bench/soak.py [--lone 2000] [--members 50000] [--steps 400]

Two markets run side by side on the local runtime with the memory ledger (messages in-process,
signing off): ``lone`` traders, one agent each, on a continuous double auction, and ``members``
traders in two cohorts on a call market; an outage hits a fifth of the providers of each every
100 steps for 20 steps. Every tenth of the run prints resident memory and the trades per second
of that stretch; the run ends by checking that the ledger conserved every token and that no
handler failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agora.simulations.runner import simulate  # noqa: E402
from agora.simulations.scenario import Scenario  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def scenario(lone: int, members: int, steps: int) -> Scenario:
    def traders(role_host: str, n: int, market: str, label: str) -> list[dict]:
        half = max(1, n // 2)
        return [
            {
                "role": "trader",
                "host": role_host,
                "count": half,
                "name": f"{label}-s{{i}}",
                "label": f"{label}-providers",
                "settings": {"market": market, "side": "sell", "units": 1},
                "draws": {"limit": {"uniform": [10, 110]}},
                "strategy": {"kind": "zic"},
            },
            {
                "role": "trader",
                "host": role_host,
                "count": max(1, n - half),
                "name": f"{label}-b{{i}}",
                "label": f"{label}-buyers",
                "funds": 10**9,
                "settings": {"market": market, "side": "buy", "units": 1},
                "draws": {"limit": {"uniform": [30, 200]}},
                "strategy": {"kind": "zic"},
            },
        ]

    shocks = [
        {"at": t * 10.0, "kind": "outage", "target": f"{m}-providers", "fraction": 0.2, "duration": 200.0}
        for t in range(50, steps - 20, 100)
        for m in ("lone", "pool")
    ]
    return Scenario.parse(
        {
            "name": "soak",
            "seed": 5,
            "duration": steps * 10,
            "step": 10,
            "markets": {"cda": {"mechanism": "cda", "rounds": 4}, "call": {"mechanism": "call", "rounds": 4}},
            "metrics": {"agent_every": 10**6},
            "agents": traders("agents", lone, "cda", "lone") + traders("cohort", members, "call", "pool"),
            "shocks": shocks,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lone", type=int, default=2_000)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    sc = scenario(args.lone, args.members, args.steps)
    samples: list[tuple[int, float, int, float]] = []
    started = time.perf_counter()

    def on_step(step: int, trades: int) -> None:
        samples.append((step, time.perf_counter() - started, trades, rss_mib()))

    with tempfile.TemporaryDirectory() as tmp:
        [summary] = simulate(sc, Path(tmp) / "run", progress=False, on_step=on_step)
    table = Table(title=f"soak: {summary.agents:,} agents ({args.lone:,} lone, {args.members:,} in cohorts), {args.steps} steps")
    for c in ("steps", "wall s", "trades", "trades/s (this stretch)", "resident MiB"):
        table.add_column(c, justify="right")
    marks = [samples[max(0, round(len(samples) * q / 10) - 1)] for q in range(1, 11)]
    last = (0, 0.0, 0, 0.0)
    for step, wall, trades, rss in marks:
        rate = (trades - last[2]) / (wall - last[1]) if wall > last[1] else 0.0
        table.add_row(str(step + 1), f"{wall:.0f}", f"{trades:,}", f"{rate:,.0f}", f"{rss:.0f}")
        last = (step, wall, trades, rss)
    console = Console(width=140)
    console.print(table)
    first, end = marks[1][3], marks[-1][3]
    console.print(
        f"resident memory {first:.0f} MiB at 20% of the run, {end:.0f} MiB at its end ({(end - first) / first * 100:+.1f}%); "
        f"{summary.trades:,} trades, handler errors {summary.errors}, money conserved: {summary.conserved}; shocks played {len(summary.shocks)}"
    )
    if summary.errors or not summary.conserved:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
