"""The call market: one uniform price per call, price-time rationing, carry-over of limit orders."""

from __future__ import annotations

import pytest

from agora.economy import BUY, SELL, CallMarket, DuplicateOrder, InvalidOrder, Order
from agora.economy.metrics import equilibrium


def _market(*orders: tuple) -> CallMarket:
    market = CallMarket()
    for args in orders:
        assert market.submit(Order(*args)) == ()
    return market


def test_uniform_price_in_the_middle_of_the_clearing_interval() -> None:
    values, costs = [120, 110, 100, 90], [80, 95, 105, 115]
    orders = [(i, f"b{i}", BUY, v) for i, v in enumerate(values)]
    orders += [(10 + i, f"s{i}", SELL, c) for i, c in enumerate(costs)]
    market = _market(*orders)
    q, low, high = equilibrium(values, costs)
    price = market.clearing_price()
    assert low <= price <= high and price == (100 + 105) // 2
    fills = market.clear()
    assert len(fills) == q == 2 and {f.price for f in fills} == {price}
    assert {f.buyer for f in fills} == {"b0", "b1"} and {f.seller for f in fills} == {"s0", "s1"}
    assert len(market) == 4  # the four that did not trade rest for the next call
    assert market.clear() == [] and market.last_price == price


def test_rationing_is_price_then_time_and_partial() -> None:
    market = _market((1, "b1", BUY, 100, 2), (2, "b2", BUY, 100, 2), (3, "s", SELL, 90, 3))
    fills = market.clear()
    assert [(f.buy_id, f.qty) for f in fills] == [(1, 2), (2, 1)]
    assert {f.price for f in fills} == {100}  # the marginal bid is only part-filled: it sets the price


def test_market_orders_and_expiry() -> None:
    market = _market((1, "b", BUY, None, 1), (2, "s", SELL, 50, 1), (3, "late", SELL, 40, 1, 5.0))
    fills = market.clear(now=5.0)  # order 3 expired at the call
    assert [(f.sell_id, f.price) for f in fills] == [(2, 50)]
    lone = _market((4, "b", BUY, None, 1), (5, "s", SELL, None, 1))
    assert lone.clear() == [] and len(lone) == 0  # no price to lean on: market orders lapse


def test_bad_input_changes_nothing() -> None:
    market = _market((1, "b", BUY, 100, 1))
    with pytest.raises(DuplicateOrder):
        market.submit(Order(1, "s", SELL, 50, 1))
    market.clear(now=3.0)
    with pytest.raises(InvalidOrder, match="expired"):
        market.submit(Order(2, "s", SELL, 50, 1, expires=2.0))
    with pytest.raises(InvalidOrder, match="back"):
        market.clear(now=1.0)
    assert len(market) == 1 and market.cancel(1) and not market.cancel(1)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BOOK = st.lists(st.tuples(st.sampled_from([BUY, SELL]), st.integers(1, 30), st.integers(1, 5)), max_size=60)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_BOOK)
def test_array_clearing_agrees_with_the_order_by_order_call(book) -> None:
    """clear_arrays (numpy, a whole population's book at once) makes exactly the fills the
    CallMarket makes order by order: same pairs, same quantities, same uniform price."""
    from agora.economy.callmarket import clear_arrays

    market = CallMarket()
    bids, asks = [], []
    for i, (side, price, qty) in enumerate(book):
        market.submit(Order(i, f"t{i}", side, price, qty))
        (bids if side == BUY else asks).append((i, price, qty))
    expected = [(f.buy_id, f.sell_id, f.qty, f.price) for f in market.clear()]
    price, bi, ai, qty = clear_arrays([p for _, p, _ in bids], [q for _, _, q in bids], [p for _, p, _ in asks], [q for _, _, q in asks])
    got = [(bids[b][0], asks[a][0], int(q), price) for b, a, q in zip(bi, ai, qty, strict=False)]
    assert got == expected
