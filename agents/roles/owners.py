"""Model owners and data owners: they publish content-addressed artifacts with a price and get
paid a share of every deal that uses them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypedDict

from agora.agents.agent import Agent, Context, on_message
from agora.agents.deal_protocol import Settled, refuse
from agora.agents.errors import NotAParty, UnfoundedClaim
from agora.agents.identity import Identity
from agora.agents.registry import DatasetOffer, ModelOffer, ServiceRecord
from agora.chain import ChainError

SERVICE_TTL = 24 * 3600.0  # how long a listing lives without a heartbeat


class _Earner(Agent):
    """Keeps a log of the settlements it was paid in: each deal once, and only what the ledger
    shows (issue 19: a forged ``Settled`` went into the log). A notice counts when it comes from
    the escrow's buyer, the escrow was released, and this owner is one of its payees; any other is
    refused and counted (``agents.deal_protocol.refuse``)."""

    def __init__(self, name: str, identity: Identity) -> None:
        super().__init__(name, identity)
        self.settlements: list[dict[str, object]] = []
        self.refused: dict[str, int] = {}

    @on_message(Settled)
    def settled(self, ctx: Context, sender: str, msg: Settled) -> None:
        try:
            escrow = ctx.ledger.escrow(msg.deal_id)
        except ChainError:
            refuse(self, ctx, sender, UnfoundedClaim(f"no escrow {msg.deal_id} on the ledger"))
            return
        if sender.lower() != escrow.buyer.lower():
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the buyer of {msg.deal_id}"))
            return
        if escrow.status != "released" or self.address not in escrow.payees:
            refuse(self, ctx, sender, UnfoundedClaim(f"the escrow {msg.deal_id} is {escrow.status} and pays {escrow.payees}, not released to me"))
            return
        if any(s["deal_id"] == msg.deal_id for s in self.settlements):
            return  # told twice: counted once
        self.settlements.append({"deal_id": msg.deal_id, "tx_hash": msg.tx_hash, "buyer": sender})


class _ModelTerms(TypedDict):
    """A model owner's terms, the fields of its ModelOffer besides the owner and the hash."""

    name: str
    task: str
    price_per_call: int
    license: str
    price_per_1k_tokens: int


class ModelOwner(_Earner):
    """Uploads a model folder to the content store and offers it at ``price_per_call``."""

    role = "model_owner"

    def __init__(
        self,
        name: str,
        identity: Identity,
        model_path: Path | str,
        model_name: str,
        price_per_call: int,
        task: str = "embedding",
        license: str = "",
        price_per_1k_tokens: int = 0,
    ) -> None:
        super().__init__(name, identity)
        self.model_path = str(model_path)
        self.offer_terms: _ModelTerms = {
            "name": model_name,
            "task": task,
            "price_per_call": price_per_call,
            "license": license,
            "price_per_1k_tokens": price_per_1k_tokens,
        }
        self.model_hash = ""

    def on_start(self, ctx: Context) -> None:
        self.model_hash = ctx.store.put(self.model_path)
        ctx.registry.register_model(ModelOffer(owner=self.address, model_hash=self.model_hash, **self.offer_terms))
        ctx.registry.register_agent(self.address, self.name, self.role)
        terms: dict[str, str | int | float] = {"name": self.offer_terms["name"], "task": self.offer_terms["task"], "model_hash": self.model_hash, "per": "call"}
        service = ServiceRecord(
            address=self.address,
            name=self.name,
            capability="model",
            price=self.offer_terms["price_per_call"],
            terms=terms,
            protocols=self.protocol_digests(),
            ttl=SERVICE_TTL,
        )
        ctx.registry.register_service(service, now=ctx.now())


class DataOwner(_Earner):
    """Sells the use of a text dataset at ``price_per_use``. By default compute-to-data: the
    rows go into the owner's vault on its own node (never into the shared store), jobs that read
    them run there under the policy (``models`` allowed, raw download or not), and only results
    leave; ``access_log()`` shows every use. ``compute_to_data=False`` publishes the file to the
    shared store instead."""

    role = "data_owner"

    def __init__(
        self,
        name: str,
        identity: Identity,
        texts: list[str],
        dataset_name: str,
        price_per_use: int,
        compute_to_data: bool = True,
        raw_download: bool = False,
        models: list[str] | None = None,
    ) -> None:
        super().__init__(name, identity)
        self.texts = list(texts)
        self.dataset_name = dataset_name
        self.price_per_use = price_per_use
        self.compute_to_data, self.raw_download, self.models = compute_to_data, raw_download, models
        self.dataset_hash = ""
        self.vault = ""

    def on_start(self, ctx: Context) -> None:
        self.items = len(self.texts)
        if self.compute_to_data:
            self.vault, vault = ctx.executor.open_vault(self.address)
            policy = {"price_per_use": self.price_per_use, "raw_download": self.raw_download, "models": self.models}
            self.dataset_hash = vault.add(self.texts, self.dataset_name, policy)
            self.texts = []  # the vault holds the rows now
        else:
            data = "".join(json.dumps({"text": t}) + "\n" for t in self.texts).encode()
            self.dataset_hash = ctx.store.put_bytes(data, f"{self.dataset_name}.jsonl")
        self._executor = ctx.executor  # to read the vault's access log
        offer = DatasetOffer(
            owner=self.address,
            dataset_hash=self.dataset_hash,
            name=self.dataset_name,
            items=self.items,
            price_per_use=self.price_per_use,
            vault=self.vault,
            raw_download=self.raw_download or not self.compute_to_data,
            models=self.models,
        )
        ctx.registry.register_dataset(offer)
        ctx.registry.register_agent(self.address, self.name, self.role)
        terms: dict[str, str | int | float] = {
            "name": self.dataset_name,
            "items": self.items,
            "dataset_hash": self.dataset_hash,
            "per": "use",
            "compute_to_data": self.compute_to_data,
        }
        service = ServiceRecord(
            address=self.address,
            name=self.name,
            capability="dataset",
            price=self.price_per_use,
            terms=terms,
            protocols=self.protocol_digests(),
            ttl=SERVICE_TTL,
        )
        ctx.registry.register_service(service, now=ctx.now())

    def access_log(self) -> list[dict[str, object]]:
        """Every use of the dataset, granted or refused (compute-to-data only)."""
        if not self.vault:
            return []
        return [r.model_dump() for r in self._executor.vault(self.vault).access_log(self.dataset_hash)]
