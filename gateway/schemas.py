"""The gateway API's shapes: what each endpoint takes and answers (the OpenAPI spec is made
from these), and how pydantic's errors become one ``(field, reason)`` a caller can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, field_validator

from agora.chain.types import check_address, check_id
from agora.gateway.relay import GatewayJob

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ID_PATTERN = r"^0x[0-9a-fA-F]{64}$"

# the writes a caller may have relayed: its own account, transfers, channels, escrows, deposits, stake
RelayedOp = Literal[
    "open_account",
    "transfer",
    "approve",
    "open_channel",
    "top_up_channel",
    "extend_channel",
    "reclaim_channel",
    "open_escrow",
    "release",
    "release_items",
    "refund",
    "dispute",
    "draw",
    "deposit",
    "request_withdrawal",
    "withdraw",
    "stake",
    "request_unstake",
    "unstake",
]
RELAYED_OPS: tuple[str, ...] = get_args(RelayedOp)


# -- the API's shapes --------------------------------------------------------------------------
class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


class ChainInfo(BaseModel):
    chain_id: int
    ledger: str = Field(description="the ledger backend: memory, embedded (an in-process EVM chain) or rpc (a node)")
    symbol: str
    decimals: int
    gateway: str = Field(description="the gateway agent's address")
    now: int = Field(description="ledger time, unix seconds")
    domains: dict[str, dict[str, Any]] = Field(
        description="EIP-712 domains: the ledger's contracts' (vouchers are signed under 'channel') and 'request', this gateway's, that every signed request is signed under"
    )
    markets: list[str]


class Service(BaseModel):
    kind: Literal["model", "dataset", "compute", "model-call"]
    address: str
    name: str
    price: int = Field(description="base units per unit")
    unit: str
    reputation: float = Field(description="0..1, relative to the most trusted agent")
    terms: dict[str, Any] = {}


class Trade(BaseModel):
    seq: int
    market: str
    round: int
    t: float
    buyer: str
    seller: str
    price: int
    qty: int
    tx: str


class TradesPage(BaseModel):
    last_seq: int
    trades: list[Trade]


class Price(BaseModel):
    market: str
    last: int | None
    vwap: float | None
    low: int | None
    high: int | None
    trades: int
    volume: int


class Profile(BaseModel):
    address: str
    name: str
    role: str
    reputation: float
    balance: int
    services: list[Service]


class Account(BaseModel):
    address: str
    balance: int


class TxRequest(BaseModel):
    op: RelayedOp
    args: dict[str, Any] = Field(default={}, description="the operation's arguments, as the Ledger method names them (the sender is the signer)")


class TxAnswer(BaseModel):
    status: Literal["sign", "done"] = Field(description="sign: sign `tx` and post it to /v1/tx/{prepared_id}; done: applied")
    prepared_id: str | None = None
    tx: dict[str, Any] | None = None
    receipt: dict[str, Any] | None = None


class SignedTx(BaseModel):
    signed: str = Field(pattern=r"^0x[0-9a-fA-F]+$", max_length=200_000, description="the raw signed transaction, hex")


class ChannelPayment(BaseModel):
    kind: Literal["channel"] = "channel"
    channel_id: str = Field(pattern=ID_PATTERN)
    amount: int = Field(ge=0, le=2**256 - 1, description="cumulative amount owed on the channel since its last claim, this call included")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="the channel sender's EIP-712 voucher signature")

    @field_validator("channel_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v, "channel_id")


class EscrowPayment(BaseModel):
    kind: Literal["escrow"]
    escrow_id: str = Field(
        pattern=ID_PATTERN, description="an open escrow of the caller's paying the server this one call (terms from /v1/services/{address}/escrow)"
    )
    authorization: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$",
        description="the caller's EIP-712 signature letting the gateway spend this escrow on this call: EscrowedCall(escrowId, server, modelHash, task, inputsHash) under the `escrow` domain of /v1/chain (modelHash and task: the service's terms; inputsHash: keccak256 of the inputs as compact JSON)",
    )

    @field_validator("escrow_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v, "escrow_id")


class EscrowQuote(BaseModel):
    terms: dict[str, Any] = Field(description="the args of POST /v1/tx op open_escrow (escrow_id, payees, shares_bps, amount, deadline)")
    release: dict[str, Any] = Field(description="the POST /v1/tx to send once the answer checks out: release_items with each payee's bill")
    dispute: dict[str, Any] = Field(description="the POST /v1/tx to send if it does not: the server puts the result before the arbiter, who re-runs it")


class JobSubmit(BaseModel):
    service: str = Field(pattern=ADDRESS_PATTERN, description="the model server's address (from /v1/services?kind=model-call)")
    inputs: list[str] = Field(min_length=1, max_length=64)
    payment: ChannelPayment | EscrowPayment = Field(discriminator="kind", description="a channel voucher (pay per call) or an escrow opened for this call")

    @field_validator("service")
    @classmethod
    def _service(cls, v: str) -> str:
        return check_address(v, "service")

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, v: list[str]) -> list[str]:
        if any(len(text) > 10_000 for text in v):
            raise ValueError("each input is at most 10,000 characters")
        return v


class Job(GatewayJob):
    """A job as the API shows it."""


_UNION_TAGS = {("payment", "channel"), ("payment", "escrow")}  # where a discriminated union's tag sits in an error's location


def first_error(errors: Sequence[Any], skip: tuple[str, ...] = (), within: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """The first of pydantic's errors as (field, "field: reason"); ``skip``: location parts
    that are not fields (FastAPI's "body"), ``within``: where the validated value sits."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in skip]
    loc = [p for i, p in enumerate(loc) if not (i and (loc[i - 1], p) in _UNION_TAGS)]  # pydantic names the union's member
    field = ".".join([*within, *loc]) or None
    return field, f"{field}: {first.get('msg')}" if field else str(first.get("msg"))


def named(detail: str) -> str | None:
    """The field a ledger check names: its messages start with it ("to is not an Ethereum address")."""
    first = detail.split(" ", 1)[0]
    return first if first.isidentifier() else None
