"""Off-chain halves of the channel and batch paths: typed data, vouchers, epoch building.

Everything here is signed as EIP-712 typed data whose domain binds the contract address and
chain id, so a voucher for one channel contract (or chain) is worthless on another. The memory
ledger checks the very same digests, so both backends accept and refuse the same signatures.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from agora.chain.errors import error_for_reason
from agora.chain.types import BatchSubmission, ChannelState, check_amount

_DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
MAX_LINE_AMOUNT = 2**240 - 1


def domain(name: str, chain_id: int, contract: str) -> dict[str, Any]:
    return {"name": name, "version": "1", "chainId": chain_id, "verifyingContract": to_checksum_address(contract)}


def voucher_typed_data(dom: dict[str, Any], channel_id: str, nonce: int, amount: int) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": _DOMAIN_FIELDS,
            "Voucher": [
                {"name": "channelId", "type": "bytes32"},
                {"name": "nonce", "type": "uint256"},
                {"name": "amount", "type": "uint256"},
            ],
        },
        "primaryType": "Voucher",
        "domain": dom,
        "message": {"channelId": bytes.fromhex(channel_id[2:]), "nonce": nonce, "amount": amount},
    }


def call_authorization_typed_data(dom: dict[str, Any], escrow_id: str, server: str, model_hash: str, task: str, inputs: list[str]) -> dict[str, Any]:
    """What an escrow's buyer signs so that someone else (a gateway) may spend the escrow on one
    call: this escrow, to this server, running this model (content hash) on this task, on these
    inputs. Without it, anyone who learnt an escrow's id could be served on it first (the buyer's
    own call then refused as already paid); without the model and task, a server could answer
    with a cheaper model and claim before the arbiter for a job naming that one. ``dom`` is the
    ledger's ``escrow`` domain (chain id and escrow contract)."""
    inputs_hash = keccak(json.dumps(list(inputs), separators=(",", ":"), ensure_ascii=False).encode())
    return {
        "types": {
            "EIP712Domain": _DOMAIN_FIELDS,
            "EscrowedCall": [
                {"name": "escrowId", "type": "bytes32"},
                {"name": "server", "type": "address"},
                {"name": "modelHash", "type": "bytes32"},
                {"name": "task", "type": "string"},
                {"name": "inputsHash", "type": "bytes32"},
            ],
        },
        "primaryType": "EscrowedCall",
        "domain": dom,
        "message": {
            "escrowId": bytes.fromhex(escrow_id[2:]),
            "server": to_checksum_address(server),
            "modelHash": bytes.fromhex(model_hash.removeprefix("0x")),
            "task": task,
            "inputsHash": inputs_hash,
        },
    }


def lines_hash(lines: list[tuple[str, int]]) -> bytes:
    """The hash chain the contract recomputes: h = keccak(h ++ payee ++ amount), h0 = 0."""
    h = b"\x00" * 32
    for payee, amount in lines:
        h = keccak(h + bytes.fromhex(payee[2:]).rjust(32, b"\x00") + amount.to_bytes(32, "big"))
    return h


def authorization_typed_data(dom: dict[str, Any], epoch: int, lines: list[tuple[str, int]]) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": _DOMAIN_FIELDS,
            "Authorization": [{"name": "epoch", "type": "uint256"}, {"name": "linesHash", "type": "bytes32"}],
        },
        "primaryType": "Authorization",
        "domain": dom,
        "message": {"epoch": epoch, "linesHash": lines_hash(lines)},
    }


def recover(typed_data: dict[str, Any], signature: str) -> str | None:
    """The signer of ``typed_data``, or None for a malformed signature."""
    try:
        signer: str = Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature)
        return signer
    except Exception:  # noqa: BLE001 - a malformed signature recovers nobody
        return None


class ChannelReceiver:
    """The provider's side of one channel, validating each voucher before serving a call
    (as SingularityNET's daemon does): signer, nonce, expiry margin, amount within the deposit,
    and the increment equal to the metered charge of the call (price x units measured)."""

    def __init__(self, state: ChannelState, dom: dict[str, Any], expiry_margin: int = 60) -> None:
        self.state = state
        self.domain = dom
        self.expiry_margin = expiry_margin
        self.amount = 0  # cumulative amount of the best voucher held for the current nonce
        self.signature = ""

    def accept(self, amount: int, signature: str, charge: int, now: int) -> None:
        """Take a voucher for a call that costs ``charge``; raises the ledger's typed errors."""
        check_amount(amount)
        s = self.state
        if s.expiration - now < self.expiry_margin:
            raise error_for_reason("channel: bad expiration", f"channel expires at {s.expiration}, too close to {now}")
        if amount > s.deposit:
            raise error_for_reason("channel: bad amount", f"voucher {amount} exceeds the deposit {s.deposit}")
        if amount - self.amount != charge:
            raise error_for_reason("channel: bad amount", f"voucher adds {amount - self.amount}, the call costs {charge}")
        if recover(voucher_typed_data(self.domain, s.channel_id, s.nonce, amount), signature) != s.sender:
            raise error_for_reason("channel: bad signature", f"voucher not signed by {s.sender} for nonce {s.nonce}")
        self.amount, self.signature = amount, signature

    def claimed(self, new_state: ChannelState) -> None:
        """After a claim on chain: the nonce moved on, vouchers restart from zero."""
        self.state, self.amount, self.signature = new_state, 0, ""


class EpochBuilder:
    """Collects one epoch's trades, nets them per buyer and payee, and builds the submission
    with each buyer's signature over exactly its own lines."""

    def __init__(self, epoch: int, dom: dict[str, Any]) -> None:
        self.epoch = epoch
        self.domain = dom
        self._owed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.trades = 0

    def add(self, buyer: str, payments: dict[str, int]) -> None:
        for payee, amount in payments.items():
            if check_amount(amount) > MAX_LINE_AMOUNT:
                raise error_for_reason("batch: bad lines", f"amount {amount} too large for a line")
            if amount:
                self._owed[buyer][payee] += amount
        self.trades += 1

    def lines(self, buyer: str) -> list[tuple[str, int]]:
        return sorted(self._owed[buyer].items())

    def typed_data(self, buyer: str) -> dict[str, Any]:
        return authorization_typed_data(self.domain, self.epoch, self.lines(buyer))

    def build(self, sign: Callable[[str, dict[str, Any]], str]) -> BatchSubmission:
        """``sign(buyer, typed_data)`` returns that buyer's signature (its own key signs)."""
        buyers = sorted(self._owed)
        payees = sorted({p for b in buyers for p in self._owed[b]})
        index = {p: i for i, p in enumerate(payees)}
        counts: list[int] = []
        sigs: list[str] = []
        packed: list[int] = []
        for buyer in buyers:
            lines = self.lines(buyer)
            counts.append(len(lines))
            sigs.append(sign(buyer, self.typed_data(buyer)))
            packed.extend((index[p] << 240) | amount for p, amount in lines)
        return BatchSubmission(epoch=self.epoch, buyers=buyers, counts=counts, signatures=sigs, payees=payees, lines=packed)
