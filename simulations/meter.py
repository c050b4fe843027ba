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

import numpy as np

from agora.economy.metrics import allocative_efficiency, gini
from agora.simulations.director import PlannedShock

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
    """Columns of the market's traders (numpy), so a step's schedule of a hundred thousand
    traders is rebuilt in milliseconds."""

    market: str
    holders: list[Holder]
    shocks: list[PlannedShock]
    step: float
    earnings: dict[str, int] = field(default_factory=dict)  # seller -> turnover so far

    def __post_init__(self) -> None:
        self._index = {h.address: i for i, h in enumerate(self.holders)}
        self._buy = np.array([h.side == "buy" for h in self.holders], dtype=bool)
        self._limit = np.array([h.limit for h in self.holders], dtype=np.float64)
        self._units = np.array([h.units for h in self.holders], dtype=np.float64)
        self._targets = [(s, np.array([self._index[a] for a in s.targets if a in self._index], dtype=np.int64)) for s in self.shocks]
        self._sellers = np.flatnonzero(~self._buy)
        self._earned = np.zeros(len(self.holders), dtype=np.float64)

    def _columns(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(limit, units) of every trader in force at the start of step ``k``."""
        t = k * self.step + 1e-9
        limit, units = self._limit.copy(), self._units.copy()
        for s, who in self._targets:
            if not (s.at <= t and (s.duration is None or t < s.at + s.duration)) or not len(who):
                continue
            if s.kind == "outage":
                units[who] = 0
            elif s.kind == "demand_spike":
                units[who[self._buy[who]]] *= s.factor
            elif s.kind == "price_shock":
                limit[who] *= s.factor
        return np.maximum(1, np.rint(limit)).astype(np.int64), np.rint(units).astype(np.int64)

    def schedule(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Step ``k``'s unit schedule: every buyer's value and every seller's cost, once per unit."""
        return self._per_unit(*self._columns(k))

    def _per_unit(self, limit: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        buy = self._buy
        return np.repeat(limit[buy], units[buy]), np.repeat(limit[~buy], units[~buy])

    def row(self, k: int, trades: list[tuple[str, str, int, int]]) -> tuple[Any, ...]:
        """The ``steps`` row of step ``k`` given its trades (buyer, seller, price, qty)."""
        limit, units = self._columns(k)
        buy = self._buy
        values, costs = self._per_unit(limit, units)
        q, low, high, possible = _schedule(values, costs)
        offered, demanded = int(units[~buy].sum()), int(units[buy].sum())
        active = int(((units > 0) & ~buy).sum())
        index = self._index
        volume = 0
        achieved = 0.0
        turnover = 0
        lo = hi = None
        for buyer, seller, price, qty in trades:
            b, s = index.get(buyer), index.get(seller)
            achieved += ((limit[b] if b is not None else price) - (limit[s] if s is not None else price)) * qty
            volume += qty
            turnover += price * qty
            lo = price if lo is None or price < lo else lo
            hi = price if hi is None or price > hi else hi
            if s is not None:
                self._earned[s] += price * qty
            else:
                self.earnings[seller] = self.earnings.get(seller, 0) + price * qty
        mid = (low + high) / 2 if q else NAN
        alpha = NAN
        if trades and q and mid > 0:
            p = np.array([t[2] for t in trades], dtype=np.float64)
            w = np.array([t[3] for t in trades], dtype=np.float64)
            alpha = 100.0 * math.sqrt(float((w * (p - mid) ** 2).sum() / w.sum())) / mid
        earned = self._earned[self._sellers]
        return (
            k,
            (k + 1) * self.step,
            self.market,
            len(trades),
            volume,
            sum(t[2] for t in trades) / len(trades) if trades else NAN,
            float(lo) if lo is not None else NAN,
            float(hi) if hi is not None else NAN,
            turnover / volume if volume else NAN,
            q,
            low if q else NAN,
            high if q else NAN,
            float(achieved),
            possible,
            allocative_efficiency(float(achieved), possible) if possible > 0 else NAN,
            alpha,
            volume / offered if offered else 0.0,
            offered,
            demanded,
            active,
            _gini(earned) if len(earned) else 0.0,
        )


def _schedule(values: np.ndarray, costs: np.ndarray) -> tuple[int, float, float, float]:
    """economy.metrics' equilibrium (quantity, lowest and highest price) and max_surplus of a
    unit schedule, with numpy (the same answers: tests/simulations check them against it)."""
    vs, cs = np.sort(values)[::-1], np.sort(costs)
    n = min(len(vs), len(cs))
    q = int(np.argmin(vs[:n] > cs[:n])) if n and not (vs[:n] > cs[:n]).all() else n
    if q == 0:
        return 0, NAN, NAN, 0.0
    low = max(float(cs[q - 1]), float(vs[q]) if q < len(vs) else -math.inf)
    high = min(float(vs[q - 1]), float(cs[q]) if q < len(cs) else math.inf)
    return q, low, high, float((vs[:q] - cs[:q]).sum())


def _gini(earnings: np.ndarray) -> float:
    """economy.metrics.gini on an array."""
    xs = np.sort(earnings)
    n, total = len(xs), float(xs.sum())
    if n == 0 or total == 0:
        return 0.0
    return float(2 * ((np.arange(1, n + 1) * xs).sum()) / (n * total) - (n + 1) / n)


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
            k,
            (k + 1) * self.step,
            "deals",
            n,
            n,
            mean,
            min(prices) if n else NAN,
            max(prices) if n else NAN,
            mean,
            0,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            NAN,
            min(1.0, busy / capacity) if capacity else 0.0,
            len(self.providers),
            n,
            len(self.providers),
            gini(earnings) if earnings else 0.0,
        )


def is_nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)
