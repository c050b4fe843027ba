"""Sealed-bid auctions for one item: first price (pay your bid) and second price (Vickrey: pay
the highest losing bid, or the reserve if higher), with a reserve price.

Bidders submit once, unseen by the others; the mechanism names the winner and the price and never
moves money. Ties go to the lower bidder id, so the outcome never depends on arrival order.
In a second-price auction bidding one's true value is a dominant strategy (tested).
"""

from __future__ import annotations

from typing import Literal

from agora.economy.auction import Award, Bid
from agora.economy.errors import InvalidBid

Rule = Literal["first", "second"]


class SealedBidAuction:
    def __init__(self, rule: Rule = "second", reserve: int = 0) -> None:
        if rule not in ("first", "second"):
            raise InvalidBid(f"rule must be 'first' or 'second', got {rule!r}")
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise InvalidBid(f"reserve must be a non-negative int, got {reserve!r}")
        self.rule = rule
        self.reserve = reserve
        self._bids: dict[str, Bid] = {}

    def submit(self, bid: Bid) -> None:
        """Take one sealed bid per bidder; a bid under the reserve is refused, changing nothing."""
        if bid.price < self.reserve:
            raise InvalidBid(f"bid of {bid.price} from {bid.bidder} is under the reserve {self.reserve}")
        if bid.bidder in self._bids:
            raise InvalidBid(f"{bid.bidder} has already bid")
        self._bids[bid.bidder] = bid

    def clear(self) -> Award | None:
        """The winner and its price, or None when no bid met the reserve."""
        if not self._bids:
            return None
        ranked = sorted(self._bids.values(), key=lambda b: (-b.price, b.bidder))
        best = ranked[0]
        if self.rule == "first":
            price = best.price
        else:
            price = max(ranked[1].price if len(ranked) > 1 else 0, self.reserve)
        return Award(winner=best.bidder, price=price, bids=len(ranked))
