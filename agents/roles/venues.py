"""How an exchange runs each kind of market: a venue per mechanism, found by name in a table.

The exchange (agents/roles/exchange.py) owns what every market shares: throttling, the order ids
and who placed them, rounds, write-ahead settlement, reports and the tape. A venue owns what a
mechanism decides: which orders it takes, what trades, what still waits when a round ends. Any
order-driven market of ``economy`` (the :class:`~agora.economy.Market` protocol, each in the
market conformance suite) runs through :class:`BookVenue`; the call market has a venue of its own
that clears a round's orders as arrays (a cohort's orders arrive as columns), and the posted-price
board one that keeps each seller's posting and admission policy for the period.

Adding a mechanism: its market in ``economy`` (and in the conformance suite), one
:func:`register_venue` line (``register_venue("batch", lambda: BookVenue(BatchAuction()))``), and
its test. Scenarios name any registered mechanism.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from agora.agents.roles.market_protocol import PlaceOrder
from agora.economy import ContinuousDoubleAuction, Fill, InvalidOrder, Order, PostedBoard
from agora.economy.callmarket import clear_arrays

__all__ = ["VENUES", "BookVenue", "CallVenue", "Match", "Owners", "PostedVenue", "Ref", "Venue", "register_venue", "venue_for"]

# who placed an order: ("t", trader address, its cid) or ("c", cohort address, member index)
Ref = tuple[str, str, int]
# a fill on its way to settlement: buyer, seller (the accounts that pay and are paid), price,
# qty, and who placed each side
Match = tuple[str, str, int, int, Ref, Ref]
# the exchange's order ids -> (the trader that placed it, the trader's own id for it)
Owners = dict[int, tuple[str, int]]


class Venue:
    """One market's mechanism as an exchange runs it, round by round. Plain state: it is
    journaled and snapshotted with its exchange, so it holds no callables."""

    cohorts: ClassVar[bool] = False
    """Whether it takes a cohort's orders in one message (``place_many``)."""

    def place(self, order: Order, msg: PlaceOrder, owners: Owners) -> list[Match]:
        """Take one trader's order; what traded at once. Raises an EconomyError (changing
        nothing) for an order this mechanism refuses."""
        raise NotImplementedError

    def place_many(self, cohort: str, side: str, members: Any, prices: Any, qtys: Any, accounts: list[str | None]) -> None:
        """Take a cohort's orders (members' indexes, prices and quantities as arrays, all checked)."""
        raise InvalidOrder(f"a {type(self).__name__} takes no cohort orders")

    def cancel(self, sender: str, cids: set[int], owners: Owners) -> None:
        """Withdraw ``sender``'s orders numbered ``cids`` that still wait."""
        raise NotImplementedError

    def end_round(self, now: float, period_end: bool, owners: Owners) -> list[Match]:
        """The round at ``now`` ends: what it traded; nothing placed in it waits any longer
        unless the mechanism keeps it (a posting, to its period's end)."""
        raise NotImplementedError

    def lives_on(self, trader: str, period_end: bool) -> int | None:
        """The cid of ``trader``'s order that stays open past this round (None: none does)."""
        return None

    def live_ids(self) -> set[int]:
        """The exchange order ids still open after a round (their owners are kept)."""
        return set()

    def unmatched(self) -> int:
        """Buy orders no seller took (a posted market's unmatched demand)."""
        return 0


def _match(fill: Fill, owners: Owners, seller_cid: int | None = None) -> Match:
    buyer = owners[fill.buy_id]
    seller = (fill.seller, seller_cid) if seller_cid is not None else owners[fill.sell_id]
    return (fill.buyer, fill.seller, fill.price, fill.qty, ("t", buyer[0], buyer[1]), ("t", seller[0], seller[1]))


class BookVenue(Venue):
    """Any ``economy`` order-driven market (submit, cancel, clear): orders trade as its rules
    say, the round's clearing trades what it clears, and what still rests is withdrawn (an
    order lives for the round it arrives in)."""

    def __init__(self, book: Any) -> None:
        self.book = book

    def place(self, order: Order, msg: PlaceOrder, owners: Owners) -> list[Match]:
        return [_match(f, owners) for f in self.book.submit(order)]

    def cancel(self, sender: str, cids: set[int], owners: Owners) -> None:
        for oid, (trader, cid) in owners.items():
            if trader == sender and cid in cids:
                self.book.cancel(oid)

    def end_round(self, now: float, period_end: bool, owners: Owners) -> list[Match]:
        matches = [_match(f, owners) for f in self.book.clear(now)]
        for oid in owners:  # what still rests had its round
            self.book.cancel(oid)
        return matches


class _CallBook:
    """A call market's orders for one round, as column chunks in arrival order: a lone
    trader's order is a chunk of one, a cohort's a chunk of all its members' orders. Each order
    names its owner (an index into ``owners``) and its number there (a cid, a member index)."""

    def __init__(self) -> None:
        self.owners: list[tuple[str, str, list[str | None] | None]] = []  # ("t", trader, None) or ("c", cohort, accounts)
        self._index: dict[str, int] = {}
        self.chunks: dict[str, list[tuple[Any, Any, Any, Any]]] = {"buy": [], "sell": []}  # (prices, qtys, owner ids, subs)

    def owner(self, kind: str, address: str, accounts: list[str | None] | None = None) -> int:
        found = self._index.get(address)
        if found is None:
            found = self._index[address] = len(self.owners)
            self.owners.append((kind, address, accounts))
        return found

    def add(self, side: str, prices: Any, qtys: Any, owner: int, subs: Any) -> None:
        self.chunks[side].append((prices, qtys, np.full(len(prices), owner, dtype=np.int64), subs))

    def add_one(self, side: str, price: int, qty: int, owner: int, sub: int) -> None:
        """One lone trader's order: runs of them gather in a plain list segment (an array per
        order would cost more than the order)."""
        chunks = self.chunks[side]
        if not chunks or not isinstance(chunks[-1][0], list):
            chunks.append(([], [], [], []))
        segment = chunks[-1]
        segment[0].append(price)
        segment[1].append(qty)
        segment[2].append(owner)
        segment[3].append(sub)

    def cancel(self, owner: str, subs: set[int]) -> None:
        """Take ``owner``'s orders numbered ``subs`` out of the round's book."""
        mine = self._index.get(owner)
        if mine is None:
            return
        for side in ("buy", "sell"):
            kept: list[tuple[Any, Any, Any, Any]] = []
            for c in self.chunks[side]:
                rows = [i for i in range(len(c[0])) if not (int(c[2][i]) == mine and int(c[3][i]) in subs)]
                if rows:
                    prices, qtys, owners, numbers = ([c[k][i] for i in rows] for k in range(4))
                    kept.append((prices, qtys, owners, numbers))
            self.chunks[side] = kept

    def clear(self) -> tuple[int | None, list[Match]]:
        cols = {}
        for side in ("buy", "sell"):
            chunks = self.chunks[side]
            cols[side] = [np.concatenate([np.asarray(c[k], dtype=np.int64) for c in chunks]) if chunks else np.zeros(0, dtype=np.int64) for k in range(4)]
        price, bi, ai, qty = clear_arrays(cols["buy"][0], cols["buy"][1], cols["sell"][0], cols["sell"][1])
        if price is None:
            return None, []
        owners = self.owners
        bo, bs = cols["buy"][2][bi].tolist(), cols["buy"][3][bi].tolist()
        so, ss = cols["sell"][2][ai].tolist(), cols["sell"][3][ai].tolist()
        out: list[Match] = []
        for b_owner, b_sub, s_owner, s_sub, q in zip(bo, bs, so, ss, qty.tolist(), strict=False):
            bk, ba, bacc = owners[b_owner]
            sk, sa, sacc = owners[s_owner]
            out.append((bacc[b_sub] if bacc is not None else ba, sacc[s_sub] if sacc is not None else sa, price, q, (bk, ba, b_sub), (sk, sa, s_sub)))
        return price, out


class CallVenue(Venue):
    """A call market: every order of a round waits for one uniform-price call at its end
    (economy.callmarket.clear_arrays); cohorts place their members' orders as columns."""

    cohorts = True

    def __init__(self) -> None:
        self._calls = _CallBook()

    def place(self, order: Order, msg: PlaceOrder, owners: Owners) -> list[Match]:
        if order.price is None:
            raise InvalidOrder(f"order {order.id}: a call clears limit orders; a market order has no price to rank")
        self._calls.add_one(order.side, order.price, order.qty, self._calls.owner("t", order.trader), msg.cid)
        return []

    def place_many(self, cohort: str, side: str, members: Any, prices: Any, qtys: Any, accounts: list[str | None]) -> None:
        self._calls.add(side, prices, qtys, self._calls.owner("c", cohort, accounts), members)

    def cancel(self, sender: str, cids: set[int], owners: Owners) -> None:
        self._calls.cancel(sender, cids)  # not yet called: out of the round's book

    def end_round(self, now: float, period_end: bool, owners: Owners) -> list[Match]:
        _, matches = self._calls.clear()
        self._calls = _CallBook()
        return matches


class PostedVenue(Venue):
    """Posted prices (economy.PostedBoard): a sell order is the seller's posting for the period
    (its price, its capacity as the quantity, and the buyers' models it admits); a buy order
    takes the cheapest admissible posting with capacity left. Postings live to the period's end."""

    def __init__(self) -> None:
        self.book = PostedBoard(increasing_ids=True)
        self._postings: dict[str, int] = {}  # seller -> its live posting's cid
        self._posting_ids: dict[str, int] = {}  # ... and its exchange order id
        self._policy: dict[str, frozenset[str] | None] = {}  # seller -> models admitted (None: any)

    def place(self, order: Order, msg: PlaceOrder, owners: Owners) -> list[Match]:
        seller = order.trader
        if msg.side == "sell":  # a new posting replaces the seller's last; that one is reported closed
            fills = self.book.submit(order)
            self._postings[seller] = msg.cid
            self._posting_ids[seller] = order.id
            self._policy[seller] = None if msg.allowed is None else frozenset(msg.allowed)
            return [_match(f, owners, self._postings.get(f.seller, -1)) for f in fills]
        model, policy = msg.model, self._policy
        fills = self.book.submit(order, accept=lambda s: (allowed := policy.get(s)) is None or model in allowed)
        return [_match(f, owners, self._postings.get(f.seller, -1)) for f in fills]

    def cancel(self, sender: str, cids: set[int], owners: Owners) -> None:
        if self._postings.get(sender) in cids:
            self.book.withdraw(sender)

    def end_round(self, now: float, period_end: bool, owners: Owners) -> list[Match]:
        if period_end:
            self.book.clear(now)
            self._postings.clear()
            self._posting_ids.clear()
            self._policy.clear()
        return []

    def lives_on(self, trader: str, period_end: bool) -> int | None:
        return None if period_end else self._postings.get(trader)

    def live_ids(self) -> set[int]:
        return set(self._posting_ids.values())

    def unmatched(self) -> int:
        return self.book.refused


VENUES: dict[str, Callable[[], Venue]] = {
    # order ids come from the exchange's own counter: the books keep the highest, not every id
    "cda": lambda: BookVenue(ContinuousDoubleAuction(increasing_ids=True)),
    "call": CallVenue,
    "posted": PostedVenue,
}


def register_venue(mechanism: str, factory: Callable[[], Venue]) -> None:
    """Make ``mechanism`` a market an exchange (and a scenario) can run."""
    if not mechanism or not mechanism.isidentifier():
        raise ValueError(f"a mechanism is named by an identifier, got {mechanism!r}")
    VENUES[mechanism] = factory


def venue_for(mechanism: str) -> Venue:
    from agora.economy import EconomyError

    factory = VENUES.get(mechanism)
    if factory is None:
        raise EconomyError(f"unknown mechanism {mechanism!r}: {', '.join(sorted(VENUES))}")
    return factory()
