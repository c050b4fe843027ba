"""Trading sessions (``economy.run_session``): shouts per CPU-second as the population grows,
against the quadratic session Agora had until issue 21 (kept here as the baseline), in the same run.

    python bench/session.py [--sizes 400,4000,40000] [--shouts 20000] [--seed 1]

Each trader holds three units with values (buyers) or costs (sellers) drawn from the seed; the
strategy is ZI-C (Gode & Sunder). Both sessions run the same population with the same seed and
must give the same trades; the baseline is skipped where it would take over a minute.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from agora.economy import ContinuousDoubleAuction, Order
from agora.economy.orders import BUY, SELL
from agora.economy.session import UnitTrader, run_session
from agora.economy.strategies import ZIC


def quadratic_session(buyers: dict[str, Sequence[int]], sellers: dict[str, Sequence[int]], steps: int, seed: int) -> list[tuple[str, str, int]]:
    """The session as it was: every shout lists the active traders and tells every strategy."""
    rng = random.Random(seed)
    traders = []
    for side, group in ((BUY, buyers), (SELL, sellers)):
        for n, limits in group.items():
            rng.random()  # run_session seeds each strategy's own generator from the session's
            traders.append(UnitTrader(n, side, sorted(limits, reverse=side == BUY), ZIC(1, 200)))
    by_name = {t.name: t for t in traders}
    trades: list[tuple[str, str, int]] = []
    book, live, oid = ContinuousDoubleAuction(), {}, 0
    for _ in range(steps):
        active = [t for t in traders if t.next_limit() is not None]
        if not active:
            break
        trader = rng.choice(active)
        limit = trader.next_limit()
        assert limit is not None
        price = trader.strategy.quote(trader.side, limit, rng)
        if price is None:
            continue
        if trader.name in live:
            book.cancel(live.pop(trader.name))
        oid += 1
        fills = list(book.submit(Order(oid, trader.name, trader.side, price)))
        if not fills:
            live[trader.name] = oid
        for f in fills:
            by_name[f.buyer].traded += 1
            by_name[f.seller].traded += 1
            trades.append((f.buyer, f.seller, f.price))
        if fills:
            for name in list(live):
                book.cancel(live.pop(name))
        for t in traders:
            t.strategy.observe(trader.side, fills[-1].price if fills else price, bool(fills), t.next_limit())
    return trades


def population(n: int, seed: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    rng = random.Random(seed)
    half = n // 2
    return (
        {f"b{i}": [rng.randint(50, 200) for _ in range(3)] for i in range(half)},
        {f"s{i}": [rng.randint(1, 150) for _ in range(3)] for i in range(half)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="400,4000,40000")
    parser.add_argument("--shouts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    table = Table(title=f"run_session, ZI-C, {args.shouts:,} shouts (CPU time)")
    for column in ("traders", "Agora shouts/s", "quadratic shouts/s", "ratio", "trades"):
        table.add_column(column, justify="right")
    for n in (int(s) for s in args.sizes.split(",")):
        buyers, sellers = population(n, args.seed)
        start = time.process_time()
        result = run_session(buyers, sellers, lambda name, side, rng: ZIC(1, 200), steps=args.shouts, seed=args.seed)
        agora = args.shouts / (time.process_time() - start)
        base, ratio = "skipped (over a minute)", "–"
        if n <= 4_000:
            start = time.process_time()
            old = quadratic_session(buyers, sellers, args.shouts, args.seed)
            quad = args.shouts / (time.process_time() - start)
            assert [(t.buyer, t.seller, t.price) for t in result.trades] == old, "the two sessions disagree"
            base, ratio = f"{quad:,.0f}", f"{agora / quad:.1f}×"
        table.add_row(f"{n:,}", f"{agora:,.0f}", base, ratio, f"{len(result.trades):,}")
    Console().print(table)


if __name__ == "__main__":
    main()
