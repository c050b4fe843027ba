"""The compute provider: bids on jobs it can run, countersigns, runs the job on its executor
(Ray tasks with the job's GPUs in deployment), delivers, or refunds the buyer when it fails."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from agents.agent import Agent, Context, on_message
from agents.deal_protocol import (
    AcceptContract,
    AwardContract,
    CallForProposals,
    DeclineContract,
    Deliver,
    EscrowFunded,
    JobDone,
    Propose,
    Refuse,
    RejectProposal,
    ReportFailure,
    Claim,
    PaymentDue,
    Ruling,
    Settled,
)
from agents.identity import Identity
from agents.registry import ComputeOffer, ServiceRecord
from agents.roles.owners import SERVICE_TTL
from chain import ChainError
from economy.contract import Contract
from economy.errors import EconomyError
from economy.lifecycle import FINAL, Deal, DealState
from tasks.jobs import JobResult
from tasks.scheduling import Capacity, CapacityExceeded


@dataclass
class _Job:
    call: CallForProposals
    buyer: str
    price: int
    contract: Contract | None = None
    deal: Deal | None = None  # the provider's own view of the signed contract
    status: str = "proposed"
    deal_id: str = ""  # the deal it runs under: the call's, or a redundant job's own
    result: JobResult | None = None  # what it delivered (the evidence if the buyer never pays)

    def __post_init__(self) -> None:
        self.deal_id = self.deal_id or self.call.deal_id


class ComputeProvider(Agent):
    """Sells GPU/CPU time at ``price_per_second``; quotes ``ceil(items / throughput)`` seconds."""

    role = "compute_provider"

    def __init__(
        self, name: str, identity: Identity, *, gpus: float, price_per_second: int, throughput: float = 100.0, gpu_memory_mb: int = 0, cpus: float = 1.0, stake: int = 0,
        claim_margin_s: float = 30.0,
    ) -> None:
        super().__init__(name, identity)
        self.claim_margin_s = claim_margin_s  # how long before the deadline an unpaid delivery goes to the arbiter
        self.stake = stake  # bonded at start: what an arbiter may slash for wrong work
        self.book = Capacity(gpus, gpu_memory_mb, cpus)  # what it has, and what accepted jobs hold until they end
        self.price_per_second = price_per_second
        self.throughput = throughput
        self.jobs: dict[str, _Job] = {}

    @property
    def capacity(self) -> dict[str, float]:
        return self.book.total.model_dump()

    def open_contracts(self) -> int:
        return sum(1 for job in self.jobs.values() if job.deal is not None and job.deal.state not in FINAL)

    def on_start(self, ctx: Context) -> None:
        ctx.wallet.open_account()
        if self.stake:
            ctx.wallet.stake(self.stake)
        offer = ComputeOffer(owner=self.address, price_per_second=self.price_per_second, throughput=self.throughput, **self.capacity)
        ctx.registry.register_compute(offer)
        ctx.registry.register_agent(self.address, self.name, self.role)
        terms = {"gpus": self.capacity["gpus"], "gpu_memory_mb": self.capacity["gpu_memory_mb"], "throughput": self.throughput, "per": "second"}
        service = ServiceRecord(
            address=self.address, name=self.name, capability="compute", price=self.price_per_second,
            terms=terms, protocols=self.protocol_digests(), ttl=SERVICE_TTL,
        )
        ctx.registry.register_service(service, now=ctx.now())

    def quote(self, items: int) -> int:
        return max(1, math.ceil(items / self.throughput)) * self.price_per_second

    @on_message(CallForProposals)
    def call_for_proposals(self, ctx: Context, sender: str, msg: CallForProposals) -> None:
        job = msg.job
        reason = self._cannot_run(ctx, msg)
        if reason:
            ctx.send(sender, Refuse(deal_id=msg.deal_id, reason=reason))
            return
        items = len(job.inputs) if job.inputs is not None else ctx.registry.dataset(job.dataset_hash).items
        price = self.quote(items)
        if price > msg.compute_budget:
            ctx.send(sender, Refuse(deal_id=msg.deal_id, reason=f"my price {price} exceeds the budget {msg.compute_budget}"))
            return
        self.jobs[msg.deal_id] = _Job(call=msg, buyer=sender, price=price)
        ctx.send(sender, Propose(deal_id=msg.deal_id, price=price, free_gpu_memory_mb=self.book.free().gpu_memory_mb))

    def _cannot_run(self, ctx: Context, msg: CallForProposals) -> str:
        need = msg.job.resources
        if need.gpus > self.capacity["gpus"] or need.gpu_memory_mb > self.capacity["gpu_memory_mb"]:
            return f"needs {need.gpus} GPUs / {need.gpu_memory_mb} MB, I have {self.capacity}"
        for deal_id, held in self.jobs.items():  # awarded but never funded: free what it held once its deadline passed
            if held.status == "signed" and held.call.deadline <= ctx.now():
                self.book.release(deal_id)
                held.status = "expired"
        busy = self.book.fits(need)
        if busy:
            return f"busy: the job {busy}"
        if msg.job_hash != "0x" + msg.job.digest():
            return "job hash does not match the job"
        if msg.deadline <= ctx.now():
            return "deadline already passed"
        return ""

    @on_message(AwardContract)
    def award(self, ctx: Context, sender: str, msg: AwardContract) -> None:
        job = self.jobs.get(msg.deal_id)
        if job is None and msg.call_id is not None and msg.call_id in self.jobs and self.jobs[msg.call_id].status == "proposed":
            job = self.jobs[msg.deal_id] = dataclasses.replace(self.jobs[msg.call_id], deal_id=msg.deal_id)  # one replica of a redundant job
            self.jobs[msg.call_id].status = "replica"
        c = msg.contract
        problem = ""
        if job is None or sender != job.buyer or c.buyer != sender:
            problem = "no proposal of mine matches this award"
        elif c.provider != self.address or c.payees[0].amount != job.price:
            problem = "contract does not pay my proposed price to me"
        elif c.job_hash != job.call.job_hash or c.deadline != job.call.deadline:
            problem = "contract terms differ from the call for proposals"
        else:
            deal = Deal(c, ctx.ledger)
            try:
                deal.sign(sender, msg.buyer_signature)
                self.book.reserve(msg.deal_id, job.call.job.resources)  # held from acceptance to the job's end
            except (EconomyError, CapacityExceeded) as exc:
                problem = str(exc)
        if problem:
            ctx.send(sender, DeclineContract(deal_id=msg.deal_id, reason=problem))
            return
        signature = ctx.wallet.sign_typed_data(c.typed_data())
        deal.sign(self.address, signature)
        job.contract, job.deal, job.status = c, deal, "signed"
        ctx.send(sender, AcceptContract(deal_id=msg.deal_id, provider_signature=signature))

    @on_message(RejectProposal)
    def rejected(self, ctx: Context, sender: str, msg: RejectProposal) -> None:
        job = self.jobs.get(msg.deal_id)
        if job is not None and sender == job.buyer:
            job.status = "lost"

    @on_message(EscrowFunded)
    def funded(self, ctx: Context, sender: str, msg: EscrowFunded) -> None:
        job = self.jobs.get(msg.deal_id)
        if job is None or job.deal is None or sender != job.buyer:
            return
        try:
            funded = job.deal.sync() is DealState.FUNDED  # trust the ledger, not the message
        except EconomyError as exc:
            funded = False
            ctx.log.warning("not starting %s: %s", msg.deal_id, exc)
        if not funded:
            return
        job.deal.start(self.address)
        job.status = "running"
        self.run_job(ctx, job)

    def run_job(self, ctx: Context, job: _Job) -> None:
        """Start the job off this agent's mailbox (it keeps answering calls meanwhile); its
        outcome comes back as a ``JobDone`` to itself."""
        assert job.contract is not None and job.deal is not None
        budget = max(1.0, job.contract.deadline - ctx.now())
        executor, spec = ctx.executor, job.call.job  # taken now: the work may run on another thread

        def done(result: JobResult | None, error: Exception | None) -> JobDone:
            return JobDone(deal_id=job.deal_id, result=result, error="" if error is None else str(error) or type(error).__name__)

        ctx.run_off_mailbox(lambda: executor.run(spec, timeout_s=budget, requester=self.address), done)

    @on_message(JobDone)
    def job_done(self, ctx: Context, sender: str, msg: JobDone) -> None:
        """Deliver the result, or refund the buyer and say why."""
        job = self.jobs.get(msg.deal_id)
        if sender != self.address or job is None or job.deal is None or job.contract is None or job.status != "running":
            return
        self.book.release(job.deal_id)
        if msg.result is None:
            job.status = "failed"
            refund = ""
            try:
                job.deal.fail(ctx.wallet)
                refund = job.deal.receipts[-1].tx_hash
            except (ChainError, EconomyError) as chain_exc:  # already settled or refunded by the buyer
                ctx.log.warning("refund of %s failed: %s", job.deal_id, chain_exc)
            ctx.send(job.buyer, ReportFailure(deal_id=job.deal_id, reason=msg.error, refund_tx=refund))
            return
        try:
            job.deal.deliver(self.address, msg.result.result_hash, cost=job.contract.max_amount)
        except EconomyError as exc:  # finished after the deadline: the buyer takes its refund
            job.status = "late"
            ctx.log.warning("not delivering %s: %s", job.deal_id, exc)
            return
        job.status = "delivered"
        job.result = msg.result
        ctx.send(job.buyer, Deliver(deal_id=job.deal_id, result=msg.result))
        # a buyer that never settles would take its refund at the deadline: before then, claim
        left = job.contract.deadline - ctx.now()
        ctx.schedule(max(0.0, left - min(self.claim_margin_s, left / 2)), PaymentDue(deal_id=job.deal_id))

    @on_message(PaymentDue)
    def payment_due(self, ctx: Context, sender: str, msg: PaymentDue) -> None:
        """Delivered and still unpaid near the deadline: freeze the escrow and ask the arbiter
        to rule. The arbiter re-runs the job; a result that matches its own run is paid the
        contract (the buyer's silence does not void what it signed)."""
        job = self.jobs.get(msg.deal_id)
        if sender != self.address or job is None or job.deal is None or job.result is None or job.contract is None:
            return
        if job.deal.sync() is not DealState.DELIVERED:  # paid, refunded or disputed meanwhile
            return
        if ctx.ledger.arbiter not in ctx.registry.agents():  # frozen with nobody to rule, the money would be stuck for good
            ctx.log.warning("unpaid %s: no arbiter agent runs here to claim from; the buyer's deadline refunds it", job.deal_id)
            return
        try:
            job.deal.dispute(ctx.wallet, reason="delivered, not paid before the deadline")
        except (ChainError, EconomyError) as exc:
            ctx.log.warning("could not dispute unpaid %s: %s", job.deal_id, exc)
            return
        job.status = "claimed"
        claim = Claim(deal_id=job.deal_id, job=job.call.job, result=job.result, provider=self.address, cost=job.contract.max_amount)
        ctx.send(ctx.ledger.arbiter, claim)

    @on_message(Ruling)
    def ruled(self, ctx: Context, sender: str, msg: Ruling) -> None:
        job = self.jobs.get(msg.deal_id)
        if job is not None and job.deal is not None and sender == ctx.ledger.arbiter:
            state = job.deal.sync()  # the ledger says what the ruling did
            job.status = "paid" if state is DealState.SETTLED else f"refunded by the arbiter (slashed {msg.slashed})"

    @on_message(Settled)
    def settled(self, ctx: Context, sender: str, msg: Settled) -> None:
        job = self.jobs.get(msg.deal_id)
        if job is not None and job.deal is not None and sender == job.buyer and job.deal.sync() is DealState.SETTLED:
            job.status = "paid"

    def job_status(self, deal_id: str) -> str:
        job = self.jobs.get(deal_id)
        return job.status if job else "unknown"
