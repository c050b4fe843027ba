"""The benchmark's market written idiomatically in Mesa (3.x): the tool a market modeller would
pick instead of Agora. Same trading rule and population as the Agora side of bench/simulation.py:

- providers sell GPU-hours, buyers buy them; each has ``units`` a period at a private limit
  (a provider's cost, a buyer's value) drawn uniformly; buyers start with ``funds``;
- each period has ``rounds`` calls; before each call every trader with units left quotes all of
  them at one ZI-C price (Gode & Sunder: uniform between the floor and its value, capped so its
  units fit its cash, for a buyer; between its cost and the ceiling, for a seller);
- each call clears the book at one uniform price by price-time priority (economy.callmarket's
  rule; the same array clearing function as the Agora exchange, so the comparison measures the
  frameworks, not two matching routines); each fill pays price * qty from buyer to seller.

Mesa idiom: ``Trader(mesa.Agent)`` with a ``quote`` method, the model's ``step`` runs
``self.agents.shuffle_do("quote")`` and clears, wealth moves on the agents, a DataCollector
reports volume and price each period.
"""

from __future__ import annotations

import mesa

from agora.economy.callmarket import clear_arrays


class Trader(mesa.Agent):
    def __init__(self, model: MesaMarket, side: str, limit: int, units: int, cash: int) -> None:
        super().__init__(model)
        self.side, self.limit, self.units, self.cash = side, limit, units, cash
        self.left = units
        self.traded = 0

    def quote(self) -> None:
        if self.left <= 0:
            return
        m = self.model
        if self.side == "buy":
            cap = min(self.limit, self.cash // self.left, m.ceiling)
            if cap < m.floor:
                return
            m.bids.append((self, self.random.randint(m.floor, cap), self.left))
        else:
            low = max(self.limit, m.floor)
            if low > m.ceiling:
                return
            m.asks.append((self, self.random.randint(low, m.ceiling), self.left))


class MesaMarket(mesa.Model):
    def __init__(
        self, sellers: list[tuple[int, int]], buyers: list[tuple[int, int]], funds: int, rounds: int, floor: int = 1, ceiling: int = 200, seed: int = 0
    ) -> None:
        super().__init__(seed=seed)
        self.floor, self.ceiling, self.rounds = floor, ceiling, rounds
        self.bids: list[tuple[Trader, int, int]] = []
        self.asks: list[tuple[Trader, int, int]] = []
        self.trades = self.quotes = self.volume = 0
        self.last_price: int | None = None
        for limit, units in sellers:
            Trader(self, "sell", limit, units, 0)
        for limit, units in buyers:
            Trader(self, "buy", limit, units, funds)
        self.datacollector = mesa.DataCollector(model_reporters={"volume": "volume", "price": "last_price"})

    def call(self) -> None:
        bids, asks, self.bids, self.asks = self.bids, self.asks, [], []
        self.quotes += len(bids) + len(asks)
        price, bi, ai, qty = clear_arrays([b[1] for b in bids], [b[2] for b in bids], [a[1] for a in asks], [a[2] for a in asks])
        if price is None:
            return
        for b, a, q in zip(bi.tolist(), ai.tolist(), qty.tolist(), strict=False):
            buyer, seller = bids[b][0], asks[a][0]
            buyer.cash -= price * q
            seller.cash += price * q
            buyer.left -= q
            seller.left -= q
            buyer.traded += q
            seller.traded += q
            self.trades += 1
            self.volume += q
        self.last_price = price

    def step(self) -> None:
        self.agents.do(lambda a: setattr(a, "left", a.units))  # a new period: units refresh
        for _ in range(self.rounds):
            self.agents.shuffle_do("quote")
            self.call()
        self.datacollector.collect(self)
