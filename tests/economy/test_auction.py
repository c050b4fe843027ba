from __future__ import annotations

import pytest

from agora.economy import Bid, InvalidBid, OverBudget, ReverseAuction


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


def test_a_buyer_who_prices_risk_pays_more_for_a_trusted_provider() -> None:
    bids = [Bid(bidder="new", price=60, reputation=0.0), Bid(bidder="known", price=80, reputation=1.0)]
    for weight, winner in ((0.0, "new"), (0.2, "new"), (0.5, "known")):  # 60 * 1.2 = 72 < 80 < 60 * 1.5
        auction = ReverseAuction(max_price=100, risk_weight=weight)
        for b in bids:
            auction.submit(b)
        assert auction.clear().winner == winner
    with pytest.raises(InvalidBid):
        ReverseAuction(max_price=100, risk_weight=-1)
