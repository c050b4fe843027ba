"""The contract lifecycle: a state machine over one signed Contract, whose every money step goes
through the ledger.

    proposed ─sign×2─> signed ─fund─> funded ─start─> running ─deliver─> delivered ─verify─> verified ─settle─> settled
                                      funded ──────────deliver (start is optional)──> delivered
         funded | running | delivered ──timeout (after the deadline)──> refunded
         funded | running | delivered ──fail (the provider gives up)──> refunded
         funded | running | delivered | verified ──dispute (either party)──> disputed ─resolve (arbiter)─> settled | refunded

Each party keeps its own ``Deal`` (the buyer and the provider agents each hold one): a step a party
takes itself moves money through its own wallet; a step another party took on the ledger (the
buyer funding, the provider refunding, the arbiter resolving) reaches the other's view through
``sync()``, which reads the escrow: the ledger is the truth, never a message.

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

from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from agora.chain.errors import EscrowNotFound
from agora.chain.types import EscrowState, EscrowTerms, Receipt
from agora.economy.contract import Contract, deal_domain
from agora.economy.errors import DeadlinePassed, IllegalTransition, InvalidContract
from agora.economy.reputation import ReputationGraph


class DealState(StrEnum):
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
_ON_LEDGER = {"released": S.SETTLED, "refunded": S.REFUNDED, "disputed": S.DISPUTED}


class EscrowWallet(Protocol):
    """What a party acts through: its address and the escrow operations, signed with its key
    (``agents.Wallet`` is one)."""

    @property
    def address(self) -> str: ...
    def open_escrow(self, terms: EscrowTerms) -> Receipt: ...
    def release(self, escrow_id: str, amount: int) -> Receipt: ...
    def release_items(self, escrow_id: str, amounts: list[int]) -> Receipt: ...
    def refund(self, escrow_id: str) -> Receipt: ...
    def dispute(self, escrow_id: str) -> Receipt: ...
    def resolve(self, escrow_id: str, amount: int) -> Receipt: ...


class LedgerView(Protocol):
    """What a deal reads: the time, its escrow and the EIP-712 domains the contract is signed
    under (a Ledger or a LedgerReader)."""

    def now(self) -> int: ...
    def domains(self) -> dict[str, Any]: ...
    def escrow(self, escrow_id: str) -> EscrowState: ...


class Step(BaseModel):
    """One entry of a deal's history."""

    model_config = ConfigDict(frozen=True)

    state: DealState
    by: str
    at: int
    tx: str | None = None
    note: str = ""


class Deal:
    def __init__(self, contract: Contract, ledger: LedgerView, reputation: ReputationGraph | None = None) -> None:
        self.contract, self.ledger, self.reputation = contract, ledger, reputation
        self.state = S.PROPOSED
        self.signatures: dict[str, str] = {}
        self.result_hash: str | None = None
        self.cost: int | None = None
        self.receipts: list[Receipt] = []  # of the steps this party paid for
        self.history: list[Step] = [Step(state=S.PROPOSED, by=contract.buyer, at=ledger.now())]

    @property
    def buyer(self) -> str:
        return self.contract.buyer

    @property
    def provider(self) -> str:
        return self.contract.provider

    # -- the steps -----------------------------------------------------------------------
    def sign(self, party: str, signature: str) -> None:
        """Add one party's EIP-712 signature over the contract; both make it signed. A contract
        whose domain names another chain or escrow contract than this deal's ledger is refused:
        its signatures would hold wherever that domain is, not here."""
        self._expect({S.PROPOSED}, "sign")
        self._party(party, {self.buyer, self.provider}, "sign")
        here = deal_domain(self.ledger)
        if (self.contract.chain_id, self.contract.escrow_contract) != (here["chain_id"], here["escrow_contract"]):
            raise InvalidContract(
                f"sign: the contract is for chain {self.contract.chain_id} / {self.contract.escrow_contract}, this ledger is {here['chain_id']} / {here['escrow_contract']}"
            )
        self.contract.verify_signature(signature, party)
        self.signatures[party] = signature
        if set(self.signatures) == {self.buyer, self.provider}:
            self._move(S.SIGNED, party)

    def fund(self, buyer: EscrowWallet) -> None:
        """The buyer locks the contract's maximum in escrow."""
        self._expect({S.SIGNED}, "fund")
        self._party(buyer.address, {self.buyer}, "fund")
        self._before_deadline("fund")
        receipt = buyer.open_escrow(self.contract.escrow_terms())
        self._move(S.FUNDED, buyer.address, receipt)

    def start(self, provider: str) -> None:
        self._expect({S.FUNDED}, "start")
        self._party(provider, {self.provider}, "start")
        self._before_deadline("start")
        self._move(S.RUNNING, provider)

    def deliver(self, provider: str, result_hash: str, cost: int) -> None:
        """The provider hands over the result (its hash) and the metered cost."""
        self._expect({S.FUNDED, S.RUNNING}, "deliver")
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

    def settle(self, buyer: EscrowWallet, amounts: list[int] | None = None) -> None:
        """Pay the delivered cost out of escrow; the rest returns to the buyer. With ``amounts``
        (a metered bill, one amount per payee, each within its line) each payee gets its own
        amount instead of a share of one total."""
        self._expect({S.VERIFIED}, "settle")
        self._party(buyer.address, {self.buyer}, "settle")
        assert self.cost is not None
        if amounts is not None:
            if len(amounts) != len(self.contract.payees) or sum(amounts) > self.cost:
                raise IllegalTransition(f"settle: a bill of {amounts} does not fit {len(self.contract.payees)} payees and the cost {self.cost}")
            receipt = buyer.release_items(self.contract.deal_id, amounts)
            self.cost = sum(amounts)
            self._move(S.SETTLED, buyer.address, receipt, note=f"paid {self.cost} itemized")
            self._rate(verified=True, amount=self.cost)
            return
        receipt = buyer.release(self.contract.deal_id, self.cost)
        self._move(S.SETTLED, buyer.address, receipt, note=f"paid {self.cost}")
        self._rate(verified=True, amount=self.cost)

    def timeout(self, buyer: EscrowWallet) -> None:
        """The deadline passed with nothing delivered, or with a delivery the buyer could not
        verify (the provider had until the deadline to dispute): the buyer takes the escrow back."""
        self._expect({S.FUNDED, S.RUNNING, S.DELIVERED}, "timeout")
        self._party(buyer.address, {self.buyer}, "timeout")
        if self.ledger.now() < self.contract.deadline:
            raise IllegalTransition(f"timeout: the deadline {self.contract.deadline} has not passed (now {self.ledger.now()})")
        receipt = buyer.refund(self.contract.deal_id)
        self._move(S.REFUNDED, buyer.address, receipt, note="timeout")
        self._rate(verified=False, amount=self.contract.max_amount)

    def fail(self, provider: EscrowWallet) -> None:
        """The provider reports it cannot do the work: the escrow returns to the buyer at once."""
        self._expect({S.FUNDED, S.RUNNING, S.DELIVERED}, "fail")
        self._party(provider.address, {self.provider}, "fail")
        receipt = provider.refund(self.contract.deal_id)
        self._move(S.REFUNDED, provider.address, receipt, note="failure")
        self._rate(verified=False, amount=self.contract.max_amount)

    def dispute(self, party: EscrowWallet, reason: str = "") -> None:
        """Either party freezes the escrow for the arbiter."""
        self._expect({S.FUNDED, S.RUNNING, S.DELIVERED, S.VERIFIED}, "dispute")
        self._party(party.address, {self.buyer, self.provider}, "dispute")
        receipt = party.dispute(self.contract.deal_id)
        self._move(S.DISPUTED, party.address, receipt, note=reason)

    def resolve(self, arbiter: EscrowWallet, amount: int) -> None:
        """The arbiter pays ``amount`` to the payees (the rest back to the buyer); 0 refunds."""
        self._expect({S.DISPUTED}, "resolve")
        receipt = arbiter.resolve(self.contract.deal_id, amount)
        final = S.SETTLED if amount > 0 else S.REFUNDED
        self._move(final, arbiter.address, receipt, note=f"arbiter paid {amount}")
        self._rate(verified=amount > 0, amount=amount if amount > 0 else self.contract.max_amount)

    def sync(self) -> DealState:
        """Catch up with steps other parties took on the ledger: the buyer's funding (checked
        against the contract's terms), a refund, a release, a dispute or its resolution."""
        if self.state is S.PROPOSED or self.state in FINAL:
            return self.state
        try:
            escrow = self.ledger.escrow(self.contract.deal_id)
        except EscrowNotFound:
            return self.state
        if self.state is S.SIGNED:
            terms = self.contract.escrow_terms()
            agreed = (terms.amount, terms.payees, terms.shares_bps, terms.deadline)
            on_ledger = (escrow.amount, escrow.payees, escrow.shares_bps, escrow.deadline)
            if escrow.buyer.lower() != self.buyer.lower() or on_ledger != agreed:
                raise IllegalTransition(f"sync: the escrow {self.contract.deal_id} on the ledger does not match the contract")
            self._move(S.FUNDED, escrow.buyer, note="seen on the ledger")
        seen = _ON_LEDGER.get(escrow.status)
        if seen is not None and seen is not self.state:
            self._move(seen, "ledger", note=f"escrow {escrow.status} on the ledger")
        return self.state

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
        tx = None
        if receipt is not None:
            self.receipts.append(receipt)
            tx = receipt.tx_hash
        self.history.append(Step(state=state, by=by, at=self.ledger.now(), tx=tx, note=note))

    def _rate(self, verified: bool, amount: int) -> None:
        if self.reputation is None:
            return
        if verified:
            for payee in {p.address for p in self.contract.payees}:
                self.reputation.record(self.buyer, payee, True, amount)
        else:
            self.reputation.record(self.buyer, self.provider, False, amount)
