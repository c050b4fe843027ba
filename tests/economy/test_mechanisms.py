"""One conformance suite for every single-award mechanism."""

from __future__ import annotations

import pytest

from economy import Bid, EconomyError, Mechanism, ReverseAuction, SealedBidAuction

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
