"""A ledger hosted in a Ray actor, and the proxy agents use to reach it.

The embedded chain lives in one process; agents hosted as Ray actors reach it through
:class:`RemoteLedger`, which is a full :class:`~chain.ledger.Ledger`: writes are prepared in the
ledger's actor, signed in the agent's process (the key never travels), then submitted.
The service follows the wall clock, so chain time agrees with deadlines in deployment.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from chain.ledger import Ledger
from chain.types import BatchAccount, ChannelState, EscrowState, LedgerEvent, Positions, Prepared, Receipt, StakeState


class LedgerService:
    """Holds a ledger built by ``factory`` inside this (actor) process."""

    def __init__(self, factory: Callable[[], Ledger], follow_wall_clock: bool = True) -> None:
        self.ledger = factory()
        self.follow_wall_clock = follow_wall_clock

    def dump(self) -> bytes:
        """The whole ledger, pickled (a memory ledger kept across a deployment's stop)."""
        import pickle

        return pickle.dumps(self.ledger, protocol=pickle.HIGHEST_PROTOCOL)

    def attribute(self, name: str) -> Any:
        return getattr(self.ledger, name)

    def call(self, method: str, *args: Any) -> Any:
        if self.follow_wall_clock and method in {"now", "prepare", "submit", "escrow"}:
            self.ledger.sync_time(int(time.time()))
        return getattr(self.ledger, method)(*args)


def ray_get_attribute(handle: Any, name: str) -> Any:
    import ray

    return ray.get(handle.attribute.remote(name))


class RemoteLedger(Ledger):
    """The Ledger interface over a LedgerService actor handle."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.arbiter, self.treasury = (ray_get_attribute(handle, name) for name in ("arbiter", "treasury"))

    def _call(self, method: str, *args: Any) -> Any:
        import ray
        from ray.exceptions import RayTaskError

        try:
            return ray.get(self._handle.call.remote(method, *args))
        except RayTaskError as exc:
            raise exc.cause from None  # the ledger's own typed error, not Ray's wrapper

    def balance_of(self, address: str) -> int:
        return self._call("balance_of", address)

    def allowance(self, owner: str, spender: str) -> int:
        return self._call("allowance", owner, spender)

    def escrow(self, escrow_id: str) -> EscrowState:
        return self._call("escrow", escrow_id)

    def ref_settled(self, ref: str) -> bool:
        return self._call("ref_settled", ref)

    def channel(self, channel_id: str) -> ChannelState:
        return self._call("channel", channel_id)

    def batch_account(self, buyer: str) -> BatchAccount:
        return self._call("batch_account", buyer)

    def domains(self) -> dict[str, dict[str, Any]]:
        return self._call("domains")

    def stake_of(self, provider: str) -> StakeState:
        return self._call("stake_of", provider)

    def positions(self) -> Positions:
        return self._call("positions")

    def events(self, from_block: int = 0) -> list[LedgerEvent]:
        return self._call("events", from_block)

    def total_supply(self) -> int:
        return self._call("total_supply")

    def escrowed_total(self) -> int:
        return self._call("escrowed_total")

    def accounts(self) -> list[str]:
        return self._call("accounts")

    def receipts(self) -> list[Receipt]:
        return self._call("receipts")

    def now(self) -> int:
        return self._call("now")

    def sync_time(self, timestamp: int) -> int:
        return self._call("sync_time", timestamp)

    def _mint(self, to: str, amount: int) -> Receipt:
        return self._call("_mint", to, amount)

    def fund_gas(self, address: str) -> Receipt | None:
        return self._call("fund_gas", address)

    def prepare(self, sender: str, op: str, args: dict[str, Any]) -> Prepared:
        return self._call("prepare", sender, op, args)

    def submit(self, prepared: Prepared, signed: bytes | None) -> Receipt:
        return self._call("submit", prepared, signed)

    def is_conserved(self) -> bool:
        return self._call("is_conserved")
