"""A trading session as experimental economists run one: unit traders with private values and
costs, trading in periods through a market, each with a strategy.

This is the harness the economic-validity tests and the simulations use to check the markets
against the literature. The market rule, stated because results depend on it (Gode & Sunder
1993): at each step one trader with a unit left is drawn at random and shouts a quote for its next
unit (the highest-value or lowest-cost one it has not traded); a trader has at most one order in
the book, so a new shout replaces its last; a shout that crosses trades at the resting price; and
after every trade the book is emptied. Every trader sees every shout (learners learn from them).
Each period restarts the units; strategies keep what they learned.

Efficiency is the surplus the trades made (value minus cost of each traded unit) over the most
the schedule allows; prices are compared with the competitive equilibrium by Smith's alpha.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agora.economy.callmarket import CallMarket
from agora.economy.errors import InvalidOrder
from agora.economy.metrics import allocative_efficiency, equilibrium, max_surplus, smiths_alpha
from agora.economy.orderbook import ContinuousDoubleAuction
from agora.economy.orders import BUY, SELL, Order, Side
from agora.economy.strategies import Strategy


@dataclass
class UnitTrader:
    """A trader with one limit per unit, best unit first (buyers: values high to low)."""

    name: str
    side: Side
    limits: list[int]
    strategy: Strategy
    traded: int = 0
    earnings: int = 0

    def next_limit(self) -> int | None:
        return self.limits[self.traded] if self.traded < len(self.limits) else None


class _Active:
    """The traders with a unit left, kept in their original order in a Fenwick tree: the k-th
    is found in O(log n), so a random pick costs the same among 40 or 40,000 traders and picks
    exactly the trader ``rng.choice`` would from the list of them."""

    def __init__(self, alive: list[bool]) -> None:
        self.n = len(alive)
        self.tree = [0] * (self.n + 1)
        self.count = 0
        for i, on in enumerate(alive):
            if on:
                self.add(i, 1)
        self.top = 1 << max(self.n.bit_length() - 1, 0)

    def add(self, index: int, delta: int) -> None:
        self.count += delta
        i = index + 1
        while i <= self.n:
            self.tree[i] += delta
            i += i & -i

    def kth(self, k: int) -> int:
        """The index of the ``k``-th (0-based) trader still active."""
        pos, rest, step = 0, k + 1, self.top
        while step:
            nxt = pos + step
            if nxt <= self.n and self.tree[nxt] < rest:
                pos, rest = nxt, rest - self.tree[nxt]
            step >>= 1
        return pos


@dataclass(frozen=True)
class Trade:
    period: int
    buyer: str
    seller: str
    price: int
    value: int
    cost: int


@dataclass
class SessionResult:
    trades: list[Trade]
    values: list[int]
    costs: list[int]
    periods: int
    earnings: dict[str, int] = field(default_factory=dict)

    def period_trades(self, period: int) -> list[Trade]:
        return [t for t in self.trades if t.period == period]

    def efficiency(self, period: int | None = None) -> float:
        """Achieved over maximum surplus, in one period or averaged over all."""
        best = max_surplus(self.values, self.costs)
        if period is not None:
            return allocative_efficiency(sum(t.value - t.cost for t in self.period_trades(period)), best)
        return sum(self.efficiency(p) for p in range(self.periods)) / self.periods

    def equilibrium_price(self) -> float:
        _, low, high = equilibrium(self.values, self.costs)
        return (low + high) / 2

    def alpha(self, period: int) -> float:
        """Smith's alpha of one period's prices (percent RMS deviation from equilibrium)."""
        return smiths_alpha([t.price for t in self.period_trades(period)], self.equilibrium_price())


StrategyFactory = Callable[[str, Side, random.Random], Strategy]


def run_session(
    buyers: dict[str, Sequence[int]],
    sellers: dict[str, Sequence[int]],
    strategy: StrategyFactory,
    *,
    periods: int = 1,
    steps: int = 1000,
    seed: int = 0,
    market: str = "cda",
) -> SessionResult:
    """Run ``periods`` periods of ``steps`` shouts each. ``strategy(name, side, rng)`` makes each
    trader's strategy; ``market`` is "cda" (continuous double auction) or "call" (a call market
    cleared once every round of as many shouts as there are traders)."""
    if market not in ("cda", "call"):
        raise InvalidOrder(f"market must be 'cda' or 'call', got {market!r}")
    rng = random.Random(seed)
    traders = [
        UnitTrader(n, side, sorted(limits, reverse=side == BUY), strategy(n, side, random.Random(rng.random())))
        for side, group in ((BUY, buyers), (SELL, sellers))
        for n, limits in group.items()
    ]
    by_name = {t.name: t for t in traders}
    index = {t.name: i for i, t in enumerate(traders)}
    # only strategies that learn from others' shouts are told of each one (ZIP): the others'
    # observe does nothing, and telling every trader of every shout made a session quadratic
    learners = [t for t in traders if type(t.strategy).observe is not Strategy.observe]
    values = [v for t in traders if t.side == BUY for v in t.limits]
    costs = [c for t in traders if t.side == SELL for c in t.limits]
    trades: list[Trade] = []
    oid = 0
    for period in range(periods):
        for t in traders:
            t.traded = 0
        book = ContinuousDoubleAuction() if market == "cda" else CallMarket()
        live: dict[str, int] = {}
        active = _Active([t.next_limit() is not None for t in traders])
        for step in range(steps):
            if not active.count:
                break
            trader = traders[active.kth(rng.randrange(active.count))]  # as rng.choice(the active traders)
            limit = trader.next_limit()
            assert limit is not None  # every active trader has a unit left
            price = trader.strategy.quote(trader.side, limit, rng)
            if price is None:
                continue
            if trader.name in live:
                book.cancel(live.pop(trader.name))
            oid += 1
            fills = list(book.submit(Order(oid, trader.name, trader.side, price)))
            if market == "call":
                live[trader.name] = oid
                if step % len(traders) == len(traders) - 1:  # one call per round of len(traders) shouts
                    fills = list(book.clear())
            elif not fills:
                live[trader.name] = oid
            for f in fills:
                buyer, seller = by_name[f.buyer], by_name[f.seller]
                value, cost = buyer.next_limit(), seller.next_limit()
                assert value is not None and cost is not None  # each had an order in, so a unit left
                trades.append(Trade(period, f.buyer, f.seller, f.price, value, cost))
                buyer.earnings += value - f.price
                seller.earnings += f.price - cost
                buyer.traded += 1
                seller.traded += 1
                for done in (buyer, seller):
                    if done.next_limit() is None:
                        active.add(index[done.name], -1)
            if fills:  # Gode & Sunder: the book empties after a trade
                for name in list(live):
                    book.cancel(live.pop(name))
            shout_price = fills[-1].price if fills else price
            for t in learners:
                t.strategy.observe(trader.side, shout_price, bool(fills), t.next_limit())
    return SessionResult(trades, values, costs, periods, {t.name: t.earnings for t in traders})
