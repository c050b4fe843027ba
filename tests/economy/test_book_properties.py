"""Order-book invariants under random operation sequences (hypothesis, bounded in CI): the book is
never crossed after matching; no order ever fills beyond its size; a cancel removes exactly the
order it names and nothing else; every market's fills pair a buy with a sell at a price both
accepted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agora.economy import BUY, SELL, CallMarket, ContinuousDoubleAuction, EconomyError, Order, PostedBoard

sides = st.sampled_from([BUY, SELL])
limit = st.integers(1, 40)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), sides, limit, st.integers(1, 6), st.integers(0, 7)),
        st.tuples(st.just("market"), sides, st.integers(1, 6), st.integers(0, 7)),
        st.tuples(st.just("ioc"), sides, limit, st.integers(1, 6), st.integers(0, 7)),
        st.tuples(st.just("cancel"), st.integers(0, 60)),
        st.tuples(st.just("time"), st.integers(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=200)
@given(ops)
def test_the_double_auction_is_never_crossed_and_never_overfills(sequence) -> None:
    book = ContinuousDoubleAuction()
    sizes: dict[int, int] = {}
    filled: dict[int, int] = {}
    limits: dict[int, int | None] = {}
    now = 0.0
    for n, op in enumerate(sequence):
        kind = op[0]
        if kind == "cancel":
            before = {oid: qty for oid, *_, qty in book.orders()}
            was = book.resting(op[1])
            assert book.cancel(op[1]) == (was > 0)
            after = {oid: qty for oid, *_, qty in book.orders()}
            before.pop(op[1], None)
            assert after == before  # exactly the named order went, nothing else moved
            continue
        if kind == "time":
            now += op[1]
            book.clear(now)
            continue
        side, price, qty, who = (op[1], None, op[2], op[3]) if kind == "market" else (op[1], op[2], op[3], op[4])
        order = Order(n, f"t{who}", side, price, qty, expires=now + 2, ioc=kind == "ioc")
        sizes[n], limits[n] = qty, price
        for fill in book.submit(order):
            filled[fill.buy_id] = filled.get(fill.buy_id, 0) + fill.qty
            filled[fill.sell_id] = filled.get(fill.sell_id, 0) + fill.qty
            b, s = limits[fill.buy_id], limits[fill.sell_id]
            assert (b is None or fill.price <= b) and (s is None or fill.price >= s)  # both sides accepted the price
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is None or ask is None or bid < ask  # never crossed after matching
        for oid, size in sizes.items():
            assert filled.get(oid, 0) + book.resting(oid) <= size
    for oid, _, _side, price, qty in book.orders():
        assert 0 < qty <= sizes[oid] - filled.get(oid, 0) and limits[oid] == price


@settings(max_examples=200)
@given(st.lists(st.tuples(sides, limit, st.integers(1, 6)), max_size=50))
def test_a_call_never_overfills_and_clears_at_one_price_both_sides_accept(orders) -> None:
    market = CallMarket()
    for n, (side, price, qty) in enumerate(orders):
        market.submit(Order(n, f"t{n}", side, price, qty))
    fills = market.clear()
    used: dict[int, int] = {}
    for f in fills:
        used[f.buy_id] = used.get(f.buy_id, 0) + f.qty
        used[f.sell_id] = used.get(f.sell_id, 0) + f.qty
        assert orders[f.buy_id][0] == BUY and orders[f.sell_id][0] == SELL
        assert orders[f.sell_id][1] <= f.price <= orders[f.buy_id][1]
    assert len({f.price for f in fills}) <= 1
    assert all(q <= orders[oid][2] for oid, q in used.items())


@settings(max_examples=200)
@given(st.lists(st.tuples(sides, limit, st.integers(1, 6), st.sampled_from(["a", "b", "c"])), max_size=40))
def test_posted_prices_sell_no_more_than_posted_at_no_more_than_the_bid(orders) -> None:
    board = PostedBoard()
    posted: dict[str, tuple[int, int]] = {}
    sold: dict[str, int] = {}
    for n, (side, price, qty, who) in enumerate(orders):
        try:
            fills = board.submit(Order(n, f"{side}-{who}", side, price, qty))
        except EconomyError:
            continue
        if side == SELL:
            posted[f"{side}-{who}"] = (price, qty)
            sold[f"{side}-{who}"] = 0
        for f in fills:
            assert f.price == posted[f.seller][0] <= price  # the posted price, within the buyer's limit
            sold[f.seller] += f.qty
            assert sold[f.seller] <= posted[f.seller][1]  # never past the posted capacity
        assert sum(f.qty for f in fills) <= qty


def test_books_fed_by_one_counter_remember_one_id_and_still_refuse_replays() -> None:
    from agora.economy import DuplicateOrder, InvalidOrder

    book = ContinuousDoubleAuction(increasing_ids=True)
    for n in range(1000):
        book.submit(Order(n, "t", BUY if n % 2 else SELL, 10 + n % 5, 1))
    assert book._seen.high == 999 and not isinstance(book._seen, set)  # one int, not a thousand
    for old in (999, 5):
        try:
            book.submit(Order(old, "t", BUY, 10, 1))
        except DuplicateOrder:
            pass
        else:
            raise AssertionError("a spent id traded again")
    board = PostedBoard(increasing_ids=True)
    board.submit(Order(3, "s", SELL, 10, 5))
    try:
        board.submit(Order(2, "b", BUY, 10, 1))
    except (DuplicateOrder, InvalidOrder):
        pass
    else:
        raise AssertionError("an id below the highest was admitted")
