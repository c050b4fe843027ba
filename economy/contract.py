"""The deal contract: parties, payees and shares, maximum amount, deadline, job hash.

Both sides sign it as EIP-712 typed data, so a wallet can show exactly what is being agreed and
anyone can check who agreed. The signed domain names the chain and the escrow contract the deal
settles on (``deal_domain`` reads them from the ledger), so a signature made for one chain or
deployment does not check on another (issue 19: the domain named neither). Shares are basis points derived from each payee's price; the
remainder of the division goes to payee 0 (the provider), the rule the ledger applies too.
"""

from __future__ import annotations

from typing import Any, Literal

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import is_address, keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from agora.chain.types import BPS, EscrowState, EscrowTerms, owned_id, split
from agora.economy.errors import BadContractSignature, InvalidContract

Role = Literal["provider", "model_owner", "data_owner"]
_HEX32 = r"^0x[0-9a-f]{64}$"

EIP712_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Contract": [
        {"name": "dealId", "type": "bytes32"},
        {"name": "buyer", "type": "address"},
        {"name": "provider", "type": "address"},
        {"name": "payees", "type": "address[]"},
        {"name": "sharesBps", "type": "uint256[]"},
        {"name": "maxAmount", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "jobHash", "type": "bytes32"},
    ],
}
DOMAIN = {"name": "Agora", "version": "2"}  # with the contract's chainId and verifyingContract
RECEIPT_TYPES = {
    "EIP712Domain": EIP712_TYPES["EIP712Domain"],
    "Delivery": [{"name": "dealId", "type": "bytes32"}, {"name": "resultHash", "type": "bytes32"}],
}


class Payee(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    role: Role
    amount: StrictInt = Field(ge=0)

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        if not is_address(v):
            raise ValueError(f"not an address: {v!r}")
        return to_checksum_address(v)


class Contract(BaseModel):
    """What buyer and provider agree to. Payee 0 is always the provider."""

    model_config = ConfigDict(frozen=True)

    deal_id: str = Field(pattern=_HEX32)
    buyer: str
    payees: list[Payee] = Field(min_length=1, max_length=8)
    deadline: StrictInt = Field(gt=0)
    job_hash: str = Field(pattern=_HEX32)
    chain_id: StrictInt = Field(ge=0)  # the EIP-712 domain: the chain and escrow contract it settles on
    escrow_contract: str
    arbiter: str | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidContract(f"invalid contract: {exc}") from None

    @field_validator("escrow_contract")
    @classmethod
    def _escrow_contract(cls, v: str) -> str:
        if not is_address(v):
            raise ValueError(f"not an address: {v!r}")
        return to_checksum_address(v)

    @model_validator(mode="after")
    def _check(self) -> Contract:
        if self.payees[0].role != "provider":
            raise ValueError("payee 0 must be the provider")
        if self.max_amount <= 0:
            raise ValueError("the contract must be worth more than 0")
        return self

    @property
    def provider(self) -> str:
        return self.payees[0].address

    @property
    def max_amount(self) -> int:
        return sum(p.amount for p in self.payees)

    def shares_bps(self) -> list[int]:
        """Each payee's share of the price in basis points; payee 0 takes the rounding."""
        total = self.max_amount
        rest = [p.amount * BPS // total for p in self.payees[1:]]
        return [BPS - sum(rest), *rest]

    def payout(self, amount: int) -> dict[str, int]:
        """What each payee receives when ``amount`` is released (the ledger's split rule)."""
        out: dict[str, int] = {}
        for payee, part in zip(self.payees, split(amount, self.shares_bps()), strict=False):
            out[payee.address] = out.get(payee.address, 0) + part
        return out

    def escrow_terms(self) -> EscrowTerms:
        return EscrowTerms(
            escrow_id=self.deal_id,
            payees=[p.address for p in self.payees],
            shares_bps=self.shares_bps(),
            amount=self.max_amount,
            deadline=self.deadline,
            arbiter=self.arbiter,
            drawable=[i for i, p in enumerate(self.payees) if i > 0 and p.role == "data_owner"],  # paid at use (a vault)
        )

    def unlike(self, escrow: EscrowState, ledger: Any) -> str:
        """Why this contract is not the one ``escrow`` was opened for on ``ledger`` ("" if it is):
        another deal, buyer or terms, or signatures made for another chain or escrow contract.
        The arbiter checks a claim's contract with it, the registry a rating's."""
        terms = self.escrow_terms()
        if (
            self.deal_id.lower() != escrow.escrow_id.lower()
            or self.buyer.lower() != escrow.buyer.lower()
            or ((terms.amount, terms.payees, terms.shares_bps, terms.deadline) != (escrow.amount, escrow.payees, escrow.shares_bps, escrow.deadline))
        ):
            return f"the contract's terms are not the escrow {escrow.escrow_id}'s on the ledger"
        here = deal_domain(ledger)
        if (self.chain_id, self.escrow_contract) != (here["chain_id"], here["escrow_contract"]):
            return f"the contract is signed for chain {self.chain_id} / {self.escrow_contract}, not this ledger's"
        return ""

    # -- EIP-712 ---------------------------------------------------------------------------
    def typed_data(self) -> dict[str, Any]:
        return {
            "types": EIP712_TYPES,
            "primaryType": "Contract",
            "domain": self.domain(),
            "message": {
                "dealId": bytes.fromhex(self.deal_id[2:]),
                "buyer": self.buyer,
                "provider": self.provider,
                "payees": [p.address for p in self.payees],
                "sharesBps": self.shares_bps(),
                "maxAmount": self.max_amount,
                "deadline": self.deadline,
                "jobHash": bytes.fromhex(self.job_hash[2:]),
            },
        }

    def domain(self) -> dict[str, Any]:
        return {**DOMAIN, "chainId": self.chain_id, "verifyingContract": self.escrow_contract}

    def receipt_typed_data(self, result_hash: str) -> dict[str, Any]:
        """What the provider signs when it delivers: this deal's id and the result's sha256 (hex,
        with or without 0x), under the contract's domain. The buyer keeps it; the arbiter pays a
        claim, or slashes for one, only about a result the provider signed this way."""
        return {
            "types": RECEIPT_TYPES,
            "primaryType": "Delivery",
            "domain": self.domain(),
            "message": {"dealId": bytes.fromhex(self.deal_id[2:]), "resultHash": bytes.fromhex(result_hash.removeprefix("0x"))},
        }

    def verify_receipt(self, result_hash: str, signature: str) -> None:
        """Raise BadContractSignature unless this contract's provider signed the delivery of
        ``result_hash`` under this deal."""
        try:
            signer = Account.recover_message(encode_typed_data(full_message=self.receipt_typed_data(result_hash)), signature=signature)
        except Exception as exc:  # noqa: BLE001 - malformed signatures and hashes are bad receipts
            raise BadContractSignature(f"unreadable delivery receipt: {exc}") from None
        if signer != self.provider:
            raise BadContractSignature(f"delivery receipt is signed by {signer}, not the provider {self.provider}")

    def digest(self) -> str:
        """The EIP-712 hash both parties sign."""
        signable = encode_typed_data(full_message=self.typed_data())
        return "0x" + keccak(b"\x19" + signable.version + signable.header + signable.body).hex()

    def signer_of(self, signature: str) -> str:
        signer: str = Account.recover_message(encode_typed_data(full_message=self.typed_data()), signature=signature)
        return signer

    def verify_signature(self, signature: str, party: str) -> None:
        """Raise BadContractSignature unless ``party`` made ``signature`` over this contract."""
        try:
            signer = self.signer_of(signature)
        except Exception as exc:  # noqa: BLE001 - malformed signatures are bad signatures
            raise BadContractSignature(f"unreadable signature: {exc}") from None
        if signer != to_checksum_address(party):
            raise BadContractSignature(f"signature is by {signer}, not {party}")


def deal_domain(ledger: Any) -> dict[str, Any]:
    """The ``chain_id`` and ``escrow_contract`` a contract on ``ledger`` is signed under: the
    ledger's "escrow" EIP-712 domain (its chain and escrow contract)."""
    found = ledger.domains()["escrow"]
    return {"chain_id": int(found["chainId"]), "escrow_contract": to_checksum_address(found["verifyingContract"])}


def deal_id_for(buyer: str, job_hash: str, nonce: int) -> str:
    """A deal id unique per buyer, job and attempt, and the buyer's own: it begins with the
    buyer's address, so nobody else can open the deal's escrow first (the contract refuses
    another opener) and make the deal unfundable."""
    return owned_id(buyer, job_hash, nonce)
