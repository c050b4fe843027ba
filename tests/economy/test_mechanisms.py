"""One conformance suite per mechanism interface: single-award auctions, order-driven markets."""

from __future__ import annotations

import random

import pytest

from agora.economy import (
    BUY,
    SELL,
    Bid,
    CallMarket,
    ContinuousDoubleAuction,
    EconomyError,
    Market,
    Mechanism,
    Order,
    ReverseAuction,
    SealedBidAuction,
)

MECHANISMS = {
    "reverse": lambda: ReverseAuction(max_price=100),
    "first-price": lambda: SealedBidAuction("first", reserve=5),
    "second-price": lambda: SealedBidAuction("second", reserve=5),
}


@pytest.fixture(params=sorted(MECHANISMS))
def mechanism(request: pytest.FixtureRequest) -> Mechanism:
    return MECHANISMS[request.param]()


def test_is_a_mechanism(mechanism) -> None:
    assert isinstance(mechanism, Mechanism)
    assert mechanism.clear() is None  # no bids, no award


REFUSED = {  # bids each mechanism must refuse: a repeat bidder, and its own out-of-range price
    "reverse": [Bid(bidder="a", price=40), Bid(bidder="b", price=101)],
    "first-price": [Bid(bidder="a", price=60), Bid(bidder="b", price=4)],
    "second-price": [Bid(bidder="a", price=60), Bid(bidder="b", price=4)],
}


@pytest.mark.parametrize("name", sorted(MECHANISMS))
def test_refused_bids_change_nothing(name: str) -> None:
    mechanism = MECHANISMS[name]()
    mechanism.submit(Bid(bidder="a", price=50))
    mechanism.submit(Bid(bidder="c", price=30))
    before = mechanism.clear()
    for bad in REFUSED[name]:
        with pytest.raises(EconomyError):
            mechanism.submit(bad)
    assert mechanism.clear() == before


def test_outcome_does_not_depend_on_arrival_order() -> None:
    bids = [Bid(bidder=b, price=p) for b, p in (("x", 40), ("y", 40), ("z", 30), ("w", 60))]
    for make in MECHANISMS.values():
        outcomes = set()
        for order in (bids, bids[::-1], bids[2:] + bids[:2]):
            m = make()
            for bid in order:
                m.submit(bid)
            award = m.clear()
            outcomes.add((award.winner, award.price))
        assert len(outcomes) == 1


# -- order-driven markets ---------------------------------------------------------------------
MARKETS = {"cda": ContinuousDoubleAuction, "call": CallMarket}


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_market_conformance(name: str) -> None:
    """Any order flow: fills respect both limits, no order trades more than its quantity, the
    two sides trade the same amount, and a refused order changes nothing."""
    rng = random.Random(7)
    market = MARKETS[name]()
    assert isinstance(market, Market)
    orders: dict[int, Order] = {}
    fills = []
    for n in range(400):
        if n and rng.random() < 0.15:
            market.cancel(rng.randrange(n))
            continue
        side = rng.choice([BUY, SELL])
        price = None if rng.random() < 0.05 else rng.randint(90, 110)
        orders[n] = Order(n, f"t{rng.randrange(9)}", side, price, rng.randint(1, 3), expires=n + rng.randint(5, 50))
        fills += market.submit(orders[n])
        with pytest.raises(EconomyError):
            market.submit(orders[n])  # a duplicate: refused whole
        if n % 10 == 9:
            fills += market.clear(now=float(n))
    assert fills
    traded: dict[int, int] = {}
    for f in fills:
        buy, sell = orders[f.buy_id], orders[f.sell_id]
        assert (buy.side, sell.side) == (BUY, SELL)
        assert buy.price is None or f.price <= buy.price
        assert sell.price is None or f.price >= sell.price
        traded[f.buy_id] = traded.get(f.buy_id, 0) + f.qty
        traded[f.sell_id] = traded.get(f.sell_id, 0) + f.qty
    assert all(q <= orders[i].qty for i, q in traded.items())
    assert sum(q for i, q in traded.items() if orders[i].side == BUY) == sum(f.qty for f in fills)
    assert sum(q for i, q in traded.items() if orders[i].side == SELL) == sum(f.qty for f in fills)
