"""The embedded chain: py-evm in this process, behind web3's EthereumTesterProvider, tuned to
behave like a real node (one-shot gas estimates, wall-clock blocks, one request at a time)."""

from __future__ import annotations

import threading
import time
from typing import Any

from eth.vm.spoof import SpoofTransaction
from web3 import EthereumTesterProvider


def _one_shot_gas_estimate(state: Any, transaction: Any) -> int:
    """Estimate gas with ONE execution instead of py-evm's binary search (~14 executions,
    seconds for a large batch). Run at the block gas limit, then allow 25% plus 30,000 over
    what it used: more than the 63/64 call rule withholds. A revert raises, as before, so a bad
    transaction still fails before it is sent."""
    spoof = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(spoof)
        if computation.is_error:
            raise computation.error
        used = transaction.intrinsic_gas + computation.get_gas_used()
    finally:
        state.revert(snapshot)
    estimate: int = min(state.gas_limit, used * 5 // 4 + 30_000)
    return estimate


class _SerialTesterProvider(EthereumTesterProvider):
    """py-evm is not thread-safe: requests from several threads take turns."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.RLock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            return super().make_request(method, params)


def _wall_clock_vm() -> type:
    """The embedded chain's VM: Prague, except that a block may share its parent's second.

    py-evm mines one block per transaction and wants each block strictly later than its
    parent, so under a few transactions a second its clock ran ahead of the wall clock (90 s in
    a one-minute run on Ray), and contract deadlines, which the chain enforces, expired early.
    anvil stamps every block with the wall clock (several blocks to a second); so does this."""
    from eth.vm.forks.prague import PragueVM

    class _WallClockVM(PragueVM):
        @classmethod
        def create_header_from_parent(cls, parent_header: Any, **params: Any) -> Any:
            if parent_header is not None and "timestamp" not in params:
                params["timestamp"] = max(parent_header.timestamp, int(time.time()))
            return PragueVM.create_header_from_parent(parent_header, **params)

        @classmethod
        def validate_header(cls, header: Any, parent_header: Any) -> None:
            if parent_header is not None and header.timestamp == parent_header.timestamp:
                parent_header = parent_header.copy(timestamp=header.timestamp - 1)  # equal is fine here
            super().validate_header(header, parent_header)

    return _WallClockVM
