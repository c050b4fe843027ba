"""Order-book throughput: orders per second through the public ContinuousDoubleAuction API,
against a simple reference book fed the same stream in the same run.

    python bench/orderbook.py [--n 500000] [--seed 1] [--repeat 3]

The stream (generated before timing, identical for both books): a mid price that random-walks a
tick at a time; 60% limit orders that rest (priced 1-20 ticks behind the mid), 20% marketable
limit orders (priced 1-5 ticks through the mid, so they cross and often rest a remainder), 20%
cancels of a random one of the last 2,000 orders; quantities 1-5; 100 traders.

Agora's row builds each validated ``Order`` inside the timed loop (validation is part of the
cost a user pays) and gets ``Fill`` objects back. The reference is the textbook pure-Python book
a user would write first: sorted lists kept with ``bisect.insort`` and a dict for cancels, fed
plain tuples (no validation), returning (buy id, sell id, price, qty) tuples. Both books must
report the same number of fills and traded volume, or the run fails.
"""

from __future__ import annotations

import argparse
import bisect
import random
import time

from rich.console import Console
from rich.table import Table

from agora.economy import BUY, SELL, ContinuousDoubleAuction, Order


def make_stream(n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    mid, ops = 10_000, []
    for i in range(n):
        mid += rng.choice((-1, 0, 1))
        r = rng.random()
        if r < 0.2 and i:
            ops.append(("cancel", rng.randint(max(0, i - 2000), i - 1)))
            continue
        side = BUY if rng.random() < 0.5 else SELL
        through = r < 0.4  # 20% of the stream: marketable
        offset = rng.randint(1, 5) if through else -rng.randint(1, 20)
        price = mid + offset if side == BUY else mid - offset
        ops.append(("order", (i, f"t{rng.randrange(100)}", side, price, rng.randint(1, 5))))
    return ops


class ReferenceBook:
    """Sorted lists per side ((key, seq) with key = -price for bids), bisect to insert."""

    def __init__(self) -> None:
        self.sides = {BUY: [], SELL: []}  # each: sorted [key, seq, id, trader, qty]
        self.live: dict[int, tuple[str, list]] = {}
        self.seq = 0

    def submit(self, oid: int, trader: str, side: str, price: int, qty: int) -> list[tuple]:
        fills = []
        other = self.sides[SELL if side == BUY else BUY]
        while qty and other:
            best = other[0]
            best_price = -best[0] if side == SELL else best[0]
            if (side == BUY and best_price > price) or (side == SELL and best_price < price):
                break
            q = min(qty, best[4])
            fills.append((oid, best[2], best_price, q) if side == BUY else (best[2], oid, best_price, q))
            qty -= q
            best[4] -= q
            if not best[4]:
                other.pop(0)
                del self.live[best[2]]
        if qty:
            self.seq += 1
            entry = [-price if side == BUY else price, self.seq, oid, trader, qty]
            bisect.insort(self.sides[side], entry)
            self.live[oid] = (side, entry)
        return fills

    def cancel(self, oid: int) -> bool:
        hit = self.live.pop(oid, None)
        if hit is None:
            return False
        self.sides[hit[0]].remove(hit[1])
        return True


def run_agora(ops: list[tuple]) -> tuple[float, int, int]:
    book = ContinuousDoubleAuction()
    submit, cancel = book.submit, book.cancel
    fills = volume = 0
    start = time.perf_counter()
    for kind, arg in ops:
        if kind == "order":
            got = submit(Order(*arg))
            if got:
                fills += len(got)
                volume += sum(f.qty for f in got)
        else:
            cancel(arg)
    return time.perf_counter() - start, fills, volume


def run_reference(ops: list[tuple]) -> tuple[float, int, int]:
    book = ReferenceBook()
    submit, cancel = book.submit, book.cancel
    fills = volume = 0
    start = time.perf_counter()
    for kind, arg in ops:
        if kind == "order":
            got = submit(*arg)
            if got:
                fills += len(got)
                volume += sum(f[3] for f in got)
        else:
            cancel(arg)
    return time.perf_counter() - start, fills, volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per book")
    args = parser.parse_args()
    console = Console()
    ops = make_stream(args.n, args.seed)
    mix = {k: sum(1 for o in ops if o[0] == k) for k in ("order", "cancel")}
    best: dict[str, tuple[float, int, int]] = {}
    with console.status("timing both books on the same stream..."):
        for _ in range(args.repeat):
            for name, fn in (("agora", run_agora), ("reference", run_reference)):
                got = fn(ops)
                if name not in best or got[0] < best[name][0]:
                    best[name] = got
    if best["agora"][1:] != best["reference"][1:]:
        raise SystemExit(f"the books disagree: agora {best['agora'][1:]}, reference {best['reference'][1:]}")
    table = Table(title=f"order book, {args.n:,} operations ({mix['order']:,} orders, {mix['cancel']:,} cancels), best of {args.repeat}")
    for col in ("book", "ops/s", "fills", "volume", "vs reference"):
        table.add_column(col, justify="right")
    ref_rate = args.n / best["reference"][0]
    for name in ("agora", "reference"):
        seconds, fills, volume = best[name]
        rate = args.n / seconds
        table.add_row(name, f"{rate:,.0f}", f"{fills:,}", f"{volume:,}", f"{rate / ref_rate:.2f}x")
    console.print(table)
    console.print("mix: 60% resting limit orders, 20% marketable limit orders, 20% cancels; mid random-walks by 1 tick")


if __name__ == "__main__":
    main()
