"""Orders in, fills out: the value types of the order-driven markets (the continuous double
auction and the call market).

These two classes sit on the hottest path Agora has (hundreds of thousands of orders a second in
a simulation), so they are slotted classes that validate in ``__init__`` rather than pydantic
models: the checks are the same ones a pydantic model would make (strict ints, a known side, a
non-empty trader), at a tenth of the cost. Both are treated as immutable; the book copies what
it needs and never changes an order it was given.

Prices are integers in the market's tick (base units of the token per unit), so matching is
exact and the ledger can settle ``price * qty`` without rounding.
"""

from __future__ import annotations

from typing import Literal

from agora.economy.errors import DuplicateOrder, InvalidOrder

Side = Literal["buy", "sell"]
BUY: Side = "buy"
SELL: Side = "sell"


class Order:
    """A limit order (``price`` set) or a market order (``price=None``: it takes what it can at
    any price and never rests). ``expires`` is a time on the market's clock after which a
    resting order is withdrawn; ``ioc`` (immediate or cancel) keeps a limit order from resting.
    """

    __slots__ = ("id", "trader", "side", "price", "qty", "expires", "ioc")

    def __init__(
        self,
        id: int,  # noqa: A002 - the field is the order id, as every exchange API names it
        trader: str,
        side: Side,
        price: int | None,
        qty: int = 1,
        expires: float | None = None,
        ioc: bool = False,
    ) -> None:
        if type(id) is not int or id < 0:
            raise InvalidOrder(f"order id must be a non-negative int, got {id!r}")
        if type(trader) is not str or not trader:
            raise InvalidOrder(f"order {id}: trader must be a non-empty str, got {trader!r}")
        if side != BUY and side != SELL:
            raise InvalidOrder(f"order {id}: side must be 'buy' or 'sell', got {side!r}")
        if price is not None and (type(price) is not int or price <= 0):
            raise InvalidOrder(f"order {id}: price must be a positive int or None, got {price!r}")
        if type(qty) is not int or qty <= 0:
            raise InvalidOrder(f"order {id}: qty must be a positive int, got {qty!r}")
        if expires is not None and (type(expires) not in (int, float) or expires != expires):
            raise InvalidOrder(f"order {id}: expires must be a number or None, got {expires!r}")
        self.id = id
        self.trader = trader
        self.side = BUY if side == BUY else SELL
        self.price = price
        self.qty = qty
        self.expires = expires
        self.ioc = ioc is True or price is None

    def __repr__(self) -> str:
        what = "market" if self.price is None else f"@{self.price}"
        return f"Order({self.id}, {self.trader}, {self.side} {self.qty} {what})"


class IncreasingIds:
    """The ids a market fed by one counter has spent: just the highest, since each new id must
    be above it (constant memory however long the market runs, where a set of every id ever
    seen grows by one per order). Used in place of that set: ``id in spent``, ``spent.add(id)``."""

    __slots__ = ("high",)

    def __init__(self) -> None:
        self.high = -1

    def __contains__(self, oid: object) -> bool:
        return isinstance(oid, int) and oid <= self.high

    def add(self, oid: int) -> None:
        if oid > self.high:
            self.high = oid


def admit(order: Order, seen: set[int] | IncreasingIds, now: float) -> None:
    """The checks a market makes when an order arrives (an Order, an id never used before, not
    already expired), then the id is spent. Raises and changes nothing when one fails. The
    order book inlines the same checks on its hot path."""
    if type(order) is not Order:
        raise InvalidOrder(f"expected an Order, got {type(order).__name__}")
    if order.id in seen:
        raise DuplicateOrder(f"order id {order.id} was used before: ids are single-use, so a replay cannot trade twice")
    if order.expires is not None and order.expires <= now:
        raise InvalidOrder(f"order {order.id} expired at {order.expires}, before the market's time {now}")
    seen.add(order.id)


class Fill:
    """One match: ``qty`` units traded at ``price`` between the buy and the sell order named.
    ``taker`` is the side of the order that arrived and crossed (``None`` in a call market,
    where every order clears at once)."""

    __slots__ = ("buy_id", "sell_id", "buyer", "seller", "price", "qty", "taker")

    def __init__(self, buy_id: int, sell_id: int, buyer: str, seller: str, price: int, qty: int, taker: Side | None) -> None:
        self.buy_id = buy_id
        self.sell_id = sell_id
        self.buyer = buyer
        self.seller = seller
        self.price = price
        self.qty = qty
        self.taker = taker

    @property
    def value(self) -> int:
        """What the buyer pays the seller: price times quantity, in base units."""
        return self.price * self.qty

    def _key(self) -> tuple[int, int, str, str, int, int, Side | None]:
        return (self.buy_id, self.sell_id, self.buyer, self.seller, self.price, self.qty, self.taker)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fill) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Fill(buy {self.buy_id} {self.buyer} / sell {self.sell_id} {self.seller}: {self.qty} @ {self.price})"
