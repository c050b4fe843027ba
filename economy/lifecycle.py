"""The contract lifecycle: a state machine over one signed Contract, whose every money step goes
through the ledger.

    proposed ─sign×2─> signed ─fund─> funded ─start─> running ─deliver─> delivered ─verify─> verified ─settle─> settled
         funded | running ──timeout (after the deadline)──> refunded
         funded | running | delivered ──fail (the provider gives up)──> refunded
         funded | running | delivered | verified ──dispute (either party)──> disputed ─resolve (arbiter)─> settled | refunded

Each step checks, in order, that the state allows it, that the right party takes it, and that the
deadline allows it; an illegal step raises ``IllegalTransition`` (``DeadlinePassed`` for a late
one) and changes nothing. Steps that move money (fund, settle, timeout, fail, resolve) call the
ledger first and change state only once the ledger accepted, so a ledger refusal changes nothing
either. The ledger's own rules are the backstop: it would refuse a buyer's early refund or a
stranger's release even if this class let one through. Settlement pays the delivered cost (at most
the contract's maximum) split by the contract's shares and returns the rest to the buyer.

With a ``ReputationGraph``, the outcome is rated: a settled deal counts as verified work for every
payee, a refund after failure or a dispute lost counts against the provider.
"""

from __future__ import annotations

from enum import Enum
from pydantic import BaseModel, ConfigDict

from chain.ledger import Ledger, Signer
from chain.types import Receipt
from economy.contract import Contract
from economy.errors import DeadlinePassed, IllegalTransition
from economy.reputation import ReputationGraph


class DealState(str, Enum):
    PROPOSED = "proposed"
    SIGNED = "signed"
    FUNDED = "funded"
    RUNNING = "running"
    DELIVERED = "delivered"
    VERIFIED = "verified"
    SETTLED = "settled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


S = DealState
FINAL = frozenset({S.SETTLED, S.REFUNDED})


class Step(BaseModel):
    """One entry of a deal's history."""

    model_config = ConfigDict(frozen=True)

    state: DealState
    by: str
    at: int
    tx: str | None = None
    note: str = ""


class Deal:
    def __init__(self, contract: Contract, ledger: Ledger, reputation: ReputationGraph | None = None) -> None:
        self.contract, self.ledger, self.reputation = contract, ledger, reputation
        self.state = S.PROPOSED
        self.signatures: dict[str, str] = {}
        self.result_hash: str | None = None
        self.cost: int | None = None
        self.history: list[Step] = [Step(state=S.PROPOSED, by=contract.buyer, at=ledger.now())]

    @property
    def buyer(self) -> str:
        return self.contract.buyer

    @property
    def provider(self) -> str:
        return self.contract.provider

    # -- the steps -----------------------------------------------------------------------
    def sign(self, party: str, signature: str) -> None:
        """Add one party's EIP-712 signature over the contract; both make it signed."""
        self._expect({S.PROPOSED}, "sign")
        self._party(party, {self.buyer, self.provider}, "sign")
        self.contract.verify_signature(signature, party)
        self.signatures[party] = signature
        if set(self.signatures) == {self.buyer, self.provider}:
            self._move(S.SIGNED, party)

    def fund(self, buyer: Signer) -> None:
        """The buyer locks the contract's maximum in escrow."""
        self._expect({S.SIGNED}, "fund")
        self._party(buyer.address, {self.buyer}, "fund")
        self._before_deadline("fund")
        receipt = self.ledger.open_escrow(buyer, self.contract.escrow_terms())
        self._move(S.FUNDED, buyer.address, receipt)

    def start(self, provider: str) -> None:
        self._expect({S.FUNDED}, "start")
        self._party(provider, {self.provider}, "start")
        self._before_deadline("start")
        self._move(S.RUNNING, provider)

    def deliver(self, provider: str, result_hash: str, cost: int) -> None:
        """The provider hands over the result (its hash) and the metered cost."""
        self._expect({S.RUNNING}, "deliver")
        self._party(provider, {self.provider}, "deliver")
        self._before_deadline("deliver")
        if type(cost) is not int or not 0 <= cost <= self.contract.max_amount:
            raise IllegalTransition(f"deliver: cost must be an int in [0, {self.contract.max_amount}], got {cost!r}")
        if type(result_hash) is not str or not result_hash:
            raise IllegalTransition(f"deliver: a result hash is required, got {result_hash!r}")
        self.result_hash, self.cost = result_hash, cost
        self._move(S.DELIVERED, provider, note=f"cost {cost}")

    def verify(self, buyer: str, result_hash: str) -> None:
        """The buyer (or its verifier) confirms the result it checked is the one delivered."""
        self._expect({S.DELIVERED}, "verify")
        self._party(buyer, {self.buyer}, "verify")
        if result_hash != self.result_hash:
            raise IllegalTransition(f"verify: the checked result {result_hash} is not the delivered {self.result_hash}; dispute instead")
        self._move(S.VERIFIED, buyer)

    def settle(self, buyer: Signer) -> None:
        """Pay the delivered cost out of escrow; the rest returns to the buyer."""
        self._expect({S.VERIFIED}, "settle")
        self._party(buyer.address, {self.buyer}, "settle")
        assert self.cost is not None
        receipt = self.ledger.release(buyer, self.contract.deal_id, self.cost)
        self._move(S.SETTLED, buyer.address, receipt, note=f"paid {self.cost}")
        self._rate(verified=True, amount=self.cost)

    def timeout(self, buyer: Signer) -> None:
        """Nothing was delivered by the deadline: the buyer takes the escrow back."""
        self._expect({S.FUNDED, S.RUNNING}, "timeout")
        self._party(buyer.address, {self.buyer}, "timeout")
        if self.ledger.now() < self.contract.deadline:
            raise IllegalTransition(f"timeout: the deadline {self.contract.deadline} has not passed (now {self.ledger.now()})")
        receipt = self.ledger.refund(buyer, self.contract.deal_id)
        self._move(S.REFUNDED, buyer.address, receipt, note="timeout")
        self._rate(verified=False, amount=self.contract.max_amount)

    def fail(self, provider: Signer) -> None:
        """The provider reports it cannot do the work: the escrow returns to the buyer at once."""
        self._expect({S.FUNDED, S.RUNNING, S.DELIVERED}, "fail")
        self._party(provider.address, {self.provider}, "fail")
        receipt = self.ledger.refund(provider, self.contract.deal_id)
        self._move(S.REFUNDED, provider.address, receipt, note="failure")
        self._rate(verified=False, amount=self.contract.max_amount)

    def dispute(self, party: Signer, reason: str = "") -> None:
        """Either party freezes the escrow for the arbiter."""
        self._expect({S.FUNDED, S.RUNNING, S.DELIVERED, S.VERIFIED}, "dispute")
        self._party(party.address, {self.buyer, self.provider}, "dispute")
        receipt = self.ledger.dispute(party, self.contract.deal_id)
        self._move(S.DISPUTED, party.address, receipt, note=reason)

    def resolve(self, arbiter: Signer, amount: int) -> None:
        """The arbiter pays ``amount`` to the payees (the rest back to the buyer); 0 refunds."""
        self._expect({S.DISPUTED}, "resolve")
        receipt = self.ledger.resolve(arbiter, self.contract.deal_id, amount)
        final = S.SETTLED if amount > 0 else S.REFUNDED
        self._move(final, arbiter.address, receipt, note=f"arbiter paid {amount}")
        self._rate(verified=amount > 0, amount=amount if amount > 0 else self.contract.max_amount)

    # -- checks and bookkeeping ----------------------------------------------------------
    def _expect(self, allowed: set[DealState], step: str) -> None:
        if self.state not in allowed:
            names = " or ".join(sorted(s.value for s in allowed))
            raise IllegalTransition(f"{step}: the deal is {self.state.value}; {step} needs it {names}")

    def _party(self, who: str, allowed: set[str], step: str) -> None:
        if who.lower() not in {a.lower() for a in allowed}:
            raise IllegalTransition(f"{step}: {who} is not allowed to {step} this deal")

    def _before_deadline(self, step: str) -> None:
        now = self.ledger.now()
        if now >= self.contract.deadline:
            raise DeadlinePassed(f"{step}: the deadline {self.contract.deadline} has passed (now {now})")

    def _move(self, state: DealState, by: str, receipt: Receipt | None = None, note: str = "") -> None:
        self.state = state
        tx = receipt.tx_hash if receipt is not None else None
        self.history.append(Step(state=state, by=by, at=self.ledger.now(), tx=tx, note=note))

    def _rate(self, verified: bool, amount: int) -> None:
        if self.reputation is None:
            return
        if verified:
            for payee in {p.address for p in self.contract.payees}:
                self.reputation.record(self.buyer, payee, True, amount)
        else:
            self.reputation.record(self.buyer, self.provider, False, amount)
