"""Which contract function performs each ledger operation on the EVM: one table.

Each entry maps an operation's arguments (as ``Ledger.prepare`` takes them) to the web3 function
call on the project's Vyper contracts; ``EVMLedger`` estimates, builds and sends it. A new
operation is its rule in ``MemoryLedger``, its function in the contract, and one entry here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from agora.chain.errors import TransactionFailed
from agora.chain.ledger import NO_REF
from agora.chain.types import UINT256_MAX, BatchSubmission, ChannelClaim, EscrowTerms

__all__ = ["OPS", "Contracts", "contract_call"]


class Contracts(NamedTuple):
    """The deployed contracts (web3 contract objects)."""

    token: Any
    escrow: Any
    channel: Any
    batch: Any
    staking: Any


def _id(args: dict[str, Any], key: str) -> bytes:
    return bytes.fromhex(args[key][2:])


def _open_escrow(c: Contracts, args: dict[str, Any]) -> Any:
    t = EscrowTerms(**args)
    arbiter = t.arbiter or "0x" + "00" * 20
    return c.escrow.functions.open(bytes.fromhex(t.escrow_id[2:]), t.payees, t.shares_bps, t.amount, t.deadline, arbiter, t.drawable_mask())


def _claim_channels(c: Contracts, args: dict[str, Any]) -> Any:
    claims = [ChannelClaim(**raw) for raw in args["claims"]]
    ids = [bytes.fromhex(claim.channel_id[2:]) for claim in claims]
    return c.channel.functions.claim_many(ids, [claim.amount for claim in claims], [bytes.fromhex(claim.signature.removeprefix("0x")) for claim in claims])


def _settle_batch(c: Contracts, args: dict[str, Any]) -> Any:
    b = BatchSubmission(**args)
    sigs = [bytes.fromhex(sig.removeprefix("0x")) for sig in b.signatures]
    return c.batch.functions.settle(b.epoch, b.buyers, b.counts, sigs, b.payees, b.lines)


OPS: dict[str, Callable[[Contracts, dict[str, Any]], Any]] = {
    # the token
    "open_account": lambda c, a: c.token.functions.approve_many([c.escrow.address, c.channel.address], UINT256_MAX),
    "transfer": lambda c, a: c.token.functions.transfer(a["to"], a["amount"]),
    "approve": lambda c, a: c.token.functions.approve(a["spender"], a["amount"]),
    "transfer_from_many": lambda c, a: c.token.functions.transferFromMany(a["froms"], a["tos"], a["amounts"], bytes.fromhex(a.get("ref", NO_REF)[2:])),
    # escrow
    "open_escrow": _open_escrow,
    "release": lambda c, a: c.escrow.functions.release(_id(a, "escrow_id"), a["amount"]),
    "release_items": lambda c, a: c.escrow.functions.release_items(_id(a, "escrow_id"), a["amounts"]),
    "refund": lambda c, a: c.escrow.functions.refund(_id(a, "escrow_id")),
    "dispute": lambda c, a: c.escrow.functions.dispute(_id(a, "escrow_id")),
    "draw": lambda c, a: c.escrow.functions.draw(_id(a, "escrow_id"), a["line"]),
    "resolve": lambda c, a: c.escrow.functions.resolve(_id(a, "escrow_id"), a["amount"]),
    "hold": lambda c, a: c.escrow.functions.hold(_id(a, "escrow_id")),
    # stakes (ERC-677: staking is one transaction, no allowance)
    "stake": lambda c, a: c.token.functions.transferAndCall(c.staking.address, a["amount"], b""),
    "request_unstake": lambda c, a: c.staking.functions.request_unstake(a["amount"]),
    "unstake": lambda c, a: c.staking.functions.unstake(a["amount"]),
    "slash": lambda c, a: c.staking.functions.slash(a["provider"], a["amount"], a["buyer"], a["compensation"]),
    # payment channels
    "open_channel": lambda c, a: c.channel.functions.open(_id(a, "channel_id"), a["recipient"], a["amount"], a["expiration"]),
    "top_up_channel": lambda c, a: c.channel.functions.top_up(_id(a, "channel_id"), a["amount"]),
    "extend_channel": lambda c, a: c.channel.functions.extend(_id(a, "channel_id"), a["expiration"]),
    "claim_channels": _claim_channels,
    "reclaim_channel": lambda c, a: c.channel.functions.reclaim(_id(a, "channel_id")),
    # netted batches (ERC-677 deposit)
    "deposit": lambda c, a: c.token.functions.transferAndCall(c.batch.address, a["amount"], b""),
    "request_withdrawal": lambda c, a: c.batch.functions.request_withdrawal(a["amount"]),
    "withdraw": lambda c, a: c.batch.functions.withdraw(a["amount"]),
    "settle_batch": _settle_batch,
}


def contract_call(contracts: Contracts, op: str, args: dict[str, Any]) -> Any:
    """The web3 function call that performs ``op`` with ``args``."""
    build = OPS.get(op)
    if build is None:
        raise TransactionFailed(f"unknown operation {op!r}")
    return build(contracts, args)
