"""An exchange: one market's mechanism as an agent, clearing house for its trades.

Traders send ``PlaceOrder`` messages; the exchange runs them through its mechanism (a
continuous double auction, a call market, or a board of posted prices: economy/) and, at the end
of every round, settles the round's fills on the ledger and tells each trader what its orders
did in one ``RoundReport``. Settlement is ERC-20 clearing: each buyer allowed the exchange to
move its tokens (``approve``), and the exchange moves ``price * qty`` from buyer to seller for
every fill in one ``transfer_from_many`` per 256 fills, all or nothing; if a batch is refused (a
buyer spent its allowance or balance elsewhere) the fills are settled one by one and those that
cannot be are reported failed to both sides. The exchange holds no one's money: a mechanism
never moves money, and the exchange only moves what traders allowed it to, to whom they traded
with.

Time is a grid from the exchange's start, published in its service record: rounds of
``period / rounds`` seconds, ``rounds`` to a trading period. An order lives until the end of the
round it arrives in (a posting in a posted-price market, to the end of its period): the
exchange's clock decides, not the trader's, so traders on other machines cannot disagree. The exchange keeps
the settled trades until the run's recorder drains them (``drain``), so its memory does not grow
with the run.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agents.agent import Agent, Context, on_message
from agents.identity import Identity
from agents.messages import Message
from agents.registry import ServiceRecord
from chain import ChainError
from chain.types import MAX_TRANSFER_LINES
from economy import CallMarket, ContinuousDoubleAuction, EconomyError, Fill, Order, PostedBoard

Mechanism = Literal["cda", "call", "posted"]


class PlaceOrder(Message):
    """Trader to exchange: one order, ``cid`` the trader's own id for it. In a posted-price
    market a sell order is the seller's posting (price, and capacity as ``qty``) and may name
    the buyers' models it admits (``allowed``, a data owner's policy); a buy order names the
    model it will run (``model``)."""

    cid: int = Field(ge=0)
    side: Literal["buy", "sell"]
    price: int | None = Field(default=None, gt=0)
    qty: int = Field(default=1, gt=0)
    model: str = ""
    allowed: list[str] | None = None


class CancelOrders(Message):
    """Trader to exchange: withdraw these orders (a posting too) if they still wait; what
    already traded stays traded. Reported closed with the round."""

    cids: list[int]


class RoundReport(Message):
    """Exchange to trader at the end of a round: its settled fills (cid, counterparty, price,
    qty), the cids whose fills could not be settled, the cids that are closed now (filled,
    expired or refused), and the round's last trade price, for learners."""

    round: int
    fills: list[tuple[int, str, int, int]] = []
    failed: list[int] = []
    closed: list[int] = []
    last_price: int | None = None


class _Tick(Message):
    round: int


def make_book(mechanism: Mechanism) -> Any:
    if mechanism == "cda":
        return ContinuousDoubleAuction()
    if mechanism == "call":
        return CallMarket()
    return PostedBoard()


class Exchange(Agent):
    """The market ``market`` under ``mechanism``, with rounds of ``period / rounds`` seconds."""

    role = "exchange"

    def __init__(
        self, name: str, identity: Identity, market: str, mechanism: Mechanism, period: float, rounds: int = 1,
        floor: int = 1, ceiling: int = 200, good: str = "unit",
    ) -> None:
        super().__init__(name, identity)
        if mechanism not in ("cda", "call", "posted"):
            raise EconomyError(f"unknown mechanism {mechanism!r}: cda, call or posted")
        if not period > 0 or rounds < 1:
            raise EconomyError(f"an exchange needs a positive period and at least one round, got {period}, {rounds}")
        self.market, self.mechanism, self.period, self.rounds = market, mechanism, float(period), int(rounds)
        self.floor, self.ceiling, self.good = floor, ceiling, good
        self.book = make_book(mechanism)
        self.t0 = 0.0
        self.round = 0
        self._next_id = 0
        self._owner: dict[int, tuple[str, int]] = {}  # exchange order id -> (trader, its cid)
        self._open: dict[str, list[int]] = {}  # trader -> cids placed and not yet reported closed
        self._postings: dict[str, int] = {}  # posted market: seller -> its live posting's cid
        self._posting_ids: dict[str, int] = {}  # ... and its exchange order id
        self._policy: dict[str, frozenset[str] | None] = {}  # posted market: seller -> models admitted
        self._pending: list[Fill] = []
        self._last_price: int | None = None
        self._trades: list[tuple[Any, ...]] = []  # settled, awaiting the recorder
        self.settled = self.failed = self.rejected = 0
        self.volume = 0  # units settled
        self.turnover = 0  # base units settled

    @property
    def round_s(self) -> float:
        return self.period / self.rounds

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        self.t0 = ctx.now()
        terms = {
            "market": self.market, "mechanism": self.mechanism, "good": self.good, "floor": self.floor, "ceiling": self.ceiling,
            "period": self.period, "rounds": self.rounds, "t0": self.t0,
        }
        ctx.registry.register_agent(self.address, self.name, self.role)
        ctx.registry.register_service(
            ServiceRecord(address=self.address, name=self.name, capability="market", price=0, terms=terms, protocols=self.protocol_digests(), ttl=10**9),
            now=ctx.now(),
        )
        ctx.schedule(self.round_s, _Tick(round=1))

    # -- orders ----------------------------------------------------------------------------
    @on_message(PlaceOrder)
    def place(self, ctx: Context, sender: str, msg: PlaceOrder) -> None:
        oid = self._next_id
        self._next_id += 1
        self._owner[oid] = (sender, msg.cid)
        self._open.setdefault(sender, []).append(msg.cid)
        try:
            order = Order(oid, sender, msg.side, msg.price, msg.qty)
            if self.mechanism == "posted":
                fills = self._posted(sender, msg, order)
            else:
                fills = self.book.submit(order)
        except EconomyError:
            self.rejected += 1
            return
        if fills:
            self._pending.extend(fills)

    @on_message(CancelOrders)
    def cancel(self, ctx: Context, sender: str, msg: CancelOrders) -> None:
        cids = set(msg.cids)
        for oid, (trader, cid) in list(self._owner.items()):
            if trader == sender and cid in cids:
                if self.mechanism == "posted":
                    if self._postings.get(sender) == cid:
                        self.book.withdraw(sender)
                else:
                    self.book.cancel(oid)

    def _posted(self, sender: str, msg: PlaceOrder, order: Order) -> Any:
        if msg.side == "sell":  # a new posting replaces the seller's last; that one is reported closed
            self._postings[sender] = msg.cid
            self._posting_ids[sender] = order.id
            self._policy[sender] = None if msg.allowed is None else frozenset(msg.allowed)
            return self.book.submit(order)
        model = msg.model
        policy = self._policy
        return self.book.submit(order, accept=lambda seller: policy.get(seller) is None or model in policy[seller])

    # -- rounds ----------------------------------------------------------------------------
    @on_message(_Tick)
    def tick(self, ctx: Context, sender: str, msg: _Tick) -> None:
        if sender != self.address:
            return
        self.round = msg.round
        now = self.t0 + msg.round * self.round_s
        period_end = msg.round % self.rounds == 0
        if self.mechanism != "posted" or period_end:
            fills = self.book.clear(now)
            if fills:
                self._pending.extend(fills)
        if self.mechanism == "cda":  # what still rests had its round: withdraw it
            for oid in self._owner:
                self.book.cancel(oid)
        elif self.mechanism == "call":  # each order gets one call
            self.book = CallMarket()
        settled, failed = self._settle(ctx, now)
        self._report(ctx, settled, failed, period_end)
        ctx.schedule(max(0.0, self.t0 + (msg.round + 1) * self.round_s - ctx.now()), _Tick(round=msg.round + 1))

    def _settle(self, ctx: Context, now: float) -> tuple[list[Fill], list[Fill]]:
        fills, self._pending = self._pending, []
        settled: list[Fill] = []
        failed: list[Fill] = []
        for start in range(0, len(fills), MAX_TRANSFER_LINES):
            chunk = fills[start : start + MAX_TRANSFER_LINES]
            try:
                receipt = ctx.wallet.transfer_from_many([(f.buyer, f.seller, f.price * f.qty) for f in chunk])
                self._record(chunk, now, receipt.tx_hash)
                settled += chunk
            except ChainError:
                for f in chunk:  # one by one: only the fills that cannot be paid fail
                    try:
                        receipt = ctx.wallet.transfer_from_many([(f.buyer, f.seller, f.price * f.qty)])
                        self._record([f], now, receipt.tx_hash)
                        settled.append(f)
                    except ChainError:
                        failed.append(f)
        self.failed += len(failed)
        if settled:
            self._last_price = settled[-1].price
        return settled, failed

    def _record(self, fills: list[Fill], now: float, tx_hash: str) -> None:
        for f in fills:
            self._trades.append((self.round, now - self.t0, f.buyer, f.seller, f.price, f.qty, tx_hash))
            self.volume += f.qty
            self.turnover += f.price * f.qty
        self.settled += len(fills)

    def _report(self, ctx: Context, settled: list[Fill], failed: list[Fill], period_end: bool) -> None:
        owner = self._owner
        fills: dict[str, list[tuple[int, str, int, int]]] = {}
        bad: dict[str, list[int]] = {}
        for f in settled:
            buyer, bcid = owner[f.buy_id]
            fills.setdefault(buyer, []).append((bcid, f.seller, f.price, f.qty))
            if self.mechanism != "posted":
                seller, scid = owner[f.sell_id]
                fills.setdefault(seller, []).append((scid, f.buyer, f.price, f.qty))
            else:
                fills.setdefault(f.seller, []).append((self._postings.get(f.seller, -1), f.buyer, f.price, f.qty))
        for f in failed:
            bad.setdefault(owner[f.buy_id][0], []).append(owner[f.buy_id][1])
        traders = set(self._open) | set(fills)
        for trader in sorted(traders):
            cids = self._open.get(trader, [])
            if self.mechanism == "posted" and not period_end and trader in self._postings:
                closed = [c for c in cids if c != self._postings[trader]]  # the posting lives on
            else:
                closed = cids
            keep = [c for c in cids if c not in closed]
            if keep:
                self._open[trader] = keep
            else:
                self._open.pop(trader, None)
            ctx.send(trader, RoundReport(round=self.round, fills=fills.get(trader, []), failed=bad.get(trader, []), closed=closed, last_price=self._last_price))
        if period_end:
            self._postings.clear()
            self._posting_ids.clear()
            self._policy.clear()
        live = set(self._posting_ids.values())  # only postings outlive a round
        self._owner = {oid: o for oid, o in owner.items() if oid in live}

    # -- for the recorder ------------------------------------------------------------------
    def drain(self) -> list[tuple[Any, ...]]:
        """The trades settled since the last drain: (round, seconds since start, buyer, seller,
        price, qty, tx hash)."""
        out, self._trades = self._trades, []
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "market": self.market, "mechanism": self.mechanism, "round": self.round, "settled": self.settled, "failed": self.failed,
            "rejected": self.rejected, "volume": self.volume, "turnover": self.turnover, "last_price": self._last_price,
            "unmatched_buys": getattr(self.book, "refused", 0),  # posted: buy orders no admissible posting took
        }
