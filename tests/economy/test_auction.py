from __future__ import annotations

import pytest

from economy import Bid, InvalidBid, OverBudget, ReverseAuction


def test_lowest_acceptable_bid_wins() -> None:
    auction = ReverseAuction(max_price=100)
    for bidder, price in [("b", 70), ("a", 55), ("c", 90)]:
        auction.submit(Bid(bidder=bidder, price=price))
    award = auction.clear()
    assert award is not None and (award.winner, award.price, award.bids) == ("a", 55, 3)


def test_ties_are_deterministic_whatever_the_order() -> None:
    bids = [Bid(bidder="z", price=50, reputation=0.5), Bid(bidder="y", price=50, reputation=0.9), Bid(bidder="x", price=50, reputation=0.9)]
    winners = set()
    for order in (bids, bids[::-1], bids[1:] + bids[:1]):
        auction = ReverseAuction(max_price=60)
        for b in order:
            auction.submit(b)
        winners.add(auction.clear().winner)
    assert winners == {"x"}  # equal price and reputation: lower id wins


def test_bad_and_over_budget_bids_are_refused() -> None:
    auction = ReverseAuction(max_price=10)
    with pytest.raises(OverBudget):
        auction.submit(Bid(bidder="a", price=11))
    for bad in (-1, 2.5, "5", None):
        with pytest.raises(InvalidBid):
            Bid(bidder="a", price=bad)
    auction.submit(Bid(bidder="a", price=10))
    with pytest.raises(InvalidBid, match="already"):
        auction.submit(Bid(bidder="a", price=9))
    assert auction.clear().price == 10
    with pytest.raises(InvalidBid):
        ReverseAuction(max_price=-5)


def test_no_bids_no_award() -> None:
    assert ReverseAuction(max_price=10).clear() is None
