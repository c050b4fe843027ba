"""A ledger hosted in a Ray actor, and the proxy agents use to reach it.

The embedded chain lives in one process; agents hosted as Ray actors reach it through
:class:`RemoteLedger`, which is a full :class:`~agora.chain.ledger.Ledger`: writes are prepared in the
ledger's actor, signed in the agent's process (the key never travels), then submitted.
The service follows the wall clock, so chain time agrees with deadlines in deployment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from agora.chain.ledger import Ledger, OneWriteAtATimePerSender
from agora.chain.types import BatchAccount, ChannelState, EscrowState, LedgerEvent, Positions, Prepared, Receipt, StakeState


class _SharedExclusive:
    """Many holders at once, or one alone: writes share the ledger, whole-ledger reads
    (conservation, positions, a dump) have it to themselves so they see one consistent state."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True  # new shared holders wait from here on: no starvation
            self._cond.wait_for(lambda: self._shared == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class LedgerService:
    """Holds a ledger built by ``factory`` inside this (actor) process.

    Hosted with ``max_concurrency > 1`` it serves many senders at once: a chain node answers
    each write in milliseconds but a market's agents send hundreds, and one at a time the service
    was the whole economy's bottleneck. A backend that declares ``concurrent = True`` (the EVM
    ledger: the node orders transactions, one sender's nonces are kept by that sender's lock in
    its agent's process) runs its calls side by side; whole-ledger reads still run alone. Any
    other backend runs every call alone."""

    SNAPSHOTS = frozenset({"is_conserved", "positions", "accounts", "events", "total_supply", "escrowed_total", "receipts"})

    def __init__(self, factory: Callable[[], Ledger], follow_wall_clock: bool = True) -> None:
        self.ledger = factory()
        self.follow_wall_clock = follow_wall_clock
        self.concurrent = bool(getattr(self.ledger, "concurrent", False))
        self._gate = _SharedExclusive()
        self._clock = threading.Lock()
        self._synced = 0  # the wall-clock second the chain was last brought up to

    def dump(self) -> bytes:
        """The whole ledger, pickled (a memory ledger kept across a deployment's stop)."""
        import pickle

        with self._gate.exclusive():
            return pickle.dumps(self.ledger, protocol=pickle.HIGHEST_PROTOCOL)

    def attribute(self, name: str) -> Any:
        return getattr(self.ledger, name)

    def write_timeout(self, seconds: float | None = None) -> float | None:
        """The hosted ledger's bound on a write's wait for its receipt (set it with ``seconds``);
        None for a backend that never waits on a node."""
        if not hasattr(self.ledger, "write_timeout"):
            return None
        if seconds is not None:
            self.ledger.write_timeout = float(seconds)
        return self.ledger.write_timeout

    def call(self, method: str, *args: Any) -> Any:
        alone = not self.concurrent or method in self.SNAPSHOTS or method == "sync_time"
        with self._gate.exclusive() if alone else self._gate.shared():
            if self.follow_wall_clock and method in {"now", "prepare", "submit", "escrow"}:
                self._follow()
            return getattr(self.ledger, method)(*args)

    def _follow(self) -> None:
        """Bring chain time up to the wall clock, at most once a second (each nudge costs the
        node a block). Best effort: a nudge that loses a race with a block just mined at that
        second changes nothing, and the next second tries again."""
        second = int(time.time())
        if second <= self._synced:
            return
        with self._clock:
            if second <= self._synced:
                return  # another caller brought it up while this one waited
            try:
                self.ledger.sync_time(second)
                self._synced = second
            except Exception:  # noqa: BLE001 - the write that asked must not fail for the clock
                pass


def ray_get_attribute(handle: Any, name: str) -> Any:
    import ray

    return ray.get(handle.attribute.remote(name))


class RemoteLedger(OneWriteAtATimePerSender, Ledger):
    """The Ledger interface over a LedgerService actor handle. The service serves many senders
    at once, so one sender's writes go prepare, sign, submit one at a time here, in the process
    that holds its key (a second prepare before the first submit would draw the same nonce)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.arbiter, self.treasury = (ray_get_attribute(handle, name) for name in ("arbiter", "treasury"))

    @property
    def write_timeout(self) -> float | None:
        """The hosted ledger's bound on a write's wait (``EVMLedger.write_timeout``), read and
        set through its actor: the gateway's --write-timeout reaches a ledger on Ray too."""
        import ray

        return ray.get(self._handle.write_timeout.remote())

    @write_timeout.setter
    def write_timeout(self, seconds: float) -> None:
        import ray

        ray.get(self._handle.write_timeout.remote(seconds))

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

    def settlement(self, settler: str, ref: str) -> str | None:
        return self._call("settlement", settler, ref)

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

    def block_number(self) -> int:
        return self._call("block_number")

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
