"""Checking signed transaction bytes against the transaction a ledger prepared.

A ledger write is prepared here (validated, nonce drawn, gas estimated) and signed elsewhere
(an agent's wallet, or an HTTP caller's behind the gateway). Whoever hands the signed bytes
back could hand back *any* transaction of theirs: another target, another call, another chain.
Relaying it unchecked would let a caller run operations the relay never prepared nor allows
(hole 2 of the first outside attack: 25 of 25 ``transferFromMany`` calls relayed under a
prepared ``transfer``), or send a transaction the node queues forever (a nonce gap, hole 3).
So the bytes are decoded and every field compared with what was prepared before anything is
sent; bytes that do not decode are refused the same way (hole 4), never a traceback.
"""

from __future__ import annotations

from typing import Any

import rlp
from eth_keys import KeyAPI
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes

from agora.chain.errors import SignedTxMismatch

# fields every prepared transaction fixes, as eth-account names them in a decoded dict
_FIELDS = ("chainId", "nonce", "to", "value", "data", "gas", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")
_KEYS = KeyAPI()  # the coincurve backend where it is installed


def decode_signed(signed: bytes) -> dict[str, Any]:
    """The fields of a signed EIP-1559 or legacy (EIP-155) transaction, with its signer as
    ``from``: one RLP decode and one key recovery (eth-account's decoders parse the bytes twice
    and cost about twice as much; this runs on every relayed write).

    Raises SignedTxMismatch naming the problem for anything else (empty, junk, a bare RLP
    list, an unknown type byte, a signature that recovers no key)."""
    if not isinstance(signed, (bytes, bytearray)) or not signed:
        raise SignedTxMismatch("signed: empty transaction bytes")
    raw = bytes(signed)
    try:
        if raw[0] >= 0xC0:
            tx, digest, vrs = _legacy(rlp.decode(raw))
        elif raw[0] == 0x02:
            tx, digest, vrs = _dynamic_fee(rlp.decode(raw[1:]))
        else:
            raise ValueError(f"transaction type 0x{raw[0]:02x} is not one this ledger prepares (0x02 or legacy)")
        tx["from"] = _KEYS.Signature(vrs=vrs).recover_public_key_from_msg_hash(digest).to_checksum_address()
    except SignedTxMismatch:
        raise
    except Exception as exc:  # noqa: BLE001 - rlp and eth-keys each raise their own
        raise SignedTxMismatch(f"signed: not a signed transaction ({type(exc).__name__}: {str(exc)[:120]})") from None
    return tx


def _int(b: bytes) -> int:
    if len(b) > 32:
        raise ValueError("an integer field over 32 bytes")
    return int.from_bytes(b, "big")


def _dynamic_fee(items: list[Any]) -> tuple[dict[str, Any], bytes, tuple[int, int, int]]:
    """[chainId, nonce, maxPriorityFeePerGas, maxFeePerGas, gas, to, value, data, accessList,
    yParity, r, s]; the signing hash is keccak(0x02 ++ rlp(first nine))."""
    if not isinstance(items, list) or len(items) != 12:
        raise ValueError("an EIP-1559 transaction has twelve fields")
    if items[8]:
        raise ValueError("an access list, which no prepared transaction has")
    chain_id, nonce, tip, fee, gas, to, value, data = items[:8]
    tx = {
        "chainId": _int(chain_id),
        "nonce": _int(nonce),
        "maxPriorityFeePerGas": _int(tip),
        "maxFeePerGas": _int(fee),
        "gas": _int(gas),
        "to": to,
        "value": _int(value),
        "data": data,
    }
    y_parity = _int(items[9])
    if y_parity > 1:
        raise ValueError("y parity must be 0 or 1")
    return tx, keccak(b"\x02" + rlp.encode(items[:9])), (y_parity, _int(items[10]), _int(items[11]))


def _legacy(items: list[Any]) -> tuple[dict[str, Any], bytes, tuple[int, int, int]]:
    """[nonce, gasPrice, gas, to, value, data, v, r, s], signed under EIP-155 (v = 35 + 2 chainId
    + parity): a transaction signed for no chain at all is refused, as it could run on any."""
    if not isinstance(items, list) or len(items) != 9:
        raise ValueError("a legacy transaction has nine fields")
    nonce, price, gas, to, value, data = items[:6]
    v = _int(items[6])
    if v < 35:
        raise ValueError("signed for no chain (no EIP-155 chain id)")
    chain_id, parity = (v - 35) // 2, (v - 35) % 2
    tx = {"chainId": chain_id, "nonce": _int(nonce), "gasPrice": _int(price), "gas": _int(gas), "to": to, "value": _int(value), "data": data}
    unsigned = rlp.encode([*items[:6], chain_id, 0, 0])
    return tx, keccak(unsigned), (parity, _int(items[7]), _int(items[8]))


def _norm(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "to":
        raw = bytes(HexBytes(value))
        return to_checksum_address(raw) if raw else None
    if name == "data":
        return bytes(HexBytes(value)).hex()
    return int(value)


def check_signed(prepared_tx: dict[str, Any], sender: str, signed: bytes, chain_id: int) -> dict[str, Any]:
    """Refuse ``signed`` unless it is exactly ``prepared_tx``, for ``chain_id``, signed by
    ``sender``; return its decoded fields. The message names the first field that differs."""
    tx = decode_signed(signed)
    if tx.get("chainId") != chain_id:
        raise SignedTxMismatch(f"signed: chain id {tx.get('chainId')} is not this chain's {chain_id}")
    if tx["from"].lower() != sender.lower():
        raise SignedTxMismatch(f"signed: signed by {tx['from']}, but prepared for {sender}")
    for name in _FIELDS:
        want = _norm(name, prepared_tx.get(name))
        got = _norm(name, tx.get(name))
        if name not in prepared_tx and name in ("maxFeePerGas", "maxPriorityFeePerGas", "gasPrice"):
            if got is not None:
                raise SignedTxMismatch(f"signed: sets {name}, which the prepared transaction does not")
            continue
        if got != want:
            raise SignedTxMismatch(f"signed: {name} is {got!r}, the prepared transaction has {want!r}")
    return tx
