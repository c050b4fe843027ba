from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.economy import BUY, Bid, InvalidBid, SealedBidAuction
from agora.economy.strategies import Shading, Truthful


def _run(rule: str, bids: dict[str, int], reserve: int = 0):
    auction = SealedBidAuction(rule, reserve)
    for who, price in bids.items():
        auction.submit(Bid(bidder=who, price=price))
    return auction.clear()


def test_first_and_second_price_rules() -> None:
    bids = {"a": 70, "b": 90, "c": 40}
    first, second = _run("first", bids), _run("second", bids)
    assert (first.winner, first.price) == ("b", 90)
    assert (second.winner, second.price) == ("b", 70)  # the highest losing bid
    assert _run("second", {"a": 50}, reserve=30).price == 30  # alone: pays the reserve
    assert _run("second", {"a": 50, "b": 31}, reserve=30).price == 31  # the losing bid beats the reserve
    assert _run("second", {"x": 10, "y": 10}).winner == "x"  # ties: lower id, whatever the order


def test_reserve_and_bad_input() -> None:
    auction = SealedBidAuction("first", reserve=10)
    with pytest.raises(InvalidBid, match="reserve"):
        auction.submit(Bid(bidder="a", price=9))
    assert auction.clear() is None
    auction.submit(Bid(bidder="a", price=10))
    with pytest.raises(InvalidBid, match="already"):
        auction.submit(Bid(bidder="a", price=11))
    for bad in (("third", 0), ("first", -1), ("second", 1.5)):
        with pytest.raises(InvalidBid):
            SealedBidAuction(*bad)


@given(value=st.integers(0, 1000), deviation=st.integers(0, 1000), others=st.lists(st.integers(0, 1000), max_size=6))
def test_truthful_bidding_is_never_beaten_in_a_second_price_auction(value: int, deviation: int, others: list[int]) -> None:
    def utility(bid: int) -> int:
        # "me" sorts after "o…" ids, so ties go against me: the strictest case
        award = _run("second", {"me": bid, **{f"o{i}": b for i, b in enumerate(others)}})
        return value - award.price if award.winner == "me" else 0

    assert utility(value) >= utility(deviation)


def test_revenue_equivalence_with_uniform_values() -> None:
    """n bidders, values uniform on [0, 1): first price (the Shading strategy's equilibrium bids,
    (n-1)/n * v) and second price (Truthful) both earn (n-1)/(n+1) in expectation."""
    rng = random.Random(7)
    scale, rounds = 10**6, 4000
    for n in (2, 4):
        shade, truthful = Shading.equilibrium(n, ceiling=scale), Truthful(ceiling=scale)
        revenue = {"first": 0, "second": 0}
        for _ in range(rounds):
            values = [1 + int(rng.random() * (scale - 1)) for _ in range(n)]
            first = {f"b{i}": shade.quote(BUY, v, rng) for i, v in enumerate(values)}
            second = {f"b{i}": truthful.quote(BUY, v, rng) for i, v in enumerate(values)}
            revenue["first"] += _run("first", first).price
            revenue["second"] += _run("second", second).price
        expected = (n - 1) / (n + 1)
        for rule, total in revenue.items():
            assert abs(total / rounds / scale - expected) < 0.02, (n, rule)
