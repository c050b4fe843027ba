"""Model owners and data owners: they publish content-addressed artifacts with a price and get
paid a share of every deal that uses them."""

from __future__ import annotations

import json
from pathlib import Path

from agents.agent import Agent, Context, on_message
from agents.deal_protocol import Settled
from agents.identity import Identity
from agents.registry import DatasetOffer, ModelOffer, ServiceRecord

SERVICE_TTL = 24 * 3600.0  # how long a listing lives without a heartbeat


class _Earner(Agent):
    """Keeps a log of the settlements it was paid in."""

    def __init__(self, name: str, identity: Identity) -> None:
        super().__init__(name, identity)
        self.settlements: list[dict[str, object]] = []

    @on_message(Settled)
    def settled(self, ctx: Context, sender: str, msg: Settled) -> None:
        self.settlements.append({"deal_id": msg.deal_id, "tx_hash": msg.tx_hash, "buyer": sender})


class ModelOwner(_Earner):
    """Uploads a model folder to the content store and offers it at ``price_per_call``."""

    role = "model_owner"

    def __init__(self, name: str, identity: Identity, model_path: Path | str, model_name: str, price_per_call: int, task: str = "embedding", license: str = "") -> None:
        super().__init__(name, identity)
        self.model_path = str(model_path)
        self.offer_terms = {"name": model_name, "task": task, "price_per_call": price_per_call, "license": license}
        self.model_hash = ""

    def on_start(self, ctx: Context) -> None:
        self.model_hash = ctx.store.put(self.model_path)
        ctx.registry.register_model(ModelOffer(owner=self.address, model_hash=self.model_hash, **self.offer_terms))
        ctx.registry.register_agent(self.address, self.name, self.role)
        terms = {"name": self.offer_terms["name"], "task": self.offer_terms["task"], "model_hash": self.model_hash, "per": "call"}
        service = ServiceRecord(
            address=self.address, name=self.name, capability="model", price=self.offer_terms["price_per_call"],
            terms=terms, protocols=self.protocol_digests(), ttl=SERVICE_TTL,
        )
        ctx.registry.register_service(service, now=ctx.now())


class DataOwner(_Earner):
    """Publishes a text dataset (one JSONL file) and sells its use at ``price_per_use``."""

    role = "data_owner"

    def __init__(self, name: str, identity: Identity, texts: list[str], dataset_name: str, price_per_use: int) -> None:
        super().__init__(name, identity)
        self.texts = list(texts)
        self.dataset_name = dataset_name
        self.price_per_use = price_per_use
        self.dataset_hash = ""

    def on_start(self, ctx: Context) -> None:
        data = "".join(json.dumps({"text": t}) + "\n" for t in self.texts).encode()
        self.dataset_hash = ctx.store.put_bytes(data, f"{self.dataset_name}.jsonl")
        offer = DatasetOffer(
            owner=self.address, dataset_hash=self.dataset_hash, name=self.dataset_name, items=len(self.texts), price_per_use=self.price_per_use
        )
        ctx.registry.register_dataset(offer)
        ctx.registry.register_agent(self.address, self.name, self.role)
        terms = {"name": self.dataset_name, "items": len(self.texts), "dataset_hash": self.dataset_hash, "per": "use"}
        service = ServiceRecord(
            address=self.address, name=self.name, capability="dataset", price=self.price_per_use,
            terms=terms, protocols=self.protocol_digests(), ttl=SERVICE_TTL,
        )
        ctx.registry.register_service(service, now=ctx.now())
