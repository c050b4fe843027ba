"""What a buyer keeps of each deal, and how it turns a request by name into a job by hash: one record per deal, wrapping the signed contract's
:class:`~agora.economy.Deal` with the buyer's view of it and what it keeps privately.

:class:`DealRecord` is the public view (what the demo, the gateway and a run's recorder read);
:class:`BuyerDeal` is the whole of one deal inside the buyer: that record, the call that found its
provider, the contract's state machine, which request and attempt it serves, and for a redundant
job the group its replicas form."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agora.agents.billing import job_fees
from agora.agents.errors import UnknownOffer
from agora.chain import Receipt
from agora.economy.auction import ReverseAuction
from agora.economy.contract import Contract, Payee
from agora.economy.lifecycle import Deal
from agora.tasks.jobs import JobResult, JobSpec, Resources
from agora.tasks.metering import Tariff

__all__ = ["BuyerDeal", "DealRecord", "DealStatus", "JobRequest", "offered", "resolve"]

DealStatus = Literal["calling", "awarded", "funded", "disputed", "settled", "refunded", "no_award", "failed"]


class JobRequest(BaseModel):
    """What the buyer wants, by capability: a task, a model and dataset by name (or inline
    inputs), the resources, the most it pays in total, and how long it may take."""

    model_config = ConfigDict(frozen=True)

    task: str = "embedding"
    model: str | None = None
    dataset: str | None = None
    inputs: list[str] | None = None
    resources: Resources = Resources()
    max_price: int = Field(ge=0)
    deadline_s: int = Field(default=300, gt=0)
    max_new_tokens: int = Field(default=32, ge=1, le=1024, description="generation: new tokens per prompt, at most")
    reply_window_s: float = Field(default=5.0, gt=0)
    risk_weight: float = Field(default=1.0, ge=0, description="how much dearer a trusted provider may be (see ReverseAuction)")
    retries: int = Field(
        default=0, ge=0, le=16, description="after a refund (the provider failed or went silent), call the other providers again this many times"
    )
    redundancy: int = Field(default=1, ge=1, le=7, description="run the job on this many providers and pay only those in the agreeing majority")
    spot_check: int = Field(default=0, ge=0, le=64, description="rows of an inline-input job the buyer re-runs itself, chosen at random, before paying")
    start_s: float = Field(default=0.0, ge=0, description="seconds after the buyer starts before it calls for this job (a population's demand over time)")
    discover_s: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="while the named model, dataset or a provider with the resources is not offered yet, look again each second for this long before giving up (a market still assembling)",
    )


class DealRecord(BaseModel):
    """The buyer's view of one deal, from call to settlement: what the demo reports."""

    deal_id: str
    status: DealStatus = "calling"
    reason: str = ""
    invited: list[str] = []
    bids: dict[str, int] = {}
    refused: dict[str, str] = {}
    contract: Contract | None = None
    job: JobSpec | None = None
    result_hash: str = ""
    receipt: str = ""  # the provider's signed delivery receipt for the result it delivered
    result_shape: tuple[int, int] | None = None
    metering: dict[str, Any] = {}
    bill: list[dict[str, Any]] = []  # the metered bill, one line per payee (tasks.metering)
    paid: int = 0
    receipts: list[Receipt] = []
    started_at: float = 0.0
    finished_at: float = 0.0

    @property
    def done(self) -> bool:
        return self.status in ("settled", "refunded", "no_award", "failed")


@dataclass
class Call:
    """What the buyer keeps privately while a call is open."""

    auction: ReverseAuction
    fees: list[Payee]
    deadline: int
    tariffs: dict[str, Tariff] = field(default_factory=dict)  # payee -> how its line is metered
    trust: dict[str, float] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    domain: dict[str, Any] = field(default_factory=dict)  # the chain and escrow contract its contracts are signed for


@dataclass
class BuyerDeal:
    """One deal inside the buyer."""

    record: DealRecord
    call: Call | None = None  # shared by the replicas of one redundant job
    lifecycle: Deal | None = None  # the signed contract's state machine (from the award on)
    attempt: tuple[int, int] | None = None  # (request index, attempt) of a request's own deal
    group: str | None = None  # a replica's group: the first deal id of its redundant job
    replicas: list[str] = field(default_factory=list)  # of a group's first deal: every deal running the job
    delivered: JobResult | None = None  # a replica's checked result, awaiting the verdict
    result: JobResult | None = None  # the verified result paid for
    settling: list[int] | None = None  # a release written ahead (journaled before it is sent), until it is known to have landed


def resolve(registry: Any, request: JobRequest, job_id: str) -> tuple[JobSpec, list[Payee], dict[str, Tariff]]:
    """Turn a request by name into a spec by hash, the posted fees as payees (each line the
    most that payee may bill) and how each fee is metered."""
    models = registry.find_models(task=request.task, name=request.model)
    if not models:
        raise UnknownOffer(f"no {request.task} model named {request.model!r} is offered")
    model = models[0]
    datasets = registry.find_datasets(name=request.dataset) if request.dataset is not None else []
    if request.dataset is not None and not datasets:
        raise UnknownOffer(f"no dataset named {request.dataset!r} is offered")
    items = len(request.inputs) if request.inputs is not None else (datasets[0].items if datasets else 0)
    if datasets and datasets[0].models is not None and model.model_hash not in datasets[0].models:
        raise UnknownOffer(f"dataset {request.dataset!r} may not be read by model {request.model!r}")
    fees, tariffs = job_fees(model, datasets[0] if datasets else None, items, request.task, request.max_new_tokens)
    dataset_hash = vault = None
    if datasets:
        dataset_hash, vault = datasets[0].dataset_hash, datasets[0].vault or None
    spec = JobSpec(
        job_id=job_id,
        model_hash=models[0].model_hash,
        inputs=request.inputs,
        dataset_hash=dataset_hash,
        vault=vault,
        resources=request.resources,
        task=request.task,
        max_new_tokens=request.max_new_tokens,
    )
    return spec, fees, tariffs


def offered(registry: Any, request: JobRequest) -> bool:
    """Is there a model by that name, the dataset (if any) and a provider with the resources?"""
    res = request.resources
    return bool(
        registry.find_models(task=request.task, name=request.model)
        and (request.dataset is None or registry.find_datasets(name=request.dataset))
        and registry.find_compute(gpus=res.gpus, gpu_memory_mb=res.gpu_memory_mb)
    )
