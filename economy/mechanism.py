"""The two mechanism interfaces: what every market in Agora looks like from outside.

Single-award mechanisms (the reverse and sealed-bid auctions) take bids and name one winner.
Order-driven markets (the continuous double auction and the call market) take orders and emit
fills. Neither kind ever moves money: the contract layer settles awards and fills through the
ledger. Each input is validated as it arrives: a bad one raises an EconomyError and changes
nothing. One conformance suite per interface (tests/economy/test_mechanisms.py) runs against
every implementation, and a user's own mechanism passes it to plug in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from agora.economy.auction import Award, Bid
from agora.economy.orders import Fill, Order


@runtime_checkable
class Mechanism(Protocol):
    def submit(self, bid: Bid) -> None:
        """Accept one bid, or raise an EconomyError and leave the mechanism unchanged."""

    def clear(self) -> Award | None:
        """The outcome: who won at what price, or None when nothing acceptable was bid."""


@runtime_checkable
class Market(Protocol):
    def submit(self, order: Order) -> Sequence[Fill]:
        """Accept one order and return what traded because of it (a call market: nothing yet)."""

    def cancel(self, order_id: int) -> bool:
        """Withdraw a waiting order; False when it is not waiting (filled, expired, unknown)."""

    def clear(self, now: float | None = None) -> Sequence[Fill]:
        """Move the market's clock to ``now``, withdraw expired orders, and return what the
        clearing traded (a continuous market trades on arrival, so nothing)."""
