"""Posted prices: the seller names the price, buyers take it or leave it.

The model and data markets work this way (a model owner's price per call, a data owner's price
per use), as SingularityNET and Ocean do. A ``PostedPrice`` is an order-driven market with one
seller: a buy order whose limit is at least the posted price fills at the posted price, up to the
capacity left in the current period (calls per period a provider can serve; None for unlimited);
what cannot fill lapses, since nothing rests in a posted-price market. ``clear(now)`` starts a
new period, restoring capacity. Sell orders are refused: only the poster sells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from agora.economy.errors import InvalidOrder
from agora.economy.orders import BUY, SELL, Fill, IncreasingIds, Order, admit

Per = Literal["call", "use", "unit"]


class PostedPrice:
    def __init__(self, seller: str, price: int, capacity: int | None = None, per: Per = "call") -> None:
        if type(seller) is not str or not seller:
            raise InvalidOrder(f"seller must be a non-empty str, got {seller!r}")
        if per not in ("call", "use", "unit"):
            raise InvalidOrder(f"per must be 'call', 'use' or 'unit', got {per!r}")
        if capacity is not None and (type(capacity) is not int or capacity < 0):
            raise InvalidOrder(f"capacity must be a non-negative int or None, got {capacity!r}")
        self.seller, self.per, self.capacity = seller, per, capacity
        self.price = self._check_price(price)
        self.left = capacity
        self.now: float = 0.0
        self.sold = 0
        self._seen: set[int] = set()

    @staticmethod
    def _check_price(price: int) -> int:
        if type(price) is not int or price <= 0:
            raise InvalidOrder(f"posted price must be a positive int, got {price!r}")
        return price

    def reprice(self, price: int) -> None:
        """Post a new price; it applies to orders from now on."""
        self.price = self._check_price(price)

    def quote(self, units: int = 1) -> int:
        """What ``units`` cost at the posted price."""
        return self.price * units

    def submit(self, order: Order) -> Sequence[Fill]:
        if isinstance(order, Order) and order.side != BUY:
            raise InvalidOrder(f"order {order.id}: only {self.seller} sells at a posted price; sell orders are refused")
        admit(order, self._seen, self.now)
        if order.price is not None and order.price < self.price:
            return ()
        qty = order.qty if self.left is None else min(order.qty, self.left)
        if not qty:
            return ()
        if self.left is not None:
            self.left -= qty
        self.sold += qty
        return (Fill(order.id, 0, order.trader, self.seller, self.price, qty, BUY),)

    def cancel(self, order_id: int) -> bool:
        return False  # nothing ever rests

    def clear(self, now: float | None = None) -> Sequence[Fill]:
        """Start a new period at ``now``: capacity is restored."""
        if now is not None:
            if now < self.now:
                raise InvalidOrder(f"time cannot go back from {self.now} to {now}")
            self.now = now
        self.left = self.capacity
        return ()


class PostedBoard:
    """Many sellers' posted prices in one market, as a model or data marketplace lists them.

    A sell order is a posting: its price, and its quantity as the capacity for the current
    period (a later sell order from the same seller replaces it). A buy order goes to the
    cheapest posting at or under its limit that has capacity left and that ``accept`` admits
    (a data owner's policy on which models may touch the data); ties go to the seller whose
    address sorts first, never to arrival order. ``clear(now)`` ends the period: postings lapse
    and sellers post again. Nothing rests, so ``cancel`` finds nothing. No money moves here.
    """

    def __init__(self, increasing_ids: bool = False) -> None:
        self._posts: dict[str, PostedPrice] = {}
        self._seen: set[int] | IncreasingIds = IncreasingIds() if increasing_ids else set()  # see ContinuousDoubleAuction
        self.now: float = 0.0
        self.refused = 0  # buy orders that found no admissible posting

    def submit(self, order: Order, accept: Callable[[str], bool] | None = None) -> Sequence[Fill]:
        if not isinstance(order, Order):
            raise InvalidOrder(f"expected an Order, got {type(order).__name__}")
        if order.side == SELL:
            if order.price is None:
                raise InvalidOrder(f"order {order.id}: a posting needs a price")
            admit(order, self._seen, self.now)
            post = PostedPrice(order.trader, order.price, capacity=order.qty, per="unit")
            post.now = self.now
            self._posts[order.trader] = post
            return ()
        admit(order, self._seen, self.now)
        fills: list[Fill] = []
        qty = order.qty
        for post in sorted(self._posts.values(), key=lambda p: (p.price, p.seller)):
            if qty == 0 or (order.price is not None and post.price > order.price):
                break
            if not post.left or (accept is not None and not accept(post.seller)):
                continue
            take = min(qty, post.left)
            post.left -= take
            post.sold += take
            qty -= take
            fills.append(Fill(order.id, 0, order.trader, post.seller, post.price, take, BUY))
        if not fills:
            self.refused += 1
        return fills

    def cancel(self, order_id: int) -> bool:
        return False

    def withdraw(self, seller: str) -> bool:
        """Take ``seller``'s posting down for the rest of the period (an outage)."""
        return self._posts.pop(seller, None) is not None

    def clear(self, now: float | None = None) -> Sequence[Fill]:
        if now is not None:
            if now < self.now:
                raise InvalidOrder(f"time cannot go back from {self.now} to {now}")
            self.now = now
        self._posts.clear()
        return ()

    def postings(self) -> dict[str, tuple[int, int]]:
        """Seller -> (posted price, capacity left) this period."""
        return {s: (p.price, p.left or 0) for s, p in sorted(self._posts.items())}
