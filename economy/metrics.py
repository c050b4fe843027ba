"""Economic metrics: what a market achieved against what it could have.

Surplus is value minus cost summed over trades; allocative efficiency is achieved surplus over
the competitive-equilibrium maximum; Smith's alpha measures how far transaction prices sit from
the equilibrium price (root mean square deviation, in percent of that price); price dispersion is
the coefficient of variation of prices; the Gini coefficient measures how unequal earnings are;
utilization is the share of offered capacity that was sold.
Inputs are plain numbers so the same functions serve simulations, tests and reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def max_surplus(values: Sequence[float], costs: Sequence[float]) -> float:
    """The most total surplus unit buyers (``values``) and unit sellers (``costs``) can make:
    pair the highest values with the lowest costs while value exceeds cost."""
    total = 0.0
    for v, c in zip(sorted(values, reverse=True), sorted(costs), strict=False):
        if v <= c:
            break
        total += v - c
    return total


def equilibrium(values: Sequence[float], costs: Sequence[float]) -> tuple[int, float, float]:
    """(quantity traded, lowest and highest competitive-equilibrium price) of the unit schedule."""
    vs, cs = sorted(values, reverse=True), sorted(costs)
    q = 0
    while q < min(len(vs), len(cs)) and vs[q] > cs[q]:
        q += 1
    if q == 0:
        return 0, float("nan"), float("nan")
    low = max(cs[q - 1], vs[q] if q < len(vs) else -math.inf)
    high = min(vs[q - 1], cs[q] if q < len(cs) else math.inf)
    return q, low, high


def allocative_efficiency(achieved: float, maximum: float) -> float:
    """Achieved surplus over the maximum possible (1.0 when nothing could be gained)."""
    return 1.0 if maximum <= 0 else achieved / maximum


def smiths_alpha(prices: Sequence[float], equilibrium_price: float) -> float:
    """100 * RMS deviation of prices from the equilibrium price, over that price."""
    if not prices:
        return float("nan")
    rms = math.sqrt(sum((p - equilibrium_price) ** 2 for p in prices) / len(prices))
    return 100.0 * rms / equilibrium_price


def price_dispersion(prices: Sequence[float]) -> float:
    """Coefficient of variation of prices (population standard deviation over the mean)."""
    if not prices:
        return float("nan")
    mean = sum(prices) / len(prices)
    var = sum((p - mean) ** 2 for p in prices) / len(prices)
    return math.sqrt(var) / mean if mean else float("nan")


def gini(earnings: Sequence[float]) -> float:
    """Gini coefficient of non-negative earnings: 0 all equal, toward 1 one takes all."""
    xs = sorted(earnings)
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return 0.0
    weighted = sum((i + 1) * x for i, x in enumerate(xs))
    return (2 * weighted) / (n * total) - (n + 1) / n


def utilization(busy: Sequence[float], capacity: Sequence[float]) -> float:
    """Used over available capacity (GPU-seconds sold over GPU-seconds offered, say), summed
    over resources; 0.0 when nothing was offered."""
    if len(busy) != len(capacity):
        raise ValueError(f"busy and capacity differ in length: {len(busy)} and {len(capacity)}")
    total = sum(capacity)
    return sum(busy) / total if total > 0 else 0.0
