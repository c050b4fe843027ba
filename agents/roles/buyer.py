"""The buyer: finds offers, calls for proposals, awards by reverse auction (price weighed against
each provider's reputation as the buyer sees it), signs the contract, locks the price in escrow,
verifies the result and releases payment, or gets its refund; and rates the delivery either way,
feeding the registry's one reputation graph.

Each message about one of its deals is heard only from the party the protocol expects at that
step (issue 19): bids from the providers it invited, everything after the award from the
contract's provider, a ruling from the ledger's arbiter, its timers from itself. Anything else is
refused and counted (``agents.deal_protocol.refuse``) and changes nothing. A delivery must carry
the provider's signed receipt for its result: it is the buyer's evidence if it disputes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agora.agents.agent import Agent, Context, on_message
from agora.agents.billing import job_fees, metered_bill, provider_tariffs
from agora.agents.deal_protocol import (
    CLAIM_GRACE_S,
    AcceptContract,
    AwardContract,
    CallForProposals,
    Claim,
    DeadlinePassed,
    DeclineContract,
    Deliver,
    EscrowFunded,
    ProposalsDue,
    Propose,
    Refuse,
    RejectProposal,
    ReportFailure,
    Ruling,
    Settled,
    Undelivered,
    refuse,
)
from agora.agents.errors import NotAParty, UnfoundedClaim, UnknownOffer
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.chain import ChainError, DeadlineNotReached, Receipt
from agora.economy.auction import Bid, ReverseAuction
from agora.economy.contract import Contract, Payee, deal_domain, deal_id_for
from agora.economy.errors import EconomyError
from agora.economy.lifecycle import FINAL, Deal, DealState
from agora.tasks.errors import TasksError, VerificationFailed
from agora.tasks.jobs import JobResult, JobSpec, Resources
from agora.tasks.metering import Tariff
from agora.tasks.verify import redundant, spot_check, verify_result

_MARKET = {"provider": "compute", "model_owner": "model", "data_owner": "data"}
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
    retries: int = Field(default=0, ge=0, le=16, description="after a refund (the provider failed or went silent), call the other providers again this many times")
    redundancy: int = Field(default=1, ge=1, le=7, description="run the job on this many providers and pay only those in the agreeing majority")
    spot_check: int = Field(default=0, ge=0, le=64, description="rows of an inline-input job the buyer re-runs itself, chosen at random, before paying")
    start_s: float = Field(default=0.0, ge=0, description="seconds after the buyer starts before it calls for this job (a population's demand over time)")
    discover_s: float = Field(default=10.0, ge=0, le=3600, description="while the named model, dataset or a provider with the resources is not offered yet, look again each second for this long before giving up (a market still assembling)")


class _OpenRequest(Message):
    n: int


class _AskRefund(Message):
    """Timer: a deal its provider froze is still unruled a grace past the deadline."""


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
class _Call:
    """What the buyer keeps privately while a call is open."""

    auction: ReverseAuction
    fees: list[Payee]
    deadline: int
    tariffs: dict[str, Tariff] = field(default_factory=dict)  # payee -> how its line is metered
    trust: dict[str, float] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    domain: dict[str, Any] = field(default_factory=dict)  # the chain and escrow contract its contracts are signed for


class Buyer(Agent):
    role = "buyer"

    def __init__(self, name: str, identity: Identity, requests: list[JobRequest]) -> None:
        super().__init__(name, identity)
        self.requests = list(requests)
        self.deals: dict[str, DealRecord] = {}
        self.results: dict[str, JobResult] = {}
        self._calls: dict[str, _Call] = {}
        self._lifecycles: dict[str, Deal] = {}  # the signed contract's state machine, per deal
        self._latest: dict[int, str] = {}  # request index -> the deal id of its latest attempt
        self._attempt: dict[str, tuple[int, int]] = {}  # deal id -> (request index, attempt)
        self._failed: dict[int, set[str]] = {}  # request index -> providers that failed it
        self._looking: dict[int, float] = {}  # request index -> when the buyer first looked for its offers
        self._replicas: dict[str, list[str]] = {}  # first deal id -> the deal ids running the same job
        self._group_of: dict[str, str] = {}  # replica deal id -> its group's first deal id
        self._delivered: dict[str, JobResult] = {}  # replica deal id -> its checked result, awaiting the verdict
        self.refused: dict[str, int] = {}  # reason -> messages refused (agents.deal_protocol.refuse)

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        ctx.registry.register_agent(self.address, self.name, self.role)
        for n, request in enumerate(self.requests):
            if request.start_s > 0:
                ctx.schedule(request.start_s, _OpenRequest(n=n))
            else:
                self._call_when_offered(ctx, n)

    @on_message(_OpenRequest)
    def open_later(self, ctx: Context, sender: str, msg: _OpenRequest) -> None:
        if sender != self.address:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not this buyer: its timers are its own"))
            return
        if msg.n not in self._latest and 0 <= msg.n < len(self.requests):
            self._call_when_offered(ctx, msg.n)

    def _call_when_offered(self, ctx: Context, n: int) -> None:
        """Call for request ``n`` once what it names is offered. Offers reach the registry as
        their owners start, which on a cluster is not before every buyer does (each shard
        publishes in batches), so an absent offer is looked for again each second for the
        request's ``discover_s`` before the call ends unresolved."""
        request = self.requests[n]
        first = self._looking.setdefault(n, ctx.now())
        if ctx.now() - first < request.discover_s and not self._offered(ctx, request):
            ctx.schedule(1.0, _OpenRequest(n=n))
            return
        self._looking.pop(n, None)
        self.open_call(ctx, request, n)

    @staticmethod
    def _offered(ctx: Context, request: JobRequest) -> bool:
        """Is there a model by that name, the dataset (if any) and a provider with the resources?"""
        res = request.resources
        return bool(
            ctx.registry.find_models(task=request.task, name=request.model)
            and (request.dataset is None or ctx.registry.find_datasets(name=request.dataset))
            and ctx.registry.find_compute(gpus=res.gpus, gpu_memory_mb=res.gpu_memory_mb)
        )

    def deal(self, deal_id: str) -> DealRecord:
        return self.deals[deal_id]

    def result_vectors(self, deal_id: str) -> np.ndarray | None:
        """The verified embeddings of a settled deal."""
        result = self.results.get(deal_id)
        return None if result is None else result.array()

    def open_contracts(self) -> int:
        return sum(1 for deal in self._lifecycles.values() if deal.state not in FINAL)

    def all_done(self) -> bool:
        """Every request's latest attempt has ended, replicas included (and no retry is under way)."""
        latest = [r for d in self._latest.values() for r in self._replicas.get(d, [d])]
        return len(self._latest) == len(self.requests) and all(self.deals[d].done for d in latest)

    def latest(self, n: int = 0) -> DealRecord:
        """The latest attempt at request ``n`` (the one that settled, if any did)."""
        return self.deals[self._latest[n]]

    def history(self, deal_id: str) -> list[dict[str, Any]]:
        """The signed contract's states as this buyer's Deal walked them (state, by whom, ledger
        time, transaction): empty for a deal that never got a contract."""
        deal = self._lifecycles.get(deal_id)
        return [] if deal is None else [step.model_dump(mode="json") for step in deal.history]

    # -- 1. find offers and call for proposals -------------------------------------------
    def open_call(self, ctx: Context, request: JobRequest, n: int, attempt: int = 0) -> DealRecord:
        try:
            spec, fees, tariffs = self._resolve(ctx, request, n)
        except (UnknownOffer, TasksError) as exc:
            record = self._record(ctx.now(), f"unresolved-{n}-{attempt}", status="no_award", reason=str(exc))
            self._latest[n] = record.deal_id
            return record
        job_hash = "0x" + spec.digest()
        # a new attempt is a new deal: its own id, escrow and contract (the failed one was refunded)
        deal_id = deal_id_for(self.address, job_hash, n if attempt == 0 else n + 1_000_000 * attempt)
        self._latest[n], self._attempt[deal_id] = deal_id, (n, attempt)
        budget = request.max_price - sum(f.amount for f in fees)
        failed = self._failed.get(n, set())
        offers = [c for c in ctx.registry.find_compute(gpus=spec.resources.gpus, gpu_memory_mb=spec.resources.gpu_memory_mb) if c.owner not in failed]
        providers = [c.owner for c in offers]
        record = self._record(ctx.now(), deal_id, job=spec, invited=providers)
        if budget <= 0:
            return self._end(ctx.now(), record, "no_award", f"posted fees {sum(f.amount for f in fees)} leave no compute budget")
        if not providers:
            return self._end(ctx.now(), record, "no_award", "no provider has the resources")
        deadline = int(ctx.now()) + request.deadline_s
        trust = ctx.registry.trust(self.address, providers)
        auction = ReverseAuction(max_price=budget, risk_weight=request.risk_weight, gpu_memory_mb=spec.resources.gpu_memory_mb)
        self._calls[deal_id] = _Call(
            auction=auction, fees=fees, deadline=deadline, trust=trust, tariffs={**tariffs, **provider_tariffs(spec.resources.gpus, offers)}, domain=deal_domain(ctx.ledger),
        )
        for p in providers:
            ctx.send(p, CallForProposals(deal_id=deal_id, job=spec, job_hash=job_hash, compute_budget=budget, deadline=deadline))
        ctx.schedule(request.reply_window_s, ProposalsDue(deal_id=deal_id))
        return record

    def _resolve(self, ctx: Context, request: JobRequest, n: int) -> tuple[JobSpec, list[Payee], dict[str, Tariff]]:
        """Turn a request by name into a spec by hash, the posted fees as payees (each line the
        most that payee may bill) and how each fee is metered."""
        models = ctx.registry.find_models(task=request.task, name=request.model)
        if not models:
            raise UnknownOffer(f"no {request.task} model named {request.model!r} is offered")
        model = models[0]
        datasets = ctx.registry.find_datasets(name=request.dataset) if request.dataset is not None else []
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
            job_id=f"{self.name}-{n}",
            model_hash=models[0].model_hash,
            inputs=request.inputs,
            dataset_hash=dataset_hash,
            vault=vault,
            resources=request.resources,
            task=request.task,
            max_new_tokens=request.max_new_tokens,
        )
        return spec, fees, tariffs

    # -- 2. collect bids, award by reverse auction ---------------------------------------
    @on_message(Propose)
    def propose(self, ctx: Context, sender: str, msg: Propose) -> None:
        call = self._open(ctx, msg.deal_id, sender)
        if call is None:
            return
        call.answered.add(sender)
        try:
            call.auction.submit(Bid(bidder=sender, price=msg.price, reputation=call.trust.get(sender, 0.0), free_gpu_memory_mb=msg.free_gpu_memory_mb))
            self.deals[msg.deal_id].bids[sender] = msg.price
        except EconomyError as exc:
            self.deals[msg.deal_id].refused[sender] = f"bid rejected: {exc}"
        self._award_when_all_answered(ctx, msg.deal_id)

    @on_message(Refuse)
    def refuse(self, ctx: Context, sender: str, msg: Refuse) -> None:
        call = self._open(ctx, msg.deal_id, sender)
        if call is None:
            return
        call.answered.add(sender)
        self.deals[msg.deal_id].refused[sender] = msg.reason
        self._award_when_all_answered(ctx, msg.deal_id)

    @on_message(ProposalsDue)
    def proposals_due(self, ctx: Context, sender: str, msg: ProposalsDue) -> None:
        record = self._from(ctx, sender, msg.deal_id, "self")
        if record is not None and record.status == "calling":
            self.award(ctx, msg.deal_id)

    def _from(self, ctx: Context, sender: str, deal_id: str, party: str) -> DealRecord | None:
        """The record of ``deal_id`` if ``sender`` is the party expected ("invited": a provider
        this call went to; "provider": the contract's; "arbiter": the ledger's; "self": a timer);
        otherwise the message is refused and counted, and None."""
        record = self.deals.get(deal_id)
        if record is None:
            allowed: set[str] = set()
        elif party == "invited":
            allowed = set(record.invited)
        elif party == "provider":
            allowed = {record.contract.provider} if record.contract is not None else set()
        else:
            allowed = {str(ctx.ledger.arbiter) if party == "arbiter" else self.address}
        if sender.lower() not in {a.lower() for a in allowed}:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the {party} of a deal {deal_id} of mine"))
            return None
        return record

    def _open(self, ctx: Context, deal_id: str, sender: str) -> _Call | None:
        record = self._from(ctx, sender, deal_id, "invited")
        if record is None or record.status != "calling":
            return None
        return self._calls[deal_id]

    def _award_when_all_answered(self, ctx: Context, deal_id: str) -> None:
        if self._calls[deal_id].answered >= set(self.deals[deal_id].invited):
            self.award(ctx, deal_id)

    def award(self, ctx: Context, deal_id: str) -> None:
        record, call = self.deals[deal_id], self._calls[deal_id]
        k = self._request_of(deal_id).redundancy
        award = call.auction.clear()
        if award is None:
            self._end(ctx.now(), record, "no_award", "no acceptable proposal")
            return
        if k == 1:
            winners = [(award.winner, award.price)]
        else:  # the k best by the auction's own measure, each on a deal of its own
            ranked = sorted(call.auction.bids, key=lambda b: (call.auction.cost(b), -b.reputation, b.bidder))
            if len(ranked) < k:
                self._end(ctx.now(), record, "no_award", f"redundancy {k} needs {k} acceptable proposals, got {len(ranked)}")
                return
            winners = [(b.bidder, b.price) for b in ranked[:k]]
        ids = [deal_id] + [self._replica(record, r) for r in range(1, len(winners))]
        if k > 1:
            self._replicas[deal_id] = ids
            self._group_of.update({i: deal_id for i in ids})
        for replica_id, (winner, price) in zip(ids, winners, strict=False):
            replica = self.deals[replica_id]
            self._calls[replica_id] = call
            contract = self.draft_contract(replica, winner, price)
            replica.contract, replica.status = contract, "awarded"
            deal = self._lifecycles[replica_id] = Deal(contract, ctx.ledger)
            signature = ctx.wallet.sign_typed_data(contract.typed_data())
            deal.sign(self.address, signature)
            call_id = None if replica_id == deal_id else deal_id
            ctx.send(winner, AwardContract(deal_id=replica_id, contract=contract, buyer_signature=signature, call_id=call_id))
        chosen = {w for w, _ in winners}
        for loser in call.auction.bids:
            if loser.bidder not in chosen:
                ctx.send(loser.bidder, RejectProposal(deal_id=deal_id))

    def _replica(self, record: DealRecord, r: int) -> str:
        """A deal id for the ``r``-th extra provider of a redundant job: same job, own contract."""
        assert record.job is not None
        replica_id = deal_id_for(self.address, "0x" + record.job.digest(), int(record.deal_id, 16) % 1_000_000_007 + 10_000_000 * r)
        self._record(record.started_at, replica_id, job=record.job, invited=record.invited, bids=dict(record.bids))
        return replica_id

    def draft_contract(self, record: DealRecord, provider: str, price: int) -> Contract:
        """The contract the buyer signs: the provider at its bid, then the posted fees."""
        assert record.job is not None
        call = self._calls[record.deal_id]
        return Contract(
            deal_id=record.deal_id,
            buyer=self.address,
            payees=[Payee(address=provider, role="provider", amount=price), *call.fees],
            deadline=call.deadline,
            job_hash="0x" + record.job.digest(),
            **call.domain,
        )

    # -- 3. countersigned: lock the price in escrow ---------------------------------------
    @on_message(AcceptContract)
    def accepted(self, ctx: Context, sender: str, msg: AcceptContract) -> None:
        record = self._from(ctx, sender, msg.deal_id, "provider")
        if record is None or record.status != "awarded" or record.contract is None:
            return
        deal = self._lifecycles[msg.deal_id]
        try:
            deal.sign(sender, msg.provider_signature)  # checks it is the provider's signature
            deal.fund(ctx.wallet)
        except (EconomyError, ChainError) as exc:
            self._end(ctx.now(), record, "failed", f"could not fund the contract: {exc}")
            return
        receipt = deal.receipts[-1]
        record.receipts.append(receipt)
        record.status = "funded"
        ctx.send(sender, EscrowFunded(deal_id=msg.deal_id, tx_hash=receipt.tx_hash))
        ctx.schedule(max(0.0, record.contract.deadline - ctx.now()) + 1, DeadlinePassed(deal_id=msg.deal_id))

    @on_message(DeclineContract)
    def declined(self, ctx: Context, sender: str, msg: DeclineContract) -> None:
        record = self._from(ctx, sender, msg.deal_id, "provider")
        if record is not None and record.status == "awarded":
            self._end(ctx.now(), record, "no_award", f"provider declined: {msg.reason}")

    # -- 4. delivery: verify, then pay ------------------------------------------------------
    @on_message(Deliver)
    def delivered(self, ctx: Context, sender: str, msg: Deliver) -> None:
        record = self._from(ctx, sender, msg.deal_id, "provider")
        if record is None or record.status != "funded" or record.contract is None:
            return
        assert record.job is not None
        try:
            record.contract.verify_receipt(msg.result.result_hash, msg.receipt)
        except EconomyError as exc:  # without it the buyer could not show the arbiter what it got
            refuse(self, ctx, sender, UnfoundedClaim(f"a delivery of {msg.deal_id} without the provider's receipt: {exc}"))
            return
        record.receipt = msg.receipt
        deal = self._lifecycles[msg.deal_id]
        try:
            deal.deliver(sender, msg.result.result_hash, cost=record.contract.max_amount)
        except EconomyError as exc:  # late, or delivered twice
            record.reason = f"delivery refused: {exc}"
            return
        items = len(record.job.inputs) if record.job.inputs is not None else ctx.registry.dataset(record.job.dataset_hash).items
        try:
            if msg.result.metering.items != items:
                raise VerificationFailed(f"{msg.result.metering.items} items processed, {items} paid for")
            verify_result(msg.result, record.job)
        except TasksError as exc:
            record.reason = f"result rejected: {exc}"  # no payment; refunded (and rated) at the deadline
            return
        group = self._group_of.get(msg.deal_id)
        if group is not None:  # a replica: paid or disputed once the replicas can be compared
            self._delivered[msg.deal_id] = msg.result
            record.reason = "delivered; awaiting the other replicas"
            self._judge(ctx, group)
            return
        if not self._spot_checked(ctx, record, msg.result):
            self._dispute(ctx, record, msg.result, "failed the buyer's spot check")
            return
        self._pay(ctx, record, msg.result)

    def _request_of(self, deal_id: str) -> JobRequest:
        """The request a deal (or a replica of one) was opened for."""
        n, _ = self._attempt.get(self._group_of.get(deal_id, deal_id), (0, 0))
        return self.requests[n]

    def _spot_checked(self, ctx: Context, record: DealRecord, result: JobResult) -> bool:
        """Re-run a few randomly chosen rows on the buyer's own executor (the provider cannot know
        which) and compare them with the delivered ones; True when there is nothing to check."""
        rows = self._request_of(record.deal_id).spot_check
        if not rows or record.job is None or record.job.inputs is None or ctx.executor is None:
            return True
        try:
            ok, checked = spot_check(result, record.job, lambda spec: ctx.executor.run(spec, requester=self.address), ctx.rng, rows)
        except TasksError as exc:
            ctx.log.warning("spot check of %s could not run: %s", record.deal_id, exc)
            return True  # no evidence either way: the result already passed verify_result
        record.reason = f"spot-checked rows {checked}"
        return ok

    def _dispute(self, ctx: Context, record: DealRecord, result: JobResult, why: str) -> None:
        """Freeze the deal's escrow and put the result before the arbiter, who re-runs the job."""
        assert record.contract is not None and record.job is not None
        self._lifecycles[record.deal_id].dispute(ctx.wallet, why)
        record.status, record.reason = "disputed", why
        if ctx.ledger.arbiter in ctx.registry.agents():  # the ledger's arbiter, never one that calls itself so
            c, signatures = record.contract, self._lifecycles[record.deal_id].signatures
            claim = Claim(
                deal_id=record.deal_id, contract=c, buyer_signature=signatures[c.buyer], provider_signature=signatures[c.provider],
                job=record.job, result=result, receipt=record.receipt, cost=c.max_amount,
            )
            ctx.send(ctx.ledger.arbiter, claim)

    def _pay(self, ctx: Context, record: DealRecord, result: JobResult) -> None:
        """Verify the delivery on the deal, bill it from its metering, settle line by line."""
        assert record.contract is not None
        deal = self._lifecycles[record.deal_id]
        deal.verify(self.address, result.result_hash)
        call = self._calls[record.deal_id]
        charged = metered_bill(record.contract, call.tariffs, result.metering)  # what the job used, each line within its line
        deal.settle(ctx.wallet, amounts=charged.amounts())
        receipt = deal.receipts[-1]
        record.receipts.append(receipt)
        self.results[record.deal_id] = result
        record.result_hash, record.result_shape = result.result_hash, result.shape
        record.metering = result.metering.model_dump()
        record.bill = [line.model_dump() for line in charged.lines]
        record.paid = charged.total
        self._end(ctx.now(), record, "settled", "")
        self._rate(ctx, record, verified=True)
        for payee in {p.address for p in record.contract.payees}:
            ctx.send(payee, Settled(deal_id=record.deal_id, paid=record.paid, tx_hash=receipt.tx_hash))

    # -- redundancy: compare the replicas, pay the majority, take the rest to the arbiter -----
    def _judge(self, ctx: Context, group: str) -> None:
        ids = self._replicas[group]
        if any(not self.deals[i].done and i not in self._delivered for i in ids):
            return  # a replica is still running (its deadline ends the wait)
        results = {self.deals[i].contract.provider: self._delivered[i] for i in ids if i in self._delivered}  # type: ignore[union-attr]
        verdict = redundant(results)
        for i in ids:
            if i not in self._delivered:
                continue
            record, result = self.deals[i], self._delivered.pop(i)
            assert record.contract is not None
            if record.contract.provider in verdict.agreed:
                self._pay(ctx, record, result)
                continue
            # in the minority, or nobody agreed: frozen for the arbiter, who re-runs the job
            self._dispute(ctx, record, result, "outvoted by the other replicas" if verdict.verified else "no majority among the replicas")

    @on_message(Ruling)
    def ruled(self, ctx: Context, sender: str, msg: Ruling) -> None:
        """The arbiter ruled on a dispute of either party's. What it did is read on the ledger; a
        result it paid for comes with the ruling and is kept once it verifies, so a provider that
        delivered one thing and claimed with another still hands over what it was paid for."""
        record = self._from(ctx, sender, msg.deal_id, "arbiter")
        if record is None or record.status not in ("funded", "disputed"):
            return
        state = self._lifecycles[msg.deal_id].sync()  # the ledger says what the ruling did
        if state not in FINAL:
            return
        record.paid = msg.paid if state is DealState.SETTLED else 0
        if state is DealState.SETTLED and msg.result is not None and record.job is not None:
            try:
                verify_result(msg.result, record.job)
                self.results[record.deal_id] = msg.result
                record.result_hash, record.result_shape = msg.result.result_hash, msg.result.shape
            except TasksError as exc:
                ctx.log.warning("the result ruled on for %s does not verify: %s", record.deal_id, exc)
        self._end(ctx.now(), record, "settled" if state is DealState.SETTLED else "refunded", f"arbiter: {msg.reason}")

    # -- failure paths: the provider refunded, or the deadline passed ----------------------
    @on_message(ReportFailure)
    def failure(self, ctx: Context, sender: str, msg: ReportFailure) -> None:
        record = self._from(ctx, sender, msg.deal_id, "provider")
        if record is None or record.done:
            return
        if self._lifecycles[msg.deal_id].sync() is DealState.REFUNDED:  # trust the ledger, not the message
            self._end(ctx.now(), record, "refunded", f"provider failed: {msg.reason}")
            self._rate(ctx, record, verified=False)
            self._retry(ctx, record)
        else:
            record.reason = f"provider failed without refunding: {msg.reason}"

    @on_message(DeadlinePassed)
    def deadline_passed(self, ctx: Context, sender: str, msg: DeadlinePassed) -> None:
        record = self._from(ctx, sender, msg.deal_id, "self")
        if record is None or record.status != "funded":
            return
        deal = self._lifecycles[msg.deal_id]
        state = deal.sync()
        if state is DealState.DISPUTED:  # the provider froze it for the arbiter: its ruling ends the deal
            record.status, record.reason = "disputed", "the provider disputed the escrow; awaiting the arbiter"
            ctx.schedule(CLAIM_GRACE_S + 1.0, _AskRefund(deal_id=msg.deal_id))  # unless it proves no delivery by then
            return
        if state in FINAL:  # the arbiter already ruled (its Ruling may still be on its way)
            self._end(ctx.now(), record, "settled" if state is DealState.SETTLED else "refunded", "ruled by the arbiter")
            return
        try:
            if ctx.ledger.now() < deal.contract.deadline:
                raise DeadlineNotReached(f"ledger time {ctx.ledger.now()}")
            deal.timeout(ctx.wallet)
        except DeadlineNotReached:  # the ledger's clock lags ours: look again shortly
            ctx.schedule(1.0, DeadlinePassed(deal_id=msg.deal_id))
            return
        record.receipts.append(deal.receipts[-1])
        self._end(ctx.now(), record, "refunded", record.reason or "deadline passed without a delivery")
        self._rate(ctx, record, verified=False)  # a rating needs the deal settled: the refund just landed
        if msg.deal_id in self._group_of:
            self._judge(ctx, self._group_of[msg.deal_id])
            return
        self._retry(ctx, record)

    @on_message(_AskRefund)
    def ask_refund(self, ctx: Context, sender: str, msg: _AskRefund) -> None:
        """The provider froze the escrow and, a grace past the deadline, no ruling came: it
        proved no delivery, so the buyer asks the arbiter for its escrow back (the arbiter checks
        the contract and the time; a provider with a valid claim was ruled on before)."""
        record = self._from(ctx, sender, msg.deal_id, "self")
        if record is None or record.status != "disputed" or record.contract is None:
            return
        deal = self._lifecycles[msg.deal_id]
        if deal.sync() is DealState.DISPUTED:
            c, signatures = record.contract, deal.signatures
            ctx.send(ctx.ledger.arbiter, Undelivered(deal_id=msg.deal_id, contract=c, buyer_signature=signatures[c.buyer], provider_signature=signatures[c.provider]))

    def _retry(self, ctx: Context, record: DealRecord) -> None:
        """After a refund: call the providers that have not failed this request, if the request
        allows another attempt. The refunded deal stays as it ended; nothing was paid for it."""
        found = self._attempt.get(record.deal_id)
        if found is None or record.contract is None:
            return
        n, attempt = found
        self._failed.setdefault(n, set()).add(record.contract.provider)
        if attempt < self.requests[n].retries:
            self.open_call(ctx, self.requests[n], n, attempt + 1)

    # -- helpers -----------------------------------------------------------------------------
    def _rate(self, ctx: Context, record: DealRecord, verified: bool) -> None:
        """Feed the one reputation graph: a verified delivery counts for every payee in its own
        market; a failed one counts against the provider (with the contract it signed)."""
        contract = record.contract
        assert contract is not None
        if not verified:
            lifecycle = self._lifecycles.get(record.deal_id)
            signature = lifecycle.signatures.get(contract.provider, "") if lifecycle is not None else ""  # the provider's own: a rating against it needs it
            ctx.registry.rate(ctx.wallet.address, contract.provider, False, max(contract.max_amount, 1), "compute", deal_id=record.deal_id, contract=contract, signature=signature)
            return
        for payee in contract.payees:
            if payee.address != ctx.wallet.address:  # a buyer that owns the model does not rate itself
                ctx.registry.rate(ctx.wallet.address, payee.address, True, max(payee.amount, 1), _MARKET[payee.role], deal_id=record.deal_id)

    def _record(self, now: float, deal_id: str, **fields: Any) -> DealRecord:
        """A new deal record, timed on the runtime's clock (virtual in a simulation)."""
        record = DealRecord(deal_id=deal_id, started_at=now, **fields)
        self.deals[deal_id] = record
        return record

    @staticmethod
    def _end(now: float, record: DealRecord, status: DealStatus, reason: str) -> DealRecord:
        record.status, record.reason, record.finished_at = status, reason, now
        return record
