"""The continuous double auction: price-time priority, partial fills, cancels, expiry, and a
brute-force reference book it must agree with on any sequence of orders and cancels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.economy import BUY, SELL, ContinuousDoubleAuction, DuplicateOrder, Fill, InvalidOrder, Order


def _book(*orders: tuple) -> ContinuousDoubleAuction:
    book = ContinuousDoubleAuction()
    for args in orders:
        assert book.submit(Order(*args)) == ()
    return book


def test_price_then_time_priority_and_resting_price() -> None:
    book = _book((1, "s1", SELL, 105, 2), (2, "s2", SELL, 103, 1), (3, "s3", SELL, 103, 1), (4, "b1", BUY, 99, 1))
    assert (book.best_bid(), book.best_ask(), book.spread()) == (99, 103, 4)
    fills = book.submit(Order(5, "b2", BUY, 110, 3))
    # the two 103s first (older first), then one unit of the 105, each at the resting price
    assert [(f.sell_id, f.price, f.qty) for f in fills] == [(2, 103, 1), (3, 103, 1), (1, 105, 1)]
    assert all(f.buy_id == 5 and f.buyer == "b2" and f.taker == BUY for f in fills)
    assert book.resting(1) == 1 and book.best_ask() == 105
    assert (book.last_price, book.volume, book.trades) == (105, 3, 3)


def test_partial_fill_rests_the_remainder() -> None:
    book = _book((1, "s", SELL, 100, 2))
    fills = book.submit(Order(2, "b", BUY, 101, 5))
    assert [(f.qty, f.price) for f in fills] == [(2, 100)]
    assert book.resting(2) == 3 and book.best_bid() == 101 and book.best_ask() is None
    assert book.depth(BUY) == [(101, 3)]
    sells = book.submit(Order(3, "s2", SELL, 90, 1))  # a marketable sell trades at the bid's price
    assert [(f.buy_id, f.sell_id, f.price, f.taker) for f in sells] == [(2, 3, 101, SELL)]


def test_market_and_ioc_orders_never_rest() -> None:
    book = _book((1, "s", SELL, 100, 1), (2, "s", SELL, 120, 1))
    assert [f.price for f in book.submit(Order(3, "b", BUY, None, 5))] == [100, 120]
    assert len(book) == 0
    book.submit(Order(4, "s", SELL, 100, 1))
    assert book.submit(Order(5, "b", BUY, 99, 1, ioc=True)) == ()
    assert len(book) == 1 and book.best_bid() is None


def test_cancel_and_expiry() -> None:
    book = _book((1, "a", BUY, 100, 1), (2, "b", BUY, 100, 1), (3, "c", BUY, 98, 1, 10.0))
    assert book.cancel(1) is True and book.cancel(1) is False and book.cancel(99) is False
    assert [f.buy_id for f in book.submit(Order(4, "s", SELL, 100, 1))] == [2]  # 1 was cancelled
    assert book.best_bid() == 98
    book.clear(now=9.0)
    assert book.best_bid() == 98
    book.clear(now=10.0)  # expired at 10
    assert book.best_bid() is None and len(book) == 0
    with pytest.raises(InvalidOrder, match="expired"):
        book.submit(Order(5, "a", BUY, 100, 1, expires=5.0))
    with pytest.raises(InvalidOrder, match="time cannot go back"):
        book.clear(now=1.0)


@pytest.mark.parametrize(
    "args, field",
    [
        ((-1, "a", BUY, 10), "order id"),
        ((1, "", BUY, 10), "trader"),
        ((1, "a", "hold", 10), "side"),
        ((1, "a", BUY, 0), "price"),
        ((1, "a", BUY, 10.5), "price"),
        ((1, "a", BUY, True), "price"),
        ((1, "a", BUY, 10, 0), "qty"),
        ((1, "a", BUY, 10, 1, float("nan")), "expires"),
    ],
)
def test_bad_orders_name_the_field(args: tuple, field: str) -> None:
    with pytest.raises(InvalidOrder, match=field):
        Order(*args)


def test_refused_orders_change_nothing() -> None:
    book = _book((1, "a", BUY, 100, 2), (2, "b", SELL, 110, 1))
    before = list(book.orders())
    with pytest.raises(DuplicateOrder):
        book.submit(Order(1, "z", SELL, 90, 1))  # would have crossed, had it been accepted
    with pytest.raises(InvalidOrder):
        book.submit((3, "z", SELL, 90, 1))  # type: ignore[arg-type]
    assert list(book.orders()) == before and book.volume == 0
    book.submit(Order(3, "c", SELL, 100, 2))  # fills order 1 completely
    with pytest.raises(DuplicateOrder, match="used before"):
        book.submit(Order(1, "a", BUY, 100, 2))  # a replay of a filled order cannot trade again


# -- agreement with a brute-force reference ---------------------------------------------------
class ReferenceBook:
    """The obvious O(n) book: scan every resting order for the best one, every time."""

    def __init__(self) -> None:
        self.resting: list[list] = []  # [seq, id, trader, side, price, qty]
        self.seq = 0

    def submit(self, o: Order) -> list[Fill]:
        fills, qty = [], o.qty
        while qty:
            other = [r for r in self.resting if r[3] != o.side]
            if o.side == BUY:
                ok = [r for r in other if o.price is None or r[4] <= o.price]
                best = min(ok, key=lambda r: (r[4], r[0]), default=None)
            else:
                ok = [r for r in other if o.price is None or r[4] >= o.price]
                best = min(ok, key=lambda r: (-r[4], r[0]), default=None)
            if best is None:
                break
            q = min(qty, best[5])
            buy, sell = ((o.id, o.trader), (best[1], best[2])) if o.side == BUY else ((best[1], best[2]), (o.id, o.trader))
            fills.append(Fill(buy[0], sell[0], buy[1], sell[1], best[4], q, o.side))
            qty -= q
            best[5] -= q
            if not best[5]:
                self.resting.remove(best)
        if qty and not o.ioc:
            self.seq += 1
            self.resting.append([self.seq, o.id, o.trader, o.side, o.price, qty])
        return fills

    def cancel(self, oid: int) -> bool:
        hit = [r for r in self.resting if r[1] == oid]
        for r in hit:
            self.resting.remove(r)
        return bool(hit)


_op = st.one_of(
    st.tuples(st.just("order"), st.sampled_from([BUY, SELL]), st.one_of(st.none(), st.integers(95, 105)), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
)


@given(st.lists(_op, max_size=60))
def test_agrees_with_the_reference_book(ops: list[tuple]) -> None:
    book, ref = ContinuousDoubleAuction(), ReferenceBook()
    for n, op in enumerate(ops):
        if op[0] == "order":
            _, side, price, qty, ioc = op
            order = Order(n, f"t{n % 5}", side, price, qty, ioc=ioc)
            assert list(book.submit(order)) == ref.submit(order)
        else:
            assert book.cancel(op[1]) == ref.cancel(op[1])
        book_view = sorted((i, t, s, p, q) for i, t, s, p, q in book.orders())
        assert book_view == sorted((r[1], r[2], r[3], r[4], r[5]) for r in ref.resting)
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask  # the book never stays crossed
