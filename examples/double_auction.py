"""A GPU-hour market as a continuous double auction: which trading strategies find the price?

Six buyers and six sellers of GPU-hours, three units each, private values and costs. Each row
runs the same schedule with another strategy for everyone, for five trading periods, and reports
what the literature measures: allocative efficiency (surplus made over surplus possible) and
Smith's alpha (how far prices sit from the competitive equilibrium, in percent).
Run:  python examples/double_auction.py
"""

from rich.console import Console
from rich.table import Table

from agora.economy import ZIC, ZIP, ZIU, ContinuousDoubleAuction, Order, run_session

buyers = {f"lab{i}": [190 - 10 * i, 160 - 10 * i, 130 - 10 * i] for i in range(6)}  # value per GPU-hour
sellers = {f"dc{i}": [40 + 10 * i, 70 + 10 * i, 100 + 10 * i] for i in range(6)}  # cost per GPU-hour

table = Table(title="5 periods x 600 shouts, mean of 10 seeds")
for col in ("strategy", "efficiency", "alpha, period 1", "alpha, period 5"):
    table.add_column(col, justify="right")
strategies = {
    "ZI-U (ignores its limit)": lambda name, side, rng: ZIU(),
    "ZI-C (Gode & Sunder)": lambda name, side, rng: ZIC(),
    "ZIP (Cliff)": lambda name, side, rng: ZIP(side, rng),
}
for label, make in strategies.items():
    runs = [run_session(buyers, sellers, make, periods=5, steps=600, seed=s) for s in range(10)]
    eff = sum(r.efficiency() for r in runs) / len(runs)
    first = sum(r.alpha(0) for r in runs) / len(runs)
    last = sum(r.alpha(4) for r in runs) / len(runs)
    table.add_row(label, f"{eff:.3f}", f"{first:.1f}", f"{last:.1f}")
Console().print(table)

# The book itself: orders in, fills out, nothing else.
book = ContinuousDoubleAuction()
book.submit(Order(1, "dc0", "sell", price=120, qty=2))
fills = book.submit(Order(2, "lab0", "buy", price=130, qty=3))  # takes 2 at 120, rests 1 at 130
print("fills:", fills, "| best bid", book.best_bid(), "| best ask", book.best_ask())
