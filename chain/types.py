"""Value types shared by every ledger backend: escrow terms, escrow state, receipts, and the
one split rule.

Money is an ``int`` count of the token's base units everywhere; floats and bools are refused.
Shares are basis points (1/10,000) summing to exactly 10,000.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from agora.chain.errors import InvalidAmount, InvalidArgument

BPS = 10_000
MAX_PAYEES = 8
UINT256_MAX = 2**256 - 1


def check_amount(value: Any, name: str = "amount") -> int:
    """Return ``value`` if it is a valid amount of base units, else raise InvalidAmount."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(f"{name} must be an int of base units, got {value!r} ({type(value).__name__})")
    if value < 0 or value > UINT256_MAX:
        raise InvalidAmount(f"{name} must be between 0 and 2**256-1, got {value}")
    return value


_CHECKED: dict[str, str] = {}  # address as given -> checksummed: an exchange settles the same traders all run
_HEX40 = re.compile(r"(?:0[xX])?([0-9a-fA-F]{40})")

try:  # the C keccak of safe-pysha3 (a dependency): eth-utils' pure-Python one costs ~60 us an address
    from sha3 import keccak_256 as _keccak_256

    def keccak_hex(data: bytes) -> str:
        digest: str = _keccak_256(data).hexdigest()
        return digest

except ImportError:  # pragma: no cover
    from eth_utils import keccak as _slow

    def keccak_hex(data: bytes) -> str:
        return _slow(data).hex()


def checksum_address(value: str) -> str | None:
    """EIP-55 form of a 40-hex-digit address (0x-prefixed or not) in any case, or None when ``value``
    is not one: what eth-utils' is_address / to_checksum_address give, with a C keccak."""
    match = _HEX40.fullmatch(value)
    return None if match is None else eip55(match.group(1).lower())


def eip55(lower: str) -> str:
    """The EIP-55 mixed-case form of 40 lowercase hex digits (what every address check and
    every derived identity writes)."""
    digest = keccak_hex(lower.encode())
    return "0x" + "".join([c.upper() if d > "7" else c for c, d in zip(lower, digest, strict=False)])


def known_address(address: str) -> None:
    """Note an address already in checksummed form (an identity just derived it), so checking
    it later costs a lookup."""
    if len(_CHECKED) < 1_000_000:
        _CHECKED[address] = address


def check_address(value: Any, name: str = "address") -> str:
    """Return the checksummed form of ``value`` or raise InvalidArgument naming the field."""
    known = _CHECKED.get(value) if isinstance(value, str) else None
    if known is not None:
        return known
    address = checksum_address(value) if isinstance(value, str) else None
    if address is None:
        raise InvalidArgument(f"{name} is not an Ethereum address: {value!r}")
    digits = value[-40:]
    if digits != digits.lower() and digits != digits.upper() and value[-40:] != address[2:]:
        # mixed case is an EIP-55 checksum: a wrong one is a mistyped address, as web3 says
        raise InvalidArgument(f"{name} has a bad EIP-55 checksum: {value!r} (did you mean {address}?)")
    if int(address, 16) == 0:
        raise InvalidArgument(f"{name} is the zero address")
    if len(_CHECKED) < 1_000_000:  # bounded: a long-lived process meeting endless addresses stays flat
        _CHECKED[value] = address
    return address


MAX_TRANSFER_LINES = 256  # lines in one transfer_from_many (the token contract's bound)


def owned_id(owner: str, *salt: object) -> str:
    """A 32-byte id that only ``owner`` may open an escrow or a payment channel under: its first
    20 bytes are the owner's address (the contracts refuse any other opener), the last 12 a hash
    of ``salt``. Ids are predictable on purpose (a deal's comes from its buyer and job); binding
    them to their opener is what keeps a stranger from taking one first."""
    owner_hex = check_address(owner, "owner")[2:].lower()
    return "0x" + owner_hex + keccak_hex(":".join(map(str, salt)).encode())[:24]


def id_owner(value: str) -> str:
    """The address an owned id (``owned_id``) belongs to."""
    return eip55(check_id(value, "id")[2:42])


def lines_hash(froms: list[str], tos: list[str], amounts: list[int]) -> str:
    """keccak256(abi.encode(froms, tos, amounts)): what Token.transferFromMany keeps under a
    settlement reference, so a settler checks that a reference it finds used paid its lines."""
    n = len(froms)
    words = [0x60, 0x60 + 32 * (n + 1), 0x60 + 64 * (n + 1), n]
    head = "".join(f"{w:064x}" for w in words)
    body = "".join(a[2:].lower().rjust(64, "0") for a in froms) + f"{len(tos):064x}"
    body += "".join(a[2:].lower().rjust(64, "0") for a in tos) + f"{len(amounts):064x}"
    body += "".join(f"{v:064x}" for v in amounts)
    return "0x" + keccak_hex(bytes.fromhex(head + body))


def check_id(value: Any, name: str = "escrow_id") -> str:
    """Escrow ids are 32 bytes written as 0x-prefixed hex."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise InvalidArgument(f"{name} must be 0x followed by 64 hex digits, got {value!r}")
    try:
        int(value, 16)
    except ValueError:
        raise InvalidArgument(f"{name} is not hex: {value!r}") from None
    return value.lower()


def split(amount: int, shares_bps: list[int]) -> list[int]:
    """The one split rule every backend applies (the Escrow contract does the same in Vyper).

    Payee i>0 receives ``amount * bps[i] // 10000``; payee 0 receives the rest, so the
    remainder of integer division goes to the first payee and the parts always sum to amount.
    """
    parts = [amount * bps // BPS for bps in shares_bps[1:]]
    return [amount - sum(parts), *parts]


class _Terms(BaseModel):
    """Terms a caller writes: a validation failure is the chain's InvalidArgument, naming the
    field, so bad input meets the same typed error as every other ledger refusal."""

    model_config = ConfigDict(frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidArgument(f"invalid {type(self).__name__}: {exc}") from None


class EscrowTerms(_Terms):
    """What a buyer locks: who gets paid in which shares, how much at most, until when."""

    escrow_id: str
    payees: list[str]
    shares_bps: list[int]
    amount: int
    deadline: int
    arbiter: str | None = None
    drawable: list[int] = []  # lines (never 0) the provider may pay at use (Escrow.draw): a data owner's

    @field_validator("escrow_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v)

    @field_validator("payees")
    @classmethod
    def _payees(cls, v: list[str]) -> list[str]:
        if not 1 <= len(v) <= MAX_PAYEES:
            raise ValueError(f"need 1 to {MAX_PAYEES} payees, got {len(v)}")
        return [check_address(p, f"payees[{i}]") for i, p in enumerate(v)]

    @field_validator("arbiter")
    @classmethod
    def _arbiter(cls, v: str | None) -> str | None:
        return None if v is None else check_address(v, "arbiter")

    @field_validator("amount")
    @classmethod
    def _amount(cls, v: int) -> int:
        if check_amount(v) == 0:
            raise ValueError("amount must be positive")
        return v

    @model_validator(mode="after")
    def _shares(self) -> EscrowTerms:
        if len(self.shares_bps) != len(self.payees):
            raise ValueError("shares_bps and payees differ in length")
        if any(s < 0 for s in self.shares_bps) or sum(self.shares_bps) != BPS:
            raise ValueError(f"shares_bps must be non-negative and sum to {BPS}, got {self.shares_bps}")
        if any(not 0 < i < len(self.payees) for i in self.drawable):
            raise ValueError(f"drawable lines must be between 1 and {len(self.payees) - 1}, got {self.drawable}")
        object.__setattr__(self, "drawable", sorted(set(self.drawable)))
        return self

    def drawable_mask(self) -> int:
        return sum(1 << i for i in self.drawable)


EscrowStatus = Literal["open", "released", "refunded", "disputed"]


class EscrowState(BaseModel):
    """An escrow as the ledger records it."""

    model_config = ConfigDict(frozen=True)

    escrow_id: str
    buyer: str
    arbiter: str | None
    payees: list[str]
    shares_bps: list[int]
    amount: int
    deadline: int
    status: EscrowStatus
    drawable: list[int] = []  # lines the buyer lets its provider pay at use
    drawn: list[int] = []  # per line, what was paid at use (Escrow.draw); [] when nothing was

    @property
    def lines_drawn(self) -> list[int]:
        """What each line drew at use (0 where nothing was), one entry per payee."""
        return self.drawn or [0] * len(self.payees)

    @property
    def held(self) -> int:
        """What the escrow still holds: its lock less the lines drawn at use."""
        return self.amount - sum(self.drawn)

    def drawn_line(self, payee: str) -> int:
        """What ``payee``'s lines drew at use."""
        return sum(d for p, d in zip(self.payees, self.drawn, strict=False) if p.lower() == payee.lower())


class Receipt(BaseModel):
    """Proof that a ledger operation happened; gas is in the chain's native coin (0 in memory)."""

    model_config = ConfigDict(frozen=True)

    op: str
    sender: str
    tx_hash: str
    block: int = 0
    gas_used: int = 0
    gas_cost_wei: int = 0


OpKind = Literal[
    "open_account",
    "transfer",
    "approve",
    "transfer_from_many",
    "open_escrow",
    "release",
    "release_items",
    "refund",
    "open_channel",
    "top_up_channel",
    "extend_channel",
    "claim_channels",
    "reclaim_channel",
    "deposit",
    "request_withdrawal",
    "withdraw",
    "settle_batch",
    "dispute",
    "draw",
    "resolve",
    "hold",
    "stake",
    "request_unstake",
    "unstake",
    "slash",
]


class Prepared(BaseModel):
    """A write operation ready to be authorized by its sender.

    ``tx`` is the unsigned EVM transaction (None on the memory ledger). Splitting prepare
    from submit keeps keys in the agent's process: the ledger may live elsewhere (a Ray
    actor), the signature is made where the key is.
    """

    sender: str
    op: OpKind
    args: dict[str, Any]
    tx: dict[str, Any] | None = None


class ChannelTerms(_Terms):
    """A pay-per-call channel a buyer opens for one provider."""

    channel_id: str
    recipient: str
    amount: int
    expiration: int

    @field_validator("channel_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v, "channel_id")

    @field_validator("recipient")
    @classmethod
    def _recipient(cls, v: str) -> str:
        return check_address(v, "recipient")

    @field_validator("amount")
    @classmethod
    def _amount(cls, v: int) -> int:
        if check_amount(v) == 0:
            raise ValueError("amount must be positive")
        return v


class ChannelState(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel_id: str
    sender: str
    recipient: str
    deposit: int
    nonce: int
    expiration: int


class ChannelClaim(BaseModel):
    """A voucher the recipient redeems: the amount the sender signed for the current nonce."""

    model_config = ConfigDict(frozen=True)

    channel_id: str
    amount: int
    signature: str

    @field_validator("channel_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v, "channel_id")

    @field_validator("amount")
    @classmethod
    def _amount(cls, v: int) -> int:
        return check_amount(v)


class BatchAccount(BaseModel):
    model_config = ConfigDict(frozen=True)

    deposit: int
    last_epoch: int
    unlock_at: int
    requested: int = 0  # the withdrawal asked for: it may leave at unlock_at; payees count the deposit less it

    @property
    def available(self) -> int:
        """What a payee may rely on: the deposit less any withdrawal already requested."""
        return max(0, self.deposit - self.requested)


class BatchSubmission(BaseModel):
    """One epoch of netted payments, as the BatchSettlement contract takes it.

    ``lines`` pack the payee index (top 16 bits) with the amount; ``counts[i]`` lines belong
    to ``buyers[i]``, whose ``signatures[i]`` authorizes exactly those lines for ``epoch``."""

    model_config = ConfigDict(frozen=True)

    epoch: int
    buyers: list[str]
    counts: list[int]
    signatures: list[str]
    payees: list[str]
    lines: list[int]

    def unpacked(self) -> list[tuple[str, list[tuple[str, int]]]]:
        """[(buyer, [(payee, amount), ...]), ...] in submission order."""
        out, cursor = [], 0
        for buyer, count in zip(self.buyers, self.counts, strict=False):
            chunk = self.lines[cursor : cursor + count]
            out.append((buyer, [(self.payees[line >> 240], line & (2**240 - 1)) for line in chunk]))
            cursor += count
        return out


class StakeState(BaseModel):
    model_config = ConfigDict(frozen=True)

    stake: int
    unlock_at: int
    requested: int = 0  # the unstake asked for: it may leave at unlock_at, unless a dispute is open


class Positions(BaseModel):
    """Everything a ledger holds locked for someone: what a restarted process must pick up."""

    model_config = ConfigDict(frozen=True)

    escrows: list[EscrowState]  # open or disputed
    channels: list[ChannelState]  # with a deposit left
    deposits: dict[str, int]  # batch deposits by buyer
    stakes: dict[str, int]  # stakes by provider

    def total(self) -> int:
        return sum(e.held for e in self.escrows) + sum(c.deposit for c in self.channels) + sum(self.deposits.values()) + sum(self.stakes.values())


class LedgerEvent(BaseModel):
    """A contract event, the same kinds and fields on every backend (token transfers aside):
    Opened, Released, Refunded, Disputed, Drawn, ChannelOpened, ChannelClaimed, ChannelReclaimed,
    Deposited, WithdrawalRequested, Withdrawn, PartSkipped, EpochSettled, Staked, UnstakeRequested,
    Unstaked, Slashed."""

    model_config = ConfigDict(frozen=True)

    kind: str
    block: int
    tx_hash: str
    args: dict[str, Any]
