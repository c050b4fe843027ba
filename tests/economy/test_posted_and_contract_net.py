"""Posted prices and the FIPA Contract Net."""

from __future__ import annotations

import pytest

from agora.economy import BUY, SELL, DuplicateOrder, InvalidBid, InvalidOrder, Order
from agora.economy.contract_net import ContractNet, NetState
from agora.economy.errors import ProtocolViolation
from agora.economy.posted import PostedPrice


def test_posted_price_fills_at_the_posted_price_up_to_capacity() -> None:
    market = PostedPrice("owner", price=30, capacity=5)
    assert market.quote(3) == 90
    got = market.submit(Order(1, "a", BUY, 50, 3))
    assert [(f.buyer, f.seller, f.price, f.qty) for f in got] == [("a", "owner", 30, 3)]
    assert market.submit(Order(2, "b", BUY, 29, 1)) == ()  # under the posted price: lapses
    assert [f.qty for f in market.submit(Order(3, "c", BUY, None, 4))] == [2]  # capacity left: 2
    assert market.submit(Order(4, "d", BUY, 40, 1)) == () and market.left == 0
    market.clear(now=1.0)  # a new period restores capacity
    market.reprice(45)
    assert [f.price for f in market.submit(Order(5, "d", BUY, 50, 1))] == [45] and market.sold == 6


def test_posted_price_refuses_bad_input() -> None:
    market = PostedPrice("owner", price=30)
    with pytest.raises(InvalidOrder, match="sell orders are refused"):
        market.submit(Order(1, "x", SELL, 10, 1))
    market.submit(Order(2, "x", BUY, 30, 1))
    with pytest.raises(DuplicateOrder):
        market.submit(Order(2, "x", BUY, 30, 1))
    for bad in (lambda: PostedPrice("", 1), lambda: PostedPrice("o", 0), lambda: PostedPrice("o", 1, capacity=-1), lambda: market.reprice(1.5)):
        with pytest.raises(InvalidOrder):
            bad()
    assert market.price == 30 and market.sold == 1


def _call(**kw) -> ContractNet:
    return ContractNet("embed 64 sentences", "buyer", ["p1", "p2", "p3"], deadline=10.0, max_price=100, **kw)


def test_successful_conversation_with_a_counter_proposal() -> None:
    net = _call()
    net.propose("p1", 90, now=1.0)
    net.propose("p2", 120, now=1.5)  # over the limit: only a counter can make it acceptable
    net.refuse("p3", now=2.0)
    net.counter("p2", 80, now=3.0)
    net.accept_counter("p2", now=4.0)
    winner = net.award(now=5.0)  # everyone answered: no need to wait for the deadline
    assert (winner.participant, winner.price) == ("p2", 80) and net.rejected == ["p1"]
    with pytest.raises(ProtocolViolation, match="not awarded"):
        net.done("p1", now=6.0)
    net.done("p2", now=6.0)
    assert net.state is NetState.SUCCESSFUL
    assert [perf for _, _, perf in net.log] == ["propose", "propose", "refuse", "counter", "accept-counter", "accept-proposal", "inform-done"]


def test_declined_expired_and_failed_end_states() -> None:
    declined = _call()
    for p in ("p1", "p2", "p3"):
        declined.refuse(p, now=1.0)
    assert declined.award(now=2.0) is None and declined.state is NetState.DECLINED
    expired = _call()
    assert not expired.expire(now=9.0) and expired.expire(now=10.0) and expired.state is NetState.EXPIRED
    failed = _call()
    failed.propose("p1", 50, now=1.0)
    with pytest.raises(ProtocolViolation, match="not answered"):
        failed.award(now=2.0)  # before the deadline, p2 and p3 still may answer
    assert failed.award(now=10.0).participant == "p1"
    failed.failed("p1", now=11.0)
    assert failed.state is NetState.FAILED


def test_messages_out_of_turn_change_nothing() -> None:
    net = _call()
    net.propose("p1", 50, now=1.0)
    for bad in (
        lambda: net.propose("stranger", 10, now=1.0),
        lambda: net.propose("p2", 10, now=10.0),  # after the deadline
        lambda: net.refuse("p1", now=2.0),  # proposed already
        lambda: net.accept_counter("p1", now=2.0),  # no counter waiting
        lambda: net.counter("p2", 10, now=2.0),  # p2 has not proposed
    ):
        with pytest.raises(ProtocolViolation):
            bad()
    with pytest.raises(InvalidBid):
        net.counter("p1", 60, now=2.0)  # a counter must be lower
    assert net.proposals["p1"].price == 50 and not net.counters and net.state is NetState.OPEN
    net.award(now=10.0)
    with pytest.raises(ProtocolViolation, match="awarded"):
        net.propose("p2", 10, now=3.0)


def test_trust_can_beat_a_lower_price() -> None:
    net = _call(risk_weight=1.0)
    net.propose("p1", 60, now=1.0)  # cheap, unknown
    net.propose("p2", 80, now=1.0)  # dearer, trusted
    net.refuse("p3", now=1.0)
    assert net.award(now=2.0, trust={"p2": 0.4, "p1": 0.0}).participant == "p2"
