"""The memory ledger's rules for the Staking, PaymentChannel and BatchSettlement contracts.

Each class mirrors one contract, with the same checks in the same order and the same reason
strings (``chain/contracts``); :class:`~agora.chain.memory.MemoryLedger` mixes them in beside the
token and escrow rules it holds itself. Every method here runs on the ledger's state, typed by
:class:`_State`, under the ledger's lock (``prepare`` checks, ``submit`` applies)."""

from __future__ import annotations

from typing import Any, Protocol

from agora.chain.errors import error_for_reason
from agora.chain.offchain import authorization_typed_data, recover, voucher_typed_data
from agora.chain.types import (
    BatchAccount,
    BatchSubmission,
    ChannelClaim,
    ChannelState,
    ChannelTerms,
    StakeState,
    id_owner,
)

__all__ = ["BatchRules", "ChannelRules", "StakingRules"]


class _State(Protocol):
    """What the rules read and write of the ledger they are part of."""

    arbiter: str
    treasury: str
    withdraw_delay: int
    unbond_delay: int
    _balances: dict[str, int]
    _stakes: dict[str, StakeState]
    _open_disputes: dict[str, int]
    _channels: dict[str, ChannelState]
    _batch: dict[str, BatchAccount]
    _settled_epochs: set[tuple[str, int]]
    _domains: dict[str, dict[str, Any]]

    def now(self) -> int: ...
    def stake_of(self, provider: str) -> StakeState: ...
    def channel(self, channel_id: str) -> ChannelState: ...
    def batch_account(self, buyer: str) -> BatchAccount: ...
    def _emit(self, kind: str, **args: Any) -> None: ...
    def _credit(self, address: str, amount: int) -> None: ...
    def _check_transfer(self, sender: str, to: str, amount: int) -> None: ...
    def _check_pull(self, sender: str, amount: int) -> None: ...
    def _own_channel(self, sender: str, channel_id: str) -> ChannelState: ...
    def _run_claims(self, sender: str, claims: list[dict[str, Any]], commit: bool) -> None: ...
    def _run_batch(self, sender: str, commit: bool, **raw: Any) -> None: ...


class StakingRules:
    """Staking.vy: a provider's bond, unbonded after a delay, slashed only by the arbiter."""

    def _check_stake(self: _State, sender: str, amount: int) -> None:
        self._check_transfer(sender, sender, amount)  # transferAndCall: no allowance needed
        if amount == 0:
            raise error_for_reason("stake: bad amount", "stake must be positive")

    def _apply_stake(self: _State, sender: str, amount: int) -> None:
        st = self.stake_of(sender)
        self._balances[sender] -= amount
        self._stakes[sender] = st.model_copy(update={"stake": st.stake + amount})

        self._emit("Staked", provider=sender, amount=amount)

    def _check_request_unstake(self: _State, sender: str, amount: int) -> None:
        if amount == 0:
            raise error_for_reason("stake: bad amount", "request a positive amount")
        if amount > self.stake_of(sender).stake:
            raise error_for_reason("stake: insufficient stake", f"{amount} exceeds the stake {self.stake_of(sender).stake}")

    def _apply_request_unstake(self: _State, sender: str, amount: int) -> None:
        unlock = self.now() + self.unbond_delay
        self._stakes[sender] = self.stake_of(sender).model_copy(update={"unlock_at": unlock, "requested": amount})
        self._emit("UnstakeRequested", provider=sender, amount=amount, unlock_at=unlock)

    def _check_unstake(self: _State, sender: str, amount: int) -> None:
        st = self.stake_of(sender)
        if st.unlock_at == 0 or self.now() < st.unlock_at:
            raise error_for_reason("stake: locked", f"unstaking unlocks at {st.unlock_at or 'request first'}")
        if self.now() >= st.unlock_at + self.unbond_delay:
            raise error_for_reason("stake: request expired", f"the request's window closed at {st.unlock_at + self.unbond_delay}; request again")
        if amount > st.requested:
            raise error_for_reason("stake: over request", f"{amount} exceeds the {st.requested} requested")
        if self._open_disputes.get(sender, 0):
            raise error_for_reason("stake: disputed", f"{sender} has {self._open_disputes[sender]} dispute(s) open")
        if amount > st.stake:
            raise error_for_reason("stake: insufficient stake", f"{amount} exceeds the stake {st.stake}")

    def _apply_unstake(self: _State, sender: str, amount: int) -> None:
        st = self.stake_of(sender)
        self._stakes[sender] = st.model_copy(update={"stake": st.stake - amount, "requested": st.requested - amount})
        self._credit(sender, amount)

        self._emit("Unstaked", provider=sender, amount=amount)

    def _check_slash(self: _State, sender: str, provider: str, amount: int, buyer: str, compensation: int) -> None:
        if sender != self.arbiter:
            raise error_for_reason("stake: unauthorized", f"only the arbiter {self.arbiter} slashes")
        if amount > self.stake_of(provider).stake:
            raise error_for_reason("stake: insufficient stake", f"{provider} stakes {self.stake_of(provider).stake}")
        if compensation > amount:
            raise error_for_reason("stake: bad amount", f"compensation {compensation} exceeds the slash {amount}")

    def _apply_slash(self: _State, sender: str, provider: str, amount: int, buyer: str, compensation: int) -> None:
        st = self.stake_of(provider)
        self._stakes[provider] = st.model_copy(update={"stake": st.stake - amount})
        if compensation:
            self._credit(buyer, compensation)
        if amount > compensation:
            self._credit(self.treasury, amount - compensation)
        self._emit("Slashed", provider=provider, buyer=buyer, amount=amount, compensation=compensation)


class ChannelRules:
    """PaymentChannel.vy: a sender's deposit for one recipient, claimed with signed vouchers."""

    def _check_open_channel(self: _State, sender: str, **terms: Any) -> None:
        t = ChannelTerms(**terms)
        if id_owner(t.channel_id) != sender:
            raise error_for_reason("channel: not sender's id", f"{t.channel_id} does not begin with {sender}")
        if t.channel_id in self._channels:
            raise error_for_reason("channel: exists", t.channel_id)
        if t.expiration <= self.now():
            raise error_for_reason("channel: bad expiration", f"{t.expiration} is not after {self.now()}")
        self._check_pull(sender, t.amount)

    def _apply_open_channel(self: _State, sender: str, **terms: Any) -> None:
        t = ChannelTerms(**terms)
        self._balances[sender] -= t.amount
        self._channels[t.channel_id] = ChannelState(
            channel_id=t.channel_id, sender=sender, recipient=t.recipient, deposit=t.amount, nonce=0, expiration=t.expiration
        )

        self._emit("ChannelOpened", channel_id=t.channel_id, sender=sender, recipient=t.recipient, deposit=t.amount, expiration=t.expiration)

    def _own_channel(self: _State, sender: str, channel_id: str) -> ChannelState:
        c = self.channel(channel_id)
        if sender != c.sender:
            raise error_for_reason("channel: unauthorized", f"{sender} does not own {channel_id}")
        return c

    def _check_top_up_channel(self: _State, sender: str, channel_id: str, amount: int) -> None:
        self._own_channel(sender, channel_id)
        if amount == 0:
            raise error_for_reason("channel: bad amount", "top-up must be positive")
        self._check_pull(sender, amount)

    def _apply_top_up_channel(self: _State, sender: str, channel_id: str, amount: int) -> None:
        c = self._channels[channel_id]
        self._balances[sender] -= amount
        self._channels[channel_id] = c.model_copy(update={"deposit": c.deposit + amount})

    def _check_extend_channel(self: _State, sender: str, channel_id: str, expiration: int) -> None:
        if expiration <= self._own_channel(sender, channel_id).expiration:
            raise error_for_reason("channel: bad expiration", "a channel can only be extended")

    def _apply_extend_channel(self: _State, sender: str, channel_id: str, expiration: int) -> None:
        self._channels[channel_id] = self._channels[channel_id].model_copy(update={"expiration": expiration})

    def _run_claims(self: _State, sender: str, claims: list[dict[str, Any]], commit: bool) -> None:
        """Check (and with ``commit``, apply) claims in order, as one all-or-nothing call."""
        states = dict(self._channels)
        total = 0
        for raw in claims:
            claim = ChannelClaim(**raw)
            c = states.get(claim.channel_id)
            if c is None:
                raise error_for_reason("channel: unknown", claim.channel_id)
            if sender != c.recipient:
                raise error_for_reason("channel: unauthorized", f"{sender} is not the recipient of {claim.channel_id}")
            if claim.amount > c.deposit:
                raise error_for_reason("channel: bad amount", f"claim {claim.amount} exceeds the deposit {c.deposit}")
            typed = voucher_typed_data(self._domains["channel"], claim.channel_id, c.nonce, claim.amount)
            if recover(typed, claim.signature) != c.sender:
                raise error_for_reason("channel: bad signature", f"voucher for nonce {c.nonce} not signed by {c.sender}")
            states[claim.channel_id] = c.model_copy(update={"deposit": c.deposit - claim.amount, "nonce": c.nonce + 1})
            total += claim.amount
            if commit:
                self._emit("ChannelClaimed", channel_id=claim.channel_id, amount=claim.amount, nonce=c.nonce)
        if commit:
            self._channels = states
            if total:
                self._credit(sender, total)

    def _check_claim_channels(self: _State, sender: str, claims: list[dict[str, Any]]) -> None:
        self._run_claims(sender, claims, commit=False)

    def _apply_claim_channels(self: _State, sender: str, claims: list[dict[str, Any]]) -> None:
        self._run_claims(sender, claims, commit=True)

    def _check_reclaim_channel(self: _State, sender: str, channel_id: str) -> None:
        c = self._own_channel(sender, channel_id)
        if self.now() < c.expiration:
            raise error_for_reason("channel: not expired", f"expires at {c.expiration}, now {self.now()}")

    def _apply_reclaim_channel(self: _State, sender: str, channel_id: str) -> None:
        c = self._channels[channel_id]
        self._channels[channel_id] = c.model_copy(update={"deposit": 0})
        self._credit(sender, c.deposit)
        self._emit("ChannelReclaimed", channel_id=channel_id, amount=c.deposit)


class BatchRules:
    """BatchSettlement.vy: buyers' deposits paid out in netted epochs each buyer signed."""

    def _check_deposit(self: _State, sender: str, amount: int) -> None:
        self._check_transfer(sender, sender, amount)  # transferAndCall: no allowance needed
        if amount == 0 or self.batch_account(sender).deposit + amount >= 2**192:
            raise error_for_reason("batch: bad amount", f"cannot deposit {amount}")

    def _apply_deposit(self: _State, sender: str, amount: int) -> None:
        a = self.batch_account(sender)
        self._balances[sender] -= amount
        self._batch[sender] = a.model_copy(update={"deposit": a.deposit + amount})

        self._emit("Deposited", buyer=sender, amount=amount)

    def _check_request_withdrawal(self: _State, sender: str, amount: int) -> None:
        if amount == 0:
            raise error_for_reason("batch: bad amount", "request a positive amount")
        if amount > self.batch_account(sender).deposit:
            raise error_for_reason("batch: insufficient deposit", f"{amount} exceeds the deposit {self.batch_account(sender).deposit}")

    def _apply_request_withdrawal(self: _State, sender: str, amount: int) -> None:
        unlock = self.now() + self.withdraw_delay
        self._batch[sender] = self.batch_account(sender).model_copy(update={"unlock_at": unlock, "requested": amount})
        self._emit("WithdrawalRequested", buyer=sender, amount=amount, unlock_at=unlock)

    def _check_withdraw(self: _State, sender: str, amount: int) -> None:
        a = self.batch_account(sender)
        if a.unlock_at == 0 or self.now() < a.unlock_at:
            raise error_for_reason("batch: locked", f"withdrawal unlocks at {a.unlock_at or 'request first'}")
        if self.now() >= a.unlock_at + self.withdraw_delay:
            raise error_for_reason("batch: request expired", f"the request's window closed at {a.unlock_at + self.withdraw_delay}; request again")
        if amount > a.requested:
            raise error_for_reason("batch: over request", f"{amount} exceeds the {a.requested} requested")
        if amount > a.deposit:
            raise error_for_reason("batch: insufficient deposit", f"{amount} exceeds the deposit {a.deposit}")

    def _apply_withdraw(self: _State, sender: str, amount: int) -> None:
        a = self.batch_account(sender)
        self._batch[sender] = a.model_copy(update={"deposit": a.deposit - amount, "requested": a.requested - amount})
        self._credit(sender, amount)

        self._emit("Withdrawn", buyer=sender, amount=amount)

    def _run_batch(self: _State, sender: str, commit: bool, **raw: Any) -> None:
        batch = BatchSubmission(**raw)
        if not 0 < batch.epoch < 2**64:
            raise error_for_reason("batch: bad epoch", str(batch.epoch))
        accounts: dict[str, BatchAccount] = {}
        owed: dict[str, int] = {}
        done: set[tuple[str, int]] = set()  # (buyer, epoch) settled by this submission
        skipped: list[str] = []  # buyers whose part settled before
        for (buyer, lines), sig in zip(batch.unpacked(), batch.signatures, strict=False):
            typed = authorization_typed_data(self._domains["batch"], batch.epoch, lines)
            if recover(typed, sig) != buyer:
                raise error_for_reason("batch: bad signature", f"lines for {buyer} are not what it signed")
            if (buyer, batch.epoch) in self._settled_epochs or (buyer, batch.epoch) in done:
                skipped.append(buyer)  # settled before (lifted out and submitted first): the rest settle
                continue
            done.add((buyer, batch.epoch))
            a = accounts.get(buyer) or self.batch_account(buyer)
            total = sum(amount for _, amount in lines)
            if a.deposit < total:
                raise error_for_reason("batch: insufficient deposit", f"{buyer} owes {total}, holds {a.deposit}")
            accounts[buyer] = a.model_copy(update={"deposit": a.deposit - total, "last_epoch": max(a.last_epoch, batch.epoch)})
            for payee, amount in lines:
                owed[payee] = owed.get(payee, 0) + amount
        if len(skipped) == len(batch.buyers):
            raise error_for_reason("batch: settled", f"every part of epoch {batch.epoch} settled before")
        if commit:
            self._settled_epochs |= done
            self._batch.update(accounts)
            for payee, amount in owed.items():
                if amount:
                    self._credit(payee, amount)
            for buyer in skipped:
                self._emit("PartSkipped", epoch=batch.epoch, buyer=buyer)
            total = sum(owed.values())
            self._emit("EpochSettled", epoch=batch.epoch, buyers=len(batch.buyers), lines=len(batch.lines), total=total)

    def _check_settle_batch(self: _State, sender: str, **raw: Any) -> None:
        self._run_batch(sender, False, **raw)

    def _apply_settle_batch(self: _State, sender: str, **raw: Any) -> None:
        self._run_batch(sender, True, **raw)
