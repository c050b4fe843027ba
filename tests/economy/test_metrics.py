from __future__ import annotations

import math

import pytest

from agora.economy import allocative_efficiency, equilibrium, gini, max_surplus, price_dispersion, smiths_alpha, utilization

VALUES = [140, 130, 120, 110, 100, 90]
COSTS = [80, 90, 100, 110, 120, 130]


def test_surplus_and_equilibrium_of_a_unit_schedule() -> None:
    assert max_surplus(VALUES, COSTS) == (140 - 80) + (130 - 90) + (120 - 100)  # the 4th pair ties: no gain
    q, low, high = equilibrium(VALUES, COSTS)
    assert q == 3 and (low, high) == (110, 110)
    assert equilibrium([50], [60])[0] == 0 and max_surplus([50], [60]) == 0


def test_efficiency_alpha_dispersion_gini() -> None:
    assert allocative_efficiency(90, 120) == pytest.approx(0.75)
    assert allocative_efficiency(0, 0) == 1.0
    assert smiths_alpha([110, 110], 110) == 0
    assert smiths_alpha([100, 120], 110) == pytest.approx(100 * 10 / 110)
    assert price_dispersion([5, 5, 5]) == 0 and math.isnan(price_dispersion([]))
    assert gini([1, 1, 1, 1]) == pytest.approx(0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n-1)/n when one takes all
    assert gini([]) == 0


def test_utilization() -> None:
    assert utilization([30, 10], [60, 20]) == pytest.approx(0.5)
    assert utilization([], []) == 0.0
    with pytest.raises(ValueError, match="length"):
        utilization([1], [1, 2])
