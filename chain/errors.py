"""Errors of the settlement layer.

Every ledger backend raises the same classes for the same broken rule, so code written
against the memory ledger behaves identically on the EVM. A contract revert carries a short
reason string ("escrow: settled"); :func:`error_for_reason` turns it into the class below,
and the memory ledger raises through the same table, so even the messages agree.

    ChainError
     ├── InvalidAmount (ValueError)        not an int, negative, above uint256, above the lock
     ├── InvalidArgument (ValueError)      bad address, payees, shares or deadline
     ├── InsufficientFunds                 the payer's balance is short
     ├── Unauthorized (PermissionError)    the caller may not do this
     ├── EscrowNotFound (KeyError)         no escrow with that id
     ├── EscrowExists                      the id is taken
     ├── ChannelNotFound (KeyError)        no payment channel with that id
     ├── ChannelExists                     the channel id is taken
     ├── BadSignature (PermissionError)    a voucher or authorization not signed by its payer
     ├── AlreadySettled                    released or refunded before
     ├── Disputed                          frozen until the resolver rules
     ├── DeadlineNotReached                a buyer's refund before the deadline
     ├── RequestExpired                    an unstake or withdrawal after its window: request again
     ├── SignedTxMismatch (ValueError)     signed bytes that are not the prepared transaction
     ├── NodeUnavailable                   the node did not answer or mine within the bounded wait
     └── TransactionFailed                 a revert or failure with no known reason
"""

from __future__ import annotations


class ChainError(Exception):
    """Root of every error raised by the chain package."""


class InvalidAmount(ChainError, ValueError):
    """An amount that is not a non-negative integer of base units, or too large."""


class InvalidArgument(ChainError, ValueError):
    """A malformed address, payee list, share list or deadline."""


class InsufficientFunds(ChainError):
    """The payer does not hold enough of the token."""


class Unauthorized(ChainError, PermissionError):
    """The caller is not allowed to perform this operation."""


class EscrowNotFound(ChainError, KeyError):
    """No escrow is recorded under this id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class EscrowExists(ChainError):
    """An escrow with this id was already opened."""


class ChannelNotFound(ChainError, KeyError):
    """No payment channel is recorded under this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ChannelExists(ChainError):
    """A channel with this id was already opened."""


class BadSignature(ChainError, PermissionError):
    """A voucher or batch authorization that its payer did not sign."""


class AlreadySettled(ChainError):
    """The escrow was released or refunded already: an id settles exactly once."""


class Disputed(ChainError):
    """The escrow is under dispute: only the resolver set at deployment may settle it."""


class DeadlineNotReached(ChainError):
    """The buyer asked for a refund before the escrow's deadline."""


class RequestExpired(ChainError):
    """An unstake or a withdrawal after the window its request opened (one more delay): an
    armed request does not wait forever for the right moment to leave; request again."""


class SignedTxMismatch(ChainError, ValueError):
    """Signed transaction bytes that cannot be decoded, or that are not the transaction the
    ledger prepared (another target, data, value, chain id, nonce or signer): refused before
    anything is sent. The message names the field that differs."""


class NodeUnavailable(ChainError):
    """The chain node did not answer, or did not mine a sent transaction, within the bounded
    wait (``EVMLedger.write_timeout``): the write may still land; nothing waits for it longer."""


class TransactionFailed(ChainError):
    """A transaction failed for a reason the ledger cannot name."""


REVERT_REASONS: dict[str, type[ChainError]] = {
    "token: insufficient balance": InsufficientFunds,
    "token: insufficient allowance": Unauthorized,
    "token: unauthorized": Unauthorized,
    "token: zero address": InvalidArgument,
    "token: length mismatch": InvalidArgument,
    "token: ref settled": AlreadySettled,
    "escrow: exists": EscrowExists,
    "escrow: not opener's id": Unauthorized,
    "escrow: bad payees": InvalidArgument,
    "escrow: bad shares": InvalidArgument,
    "escrow: bad amount": InvalidAmount,
    "escrow: bad deadline": InvalidArgument,
    "escrow: unknown": EscrowNotFound,
    "escrow: settled": AlreadySettled,
    "escrow: unauthorized": Unauthorized,
    "escrow: deadline not reached": DeadlineNotReached,
    "escrow: disputed": Disputed,
    "escrow: not disputed": InvalidArgument,
    "escrow: over line": InvalidAmount,
    "escrow: bad lines": InvalidArgument,
    "escrow: bad line": InvalidArgument,
    "escrow: drawn": AlreadySettled,
    "escrow: empty line": InvalidAmount,
    "escrow: not drawable": Unauthorized,
    "escrow: bad drawable": InvalidArgument,
    "stake: unauthorized": Unauthorized,
    "stake: bad amount": InvalidAmount,
    "stake: bad address": InvalidArgument,
    "stake: locked": DeadlineNotReached,
    "stake: over request": InvalidAmount,
    "stake: request expired": RequestExpired,
    "stake: disputed": Disputed,
    "stake: insufficient stake": InsufficientFunds,
    "channel: exists": ChannelExists,
    "channel: not sender's id": Unauthorized,
    "channel: bad recipient": InvalidArgument,
    "channel: bad amount": InvalidAmount,
    "channel: bad expiration": InvalidArgument,
    "channel: bad claims": InvalidArgument,
    "channel: unknown": ChannelNotFound,
    "channel: unauthorized": Unauthorized,
    "channel: bad signature": BadSignature,
    "channel: not expired": DeadlineNotReached,
    "batch: bad amount": InvalidAmount,
    "batch: unauthorized": Unauthorized,
    "token: receiver refused": TransactionFailed,
    "batch: locked": DeadlineNotReached,
    "batch: over request": InvalidAmount,
    "batch: request expired": RequestExpired,
    "batch: insufficient deposit": InsufficientFunds,
    "batch: bad lines": InvalidArgument,
    "batch: bad epoch": InvalidArgument,
    "batch: bad signature": BadSignature,
    "batch: settled": AlreadySettled,
}


def error_for_reason(reason: str, detail: str = "") -> ChainError:
    """Map a revert reason (as the contracts write it) to the typed error, with context."""
    reason = reason.strip()
    for known, cls in REVERT_REASONS.items():
        if known in reason:
            return cls(f"{known}{': ' + detail if detail else ''}")
    return TransactionFailed(f"{reason}{': ' + detail if detail else ''}")
