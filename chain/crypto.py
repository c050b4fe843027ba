"""The two hashes and one signature check every layer shares: keccak-256 and EIP-191 recovery.

They live in ``chain`` because they are Ethereum's: the agents' envelopes, the vault's signed
requests and the ledger's transactions all use them, and ``chain`` is the layer everything else
may import."""

from __future__ import annotations

import coincurve
from eth_utils import keccak

try:  # the C keccak of safe-pysha3: about 4x faster than eth-utils' for an envelope's fields
    from sha3 import keccak_256 as _keccak_256

    def keccak256(data: bytes) -> bytes:
        digest: bytes = _keccak_256(data).digest()
        return digest

except ImportError:  # pragma: no cover - same digest, slower

    def keccak256(data: bytes) -> bytes:
        return keccak(data)


EIP191_32 = b"\x19Ethereum Signed Message:\n32"
"""The EIP-191 prefix of a signed 32-byte digest (``personal_sign`` of a hash)."""


def recover_digest(digest: bytes, signature: str) -> str:
    """The lowercase address that made an EIP-191 ``signature`` over a 32-byte ``digest``."""
    raw = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
    if len(raw) != 65 or raw[64] not in (27, 28):
        raise ValueError(f"a signature is 65 bytes ending in v = 27 or 28, got {len(raw)} bytes")
    public = coincurve.PublicKey.from_signature_and_message(raw[:64] + bytes([raw[64] - 27]), keccak256(EIP191_32 + digest), hasher=None)
    return "0x" + keccak256(public.format(compressed=False)[1:])[-20:].hex()
