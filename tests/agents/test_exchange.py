"""The exchange's trade tape: read by cursor, so readers never take trades from one another, and
bounded, so a market nobody reads keeps a fixed memory and a reader that fell behind sees the gap."""

from __future__ import annotations

import pytest

from agora.agents import Identity, LocalRuntime
from agora.agents.roles.exchange import Exchange, read_trades
from agora.agents.roles.trader import Trader
from agora.chain import MemoryLedger
from agora.economy import EconomyError


def _market(tape_size: int) -> tuple[LocalRuntime, Exchange]:
    rt = LocalRuntime(MemoryLedger(), seed=3, sign=False, latency=0.01)
    key = lambda n: Identity.from_seed("tape", n)  # noqa: E731
    exchange = Exchange("ex", key("ex"), "gpu", "cda", period=10, rounds=5, ceiling=200, tape_size=tape_size)
    rt.add(exchange)
    for i in range(6):
        buyer = rt.add(Trader(f"b{i}", key(f"b{i}"), "gpu", "buy", limit=120 + 10 * i, units=4))
        rt.add(Trader(f"s{i}", key(f"s{i}"), "gpu", "sell", limit=40 + 10 * i, units=4))
        rt.ledger.mint(buyer, 10_000)
    rt.start()
    return rt, exchange


def test_every_reader_sees_every_trade_and_a_reader_behind_the_tape_sees_the_gap() -> None:
    rt, exchange = _market(tape_size=8)
    rt.run(timeout=3)  # one round: 6 trades
    first, early, missed = read_trades(rt.query, exchange.address, 0, page=3)  # pages of 3, one reader
    assert first == len(early) == exchange.settled > 0 and missed == 0
    assert [row[0] for row in early] == list(range(1, first + 1))
    rt.run(timeout=30)
    total = exchange.settled
    assert total > first + 8  # more trades than the tape keeps came after the first read
    assert len(exchange.trades(0)[1]) == 8 and exchange.trades(0)[0] == total  # the tape keeps its size
    cursor, late, missed = read_trades(rt.query, exchange.address, first)
    assert cursor == total and missed == total - first - 8 and [row[0] for row in late] == list(range(total - 7, total + 1))
    again = read_trades(rt.query, exchange.address, first)  # a second reader at the same cursor: the same trades
    assert again == (cursor, late, missed)
    assert read_trades(rt.query, exchange.address, total) == (total, [], 0)  # caught up: nothing new
    assert sum(row[5] * row[6] for row in late) <= exchange.turnover and rt.ledger.is_conserved()


def test_a_tape_must_keep_a_trade() -> None:
    with pytest.raises(EconomyError, match="tape_size=0"):
        Exchange("ex", Identity.from_seed("tape", "bad"), "gpu", "cda", period=10, tape_size=0)


def test_a_mechanism_registered_by_name_runs_as_a_market() -> None:
    """The exchange runs any economy market from the venue table: registering a venue over
    economy's CallMarket (a book the exchange never special-cases) makes it a market traders
    trade in, settled and conserved like the built-in ones; an unknown name is refused."""
    from agora.agents.roles.venues import VENUES, BookVenue, register_venue
    from agora.economy import CallMarket

    with pytest.raises(EconomyError, match="unknown mechanism 'batch'"):
        Exchange("ex", Identity.from_seed("tape", "ex"), "gpu", "batch", period=10)
    register_venue("batch", lambda: BookVenue(CallMarket()))
    try:
        rt = LocalRuntime(MemoryLedger(), seed=3, sign=False, latency=0.01)
        key = lambda n: Identity.from_seed("batch", n)  # noqa: E731
        exchange = Exchange("ex", key("ex"), "gpu", "batch", period=10, rounds=5, ceiling=200)
        rt.add(exchange)
        for i in range(4):
            buyer = rt.add(Trader(f"b{i}", key(f"b{i}"), "gpu", "buy", limit=120 + 10 * i, units=4))
            rt.add(Trader(f"s{i}", key(f"s{i}"), "gpu", "sell", limit=40 + 10 * i, units=4))
            rt.ledger.mint(buyer, 10_000)
        rt.start()
        rt.run(timeout=30)
        _, trades, _ = read_trades(rt.query, exchange.address, 0)
        assert trades and exchange.settled == len(trades)
        assert len({row[5] for row in trades if row[1] == trades[0][1]}) == 1  # a call: one price a round
        assert rt.ledger.is_conserved()
    finally:
        del VENUES["batch"]


def test_a_refused_posting_leaves_the_live_one_as_it_was() -> None:
    """A posted market's sell order the board refuses (no price) changes nothing: the seller's
    live posting, its id and its model policy stay, and buyers still fill against it."""
    from agora.agents.roles.market_protocol import PlaceOrder
    from agora.agents.roles.venues import PostedVenue
    from agora.economy import Order

    venue, owners = PostedVenue(), {0: ("s", 7), 1: ("s", 8), 2: ("b", 1)}
    venue.place(Order(0, "s", "sell", 50, 3), PlaceOrder(cid=7, side="sell", price=50, qty=3, allowed=["m1"]), owners)
    with pytest.raises(EconomyError):
        venue.place(Order(1, "s", "sell", None, 3), PlaceOrder(cid=8, side="sell", qty=3), owners)
    assert venue.lives_on("s", period_end=False) == 7 and venue.live_ids() == {0}
    fills = venue.place(Order(2, "b", "buy", 60, 1), PlaceOrder(cid=1, side="buy", price=60, model="m1"), owners)
    assert [(m[0], m[1], m[2], m[5]) for m in fills] == [("b", "s", 50, ("t", "s", 7))]
    assert venue.place(Order(3, "b", "buy", 60, 1), PlaceOrder(cid=2, side="buy", price=60, model="m2"), {**owners, 3: ("b", 2)}) == []
