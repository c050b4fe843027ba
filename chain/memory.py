"""MemoryLedger: the ledger rules in plain Python, for tests and large simulations.

It enforces the same checks, in the same order, with the same reason strings as the Vyper
contracts (see ``chain/contracts``), so a run on memory and a run on the EVM agree on every
balance and every error. Senders are trusted in-process: there are no signatures to check.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from eth_utils import keccak, to_checksum_address

from agora.chain.errors import TransactionFailed, error_for_reason
from agora.chain.ledger import NO_REF, Ledger, check_ref
from agora.chain.memory_rules import BatchRules, ChannelRules, StakingRules
from agora.chain.offchain import domain
from agora.chain.types import (
    UINT256_MAX,
    BatchAccount,
    ChannelState,
    EscrowState,
    EscrowTerms,
    LedgerEvent,
    OpKind,
    Positions,
    Prepared,
    Receipt,
    StakeState,
    check_address,
    check_id,
    id_owner,
    keccak_hex,
    lines_hash,
    split,
)

# Stand-in contract addresses for the memory ledger's EIP-712 domains (chain id 0).
MEMORY_CHANNEL = "0x" + keccak(text="agora:memory:PaymentChannel")[12:].hex()
MEMORY_BATCH = "0x" + keccak(text="agora:memory:BatchSettlement")[12:].hex()
MEMORY_ESCROW = "0x" + keccak(text="agora:memory:Escrow")[12:].hex()
_DOMAINS = {
    "channel": domain("AgoraChannel", 0, MEMORY_CHANNEL),
    "batch": domain("AgoraBatch", 0, MEMORY_BATCH),
    "escrow": domain("AgoraEscrow", 0, MEMORY_ESCROW),
}
MEMORY_OPERATOR = to_checksum_address("0x" + keccak(text="agora:memory:operator")[12:].hex())


class MemoryLedger(StakingRules, ChannelRules, BatchRules, Ledger):
    """An in-memory ledger. ``clock`` gives the base time (wall time unless given); the
    operator moves it forward with :meth:`sync_time`, as time travel does on a chain."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        withdraw_delay: int = 3600,
        arbiter: str | None = None,
        treasury: str | None = None,
        unbond_delay: int = 86_400,
    ) -> None:
        self._clock = clock
        self.withdraw_delay = withdraw_delay
        self.arbiter = check_address(arbiter, "arbiter") if arbiter else MEMORY_OPERATOR
        self.treasury = check_address(treasury, "treasury") if treasury else MEMORY_OPERATOR
        self.unbond_delay = unbond_delay
        self._stakes: dict[str, StakeState] = {}
        self._lock = threading.RLock()
        self._events: list[LedgerEvent] = []
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._channels: dict[str, ChannelState] = {}
        self._batch: dict[str, BatchAccount] = {}
        self._offset = 0
        self._balances: dict[str, int] = {}
        self._opened: set[str] = set()
        self._allowances: dict[tuple[str, str], int] = {}
        self._refs: dict[tuple[str, str], str] = {}  # (settler, reference) -> hash of the lines it paid
        self._open_disputes: dict[str, int] = {}  # provider (payee 0) -> disputes the arbiter holds
        self._held: set[str] = set()  # escrows whose dispute the arbiter took up
        self._settled_epochs: set[tuple[str, int]] = set()  # (buyer, epoch) settled by a batch
        self._escrows: dict[str, EscrowState] = {}
        self._supply = 0
        self._seq = itertools.count(1)
        self._receipts: list[Receipt] = []
        self._domains = _DOMAINS  # the EIP-712 domains vouchers and batch authorizations are signed under

    def __getstate__(self) -> dict[str, Any]:
        """A memory ledger pickles whole (a deployment keeps it across ``agora stop``), less its lock."""
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_open_disputes", {})  # a ledger pickled before these existed
        self.__dict__.setdefault("_held", set())
        self.__dict__.setdefault("_settled_epochs", set())
        self.__dict__.setdefault("_domains", _DOMAINS)
        self._lock = threading.RLock()

    # reads

    def balance_of(self, address: str) -> int:
        return self._balances.get(address, 0)

    def allowance(self, owner: str, spender: str) -> int:
        return self._allowances.get((owner, spender), 0)

    def escrow(self, escrow_id: str) -> EscrowState:
        try:
            return self._escrows[check_id(escrow_id)]
        except KeyError:
            raise error_for_reason("escrow: unknown", escrow_id) from None

    def total_supply(self) -> int:
        return self._supply

    def escrowed_total(self) -> int:
        escrowed = sum(e.held for e in self._escrows.values() if e.status in ("open", "disputed"))
        escrowed += sum(c.deposit for c in self._channels.values()) + sum(a.deposit for a in self._batch.values())
        return escrowed + sum(s.stake for s in self._stakes.values())

    def stake_of(self, provider: str) -> StakeState:
        return self._stakes.get(provider, StakeState(stake=0, unlock_at=0))

    def positions(self) -> Positions:
        return Positions(
            escrows=sorted((e for e in self._escrows.values() if e.status in ("open", "disputed")), key=lambda e: e.escrow_id),
            channels=sorted((c for c in self._channels.values() if c.deposit), key=lambda c: c.channel_id),
            deposits={a: acct.deposit for a, acct in sorted(self._batch.items()) if acct.deposit},
            stakes={a: st.stake for a, st in sorted(self._stakes.items()) if st.stake},
        )

    def channel(self, channel_id: str) -> ChannelState:
        try:
            return self._channels[check_id(channel_id, "channel_id")]
        except KeyError:
            raise error_for_reason("channel: unknown", channel_id) from None

    def batch_account(self, buyer: str) -> BatchAccount:
        return self._batch.get(buyer, BatchAccount(deposit=0, last_epoch=0, unlock_at=0))

    def domains(self) -> dict[str, dict[str, Any]]:
        return _DOMAINS

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
        with self._lock:
            if self._supply + amount > UINT256_MAX:  # the token's checked arithmetic reverts here
                raise TransactionFailed(f"mint of {amount} would overflow the uint256 supply")
            self._supply += amount
            self._credit(to, amount)
            return self._receipt("mint", "operator")

    def fund_gas(self, address: str) -> Receipt | None:
        return None

    # writes
    def prepare(self, sender: str, op: OpKind, args: dict[str, Any]) -> Prepared:
        check = getattr(self, f"_check_{op}")
        check(sender, **args)
        return Prepared(sender=sender, op=op, args=args)

    def submit(self, prepared: Prepared, signed: bytes | None) -> Receipt:
        # Check and apply as one step (other threads may write), re-checking at apply time:
        # state may have moved since prepare.
        with self._lock:
            self._pending.clear()
            getattr(self, f"_check_{prepared.op}")(prepared.sender, **prepared.args)
            getattr(self, f"_apply_{prepared.op}")(prepared.sender, **prepared.args)
            receipt = self._receipt(prepared.op, prepared.sender)
            self._events += [LedgerEvent(kind=k, block=receipt.block, tx_hash=receipt.tx_hash, args=a) for k, a in self._pending]
            self._pending.clear()
            return receipt

    def events(self, from_block: int = 0) -> list[LedgerEvent]:
        return [e for e in self._events if e.block >= from_block]

    def block_number(self) -> int:
        return self._receipts[-1].block if self._receipts else 0

    def _emit(self, kind: str, **args: Any) -> None:
        self._pending.append((kind, args))

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

    def _check_approve(self, sender: str, spender: str, amount: int) -> None:
        pass

    def _apply_approve(self, sender: str, spender: str, amount: int) -> None:
        self._allowances[(sender, spender)] = amount

    def _run_pulls(self, sender: str, froms: list[str], tos: list[str], amounts: list[int], commit: bool) -> None:
        """Check (and with ``commit``, apply) the lines in order, all or nothing, exactly as
        Token.transferFromMany does: a later line sees what earlier ones moved."""
        if not len(froms) == len(tos) == len(amounts):
            raise error_for_reason("token: length mismatch", f"{len(froms)} froms, {len(tos)} tos, {len(amounts)} amounts")
        balances: dict[str, int] = {}
        allowed: dict[str, int] = {}
        get = self._balances.get
        for i, (frm, to, amount) in enumerate(zip(froms, tos, amounts, strict=False)):
            left = allowed[frm] if frm in allowed else self._allowances.get((frm, sender), 0)
            if left < amount:
                raise error_for_reason("token: insufficient allowance", f"line {i}: {frm} allowed {sender} {left}, needs {amount}")
            held = balances[frm] if frm in balances else get(frm, 0)
            if held < amount:
                raise error_for_reason("token: insufficient balance", f"line {i}: {frm} holds {held}, needs {amount}")
            allowed[frm] = left - amount
            balances[frm] = held - amount
            balances[to] = (balances[to] if to in balances else get(to, 0)) + amount
        if commit:
            self._balances.update(balances)
            for frm, left in allowed.items():
                self._allowances[(frm, sender)] = left

    def _check_transfer_from_many(self, sender: str, froms: list[str], tos: list[str], amounts: list[int], ref: str = NO_REF) -> None:
        if not len(froms) == len(tos) == len(amounts):
            raise error_for_reason("token: length mismatch", f"{len(froms)} froms, {len(tos)} tos, {len(amounts)} amounts")
        if ref != NO_REF and (sender, ref) in self._refs:
            raise error_for_reason("token: ref settled", ref)
        self._run_pulls(sender, froms, tos, amounts, commit=False)

    def _apply_transfer_from_many(self, sender: str, froms: list[str], tos: list[str], amounts: list[int], ref: str = NO_REF) -> None:
        self._run_pulls(sender, froms, tos, amounts, commit=True)
        if ref != NO_REF:
            self._refs[(sender, ref)] = lines_hash(froms, tos, amounts)

    def settlement(self, settler: str, ref: str) -> str | None:
        return self._refs.get((check_address(settler, "settler"), check_ref(ref)))

    def _check_open_escrow(self, sender: str, **terms: Any) -> None:
        t = EscrowTerms(**terms)
        if id_owner(t.escrow_id) != sender:
            raise error_for_reason("escrow: not opener's id", f"{t.escrow_id} does not begin with {sender}")
        if t.escrow_id in self._escrows:
            raise error_for_reason("escrow: exists", t.escrow_id)
        if t.deadline <= self.now():
            raise error_for_reason("escrow: bad deadline", f"{t.deadline} is not after {self.now()}")
        self._check_pull(sender, t.amount)

    def _apply_open_escrow(self, sender: str, **terms: Any) -> None:
        t = EscrowTerms(**terms)
        self._balances[sender] -= t.amount
        self._escrows[t.escrow_id] = EscrowState(buyer=sender, status="open", **t.model_dump())

        self._emit("Opened", deal_id=t.escrow_id, buyer=sender, amount=t.amount, deadline=t.deadline)

    def _open(self, escrow_id: str) -> EscrowState:
        e = self.escrow(escrow_id)
        if e.status == "disputed":
            raise error_for_reason("escrow: disputed", f"{escrow_id} awaits the arbiter")
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
        self._pay(escrow_id, amount, "released")

    def _check_release_items(self, sender: str, escrow_id: str, amounts: list[int]) -> None:
        e = self._open(escrow_id)
        if sender not in (e.buyer, e.arbiter):
            raise error_for_reason("escrow: unauthorized", f"{sender} may not release {escrow_id}")
        if len(amounts) != len(e.payees):
            raise error_for_reason("escrow: bad lines", f"{len(amounts)} amounts for {len(e.payees)} payees")
        for payee, amount, cap in zip(e.payees, amounts, split(e.amount, e.shares_bps), strict=False):
            if amount > cap:
                raise error_for_reason("escrow: over line", f"{amount} to {payee} exceeds its line of {cap}")

    def _apply_release_items(self, sender: str, escrow_id: str, amounts: list[int]) -> None:
        e = self._settle(escrow_id, "released")
        paid = 0
        for payee, amount, drew in zip(e.payees, amounts, e.lines_drawn, strict=False):
            if drew:  # paid in full at use
                paid += drew
                continue
            paid += amount
            if amount:
                self._credit(payee, amount)
        if e.amount > paid:
            self._credit(e.buyer, e.amount - paid)
        self._emit("Released", deal_id=escrow_id, paid=paid, returned=e.amount - paid)

    def _pay(self, escrow_id: str, amount: int, status: str) -> None:
        """As Escrow._pay: a line drawn at use keeps its draw and gets nothing more; what it drew
        beyond its part comes out of the buyer's return first, then payee 0's remainder."""
        e = self._settle(escrow_id, status)
        parts, drawn = split(amount, e.shares_bps), e.lines_drawn
        excess = sum(drew - part for part, drew in zip(parts[1:], drawn[1:], strict=False) if drew)
        back, rest = e.amount - amount, parts[0]
        if excess > back:
            rest, back = rest - (excess - back), 0
        else:
            back -= excess
        for payee, part, drew in zip(e.payees[1:], parts[1:], drawn[1:], strict=False):
            if part and not drew:
                self._credit(payee, part)
        if rest:
            self._credit(e.payees[0], rest)
        if back:
            self._credit(e.buyer, back)
        self._emit("Released", deal_id=escrow_id, paid=e.amount - back, returned=back)

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
        if e.held:  # a line drawn at use stays paid
            self._credit(e.buyer, e.held)
        self._emit("Refunded", deal_id=escrow_id, amount=e.held)

    def _check_draw(self, sender: str, escrow_id: str, line: int) -> None:
        e = self.escrow(escrow_id)
        if not (e.status == "disputed" and sender == self.arbiter):  # the resolver, for its re-run
            e = self._open(escrow_id)
            if sender != e.payees[0]:
                raise error_for_reason("escrow: unauthorized", f"only the provider {e.payees[0]} draws a line of {escrow_id}")
        if not 0 < line < len(e.payees):
            raise error_for_reason("escrow: bad line", f"line {line} of {len(e.payees)} (line 0 is the provider's own)")
        if line not in e.drawable or e.payees[line] == e.payees[0]:
            raise error_for_reason("escrow: not drawable", f"the buyer did not let line {line} of {escrow_id} be paid at use")
        if e.lines_drawn[line]:
            raise error_for_reason("escrow: drawn", f"line {line} of {escrow_id} was drawn")
        if split(e.amount, e.shares_bps)[line] == 0:
            raise error_for_reason("escrow: empty line", f"line {line} of {escrow_id} is 0")

    def _apply_draw(self, sender: str, escrow_id: str, line: int) -> None:
        e = self._escrows[escrow_id]
        cap = split(e.amount, e.shares_bps)[line]
        drawn = list(e.lines_drawn)
        drawn[line] = cap
        self._escrows[escrow_id] = e.model_copy(update={"drawn": drawn})
        self._credit(e.payees[line], cap)
        self._emit("Drawn", deal_id=escrow_id, payee=e.payees[line], amount=cap)

    def _check_dispute(self, sender: str, escrow_id: str) -> None:
        e = self._open(escrow_id)
        if sender not in (e.buyer, e.payees[0]):
            raise error_for_reason("escrow: unauthorized", f"{sender} is not a party to {escrow_id}")

    def _apply_dispute(self, sender: str, escrow_id: str) -> None:
        self._settle(escrow_id, "disputed")

        self._emit("Disputed", deal_id=escrow_id, by=sender)

    def _check_resolve(self, sender: str, escrow_id: str, amount: int) -> None:
        e = self.escrow(escrow_id)
        if sender != self.arbiter:
            raise error_for_reason("escrow: unauthorized", f"only the arbiter {self.arbiter} resolves disputes")
        if e.status != "disputed":
            raise error_for_reason("escrow: not disputed", f"{escrow_id} is {e.status}")
        if amount > e.amount:
            raise error_for_reason("escrow: bad amount", f"{amount} exceeds the locked {e.amount}")

    def _check_hold(self, sender: str, escrow_id: str) -> None:
        e = self.escrow(escrow_id)
        if sender != self.arbiter:
            raise error_for_reason("escrow: unauthorized", f"only the arbiter {self.arbiter} holds disputes")
        if e.status != "disputed":
            raise error_for_reason("escrow: not disputed", f"{escrow_id} is {e.status}")

    def _apply_hold(self, sender: str, escrow_id: str) -> None:
        if escrow_id not in self._held:  # holding it again changes nothing
            self._held.add(escrow_id)
            provider = self._escrows[escrow_id].payees[0]
            self._open_disputes[provider] = self._open_disputes.get(provider, 0) + 1

    def _apply_resolve(self, sender: str, escrow_id: str, amount: int) -> None:
        if escrow_id in self._held:
            provider = self._escrows[escrow_id].payees[0]
            self._open_disputes[provider] -= 1
        self._pay(escrow_id, amount, "released" if amount > 0 else "refunded")

    # helpers
    def _check_pull(self, sender: str, amount: int) -> None:
        """What the token's transferFrom checks when a contract pulls from ``sender``."""
        if sender not in self._opened:
            raise error_for_reason("token: insufficient allowance", f"{sender} has not opened an account")
        self._check_transfer(sender, sender, amount)

    def _settle(self, escrow_id: str, status: str) -> EscrowState:
        e = self._escrows[escrow_id]
        self._escrows[escrow_id] = e.model_copy(update={"status": status})
        return e

    def _credit(self, address: str, amount: int) -> None:
        self._balances[address] = self._balances.get(address, 0) + amount

    def _receipt(self, op: str, sender: str) -> Receipt:
        n = next(self._seq)
        receipt = Receipt(op=op, sender=sender, tx_hash="0x" + keccak_hex(f"memory:{n}".encode()), block=n)
        self._receipts.append(receipt)
        return receipt
