"""Bills from metering: what each party of a job is owed for what the job actually used.

A deal's escrow locks the most the buyer will pay, one line per payee (the provider's compute,
the model owner's royalty, the data owner's fee). When the job is delivered, its ``Metering``
(items, tokens read and generated, seconds, GPU-seconds) prices each line by that payee's
:class:`Tariff`; no line ever exceeds its cap in the contract, and the ledger pays each line
exactly (``release_items``), returning the rest to the buyer. Everything is integer base units:
rates that multiply a measured float (seconds) are rounded up once per line, so a payee is never
paid for less than was used, and the same metering always gives the same bill.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agora.tasks.jobs import Metering


class Tariff(BaseModel):
    """How one payee charges. Each rate is in base units per unit of use; ``cap`` is the line's
    amount in the contract, the most it may come to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    payee: str
    role: Literal["provider", "model_owner", "data_owner"]
    cap: int = Field(ge=0)
    per_call: int = Field(default=0, ge=0)
    per_item: int = Field(default=0, ge=0)
    per_1k_tokens: int = Field(default=0, ge=0, description="tokens read plus tokens generated")
    per_second: int = Field(default=0, ge=0, description="wall-clock seconds of the run")
    per_gpu_second: int = Field(default=0, ge=0)

    def charge(self, m: Metering) -> tuple[int, str]:
        """(amount before the cap, how it was reached)."""
        parts: list[tuple[Fraction, str]] = []
        if self.per_call:
            parts.append((Fraction(self.per_call), "1 call"))
        if self.per_item:
            parts.append((Fraction(self.per_item * m.items), f"{m.items} items"))
        if self.per_1k_tokens:
            tokens = m.tokens + m.new_tokens
            parts.append((Fraction(self.per_1k_tokens * tokens, 1000), f"{tokens} tokens"))
        if self.per_second:
            parts.append((Fraction(m.seconds) * self.per_second, f"{m.seconds:.3f} s"))
        if self.per_gpu_second:
            parts.append((Fraction(m.gpu_seconds) * self.per_gpu_second, f"{m.gpu_seconds:.3f} GPU-s"))
        return math.ceil(sum((p for p, _ in parts), Fraction(0))), " + ".join(why for _, why in parts) or "nothing metered"


class BillLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    payee: str
    role: str
    amount: int
    cap: int
    basis: str


class Bill(BaseModel):
    model_config = ConfigDict(frozen=True)

    lines: list[BillLine]

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    def amounts(self) -> list[int]:
        return [line.amount for line in self.lines]


def bill(metering: Metering, tariffs: list[Tariff]) -> Bill:
    """Price each tariff's line from ``metering``, each at most its cap."""
    lines = []
    for tariff in tariffs:
        amount, basis = tariff.charge(metering)
        capped = min(amount, tariff.cap)
        lines.append(BillLine(payee=tariff.payee, role=tariff.role, amount=capped, cap=tariff.cap, basis=basis + (" (capped)" if capped < amount else "")))
    return Bill(lines=lines)
