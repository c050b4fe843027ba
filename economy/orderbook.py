"""The continuous double auction: a limit order book with price-time priority.

The market for commodity compute (GPU-hours) and the double auction of the economics
literature. An arriving order trades at once against the best resting orders on the other side
(best price first, then earliest first), partially if need be; what is left of a limit order
rests in the book until it trades, is cancelled, or expires. Each trade happens at the resting
order's price, the rule of every exchange and of the experimental double auctions (Smith 1962,
Gode & Sunder 1993). The book never moves money: it returns fills and the contract layer settles
them.

Layout, for speed: each side is a dict from price to a FIFO deque of resting entries plus a heap
of the prices (lazily pruned), so the best price is O(1) to read, an order is O(log levels) to
rest and O(1) per fill to match. A cancel removes the entry from its level (O(orders at that
price), a C-level scan that is short in practice), so the book never holds dead orders and its
depth figures are exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from heapq import heappop, heappush
from typing import Any

from agora.economy.errors import DuplicateOrder, InvalidOrder
from agora.economy.orders import BUY, SELL, Fill, IncreasingIds, Order, Side

_NO_FILLS: tuple[Fill, ...] = ()

# A resting entry is a small list, mutated in place as it fills: [remaining qty, id, trader, expires]
_QTY, _ID, _TRADER, _EXPIRES = 0, 1, 2, 3
_Entry = list[Any]  # [int, int, str, float | None]: a list, not a tuple, so a fill can shrink it
_Levels = dict[int, deque[_Entry]]  # price -> entries at that price, oldest first


class ContinuousDoubleAuction:
    """A limit order book. ``submit`` an Order and get its fills; ``cancel`` by id; ``clear(now)``
    withdraws the orders that expired by ``now`` (the book's clock only moves when told)."""

    def __init__(self, increasing_ids: bool = False) -> None:
        """``increasing_ids``: every order id is above the last one (an exchange's counter), so
        the book remembers only the highest instead of every id it ever saw."""
        self._bids: _Levels = {}
        self._asks: _Levels = {}
        self._bid_prices: list[int] = []  # negated prices: a max-heap
        self._ask_prices: list[int] = []
        self._live: dict[int, tuple[bool, int, _Entry]] = {}  # id -> (is_buy, price, entry)
        self._expiries: list[tuple[float, int]] = []
        self._seen: set[int] | IncreasingIds = IncreasingIds() if increasing_ids else set()
        self.now: float = 0.0
        self.last_price: int | None = None
        self.volume = 0  # units traded since the book opened
        self.trades = 0

    # -- the mechanism interface ---------------------------------------------------------
    def submit(self, order: Order) -> Sequence[Fill]:
        """Match ``order`` against the book and rest what is left of it (unless it is a market
        or immediate-or-cancel order). Returns the fills, best price first. An invalid or
        order whose id was used before raises and changes nothing."""
        if type(order) is not Order:
            raise InvalidOrder(f"expected an Order, got {type(order).__name__}")
        oid = order.id
        if oid in self._seen:
            raise DuplicateOrder(f"order id {oid} was used before: ids are single-use, so a replay cannot trade twice")
        expires = order.expires
        if expires is not None and expires <= self.now:
            raise InvalidOrder(f"order {oid} expired at {expires}, before the book's time {self.now}")
        self._seen.add(oid)
        qty = order.qty
        price = order.price
        fills: Sequence[Fill] = _NO_FILLS
        if order.side is BUY:
            heap = self._ask_prices
            if heap:
                levels = self._asks
                while qty:
                    best = _best(heap, levels)
                    if best is None or (price is not None and best > price):
                        break
                    qty, got = self._take(levels, heap, best, qty, oid, order.trader, True)
                    fills = got if not fills else [*fills, *got]
            if qty and not order.ioc and price is not None:  # a market order (no price) is ioc
                self._rest(self._bids, self._bid_prices, -price, price, True, [qty, oid, order.trader, expires])
        else:
            heap = self._bid_prices
            if heap:
                levels = self._bids
                while qty:
                    best = _best(heap, levels)
                    if best is None or (price is not None and -best < price):
                        break
                    qty, got = self._take(levels, heap, best, qty, oid, order.trader, False)
                    fills = got if not fills else [*fills, *got]
            if qty and not order.ioc and price is not None:
                self._rest(self._asks, self._ask_prices, price, price, False, [qty, oid, order.trader, expires])
        return fills

    def cancel(self, order_id: int) -> bool:
        """Withdraw a resting order. False when it is not resting (filled, expired, cancelled
        or never seen): a cancel racing a fill is normal, not an error."""
        hit = self._live.pop(order_id, None)
        if hit is None:
            return False
        is_buy, price, entry = hit
        levels = self._bids if is_buy else self._asks
        level = levels[price]
        level.remove(entry)
        if not level:
            del levels[price]
        return True

    def clear(self, now: float | None = None) -> Sequence[Fill]:
        """Move the clock to ``now`` and withdraw the orders that expired. A continuous market
        trades as orders arrive, so clearing itself produces no fills."""
        if now is not None:
            if now < self.now:
                raise InvalidOrder(f"time cannot go back from {self.now} to {now}")
            self.now = now
        exp = self._expiries
        while exp and exp[0][0] <= self.now:
            _, oid = heappop(exp)
            hit = self._live.get(oid)
            if hit is not None and hit[2][_EXPIRES] is not None and hit[2][_EXPIRES] <= self.now:
                self.cancel(oid)
        return _NO_FILLS

    # -- reading the book ----------------------------------------------------------------
    def best_bid(self) -> int | None:
        best = _best(self._bid_prices, self._bids)
        return None if best is None else -best

    def best_ask(self) -> int | None:
        return _best(self._ask_prices, self._asks)

    def spread(self) -> int | None:
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else ask - bid

    def depth(self, side: Side, levels: int = 10) -> list[tuple[int, int]]:
        """(price, total quantity) of the best ``levels`` prices on one side."""
        book = self._bids if side == BUY else self._asks
        prices = sorted(book, reverse=side == BUY)[:levels]
        return [(p, sum(e[_QTY] for e in book[p])) for p in prices]

    def resting(self, order_id: int) -> int:
        """The quantity of an order still resting (0 when it is not in the book)."""
        hit = self._live.get(order_id)
        return 0 if hit is None else hit[2][_QTY]

    def orders(self) -> Iterator[tuple[int, str, Side, int, int]]:
        """Every resting order as (id, trader, side, price, remaining qty), in priority order."""
        for side, book in ((BUY, self._bids), (SELL, self._asks)):
            for price in sorted(book, reverse=side == BUY):
                for e in book[price]:
                    yield e[_ID], e[_TRADER], side, price, e[_QTY]

    def __len__(self) -> int:
        return len(self._live)

    # -- internals -----------------------------------------------------------------------
    def _rest(self, levels: _Levels, heap: list[int], key: int, price: int, is_buy: bool, entry: _Entry) -> None:
        level = levels.get(price)
        if level is None:
            levels[price] = level = deque()
            heappush(heap, key)
        level.append(entry)
        self._live[entry[_ID]] = (is_buy, price, entry)
        if entry[_EXPIRES] is not None:
            heappush(self._expiries, (entry[_EXPIRES], entry[_ID]))

    def _take(self, levels: _Levels, heap: list[int], key: int, qty: int, oid: int, trader: str, taker_buys: bool) -> tuple[int, list[Fill]]:
        """Fill up to ``qty`` against the level at heap key ``key``, oldest first."""
        price = -key if not taker_buys else key
        level = levels[price]
        live = self._live
        fills = []
        while qty and level:
            entry = level[0]
            take = entry[_QTY] if entry[_QTY] < qty else qty
            if taker_buys:
                fills.append(Fill(oid, entry[_ID], trader, entry[_TRADER], price, take, BUY))
            else:
                fills.append(Fill(entry[_ID], oid, entry[_TRADER], trader, price, take, SELL))
            qty -= take
            entry[_QTY] -= take
            if not entry[_QTY]:
                level.popleft()
                del live[entry[_ID]]
        if not level:
            del levels[price]
            heappop(heap)
        self.last_price = price
        self.trades += len(fills)
        self.volume += sum(f.qty for f in fills)
        return qty, fills


def _best(heap: list[int], levels: _Levels) -> int | None:
    """The heap's top key whose price level still exists (stale keys are popped on the way)."""
    while heap:
        key = heap[0]
        if (key if key >= 0 else -key) in levels:
            return key
        heappop(heap)
    return None
