"""Bidding strategies: how a trader turns its private limit into a quote.

A trader's ``limit`` is its reservation value: what a unit is worth to a buyer, what it costs a
seller. Every strategy's ``quote`` goes through one gate, ``Strategy.quote``, which keeps the
price on the market's tick range, never bids above a buyer's cash ``budget``, and (for every
strategy but the unconstrained ZI-U control) never quotes past the limit, so no constrained
strategy can trade at a loss. One object per trader: adaptive strategies (ZIP) keep state, and
all randomness comes from the ``rng`` the caller passes down, so a seeded run replays exactly.

- ``Truthful``: quote the limit (dominant in a second-price auction).
- ``ZIU`` / ``ZIC``: Gode & Sunder's (1993) zero-intelligence traders, uniform random prices,
  unconstrained and budget-constrained.
- ``ZIP``: Cliff's (1997) zero-intelligence-plus: a profit margin adapted by Widrow-Hoff
  learning from the shouts and trades it sees.
- ``Shading``: bid a fraction of one's value, (n-1)/n being the risk-neutral equilibrium of a
  first-price auction with n bidders and independent uniform values.
"""

from __future__ import annotations

import random

from agora.economy.errors import InvalidBid
from agora.economy.orders import BUY, SELL, Side


class Strategy:
    """The base every strategy extends: subclasses implement ``_price``; ``quote`` enforces the
    constraints, so no subclass can forget them."""

    #: False only for the ZI-U control, which by definition ignores its limit.
    constrained = True

    def __init__(self, floor: int = 1, ceiling: int = 200) -> None:
        if type(floor) is not int or type(ceiling) is not int or not 0 < floor <= ceiling:
            raise InvalidBid(f"price range must be ints with 0 < floor <= ceiling, got {floor!r}..{ceiling!r}")
        self.floor, self.ceiling = floor, ceiling

    def quote(self, side: Side, limit: int, rng: random.Random, budget: int | None = None) -> int | None:
        """A price for one unit, or None when no acceptable price exists (a buyer whose limit
        or budget is under the floor, a seller whose cost is over the ceiling)."""
        price = self._price(side, limit, rng)
        if side == BUY:
            cap = self.ceiling if not self.constrained else min(self.ceiling, limit)
            if budget is not None:
                cap = min(cap, budget)
            if cap < self.floor:
                return None
            return max(self.floor, min(price, cap))
        low = self.floor if not self.constrained else max(self.floor, limit)
        if low > self.ceiling:
            return None
        return min(self.ceiling, max(price, low))

    def observe(self, side: Side, price: int, traded: bool, limit: int | None) -> None:
        """See a shout (``side`` at ``price``, and whether it traded). ``limit`` is this trader's
        current limit, or None once it has nothing left to trade. Only learners care."""

    def _price(self, side: Side, limit: int, rng: random.Random) -> int:
        raise NotImplementedError


class Truthful(Strategy):
    def _price(self, side: Side, limit: int, rng: random.Random) -> int:
        return limit


class ZIU(Strategy):
    """Unconstrained zero intelligence: any price on the range, whatever the limit."""

    constrained = False

    def _price(self, side: Side, limit: int, rng: random.Random) -> int:
        return rng.randint(self.floor, self.ceiling)


class ZIC(Strategy):
    """Constrained zero intelligence: a buyer bids uniformly on [floor, value], a seller asks
    uniformly on [cost, ceiling]."""

    def _price(self, side: Side, limit: int, rng: random.Random) -> int:
        if side == BUY:
            return rng.randint(self.floor, max(self.floor, min(limit, self.ceiling)))
        return rng.randint(min(max(limit, self.floor), self.ceiling), self.ceiling)


class Shading(Strategy):
    """Bid ``factor`` of one's value: for first-price sealed bids, where bidding one's value
    earns nothing. ``Shading.equilibrium(n)`` is the (n-1)/n factor of the uniform-values case."""

    def __init__(self, factor: float, floor: int = 1, ceiling: int = 200) -> None:
        super().__init__(floor, ceiling)
        if not 0.0 < factor <= 1.0:
            raise InvalidBid(f"shading factor must be in (0, 1], got {factor!r}")
        self.factor = factor

    @classmethod
    def equilibrium(cls, bidders: int, floor: int = 1, ceiling: int = 200) -> Shading:
        if bidders < 2:
            raise InvalidBid(f"shading needs at least 2 bidders, got {bidders}")
        return cls((bidders - 1) / bidders, floor, ceiling)

    def _price(self, side: Side, limit: int, rng: random.Random) -> int:
        return int(limit * self.factor) if side == BUY else -int(-limit / self.factor)


class ZIP(Strategy):
    """Zero-intelligence-plus (Cliff 1997). The trader quotes limit * (1 - margin) as a buyer or
    limit * (1 + margin) as a seller, (one margin per unit it holds), and after each shout moves its price toward a target just
    beyond the shout's price (Widrow-Hoff with momentum): raising its margin when it could have
    asked for more, lowering it when it is being outbid or undercut. Its learning rate, momentum
    and first margin are drawn from ``rng`` once, as in the paper."""

    def __init__(self, side: Side, rng: random.Random, floor: int = 1, ceiling: int = 200, tick: float = 1.0) -> None:
        super().__init__(floor, ceiling)
        if side != BUY and side != SELL:
            raise InvalidBid(f"side must be 'buy' or 'sell', got {side!r}")
        self.beta = rng.uniform(0.1, 0.5)
        self.gamma = rng.uniform(0.0, 0.1)
        self.first_margin = rng.uniform(0.05, 0.35)
        self.margins: dict[int, float] = {}  # one margin per unit (keyed by its limit)
        self.tick = tick
        self._rng = rng
        self._delta = 0.0
        self.side = side

    def _price(self, side: Side, limit: int, rng: random.Random) -> int:
        return round(self._raw(side, limit))

    def margin(self, limit: int) -> float:
        return self.margins.get(limit, self.first_margin)

    def _raw(self, side: Side, limit: int) -> float:
        m = self.margin(limit)
        return limit * (1.0 - m) if side == BUY else limit * (1.0 + m)

    def observe(self, side: Side, price: int, traded: bool, limit: int | None) -> None:
        me = self.side
        if limit is None:
            return
        p = self._raw(me, limit)
        quoted = round(p)  # compare what it would quote with the shout, not the unrounded price
        r = self._rng
        up = price * r.uniform(1.0, 1.05) + r.uniform(0.0, self.tick)
        down = price * r.uniform(0.95, 1.0) - r.uniform(0.0, self.tick)
        target = None
        if me == BUY:
            if traded and quoted >= price:
                target = down  # could have paid less: widen the margin
            elif (traded and side != BUY and quoted <= price) or (not traded and side == BUY and quoted <= price):
                target = up  # being outbid, or missed a trade: narrow it
        else:
            if traded and quoted <= price:
                target = up
            elif (traded and side == BUY and quoted >= price) or (not traded and side != BUY and quoted >= price):
                target = down
        if target is None:
            return
        self._delta = self.gamma * self._delta + (1.0 - self.gamma) * self.beta * (target - p)
        new = p + self._delta
        margin = 1.0 - new / limit if me == BUY else new / limit - 1.0
        self.margins[limit] = min(max(margin, 0.0), 1.0 if me == BUY else 10.0)
