"""The FIPA Contract Net: a manager calls for proposals, participants propose or refuse, the
manager accepts one and rejects the rest, the winner reports the work done or failed.

    call for proposals ──> propose(price) | refuse          (each participant, before the deadline)
    manager: counter(participant, price) ──> accept_counter | reject_counter   (optional rounds)
    manager: award(now) ──> accept-proposal to one, reject-proposal to the others
    winner: done() | failed()

End states: ``successful`` (the winner reported the work done), ``failed`` (it reported failure),
``declined`` (every participant refused, or no proposal was acceptable), ``expired`` (the deadline
passed with nothing to award). Every message is validated against the conversation's state: one
that the protocol does not allow now raises ``ProtocolViolation`` and changes nothing. The
choice among proposals weighs price against trust (``economy.reputation.choose``), so a cheap
provider nobody trusts does not win by default. Like every mechanism, it never moves money.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from agora.economy.errors import InvalidBid, ProtocolViolation
from agora.economy.reputation import choose


class NetState(StrEnum):
    OPEN = "open"
    AWARDED = "awarded"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DECLINED = "declined"
    EXPIRED = "expired"


FINAL = {NetState.SUCCESSFUL, NetState.FAILED, NetState.DECLINED, NetState.EXPIRED}


class Proposal(BaseModel):
    model_config = ConfigDict(frozen=True)

    participant: str
    price: int
    at: float


class ContractNet:
    """One conversation: one task, one manager, named participants, one deadline for proposals.

    ``max_price`` is the manager's limit (proposals above it are kept but never accepted, so a
    counter-proposal can bring them down); ``risk_weight`` is how much price a provider with no
    trust must undercut by to win (see ``economy.reputation.choose``)."""

    def __init__(
        self,
        task: str,
        manager: str,
        participants: Iterable[str],
        deadline: float,
        max_price: int,
        risk_weight: float = 1.0,
    ) -> None:
        self.task, self.manager, self.deadline = task, manager, deadline
        self.participants = frozenset(participants)
        if not self.participants:
            raise InvalidBid("a call for proposals needs at least one participant")
        if type(max_price) is not int or max_price <= 0:
            raise InvalidBid(f"max_price must be a positive int, got {max_price!r}")
        self.max_price, self.risk_weight = max_price, risk_weight
        self.state = NetState.OPEN
        self.proposals: dict[str, Proposal] = {}
        self.refused: set[str] = set()
        self.counters: dict[str, int] = {}  # outstanding counter-proposals
        self.winner: Proposal | None = None
        self.rejected: list[str] = []
        self.log: list[tuple[float, str, str]] = []  # (time, who, performative)

    # -- participants --------------------------------------------------------------------
    def propose(self, participant: str, price: int, now: float) -> None:
        self._open(participant, now)
        if type(price) is not int or price <= 0:
            raise InvalidBid(f"{participant}: a proposal's price must be a positive int, got {price!r}")
        if participant in self.refused:
            raise ProtocolViolation(f"{participant} refused and cannot propose afterwards")
        self.proposals[participant] = Proposal(participant=participant, price=price, at=now)
        self.counters.pop(participant, None)
        self.log.append((now, participant, "propose"))

    def refuse(self, participant: str, now: float) -> None:
        self._open(participant, now)
        if participant in self.proposals:
            raise ProtocolViolation(f"{participant} has proposed; withdrawing is not a refusal")
        self.refused.add(participant)
        self.log.append((now, participant, "refuse"))

    def accept_counter(self, participant: str, now: float) -> None:
        self._open(participant, now)
        if participant not in self.counters:
            raise ProtocolViolation(f"no counter-proposal is waiting for {participant}")
        price = self.counters.pop(participant)
        self.proposals[participant] = Proposal(participant=participant, price=price, at=now)
        self.log.append((now, participant, "accept-counter"))

    def reject_counter(self, participant: str, now: float) -> None:
        self._open(participant, now)
        if self.counters.pop(participant, None) is None:
            raise ProtocolViolation(f"no counter-proposal is waiting for {participant}")
        self.log.append((now, participant, "reject-counter"))

    # -- the manager ---------------------------------------------------------------------
    def counter(self, participant: str, price: int, now: float) -> None:
        """Offer ``participant`` a lower price than it proposed."""
        self._open(participant, now)
        proposal = self.proposals.get(participant)
        if proposal is None:
            raise ProtocolViolation(f"{participant} has not proposed; there is nothing to counter")
        if type(price) is not int or not 0 < price < proposal.price:
            raise InvalidBid(f"a counter must be a positive int under the proposal's {proposal.price}, got {price!r}")
        self.counters[participant] = price
        self.log.append((now, self.manager, "counter"))

    def award(self, now: float, trust: Mapping[str, float] | None = None) -> Proposal | None:
        """Close the call: accept the best acceptable proposal, reject the rest. Before the
        deadline this is allowed only once every participant has answered."""
        if self.state is not NetState.OPEN:
            raise ProtocolViolation(f"the call is {self.state.value}; it cannot be awarded")
        answered = set(self.proposals) | self.refused
        if now < self.deadline and answered != self.participants:
            raise ProtocolViolation(f"{len(self.participants - answered)} participant(s) have not answered before the deadline")
        acceptable = [p for p in self.proposals.values() if p.price <= self.max_price]
        if not acceptable:
            self.state = NetState.EXPIRED if not self.proposals and not self.refused else NetState.DECLINED
            self.rejected = sorted(self.proposals)
            self.log.append((now, self.manager, self.state.value))
            return None
        best = choose([(p.participant, p.price) for p in acceptable], trust or {}, self.risk_weight)
        self.winner = self.proposals[best]
        self.rejected = sorted(p for p in self.proposals if p != best)
        self.counters.clear()
        self.state = NetState.AWARDED
        self.log.append((now, self.manager, "accept-proposal"))
        return self.winner

    def expire(self, now: float) -> bool:
        """Close a call nobody answered in time; True when it expired."""
        if self.state is NetState.OPEN and now >= self.deadline and not self.proposals:
            self.state = NetState.EXPIRED
            self.log.append((now, self.manager, "expired"))
            return True
        return False

    # -- the winner ----------------------------------------------------------------------
    def done(self, participant: str, now: float) -> None:
        self._winner(participant)
        self.state = NetState.SUCCESSFUL
        self.log.append((now, participant, "inform-done"))

    def failed(self, participant: str, now: float) -> None:
        self._winner(participant)
        self.state = NetState.FAILED
        self.log.append((now, participant, "failure"))

    # -- checks --------------------------------------------------------------------------
    def _open(self, participant: str, now: float) -> None:
        if self.state is not NetState.OPEN:
            raise ProtocolViolation(f"the call is {self.state.value}; {participant} can no longer take part")
        if participant not in self.participants:
            raise ProtocolViolation(f"{participant} was not called for proposals")
        if now >= self.deadline:
            raise ProtocolViolation(f"the deadline {self.deadline} has passed (now {now})")

    def _winner(self, participant: str) -> None:
        if self.state is not NetState.AWARDED or self.winner is None or self.winner.participant != participant:
            raise ProtocolViolation(f"{participant} was not awarded this task (the call is {self.state.value})")
