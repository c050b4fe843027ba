"""Settlement: one :class:`Ledger` interface, a memory backend and an EVM backend.

Money is an int of the token's base units; every balance change goes through a ledger;
``ledger.is_conserved()`` checks that balances plus escrow equal the supply at any moment.

``EVMLedger`` is imported on first use: web3, eth-tester and py-evm take most of a second to
import, and every process that hosts agents (each Ray shard and job worker, each CLI command)
imports this package whether or not it ever touches a chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agora.chain.errors import (
    AlreadySettled,
    BadSignature,
    ChainError,
    ChannelExists,
    ChannelNotFound,
    DeadlineNotReached,
    Disputed,
    EscrowExists,
    EscrowNotFound,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    NodeUnavailable,
    RequestExpired,
    SignedTxMismatch,
    TransactionFailed,
    Unauthorized,
)
from agora.chain.factory import check_ledger_spec, ledger_factory
from agora.chain.ledger import Ledger, LedgerReader, Signer
from agora.chain.memory import MemoryLedger
from agora.chain.offchain import ChannelReceiver, EpochBuilder, authorization_typed_data, voucher_typed_data
from agora.chain.types import (
    BPS,
    BatchAccount,
    BatchSubmission,
    ChannelClaim,
    ChannelState,
    ChannelTerms,
    EscrowState,
    EscrowTerms,
    LedgerEvent,
    Positions,
    Prepared,
    Receipt,
    StakeState,
    split,
)

if TYPE_CHECKING:  # at run time, imported on first use by __getattr__ below
    from agora.chain.evm import EVMLedger


def __getattr__(name: str) -> object:
    if name == "EVMLedger":
        from agora.chain.evm import EVMLedger

        return EVMLedger
    raise AttributeError(f"module 'chain' has no attribute {name!r}")


__all__ = [
    "check_ledger_spec",
    "ledger_factory",
    "BPS",
    "AlreadySettled",
    "BadSignature",
    "BatchAccount",
    "BatchSubmission",
    "ChainError",
    "ChannelClaim",
    "ChannelExists",
    "ChannelNotFound",
    "ChannelReceiver",
    "ChannelState",
    "ChannelTerms",
    "EpochBuilder",
    "DeadlineNotReached",
    "Disputed",
    "EVMLedger",
    "EscrowExists",
    "EscrowNotFound",
    "EscrowState",
    "EscrowTerms",
    "InsufficientFunds",
    "InvalidAmount",
    "NodeUnavailable",
    "RequestExpired",
    "SignedTxMismatch",
    "InvalidArgument",
    "Ledger",
    "LedgerEvent",
    "LedgerReader",
    "MemoryLedger",
    "Positions",
    "Prepared",
    "Receipt",
    "Signer",
    "StakeState",
    "TransactionFailed",
    "Unauthorized",
    "authorization_typed_data",
    "split",
    "voucher_typed_data",
]
