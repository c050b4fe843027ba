"""The market protocol: the messages between traders, cohorts, exchanges and the run's director.

They live here, not in the role files, so each role imports the protocol and none imports
another role: the exchange, the trader and the cohort each speak it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agora.agents.agent import Agent, Context
from agora.agents.deal_protocol import refuse
from agora.agents.errors import NotAParty
from agora.agents.identity import keccak256
from agora.agents.messages import Message

__all__ = ["CancelOrders", "CohortFills", "CohortOrders", "PlaceOrder", "RoundReport", "ShockEnds", "ShockStarts", "cohort_digest", "from_director"]


class PlaceOrder(Message):
    """Trader to exchange: one order, ``cid`` the trader's own id for it. In a posted-price
    market a sell order is the seller's posting (price, and capacity as ``qty``) and may name
    the buyers' models it admits (``allowed``, a data owner's policy); a buy order names the
    model it will run (``model``)."""

    cid: int = Field(ge=0)
    side: Literal["buy", "sell"]
    price: int | None = Field(default=None, gt=0)
    qty: int = Field(default=1, gt=0)
    model: str = ""
    allowed: list[str] | None = None


class CancelOrders(Message):
    """Trader to exchange: withdraw these orders (a posting too) if they still wait; what
    already traded stays traded. Reported closed with the round."""

    cids: list[int]


class RoundReport(Message):
    """Exchange to trader at the end of a round: its settled fills (cid, counterparty, price,
    qty), the cids whose fills could not be settled, the cids that are closed now (filled,
    expired or refused), and the round's last trade price, for learners."""

    round: int
    fills: list[tuple[int, str, int, int]] = []
    failed: list[int] = []
    closed: list[int] = []
    last_price: int | None = None


class CohortOrders(Message):
    """Cohort to exchange: one limit order per listed member (its index in the cohort)."""

    side: Literal["buy", "sell"]
    members: list[int]
    prices: list[int]
    qtys: list[int]


class CohortFills(Message):
    """Exchange to cohort at the end of a round: each member's settled fills (index, price,
    qty), and the members whose fills could not be settled."""

    round: int
    members: list[int] = []
    prices: list[int] = []
    qtys: list[int] = []
    failed: list[int] = []


class ShockStarts(Message):
    """Director to an agent: a shock begins (to a cohort: for the ``members`` listed)."""

    kind: Literal["outage", "demand_spike", "price_shock"]
    factor: float = Field(default=1.0, gt=0)
    shock: int = 0
    members: list[str] = []


class ShockEnds(Message):
    shock: int = 0
    members: list[str] = []


def from_director(ctx: Context, sender: str, agent: Agent | None = None) -> bool:
    """Shocks come from the run's director (registered with that role), from nobody else; with
    ``agent``, another sender's shock is refused and counted on it."""
    if ctx.registry.role_of(sender) == "director":
        return True
    if agent is not None:
        refuse(agent, ctx, sender, NotAParty(f"{sender} is not the run's director"))
    return False


def cohort_digest(cohort: str, member: str) -> bytes:
    """What a member signs to let ``cohort`` place orders for it (an exchange checks it once
    before it settles a cohort's order from the member's account)."""
    return keccak256(f"agora-cohort\n{cohort.lower()}\n{member.lower()}".encode())
