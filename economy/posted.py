"""Posted prices: the seller names the price, buyers take it or leave it.

The model and data markets work this way (a model owner's price per call, a data owner's price
per use), as SingularityNET and Ocean do. A ``PostedPrice`` is an order-driven market with one
seller: a buy order whose limit is at least the posted price fills at the posted price, up to the
capacity left in the current period (calls per period a provider can serve; None for unlimited);
what cannot fill lapses, since nothing rests in a posted-price market. ``clear(now)`` starts a
new period, restoring capacity. Sell orders are refused: only the poster sells.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from economy.errors import InvalidOrder
from economy.orders import BUY, Fill, Order, admit

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
