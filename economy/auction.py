"""The reverse auction: a buyer posts an order, providers bid, the best acceptable bid wins.

As Akash does for compute leases. The mechanism only ranks bids and names a winner; it never
moves money (the contract and ledger do that). Winners pay as bid.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from agora.economy.errors import InvalidBid, OverBudget
from agora.economy.reputation import risk_adjusted


class Bid(BaseModel):
    """A provider's offer to do the job for ``price`` base units."""

    model_config = ConfigDict(frozen=True)

    bidder: str = Field(min_length=1)
    price: StrictInt = Field(ge=0)
    reputation: float = Field(default=0.0, ge=0.0, le=1.0)
    free_gpu_memory_mb: StrictInt | None = Field(default=None, ge=0, description="GPU memory the bidder has free now (compute bids)")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidBid(f"invalid bid: {exc}") from None


class Award(BaseModel):
    """The mechanism's output: who won, at what price, out of how many valid bids."""

    model_config = ConfigDict(frozen=True)

    winner: str
    price: int
    bids: int


class ReverseAuction:
    """The lowest risk-adjusted price wins: price * (1 + risk_weight * (1 - reputation)), so with
    the default ``risk_weight`` of 0 the lowest price wins outright and a buyer who prices risk
    pays more for a provider it can trust. For a job needing ``gpu_memory_mb``, a bidder without
    that much free is refused and the cost grows with the share of its free memory the job takes
    (``memory_weight``). Ties go to the higher reputation, then to the lower
    bidder id, so the outcome never depends on arrival order. The winner is paid its bid."""

    def __init__(self, max_price: int, risk_weight: float = 0.0, gpu_memory_mb: int = 0, memory_weight: float = 0.25) -> None:
        if isinstance(max_price, bool) or not isinstance(max_price, int) or max_price < 0:
            raise InvalidBid(f"max_price must be a non-negative int, got {max_price!r}")
        if not isinstance(risk_weight, (int, float)) or not risk_weight >= 0:
            raise InvalidBid(f"risk_weight must be a number >= 0, got {risk_weight!r}")
        self.max_price = max_price
        self.risk_weight = float(risk_weight)
        self.gpu_memory_mb, self.memory_weight = int(gpu_memory_mb), float(memory_weight)
        self._bids: dict[str, Bid] = {}

    def submit(self, bid: Bid) -> None:
        """Accept a bid; an over-budget or repeated bid is refused and changes nothing."""
        if bid.price > self.max_price:
            raise OverBudget(f"bid of {bid.price} from {bid.bidder} exceeds the maximum {self.max_price}")
        if bid.bidder in self._bids:
            raise InvalidBid(f"{bid.bidder} has already bid")
        if self.gpu_memory_mb and bid.free_gpu_memory_mb is not None and bid.free_gpu_memory_mb < self.gpu_memory_mb:
            raise InvalidBid(f"{bid.bidder} has {bid.free_gpu_memory_mb} MB of GPU memory free; the job needs {self.gpu_memory_mb}")
        self._bids[bid.bidder] = bid

    @property
    def bids(self) -> list[Bid]:
        return list(self._bids.values())

    def ranked(self) -> list[Bid]:
        """Every acceptable bid, best first by what the buyer compares (``cost``; then the
        better reputation; then the lower id, so arrival order never decides): the award goes to
        the first, a job run on k providers to the first k."""
        return sorted(self._bids.values(), key=lambda b: (self.cost(b), -b.reputation, b.bidder))

    def clear(self) -> Award | None:
        """The award, or None when nobody made an acceptable bid."""
        if not self._bids:
            return None
        best = self.ranked()[0]
        return Award(winner=best.bidder, price=best.price, bids=len(self._bids))

    def cost(self, bid: Bid) -> float:
        """What the buyer compares: the risk-adjusted price, raised when the job would take much
        of the bidder's free GPU memory (a nearly full card is the one that runs out when its
        other tenants grow)."""
        adjusted = risk_adjusted(bid.price, bid.reputation, self.risk_weight)
        if self.gpu_memory_mb and bid.free_gpu_memory_mb:
            adjusted *= 1.0 + self.memory_weight * self.gpu_memory_mb / bid.free_gpu_memory_mb
        return adjusted
