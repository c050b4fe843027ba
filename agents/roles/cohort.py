"""A cohort: many traders of one side and market hosted as one agent, their state in arrays.

Big market simulations are made of many alike traders. Hosted one agent each, every quote is a
message, and a hundred thousand traders cost a hundred thousand handler calls a round. A cohort
keeps each member's own identity (key and address, from the run's seed and the member's name),
ledger account, limit, units, cash and counts, but as numpy columns, and speaks for all of them
at once: one ``CohortOrders`` message a period carries every member's order, one
``CohortFills`` brings back every member's fills. Members are still separate parties to the
ledger: each approves the exchange from its own account, each signs once that the cohort may
place orders for it (an exchange checks every member's signature before it settles anything from
that member's account, so a cohort cannot trade away accounts that did not join it), each fill
moves money from its own balance, and the exchange settles them exactly as it settles lone
traders (``transfer_from_many`` per 256 fills). Quotes follow the same strategies (truthful, ZI-C, ZI-U), drawn for the whole
cohort from one generator seeded by the run, so a seed replays the same quotes. Cohorts trade in
call markets (one uniform-price clearing a period), where every order meets the whole book at
once; lone traders may trade in the same market beside them. Fills are heard only from the
exchange the cohort trades on, shocks only from the director (issue 19): others are refused and
counted.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from agora.agents.agent import Agent, Context, on_message
from agora.agents.deal_protocol import from_self, refuse
from agora.agents.errors import AgentsError, NotAParty
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.agents.roles.market_protocol import CohortFills, CohortOrders, ShockEnds, ShockStarts, cohort_digest
from agora.agents.roles.market_protocol import from_director as _from_director

Side = Literal["buy", "sell"]


class _Period(Message):
    period: int


class TraderCohort(Agent):
    role = "cohort"

    def __init__(
        self,
        name: str,
        identity: Identity,
        market: str,
        side: Side,
        members: list[str],
        limits: list[int],
        units: list[int],
        seed: int | str = 0,
        strategy: str = "zic",
        floor: int | None = None,
        ceiling: int | None = None,
        delegate: bool = True,
    ) -> None:
        super().__init__(name, identity)
        if side not in ("buy", "sell") or strategy not in ("truthful", "zic", "ziu"):
            raise AgentsError(f"cohort {name}: side is buy or sell and strategy truthful, zic or ziu, got {side!r}, {strategy!r}")
        if not len(members) == len(limits) == len(units) or not members:
            raise AgentsError(f"cohort {name}: members, limits and units must be non-empty lists of one length")
        if min(limits) <= 0 or min(units) < 0:
            raise AgentsError(f"cohort {name}: limits must be positive and units non-negative")
        self.market, self.side, self.strategy = market, side, strategy
        self.names = list(members)
        self.keys = [Identity.from_seed(seed, m) for m in members]
        self.addresses = [k.address for k in self.keys]
        # each member's consent, under its own key: without it an exchange that checks (all but a
        # trusted single-process simulation, which signs nothing) settles nothing from its account
        self.delegations = [k.sign_digest(cohort_digest(self.address, k.address)) if delegate else "" for k in self.keys]
        self.limit = np.asarray(limits, dtype=np.int64)
        self.units = np.asarray(units, dtype=np.int64)
        n = len(members)
        self.left = np.zeros(n, dtype=np.int64)
        self.cash = np.zeros(n, dtype=np.int64)
        self.traded = np.zeros(n, dtype=np.int64)
        self.turnover = np.zeros(n, dtype=object)  # exact: base units can pass int64 over a long run
        self.surplus = np.zeros(n, dtype=np.float64)
        self.active = np.ones(n, dtype=bool)
        self.demand = np.ones(n, dtype=np.float64)
        self.limit_factor = np.ones(n, dtype=np.float64)
        self.floor, self.ceiling = floor, ceiling
        self.exchange = ""
        self.terms: dict[str, Any] = {}
        self.period = -1
        self.quotes = 0
        self._rng = np.random.default_rng(int.from_bytes(Identity.from_seed(seed, f"{name}:quotes")._key[:8], "big"))
        self._shocks: dict[int, tuple[str, float, np.ndarray]] = {}
        self.index = {a: i for i, a in enumerate(self.addresses)}
        self.refused: dict[str, int] = {}  # reason -> messages refused (agents.deal_protocol.refuse)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Arrays arrive read-only when Ray hands a cohort to its shard (zero-copy from the
        object store): own writable copies."""
        self.__dict__.update({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()})

    def on_start(self, ctx: Context) -> None:
        ctx.registry.register_agent(self.address, self.name, self.role)
        ctx.registry.register_cohort(self.address, self.addresses, self.delegations)
        found = [s for s in ctx.registry.search("market", ctx.now()) if s.terms.get("market") == self.market]
        if not found:
            raise AgentsError(f"cohort {self.name}: no exchange for market {self.market!r}")
        self.exchange, self.terms = found[0].address, dict(found[0].terms)
        if self.terms["mechanism"] != "call":
            raise AgentsError(f"cohort {self.name}: cohorts trade in call markets, {self.market!r} is {self.terms['mechanism']}")
        self.floor = int(self.terms["floor"]) if self.floor is None else self.floor
        self.ceiling = int(self.terms["ceiling"]) if self.ceiling is None else self.ceiling
        if self.side == "buy":  # each member allows the exchange its cash, from its own account, with its own key
            for i, key in enumerate(self.keys):
                self.cash[i] = ctx.ledger.balance_of(key.address)
                if self.cash[i]:
                    ctx.wallet.for_key(key).approve(self.exchange, int(self.cash[i]))
        self._begin(ctx, max(0, int(math.floor((ctx.now() - float(self.terms["t0"])) / float(self.terms["period"]) + 1e-9))))

    @on_message(_Period)
    def next_period(self, ctx: Context, sender: str, msg: _Period) -> None:
        if from_self(self, ctx, sender) and msg.period > self.period:
            self._begin(ctx, msg.period)

    def _begin(self, ctx: Context, period: int) -> None:
        self.period = period
        self.left = np.where(self.active, np.rint(self.units * self.demand).astype(np.int64), 0)
        at = float(self.terms["t0"]) + (period + 1) * float(self.terms["period"])
        ctx.schedule(max(0.0, at - ctx.now()), _Period(period=period + 1))
        self._quote(ctx)

    def effective_limits(self) -> np.ndarray:
        return np.maximum(1, np.rint(self.limit * self.limit_factor)).astype(np.int64)

    def _quote(self, ctx: Context) -> None:
        """Every member with units left quotes them all at one price, drawn by the strategy
        within its limit (and, for a buyer, so that all its units fit its cash)."""
        limit = self.effective_limits()
        floor, ceiling = int(self.floor or 1), int(self.ceiling or 1)
        want = self.left > 0
        if self.side == "buy":
            cap = (
                np.minimum(limit, self.cash // np.maximum(self.left, 1))
                if self.strategy != "ziu"
                else np.minimum(ceiling, self.cash // np.maximum(self.left, 1))
            )
            cap = np.minimum(cap, ceiling)
            want &= cap >= floor
            if self.strategy == "truthful":
                price = cap
            else:
                price = self._rng.integers(floor, np.maximum(cap, floor) + 1)
        else:
            low = np.maximum(limit, floor) if self.strategy != "ziu" else np.full(len(limit), floor)
            want &= low <= ceiling
            price = low if self.strategy == "truthful" else self._rng.integers(np.minimum(low, ceiling), ceiling + 1)
        members = np.flatnonzero(want)
        if not len(members):
            return
        self.quotes += int(len(members))
        ctx.send(self.exchange, CohortOrders(side=self.side, members=members.tolist(), prices=price[members].tolist(), qtys=self.left[members].tolist()))

    @on_message(CohortFills)
    def filled(self, ctx: Context, sender: str, msg: CohortFills) -> None:
        """A round's fills. Units count against the period the orders were placed in (a
        report of a period's last round may arrive after the next period began); members with
        units left quote again for the next round of the same period."""
        if sender != self.exchange:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the exchange {self.exchange} this cohort trades on"))
            return
        rounds = int(self.terms["rounds"])
        if msg.members:
            self._book(msg, same_period=(msg.round - 1) // rounds == self.period)
        if msg.round % rounds:  # the period goes on: another call for what is left
            self._quote(ctx)

    def _book(self, msg: CohortFills, same_period: bool) -> None:
        members = np.asarray(msg.members, dtype=np.int64)
        prices = np.asarray(msg.prices, dtype=np.int64)
        qtys = np.asarray(msg.qtys, dtype=np.int64)
        paid = prices * qtys
        limit = self.effective_limits()[members]
        if same_period:
            np.subtract.at(self.left, members, qtys)
        np.add.at(self.traded, members, qtys)
        for m, v in zip(msg.members, paid.tolist(), strict=False):
            self.turnover[m] += v
        if self.side == "buy":
            np.subtract.at(self.cash, members, paid)
            np.add.at(self.surplus, members, ((limit - prices) * qtys).astype(np.float64))
        else:
            np.add.at(self.surplus, members, ((prices - limit) * qtys).astype(np.float64))
        self.left = np.maximum(self.left, 0)

    # -- shocks ----------------------------------------------------------------------------
    @on_message(ShockStarts)
    def shocked(self, ctx: Context, sender: str, msg: ShockStarts) -> None:
        if _from_director(ctx, sender, self):
            hit = np.asarray([self.index[a] for a in msg.members if a in self.index], dtype=np.int64)
            self._shocks[msg.shock] = (msg.kind, msg.factor, hit)
            self._apply_shocks()

    @on_message(ShockEnds)
    def shock_over(self, ctx: Context, sender: str, msg: ShockEnds) -> None:
        if _from_director(ctx, sender, self):
            self._shocks.pop(msg.shock, None)
            self._apply_shocks()

    def _apply_shocks(self) -> None:
        n = len(self.names)
        self.active, self.demand, self.limit_factor = np.ones(n, dtype=bool), np.ones(n), np.ones(n)
        for kind, factor, hit in self._shocks.values():
            if kind == "outage":
                self.active[hit] = False
            elif kind == "demand_spike":
                self.demand[hit] *= factor
            else:
                self.limit_factor[hit] *= factor
        self.left = np.where(self.active, self.left, 0)

    # -- observable state ------------------------------------------------------------------
    def member_states(self) -> list[dict[str, Any]]:
        """Each member's state, as a lone trader's ``state()`` reads."""
        return [
            {"address": a, "traded": int(t), "turnover": int(v), "surplus": float(s), "cash": int(c), "active": bool(x)}
            for a, t, v, s, c, x in zip(
                self.addresses, self.traded.tolist(), self.turnover.tolist(), self.surplus.tolist(), self.cash.tolist(), self.active.tolist(), strict=False
            )
        ]
