"""An agent's wallet: its identity bound to a ledger.

Handlers pay, lock, release and sign through the wallet; they never see the key. The wallet
also keeps the receipts of what it did, so an agent can report its gas and transactions.
"""

from __future__ import annotations

from typing import Any

from agora.agents.identity import Identity
from agora.chain import EscrowTerms, Ledger, LedgerReader, Receipt


class Wallet:
    def __init__(self, identity: Identity, ledger: Ledger) -> None:
        self._identity = identity
        self._ledger = ledger
        self.ledger = LedgerReader(ledger)  # what handlers may read; writes go through methods
        self.receipts: list[Receipt] = []

    def for_key(self, identity: Identity) -> Wallet:
        """A wallet on the same ledger for another key this agent holds (a cohort's members,
        each acting on its own account)."""
        return Wallet(identity, self._ledger)

    @property
    def address(self) -> str:
        return self._identity.address

    def balance(self) -> int:
        return self.ledger.balance_of(self.address)

    def _keep(self, receipt: Receipt) -> Receipt:
        self.receipts.append(receipt)
        return receipt

    def open_account(self) -> Receipt:
        return self._keep(self._ledger.open_account(self._identity))

    def transfer(self, to: str, amount: int) -> Receipt:
        return self._keep(self._ledger.transfer(self._identity, to, amount))

    def approve(self, spender: str, amount: int) -> Receipt:
        return self._keep(self._ledger.approve(self._identity, spender, amount))

    def transfer_from_many(self, transfers: list[tuple[str, str, int]], ref: str | None = None) -> Receipt:
        return self._keep(self._ledger.transfer_from_many(self._identity, transfers, ref))

    def open_escrow(self, terms: EscrowTerms) -> Receipt:
        return self._keep(self._ledger.open_escrow(self._identity, terms))

    def release(self, escrow_id: str, amount: int) -> Receipt:
        return self._keep(self._ledger.release(self._identity, escrow_id, amount))

    def release_items(self, escrow_id: str, amounts: list[int]) -> Receipt:
        return self._keep(self._ledger.release_items(self._identity, escrow_id, amounts))

    def refund(self, escrow_id: str) -> Receipt:
        return self._keep(self._ledger.refund(self._identity, escrow_id))

    def dispute(self, escrow_id: str) -> Receipt:
        return self._keep(self._ledger.dispute(self._identity, escrow_id))

    def draw(self, escrow_id: str, line: int) -> Receipt:
        return self._keep(self._ledger.draw(self._identity, escrow_id, line))

    def resolve(self, escrow_id: str, amount: int) -> Receipt:
        return self._keep(self._ledger.resolve(self._identity, escrow_id, amount))

    def hold(self, escrow_id: str) -> Receipt:
        return self._keep(self._ledger.hold(self._identity, escrow_id))

    def open_channel(self, terms: Any) -> Receipt:
        return self._keep(self._ledger.open_channel(self._identity, terms))

    def claim_channels(self, claims: list[Any]) -> Receipt:
        return self._keep(self._ledger.claim_channels(self._identity, claims))

    def stake(self, amount: int) -> Receipt:
        return self._keep(self._ledger.stake(self._identity, amount))

    def slash(self, provider: str, amount: int, buyer: str, compensation: int) -> Receipt:
        return self._keep(self._ledger.slash(self._identity, provider, amount, buyer, compensation))

    def sign_typed_data(self, full_message: dict[str, Any]) -> str:
        return self._identity.sign_typed_data(full_message)

    def gas_used(self) -> int:
        return sum(r.gas_used for r in self.receipts)
