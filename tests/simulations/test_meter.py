"""The step meter's numpy schedule agrees with economy.metrics on every schedule."""

from __future__ import annotations

import random

import numpy as np

from agora.economy.metrics import equilibrium, gini, max_surplus
from agora.simulations.meter import _gini, _schedule


def test_the_vectorized_schedule_is_economy_metrics() -> None:
    rng = random.Random(0)
    crossed = 0
    for _ in range(3000):
        values = [rng.randint(1, 50) for _ in range(rng.randint(0, 30))]
        costs = [rng.randint(1, 50) for _ in range(rng.randint(0, 30))]
        q, low, high = equilibrium(values, costs)
        got = _schedule(np.array(values, dtype=np.int64), np.array(costs, dtype=np.int64))
        assert got[0] == q and got[3] == max_surplus(values, costs)
        if q:
            crossed += 1
            assert (got[1], got[2]) == (low, high)
        earnings = [rng.random() * 10 for _ in range(rng.randint(1, 20))]
        assert abs(_gini(np.array(earnings)) - gini(earnings)) < 1e-9
    assert crossed > 1000
