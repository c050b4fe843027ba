"""The figures of a run report, drawn with matplotlib (Agg, no display) as PNG bytes.

Each function takes plain columns (from the run's Parquet tables) and returns one PNG; the
report embeds them, so the HTML file stands alone.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#2a6fdb", "#e4572e", "#17a398", "#f3a712", "#7b5ea7", "#5b5b5b", "#c2185b", "#388e3c"]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def price_over_time(series: Mapping[str, Mapping[str, Sequence[float]]], title: str = "Price per step against the equilibrium") -> bytes:
    """``series``: market -> columns t, vwap, min, max, eq_low, eq_high (and optionally
    scatter_t / scatter_p, a sample of single trades)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, (market, s) in enumerate(series.items()):
        c = COLORS[i % len(COLORS)]
        if s.get("scatter_t"):
            ax.scatter(s["scatter_t"], s["scatter_p"], s=4, alpha=0.15, color=c, linewidths=0)
        ax.fill_between(s["t"], s["min"], s["max"], color=c, alpha=0.12, step="mid")
        ax.plot(s["t"], s["vwap"], color=c, lw=1.8, label=f"{market}: mean price paid")
        if any(x == x for x in s["eq_low"]):
            ax.fill_between(s["t"], s["eq_low"], s["eq_high"], color=c, alpha=0.25, step="mid", label=f"{market}: competitive equilibrium")
            ax.plot(s["t"], [(a + b) / 2 for a, b in zip(s["eq_low"], s["eq_high"], strict=False)], color=c, lw=1, ls="--")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("price (base units / unit)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def supply_demand(values: Sequence[float], costs: Sequence[float], prices: Sequence[float], title: str) -> bytes:
    """The step's demand (values, high to low) and supply (costs, low to high) as unit steps,
    with the prices the step traded at."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    vs, cs = sorted(values, reverse=True), sorted(costs)
    ax.step(range(1, len(vs) + 1), vs, where="pre", color=COLORS[0], label="demand (values)")
    ax.step(range(1, len(cs) + 1), cs, where="pre", color=COLORS[1], label="supply (costs)")
    if prices:
        ax.scatter(range(1, len(prices) + 1), sorted(prices, reverse=True), s=6, color="k", alpha=0.5, label="trades (sorted)")
    ax.set_xlabel("units")
    ax.set_ylabel("price")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def lines(x: Sequence[float], ys: Mapping[str, Sequence[float]], title: str, ylabel: str, kind: str = "line", ylim: tuple[float, float] | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 3.0))
    n = max(1, len(ys))
    width = (x[1] - x[0]) / (n + 1) if kind == "bar" and len(x) > 1 else 0.8
    for i, (name, y) in enumerate(ys.items()):
        c = COLORS[i % len(COLORS)]
        if kind == "bar":
            ax.bar([v + (i - (n - 1) / 2) * width for v in x], y, width=width, color=c, label=name)
        else:
            ax.plot(x, y, color=c, lw=1.6, label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim:
        ax.set_ylim(*ylim)
    if ys:
        ax.legend(fontsize=8, loc="best")
    return _png(fig)


def lorenz(groups: Mapping[str, Sequence[float]], title: str) -> bytes:
    """Lorenz curves of earnings, one per group, with the line of equality."""
    from agora.economy.metrics import gini

    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls=":", label="equality")
    for i, (name, earnings) in enumerate(groups.items()):
        xs = sorted(max(0.0, float(e)) for e in earnings)
        total = sum(xs)
        if not xs or total <= 0:
            continue
        cum, acc = [0.0], 0.0
        for e in xs:
            acc += e
            cum.append(acc / total)
        ax.plot([j / len(xs) for j in range(len(xs) + 1)], cum, color=COLORS[i % len(COLORS)], lw=1.8, label=f"{name} (Gini {gini(xs):.2f})")
    ax.set_xlabel("share of agents (poorest first)")
    ax.set_ylabel("share of earnings")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def bars(labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str) -> bytes:
    """Grouped bars: one group per label, one bar per series (variants side by side)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        ax.bar([j + (i - (n - 1) / 2) * width for j in range(len(labels))], values, width=width, color=COLORS[i % len(COLORS)], label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=7, rotation=20 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)
