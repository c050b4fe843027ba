"""Per-step market metrics, measured against what the step's traders could have achieved.

A market meter knows every trader's side, limit and units (drawn from the scenario, so the
metrics never ask the agents), and which shocks hit whom when: from those it rebuilds each
step's supply and demand schedule (an outage removes a seller's units, a demand spike multiplies
a buyer's, a price shock its limit; the state at the step's start counts for the step), its
competitive equilibrium (quantity and price interval) and the most surplus it allows, and sets
the step's trades against them: volume, prices, surplus achieved (value minus cost at the
traders' limits), allocative efficiency, Smith's alpha, utilization of offered units, and the
Gini coefficient of sellers' earnings so far. Only aggregates are kept between steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from economy.metrics import allocative_efficiency, equilibrium, gini, max_surplus, smiths_alpha
from simulations.director import PlannedShock

NAN = float("nan")


@dataclass(frozen=True)
class Holder:
    """What a trader brings to a market each step."""

    address: str
    name: str
    group: str
    side: str
    limit: int
    units: int


@dataclass
class MarketMeter:
    market: str
    holders: list[Holder]
    shocks: list[PlannedShock]
    step: float
    earnings: dict[str, int] = field(default_factory=dict)  # seller -> turnover so far

    def __post_init__(self) -> None:
        self._by_address = {h.address: h for h in self.holders}
        self._targets = [(s, frozenset(s.targets)) for s in self.shocks]

    def effective(self, k: int) -> dict[str, tuple[int, int]]:
        """address -> (limit, units) in force at the start of step ``k``."""
        t = k * self.step + 1e-9
        live = [(s, who) for s, who in self._targets if s.at <= t and (s.duration is None or t < s.at + s.duration)]
        out = {}
        for h in self.holders:
            limit, units = float(h.limit), float(h.units)
            for s, who in live:
                if h.address not in who:
                    continue
                if s.kind == "outage":
                    units = 0
                elif s.kind == "demand_spike" and h.side == "buy":
                    units *= s.factor
                elif s.kind == "price_shock":
                    limit *= s.factor
            out[h.address] = (max(1, int(round(limit))), int(round(units)))
        return out

    def row(self, k: int, trades: list[tuple[str, str, int, int]]) -> tuple[Any, ...]:
        """The ``steps`` row of step ``k`` given its trades (buyer, seller, price, qty)."""
        eff = self.effective(k)
        values: list[float] = []
        costs: list[float] = []
        offered = demanded = active = 0
        for h in self.holders:
            limit, units = eff[h.address]
            if h.side == "buy":
                values += [limit] * units
                demanded += units
            elif units:
                costs += [limit] * units
                offered += units
                active += 1
        q, low, high = equilibrium(values, costs)
        possible = max_surplus(values, costs)
        volume = sum(t[3] for t in trades)
        achieved = 0.0
        prices: list[float] = []
        for buyer, seller, price, qty in trades:
            value = eff.get(buyer, (price, 0))[0]
            cost = eff.get(seller, (price, 0))[0]
            achieved += (value - cost) * qty
            prices += [price] * qty
            self.earnings[seller] = self.earnings.get(seller, 0) + price * qty
        mid = (low + high) / 2 if q else NAN
        turnover = sum(p for p in prices)
        sellers = [self.earnings.get(h.address, 0) for h in self.holders if h.side == "sell"]
        return (
            k, (k + 1) * self.step, self.market, len(trades), volume,
            sum(t[2] for t in trades) / len(trades) if trades else NAN, min(prices) if prices else NAN, max(prices) if prices else NAN,
            turnover / volume if volume else NAN,
            q, low if q else NAN, high if q else NAN, achieved, possible,
            allocative_efficiency(achieved, possible) if possible > 0 else NAN,
            smiths_alpha(prices, mid) if prices and q and mid > 0 else NAN,
            volume / offered if offered else 0.0, offered, demanded, active, gini(sellers) if sellers else 0.0,
        )


@dataclass
class DealMeter:
    """The same ``steps`` row for a market of whole deals (the full economy): trades are
    settled deals at what the buyer paid; utilization is providers' busy seconds over theirs."""

    providers: list[str]
    step: float
    earnings: dict[str, int] = field(default_factory=dict)

    def row(self, k: int, deals: list[tuple[str, str, int, float]]) -> tuple[Any, ...]:
        """``deals``: (buyer, provider, paid, busy seconds) settled in step ``k``."""
        prices = [float(d[2]) for d in deals]
        busy = sum(d[3] for d in deals)
        for _, provider, paid, _ in deals:
            self.earnings[provider] = self.earnings.get(provider, 0) + paid
        n = len(deals)
        mean = sum(prices) / n if n else NAN
        capacity = len(self.providers) * self.step
        earnings = [self.earnings.get(p, 0) for p in self.providers]
        return (
            k, (k + 1) * self.step, "deals", n, n, mean, min(prices) if n else NAN, max(prices) if n else NAN, mean,
            0, NAN, NAN, NAN, NAN, NAN, NAN, min(1.0, busy / capacity) if capacity else 0.0, len(self.providers), n,
            len(self.providers), gini(earnings) if earnings else 0.0,
        )


def is_nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)
