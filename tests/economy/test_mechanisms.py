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
    PostedBoard,
    PostedPrice,
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
# each market of economy, and what its sell side is: resting sell orders ("book"), one seller's
# posted price ("one seller"), or every seller's posting for the period ("postings")
MARKETS = {
    "cda": (ContinuousDoubleAuction, "book"),
    "call": (CallMarket, "book"),
    "posted": (lambda: PostedPrice("poster", 100, capacity=6), "one seller"),
    "posted-board": (PostedBoard, "postings"),
}


@pytest.mark.parametrize("name", sorted(MARKETS))
def test_market_conformance(name: str) -> None:
    """Any order flow: fills respect both limits (a posted price is the seller's limit), no
    order trades more than its quantity nor a posting more than its capacity in a period, the
    two sides trade the same amount, and a refused order changes nothing."""
    rng = random.Random(7)
    make, sells = MARKETS[name]
    market = make()
    assert isinstance(market, Market)
    orders: dict[int, Order] = {}
    postings: dict[str, tuple[int, int]] = {"poster": (100, 6)} if sells == "one seller" else {}
    sold: dict[str, int] = {}
    fills = []
    for n in range(400):
        if n and rng.random() < 0.15:
            market.cancel(rng.randrange(n))
            continue
        side = rng.choice([BUY, SELL])
        price = None if rng.random() < 0.05 else rng.randint(90, 110)
        orders[n] = order = Order(n, f"t{rng.randrange(9)}", side, price, rng.randint(1, 3), expires=n + rng.randint(5, 50))
        if side == SELL and sells == "one seller":
            with pytest.raises(EconomyError):
                market.submit(order)  # only the poster sells
            continue
        try:
            got = list(market.submit(order))
        except EconomyError:
            assert sells == "postings" and side == SELL and price is None  # a posting needs a price
            continue
        if side == SELL and sells == "postings":
            postings[order.trader], sold[order.trader] = (price, order.qty), 0  # the seller's posting, replaced
        fills += [(f, dict(postings)) for f in got]
        for f in got:
            sold[f.seller] = sold.get(f.seller, 0) + f.qty
        with pytest.raises(EconomyError):
            market.submit(order)  # a duplicate: refused whole
        if n % 10 == 9:
            fills += [(f, dict(postings)) for f in market.clear(now=float(n))]
            if sells == "postings":
                postings.clear()  # a new period: sellers post again
            sold.clear()
        for seller, qty in sold.items():
            assert sells == "book" or qty <= postings[seller][1]  # a posting's capacity holds
    assert fills
    traded: dict[int, int] = {}
    for f, posted in fills:
        buy = orders[f.buy_id]
        assert buy.side == BUY and (buy.price is None or f.price <= buy.price)
        traded[f.buy_id] = traded.get(f.buy_id, 0) + f.qty
        if sells == "book":
            sell = orders[f.sell_id]
            assert sell.side == SELL and (sell.price is None or f.price >= sell.price)
            traded[f.sell_id] = traded.get(f.sell_id, 0) + f.qty
        else:
            assert f.price == posted[f.seller][0]  # at the posted price, the seller's limit
    assert all(q <= orders[i].qty for i, q in traded.items())
    assert sum(q for i, q in traded.items() if orders[i].side == BUY) == sum(f.qty for f, _ in fills)
    if sells == "book":
        assert sum(q for i, q in traded.items() if orders[i].side == SELL) == sum(f.qty for f, _ in fills)


def test_a_session_picks_exactly_whom_a_list_of_the_active_traders_would() -> None:
    """run_session keeps the active traders in a Fenwick tree so a pick costs O(log n): the
    k-th active trader is the one a plain list of them (rng.choice) would give, through any
    order of traders running out."""
    from agora.economy.session import _Active

    rng = random.Random(3)
    alive = [rng.random() < 0.8 for _ in range(257)]
    active = _Active(alive)
    for _ in range(300):
        listed = [i for i, on in enumerate(alive) if on]
        assert active.count == len(listed)
        if not listed:
            break
        k = rng.randrange(len(listed))
        assert active.kth(k) == listed[k]
        gone = listed[rng.randrange(len(listed))]
        alive[gone] = False
        active.add(gone, -1)


def test_only_strategies_that_learn_are_told_of_every_shout() -> None:
    """Telling every trader of every shout made a session quadratic; strategies whose observe
    does nothing are no longer told, and a learner still hears every shout."""
    from agora.economy.session import run_session
    from agora.economy.strategies import ZIC

    heard: dict[str, int] = {}

    class Listening(ZIC):
        def observe(self, side, price, traded, limit) -> None:  # noqa: ANN001 - the Strategy signature
            heard[self.name] = heard.get(self.name, 0) + 1

    def make(name: str, side: str, rng: random.Random) -> ZIC:
        strategy = Listening(1, 200) if name == "b0" else ZIC(1, 200)
        strategy.name = name  # type: ignore[attr-defined]  # the test's own tag
        return strategy

    result = run_session({"b0": [150], "b1": [140]}, {"s0": [20], "s1": [30]}, make, steps=50, seed=2)
    assert heard == {"b0": heard["b0"]} and heard["b0"] >= len(result.trades) > 0
