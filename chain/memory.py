"""MemoryLedger: the ledger rules in plain Python, for tests and large simulations.

It enforces the same checks, in the same order, with the same reason strings as the Vyper
contracts (see ``chain/contracts``), so a run on memory and a run on the EVM agree on every
balance and every error. Senders are trusted in-process: there are no signatures to check.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable

from eth_utils import keccak

from chain.errors import error_for_reason
from chain.ledger import Ledger
from chain.types import EscrowState, EscrowTerms, Prepared, Receipt, check_id, split


class MemoryLedger(Ledger):
    """An in-memory ledger. ``clock`` gives the base time (wall time unless given); the
    operator moves it forward with :meth:`sync_time`, as time travel does on a chain."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._offset = 0
        self._balances: dict[str, int] = {}
        self._opened: set[str] = set()
        self._escrows: dict[str, EscrowState] = {}
        self._supply = 0
        self._seq = itertools.count(1)
        self._receipts: list[Receipt] = []

    # reads
    def balance_of(self, address: str) -> int:
        return self._balances.get(address, 0)

    def escrow(self, escrow_id: str) -> EscrowState:
        try:
            return self._escrows[check_id(escrow_id)]
        except KeyError:
            raise error_for_reason("escrow: unknown", escrow_id) from None

    def total_supply(self) -> int:
        return self._supply

    def escrowed_total(self) -> int:
        return sum(e.amount for e in self._escrows.values() if e.status == "open")

    def accounts(self) -> list[str]:
        return list(self._balances)

    def receipts(self) -> list[Receipt]:
        return list(self._receipts)

    def now(self) -> int:
        return int(self._clock()) + self._offset

    # operator
    def sync_time(self, timestamp: int) -> int:
        self._offset += max(0, int(timestamp) - self.now())
        return self.now()

    def _mint(self, to: str, amount: int) -> Receipt:
        self._supply += amount
        self._credit(to, amount)
        return self._receipt("mint", "operator")

    def fund_gas(self, address: str) -> Receipt | None:
        return None

    # writes
    def prepare(self, sender: str, op: str, args: dict[str, Any]) -> Prepared:
        check = getattr(self, f"_check_{op}")
        check(sender, **args)
        return Prepared(sender=sender, op=op, args=args)

    def submit(self, prepared: Prepared, signed: bytes | None) -> Receipt:
        # Re-check at apply time: state may have moved since prepare.
        getattr(self, f"_check_{prepared.op}")(prepared.sender, **prepared.args)
        getattr(self, f"_apply_{prepared.op}")(prepared.sender, **prepared.args)
        return self._receipt(prepared.op, prepared.sender)

    # -- rules (mirroring Token.vy and Escrow.vy) -----------------------------------------
    def _check_open_account(self, sender: str) -> None:
        pass

    def _apply_open_account(self, sender: str) -> None:
        self._opened.add(sender)
        self._balances.setdefault(sender, 0)

    def _check_transfer(self, sender: str, to: str, amount: int) -> None:
        if self.balance_of(sender) < amount:
            raise error_for_reason("token: insufficient balance", f"{sender} holds {self.balance_of(sender)}, needs {amount}")

    def _apply_transfer(self, sender: str, to: str, amount: int) -> None:
        self._balances[sender] -= amount
        self._credit(to, amount)

    def _check_open_escrow(self, sender: str, **terms: Any) -> None:
        t = EscrowTerms(**terms)
        if t.escrow_id in self._escrows:
            raise error_for_reason("escrow: exists", t.escrow_id)
        if t.deadline <= self.now():
            raise error_for_reason("escrow: bad deadline", f"{t.deadline} is not after {self.now()}")
        if sender not in self._opened:
            raise error_for_reason("token: insufficient allowance", f"{sender} has not opened an account")
        self._check_transfer(sender, sender, t.amount)

    def _apply_open_escrow(self, sender: str, **terms: Any) -> None:
        t = EscrowTerms(**terms)
        self._balances[sender] -= t.amount
        self._escrows[t.escrow_id] = EscrowState(buyer=sender, status="open", **t.model_dump())

    def _open(self, escrow_id: str) -> EscrowState:
        e = self.escrow(escrow_id)
        if e.status != "open":
            raise error_for_reason("escrow: settled", f"{escrow_id} is {e.status}")
        return e

    def _check_release(self, sender: str, escrow_id: str, amount: int) -> None:
        e = self._open(escrow_id)
        if sender not in (e.buyer, e.arbiter):
            raise error_for_reason("escrow: unauthorized", f"{sender} may not release {escrow_id}")
        if amount > e.amount:
            raise error_for_reason("escrow: bad amount", f"{amount} exceeds the locked {e.amount}")

    def _apply_release(self, sender: str, escrow_id: str, amount: int) -> None:
        e = self._settle(escrow_id, "released")
        for payee, part in zip(e.payees, split(amount, e.shares_bps)):
            if part:
                self._credit(payee, part)
        if e.amount > amount:
            self._credit(e.buyer, e.amount - amount)

    def _check_refund(self, sender: str, escrow_id: str) -> None:
        e = self._open(escrow_id)
        allowed = sender in (e.arbiter, e.payees[0])
        if sender == e.buyer:
            if self.now() < e.deadline:
                raise error_for_reason("escrow: deadline not reached", f"deadline {e.deadline}, now {self.now()}")
            allowed = True
        if not allowed:
            raise error_for_reason("escrow: unauthorized", f"{sender} may not refund {escrow_id}")

    def _apply_refund(self, sender: str, escrow_id: str) -> None:
        e = self._settle(escrow_id, "refunded")
        self._credit(e.buyer, e.amount)

    # helpers
    def _settle(self, escrow_id: str, status: str) -> EscrowState:
        e = self._escrows[escrow_id]
        self._escrows[escrow_id] = e.model_copy(update={"status": status})
        return e

    def _credit(self, address: str, amount: int) -> None:
        self._balances[address] = self._balances.get(address, 0) + amount

    def _receipt(self, op: str, sender: str) -> Receipt:
        n = next(self._seq)
        receipt = Receipt(op=op, sender=sender, tx_hash="0x" + keccak(text=f"memory:{n}").hex(), block=n)
        self._receipts.append(receipt)
        return receipt
