"""An agent's identity: one secp256k1 key and its Ethereum address.

Only this object touches the key. Everything else (messages, registry, ledger, logs) sees the
address. ``repr`` and pickling never show the key in text; in simulation keys derive from the
run seed, so a seed replays the same addresses.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import keccak


class Identity:
    """A key pair that signs messages, typed data and transactions."""

    __slots__ = ("_account",)

    def __init__(self, private_key: bytes | str) -> None:
        self._account = Account.from_key(private_key)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random key (deployment; keep it in a keystore)."""
        return cls(Account.create()._private_key)

    @classmethod
    def from_seed(cls, seed: int | str, name: str) -> Identity:
        """A key derived from a run seed and the agent's name: same seed, same address."""
        return cls(keccak(text=f"agora-identity:{seed}:{name}"))

    @property
    def address(self) -> str:
        return self._account.address

    def sign_message(self, data: bytes) -> str:
        """EIP-191 personal signature over ``data``; hex string."""
        return "0x" + bytes(self._account.sign_message(encode_defunct(data)).signature).hex()

    def sign_typed_data(self, full_message: dict[str, Any]) -> str:
        """EIP-712 signature over a full typed-data message; hex string."""
        signable = encode_typed_data(full_message=full_message)
        return "0x" + bytes(self._account.sign_message(signable).signature).hex()

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """Sign an EVM transaction for a ledger; returns the raw bytes to broadcast."""
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    def __repr__(self) -> str:
        return f"Identity({self.address})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled only to move an agent into its host process; the key stays out of reprs.
        return (Identity, (bytes(self._account.key),))


def recover_message(data: bytes, signature: str) -> str:
    """The address that made an EIP-191 ``signature`` over ``data``."""
    return Account.recover_message(encode_defunct(data), signature=signature)


def recover_typed_data(full_message: dict[str, Any], signature: str) -> str:
    """The address that made an EIP-712 ``signature`` over ``full_message``."""
    return Account.recover_message(encode_typed_data(full_message=full_message), signature=signature)
