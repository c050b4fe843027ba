"""An agent's identity: one secp256k1 key and its Ethereum address.

Only this object touches the key. Everything else (messages, registry, ledger, logs, storage
snapshots) sees the address. ``repr`` never shows the key; in simulation keys derive from the run
seed, so a seed replays the same addresses. For deployment a key comes from an encrypted keystore
file (the Ethereum keystore v3 format eth-account writes, scrypt or pbkdf2) or from a BIP-39 seed
phrase with BIP-44 derivation (m/44'/60'/0'/0/index), one phrase for a whole population.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import coincurve
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data

from agora.agents.errors import KeystoreError
from agora.chain.crypto import EIP191_32 as _EIP191_32
from agora.chain.crypto import keccak256, recover_digest
from agora.chain.types import eip55, known_address

__all__ = ["Identity", "keccak256", "recover_digest", "recover_message"]

Account.enable_unaudited_hdwallet_features()  # BIP-39/44 derivation (eth-account's own, pure Python)


class Identity:
    """A key pair that signs messages, typed data and transactions."""

    __slots__ = ("_key", "_address", "_eth", "_fast")

    def __init__(self, private_key: bytes | str) -> None:
        key = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else bytes(private_key)
        if len(key) != 32:
            raise KeystoreError(f"a private key is 32 bytes, got {len(key)}")
        try:  # the address straight from libsecp256k1 and the C keccak: a third of eth-account's cost,
            public = coincurve.PublicKey.from_secret(key).format(compressed=False)[1:]  # which a population of 100,000 feels
        except ValueError as exc:
            raise KeystoreError(f"not a valid secp256k1 private key: {exc}") from None
        self._key = key
        self._address = eip55(keccak256(public)[12:].hex())
        known_address(self._address)
        self._eth: Any = None  # eth-account's LocalAccount, made when something first signs with it
        self._fast: coincurve.PrivateKey | None = None

    @property
    def _account(self) -> Any:
        if self._eth is None:
            self._eth = Account.from_key(self._key)
        return self._eth

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random key (deployment; keep it in a keystore)."""
        return cls(Account.create()._private_key)

    @classmethod
    def from_seed(cls, seed: int | str, name: str) -> Identity:
        """A key derived from a run seed and the agent's name: same seed, same address."""
        return cls(keccak256(f"agora-identity:{seed}:{name}".encode()))

    @classmethod
    def from_mnemonic(cls, phrase: str, index: int = 0, passphrase: str = "") -> Identity:
        """The ``index``-th account of a BIP-39 seed phrase (path m/44'/60'/0'/0/index)."""
        if type(index) is not int or index < 0:
            raise KeystoreError(f"account index must be a non-negative int, got {index!r}")
        try:
            account = Account.from_mnemonic(phrase, passphrase=passphrase, account_path=f"m/44'/60'/0'/0/{index}")
        except Exception as exc:  # noqa: BLE001 - eth-account raises several types for a bad phrase
            raise KeystoreError(f"not a valid seed phrase: {type(exc).__name__}") from None
        return cls(account.key)

    @classmethod
    def from_keystore(cls, source: str | Path | dict[str, Any], password: str) -> Identity:
        """Decrypt a keystore (a path to the JSON file, or the parsed JSON)."""
        try:
            keyfile = source if isinstance(source, dict) else json.loads(Path(source).read_text())
            return cls(Account.decrypt(keyfile, password))
        except (OSError, json.JSONDecodeError) as exc:
            raise KeystoreError(f"cannot read keystore {source if not isinstance(source, dict) else ''}: {exc}") from None
        except ValueError as exc:  # eth-account: wrong password (MAC mismatch) or a malformed file
            raise KeystoreError(f"cannot decrypt keystore: {exc}") from None

    def to_keystore(self, password: str, kdf: Literal["pbkdf2", "scrypt"] = "scrypt", iterations: int | None = None) -> dict[str, Any]:
        """This key encrypted under ``password`` as a keystore v3 document (write it with
        ``json.dump``). Only the encrypted key leaves this object."""
        if not password:
            raise KeystoreError("a keystore needs a non-empty password")
        return Account.encrypt(self._account.key, password, kdf=kdf, iterations=iterations)

    @property
    def address(self) -> str:
        return self._address

    def sign_message(self, data: bytes) -> str:
        """EIP-191 personal signature over ``data``; hex string."""
        return "0x" + bytes(self._account.sign_message(encode_defunct(data)).signature).hex()

    def sign_digest(self, digest: bytes) -> str:
        """EIP-191 signature over a 32-byte digest (what envelopes use): the same bytes
        eth-account's ``sign_message(encode_defunct(digest))`` makes, through libsecp256k1
        directly, about ten times faster."""
        if self._fast is None:
            self._fast = coincurve.PrivateKey(self._key)
        raw = self._fast.sign_recoverable(keccak256(_EIP191_32 + digest), hasher=None)
        return "0x" + raw[:64].hex() + ("1c" if raw[64] else "1b")

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
        return (Identity, (self._key,))


def recover_message(data: bytes, signature: str) -> str:
    """The address that made an EIP-191 ``signature`` over ``data``."""
    return Account.recover_message(encode_defunct(data), signature=signature)


def recover_typed_data(full_message: dict[str, Any], signature: str) -> str:
    """The address that made an EIP-712 ``signature`` over ``full_message``."""
    return Account.recover_message(encode_typed_data(full_message=full_message), signature=signature)
