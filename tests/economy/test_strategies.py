"""Bidding strategies: every constrained one respects limits and budgets; the learners learn."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.economy import BUY, SELL, InvalidBid
from agora.economy.strategies import ZIC, ZIP, ZIU, Shading, Strategy, Truthful

CONSTRAINED = {
    "truthful": lambda side, rng: Truthful(),
    "zic": lambda side, rng: ZIC(),
    "zip": lambda side, rng: ZIP(side, rng),
    "shading": lambda side, rng: Shading(0.8),
}


@pytest.mark.parametrize("name", sorted(CONSTRAINED))
@given(limit=st.integers(1, 200), budget=st.one_of(st.none(), st.integers(0, 300)), seed=st.integers(0, 10**6))
def test_constrained_strategies_never_quote_past_the_limit_or_budget(name: str, limit: int, budget: int | None, seed: int) -> None:
    rng = random.Random(seed)
    for side in (BUY, SELL):
        strategy: Strategy = CONSTRAINED[name](side, rng)
        for _ in range(5):
            price = strategy.quote(side, limit, rng, budget=budget)
            if side == BUY:
                if budget is not None and budget < 1:
                    assert price is None
                    continue
                assert price is not None and 1 <= price <= limit and (budget is None or price <= budget)
            else:
                assert price is not None and limit <= price <= 200
            strategy.observe(SELL if side == BUY else BUY, rng.randint(1, 200), rng.random() < 0.5, limit)


def test_ziu_ignores_the_limit_but_not_the_budget() -> None:
    rng, ziu = random.Random(1), ZIU()
    bids = [ziu.quote(BUY, 50, rng) for _ in range(500)]
    assert max(bids) > 50 and min(bids) >= 1  # bids above value: the unconstrained control
    assert max(ziu.quote(BUY, 50, rng, budget=30) for _ in range(200)) <= 30
    assert ZIC().quote(SELL, 250, rng) is None  # a cost over the ceiling: nothing to ask


def test_bad_parameters_are_refused() -> None:
    for bad in (lambda: ZIC(0, 10), lambda: ZIC(10, 5), lambda: Shading(0.0), lambda: Shading.equilibrium(1), lambda: ZIP("hold", random.Random())):
        with pytest.raises(InvalidBid):
            bad()
    assert Shading.equilibrium(4).factor == 0.75


def test_zip_widens_its_margin_after_trading_cheaply_and_narrows_it_when_outbid() -> None:
    seller = ZIP(SELL, random.Random(3))
    start = seller.quote(SELL, 100, random.Random())
    for _ in range(20):  # trades keep happening well above its ask: it asks for more
        seller.observe(BUY, start + 40, True, 100)
    higher = seller.quote(SELL, 100, random.Random())
    assert higher > start + 20
    for _ in range(40):  # offers under its ask go unanswered: it comes down, never under cost
        seller.observe(SELL, 101, False, 100)
    lower = seller.quote(SELL, 100, random.Random())
    assert 100 <= lower < higher - 20
