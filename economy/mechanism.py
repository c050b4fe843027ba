"""The mechanism interface: orders or bids in, an award or matches out, never money.

Every market mechanism is a small class with ``submit`` (validate and accept one bid, or raise
a typed error and change nothing) and ``clear`` (decide). The contract layer settles what a
mechanism decides; one conformance suite (tests/economy/test_mechanisms.py) runs against each.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from economy.auction import Award, Bid


@runtime_checkable
class Mechanism(Protocol):
    def submit(self, bid: Bid) -> None:
        """Accept one bid, or raise an EconomyError and leave the mechanism unchanged."""

    def clear(self) -> Award | None:
        """The outcome: who won at what price, or None when nothing acceptable was bid."""
