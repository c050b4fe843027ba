"""Billing: who a deal or a call pays, how much at most, how each line is metered, and how big
the escrow that holds it must be. One module, so the buyer, the model server and the gateway
bill alike and a change of rule is made once.

- A compute deal (:func:`job_fees`, :func:`provider_tariffs`, :func:`metered_bill`): the
  provider bills its price per (GPU-)second of what the job held, up to its bid; the model owner
  its royalty per call and per 1,000 tokens, capped at the most the job can read and generate;
  the data owner its price per use. Each line is at most its payee's amount and its line of the
  escrow (``chain.types.split`` of the lock), so no payee is ever paid past what the buyer signed.
- A model call (:func:`call_bill`, :func:`escrow_bill`, :func:`escrow_terms`): the server's fee
  and, for a model it hosts for another owner, that owner's royalty; an escrow that pays one call
  is the smallest amount whose every line covers its bill (what is not released comes back).
"""

from __future__ import annotations

from typing import Any

from agora.agents.registry import DatasetOffer, ModelOffer, ServiceRecord
from agora.chain.types import BPS, EscrowTerms, split
from agora.economy.contract import Contract, Payee
from agora.tasks.jobs import Metering
from agora.tasks.metering import Bill, Tariff, bill

__all__ = ["TOKENS_READ_PER_TEXT", "call_bill", "escrow_bill", "escrow_terms", "job_fees", "metered_bill", "provider_tariffs"]

TOKENS_READ_PER_TEXT = 256
"""The most tokens a runner reads of one text (its truncation): what bounds a royalty per token."""


def job_fees(model: ModelOffer, dataset: DatasetOffer | None, items: int, task: str, max_new_tokens: int) -> tuple[list[Payee], dict[str, Tariff]]:
    """The posted fees of a job over ``items`` texts as payees (each line the most that payee may
    bill) and how each is metered: the model owner's royalty, capped at what the most tokens the
    job can read and generate cost, and the data owner's price per use."""
    most_tokens = items * (TOKENS_READ_PER_TEXT + (max_new_tokens if task == "generation" else 0))
    royalty_cap = model.price_per_call + -(-model.price_per_1k_tokens * most_tokens // 1000)
    fees = [Payee(address=model.owner, role="model_owner", amount=royalty_cap)]
    tariffs = {
        model.owner: Tariff(payee=model.owner, role="model_owner", cap=royalty_cap, per_call=model.price_per_call, per_1k_tokens=model.price_per_1k_tokens)
    }
    if dataset is not None:
        fees.append(Payee(address=dataset.owner, role="data_owner", amount=dataset.price_per_use))
        tariffs[dataset.owner] = Tariff(payee=dataset.owner, role="data_owner", cap=dataset.price_per_use, per_call=dataset.price_per_use)
    return fees, tariffs


def provider_tariffs(gpus: float, offers: list[Any]) -> dict[str, Tariff]:
    """Each compute offer's owner bills its price per second of what the job held (GPU-seconds
    for a GPU job); its cap is its bid, set by :func:`metered_bill` from the contract."""
    tariffs = {}
    for offer in offers:
        rate = {"per_gpu_second": offer.price_per_second} if gpus else {"per_second": offer.price_per_second}
        tariffs[offer.owner] = Tariff(payee=offer.owner, role="provider", cap=0, **rate)
    return tariffs


def metered_bill(contract: Contract, tariffs: dict[str, Tariff], metering: Metering) -> Bill:
    """What a delivered job owes each of the contract's payees, line by line: metered by its
    tariff, each line at most the payee's amount and its line of the escrow."""
    lines = split(contract.max_amount, contract.shares_bps())
    capped = [tariffs[p.address].model_copy(update={"cap": min(p.amount, line)}) for p, line in zip(contract.payees, lines, strict=False)]
    return bill(metering, capped)


def call_bill(server: str, owner: str, price: int, royalty: int) -> tuple[list[str], list[int]]:
    """Who one call pays and how much: the server its fee and, for a model it hosts for another
    owner, that owner its royalty (``release_items`` with these amounts, in this order)."""
    if royalty and owner and owner.lower() != server.lower():
        return [server, owner], [price - royalty, royalty]
    return [server], [price]


def escrow_bill(service: ServiceRecord) -> tuple[list[str], list[int]]:
    """An escrowed call's bill, as the server's ``model-call`` listing states its terms."""
    return call_bill(service.address, str(service.terms.get("owner", "")), service.price, int(service.terms.get("royalty_per_call", 0)))


def escrow_terms(service: ServiceRecord, escrow_id: str, deadline: int) -> EscrowTerms:
    """Terms of an escrow that pays one call of ``service``: its payees, shares in basis points
    and the smallest amount whose every line (``chain.types.split``) covers its bill; what the
    caller does not release of it comes back."""
    payees, owed = escrow_bill(service)
    if len(owed) == 1:
        return EscrowTerms(escrow_id=escrow_id, payees=payees, shares_bps=[BPS], amount=owed[0], deadline=deadline)
    total = sum(owed)
    owner_bps = min(BPS - 1, -(-owed[1] * BPS // total))  # rounded up: the owner's line covers its royalty
    amount = max(total, -(-owed[0] * BPS // (BPS - owner_bps)))
    while any(line < due for line, due in zip(split(amount, [BPS - owner_bps, owner_bps]), owed, strict=False)):
        amount += 1
    return EscrowTerms(escrow_id=escrow_id, payees=payees, shares_bps=[BPS - owner_bps, owner_bps], amount=amount, deadline=deadline)
