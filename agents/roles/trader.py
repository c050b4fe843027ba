"""A trader: buys or sells units of one good at one exchange, each period, under a strategy.

The agent a market simulation is made of (GPU-hours in a double auction, model calls or data
uses at posted prices). Each trading period it has ``units`` to trade at its private ``limit``
(a buyer's value per unit, a seller's cost), and its strategy turns the limit into quotes
(economy.strategies: truthful, ZI-C, ZI-U, ZIP, shading), never past its limit (but for ZI-U) and
never past its cash. In an auction it keeps one order out at a time and quotes again when the
exchange reports the round; at posted prices a seller posts its price and capacity once a period
and reprices between periods (``pricing``: ``fixed``; ``adaptive`` raises after a sell-out and
lowers after a slack period, never under cost; ``revenue`` climbs toward the price that earned
most, as a price-setting monopolist would), and a buyer takes the cheapest posting under its
limit. A buyer allows the exchange to move what it holds (ERC-20 ``approve``); the exchange
settles every fill on the ledger, so the trader's books follow the exchange's reports.

Shocks reach it as messages: an outage keeps a seller out of the market, a demand spike
multiplies a buyer's units, a price shock multiplies its limit, until the shock is over.

It hears round reports only from the exchange it trades on, shocks only from the run's director
and its period timer only from itself; anything else is refused and counted (issue 19).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from agora.agents.agent import Agent, Context, on_message
from agora.agents.deal_protocol import from_self, refuse
from agora.agents.errors import AgentsError, NotAParty
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.agents.roles.market_protocol import CancelOrders, PlaceOrder, RoundReport, ShockEnds, ShockStarts
from agora.agents.roles.market_protocol import from_director as _from_director

Side = Literal["buy", "sell"]


class _Period(Message):
    period: int


class Trader(Agent):
    role = "trader"

    def __init__(
        self,
        name: str,
        identity: Identity,
        market: str,
        side: Side,
        limit: int,
        units: int = 1,
        strategy: Any = None,
        pricing: Literal["fixed", "adaptive", "revenue"] = "fixed",
        price: int | None = None,
        adjust: float = 0.05,
        per_order: int = 1,
        model: str = "",
        allowed: list[str] | None = None,
    ) -> None:
        super().__init__(name, identity)
        if side not in ("buy", "sell"):
            raise AgentsError(f"trader {name}: side must be buy or sell, got {side!r}")
        if type(limit) is not int or limit <= 0 or type(units) is not int or units < 0:
            raise AgentsError(f"trader {name}: limit must be a positive int and units a non-negative int, got {limit!r}, {units!r}")
        if pricing not in ("fixed", "adaptive", "revenue") or not 0 < adjust < 1:
            raise AgentsError(f"trader {name}: pricing is fixed, adaptive or revenue with 0 < adjust < 1, got {pricing!r}, {adjust!r}")
        self.market, self.side, self.limit, self.units = market, side, limit, units
        self.strategy_spec, self.pricing, self.adjust, self.per_order = strategy, pricing, adjust, max(1, per_order)
        self.price = price if price is not None else limit  # a posted seller's price
        self.model, self.allowed = model, allowed
        self.exchange = ""
        self.mechanism = "cda"
        self.terms: dict[str, Any] = {}
        self.strategy: Any = None
        self.cash = 0  # a buyer's spendable tokens, as its fills say (the ledger agrees)
        self.period = -1
        self.left = 0  # units still to trade this period
        self.done_this_period = 0
        self.traded = 0  # units over the run
        self.turnover = 0  # tokens paid (buyer) or earned (seller) over the run
        self.surplus = 0  # value minus price (buyer) or price minus cost (seller), over the run
        self.active = True
        self.demand = 1.0
        self.limit_factor = 1.0
        self._shocks: dict[int, tuple[str, float]] = {}
        self._cid = 0
        self._out: dict[int, int] = {}  # cid -> the period it was placed in
        self._pricing_memory: tuple[float, float] = (-1.0, 0.0)  # (best profit seen, its price)
        self._profit = 0
        self.refused: dict[str, int] = {}  # reason -> messages refused (agents.deal_protocol.refuse)

    # -- start -----------------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        found = [s for s in ctx.registry.search("market", ctx.now()) if s.terms.get("market") == self.market]
        if not found:
            raise AgentsError(f"trader {self.name}: no exchange for market {self.market!r}")
        self.exchange, self.terms = found[0].address, dict(found[0].terms)
        self.mechanism = str(self.terms["mechanism"])
        if self.strategy_spec is not None:
            spec = self.strategy_spec
            params = {"floor": int(self.terms["floor"]), "ceiling": int(self.terms["ceiling"]), **spec.params}
            self.strategy = spec.model_copy(update={"params": params}).build(self.side, ctx.rng)
        if self.side == "buy":
            self.cash = ctx.wallet.balance()
            if self.cash:
                ctx.wallet.approve(self.exchange, self.cash)
        self._begin(ctx, self._period_now(ctx))

    def _period_now(self, ctx: Context) -> int:
        return max(0, int(math.floor((ctx.now() - float(self.terms["t0"])) / float(self.terms["period"]) + 1e-9)))

    @on_message(_Period)
    def next_period(self, ctx: Context, sender: str, msg: _Period) -> None:
        if from_self(self, ctx, sender) and msg.period > self.period:
            self._begin(ctx, msg.period)

    def _begin(self, ctx: Context, period: int) -> None:
        if self.side == "sell" and self.mechanism == "posted" and self.period >= 0:
            self._reprice()
        self.period, self.done_this_period, self._profit = period, 0, 0
        self._refresh()
        at = float(self.terms["t0"]) + (period + 1) * float(self.terms["period"])
        ctx.schedule(max(0.0, at - ctx.now()), _Period(period=period + 1))
        self._quote(ctx)

    def effective_limit(self) -> int:
        return max(1, int(round(self.limit * self.limit_factor)))

    # -- quoting ---------------------------------------------------------------------------
    def _quote(self, ctx: Context) -> None:
        if self.left <= 0 or not self.active:
            return
        if self.mechanism == "posted":
            self._quote_posted(ctx)
            return
        if self._out:
            return  # one order out at a time: the round's report frees it
        limit = self.effective_limit()
        if self.strategy is None:
            price: int | None = limit
        else:
            price = self.strategy.quote(self.side, limit, ctx.rng, budget=self.cash if self.side == "buy" else None)
        if price is None or (self.side == "buy" and price > self.cash):
            return
        self._send(ctx, price, min(self.per_order, self.left))

    def _quote_posted(self, ctx: Context) -> None:
        if self._out:
            return
        if self.side == "sell":
            self._send(ctx, max(self.price, 1), self.left)
            return
        limit = self.effective_limit()
        qty = min(self.left, self.cash // limit) if limit else 0
        if qty > 0:
            self._send(ctx, limit, qty)

    def _send(self, ctx: Context, price: int, qty: int) -> None:
        cid = self._cid
        self._cid += 1
        self._out[cid] = self.period
        ctx.send(self.exchange, PlaceOrder(cid=cid, side=self.side, price=price, qty=qty, model=self.model, allowed=self.allowed))

    # -- what the exchange reports ---------------------------------------------------------
    @on_message(RoundReport)
    def report(self, ctx: Context, sender: str, msg: RoundReport) -> None:
        if sender != self.exchange:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the exchange {self.exchange} this trader trades on"))
            return
        limit = self.effective_limit()
        for cid, _, price, qty in msg.fills:
            placed = self._out.get(cid, self.period)
            if placed == self.period:
                self.left -= qty
                self.done_this_period += qty
            self.traded += qty
            self.turnover += price * qty
            if self.side == "buy":
                self.cash -= price * qty
                self.surplus += (limit - price) * qty
            else:
                self.surplus += (price - limit) * qty
                self._profit += (price - limit) * qty
            if self.strategy is not None:
                self.strategy.observe(self.side, price, True, limit)
        for cid in msg.closed:
            self._out.pop(cid, None)
        if self.strategy is not None and not msg.fills and msg.last_price is not None:
            self.strategy.observe("sell" if self.side == "buy" else "buy", msg.last_price, False, limit)
        self._quote(ctx)

    def _reprice(self) -> None:
        """Between periods, a posted seller's rule (see the module's docstring)."""
        cost = self.effective_limit()
        if self.pricing == "adaptive":
            if self.units and self.done_this_period >= self.units:
                self.price = int(math.ceil(self.price * (1 + self.adjust)))
            elif self.done_this_period * 2 < self.units:
                self.price = max(cost, int(self.price * (1 - self.adjust)))
        elif self.pricing == "revenue":
            best, at = self._pricing_memory
            if self._profit > best:
                self._pricing_memory = (float(self._profit), float(self.price))
                step = 1 + self.adjust if self.price >= at else 1 - self.adjust
            else:  # worse than the best price seen: head back toward it, and past it
                step = 1 + self.adjust if self.price < at else 1 - self.adjust
            self.price = max(cost, int(round(self.price * step)))

    # -- shocks ----------------------------------------------------------------------------
    @on_message(ShockStarts)
    def shocked(self, ctx: Context, sender: str, msg: ShockStarts) -> None:
        if not _from_director(ctx, sender, self):
            return
        self._shocks[msg.shock] = (msg.kind, msg.factor)
        self._apply_shocks()
        if not self.active and self._out:  # out of the market: what it had offered is withdrawn
            ctx.send(self.exchange, CancelOrders(cids=sorted(self._out)))
        self._quote(ctx)

    @on_message(ShockEnds)
    def shock_over(self, ctx: Context, sender: str, msg: ShockEnds) -> None:
        if not _from_director(ctx, sender, self):
            return
        self._shocks.pop(msg.shock, None)
        self._apply_shocks()
        self._quote(ctx)

    def _apply_shocks(self) -> None:
        """Shocks take effect at once: this period's units are what the new state allows,
        less what was already traded in it."""
        kinds = list(self._shocks.values())
        self.active = not any(k == "outage" for k, _ in kinds)
        self.demand = math.prod(f for k, f in kinds if k == "demand_spike")
        self.limit_factor = math.prod(f for k, f in kinds if k == "price_shock")
        self._refresh()

    def _refresh(self) -> None:
        self.left = max(0, int(round(self.units * self.demand)) - self.done_this_period) if self.active else 0

    # -- observable state ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"traded": self.traded, "turnover": self.turnover, "surplus": self.surplus, "cash": self.cash, "price": self.price, "active": self.active}
