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
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes

from chain.errors import SignedTxMismatch

# fields every prepared transaction fixes, as eth-account names them in a decoded dict
_FIELDS = ("chainId", "nonce", "to", "value", "data", "gas", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")
_LEGACY = ("nonce", "gasPrice", "gas", "to", "value", "data", "v", "r", "s")


def decode_signed(signed: bytes) -> dict[str, Any]:
    """The fields of a signed EIP-1559 or legacy transaction, with its signer as ``from``.

    Raises SignedTxMismatch naming the problem for anything else (empty, junk, a bare RLP
    list, an unknown type byte, a signature that recovers no key)."""
    if not isinstance(signed, (bytes, bytearray)) or not signed:
        raise SignedTxMismatch("signed: empty transaction bytes")
    raw = bytes(signed)
    try:
        if raw[0] >= 0xC0:
            fields = dict(zip(_LEGACY, rlp.decode(raw)))
            if len(fields) != len(_LEGACY):
                raise ValueError("a legacy transaction has nine fields")
            v = int.from_bytes(fields["v"], "big")
            tx: dict[str, Any] = {
                "chainId": (v - 35) // 2 if v >= 35 else None,
                "nonce": int.from_bytes(fields["nonce"], "big"),
                "gasPrice": int.from_bytes(fields["gasPrice"], "big"),
                "gas": int.from_bytes(fields["gas"], "big"),
                "to": fields["to"],
                "value": int.from_bytes(fields["value"], "big"),
                "data": fields["data"],
            }
        elif raw[0] == 0x02:
            tx = dict(TypedTransaction.from_bytes(HexBytes(raw)).as_dict())
        else:
            raise ValueError(f"transaction type 0x{raw[0]:02x} is not one this ledger prepares (0x02 or legacy)")
        tx["from"] = Account.recover_transaction(raw)
    except SignedTxMismatch:
        raise
    except Exception as exc:  # noqa: BLE001 - rlp, eth-account and eth-keys each raise their own
        raise SignedTxMismatch(f"signed: not a signed transaction ({type(exc).__name__}: {str(exc)[:120]})") from None
    return tx


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
