"""The compute provider: bids on jobs it can run, countersigns, runs the job on its executor
(Ray tasks with the job's GPUs in deployment), delivers with a signed receipt, or refunds the
buyer when it fails.

It hears each deal only from its parties (issue 19): a call for proposals only under a deal id
that is its sender's own (a stranger's call under a buyer's id used to overwrite that buyer's job,
killing the award or leaving the GPU reserved for good), everything after it only from that
deal's buyer, a ruling only from the ledger's arbiter; anything else is refused and counted
(``agents.deal_protocol.refuse``). If its buyer disputes a delivery, the provider puts its own
evidence before the arbiter before the deadline."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from agora.agents.agent import Agent, Context, on_message
from agora.agents.deal_protocol import (
    AcceptContract,
    AwardContract,
    CallForProposals,
    Claim,
    DeclineContract,
    Deliver,
    EscrowFunded,
    JobDone,
    PaymentDue,
    Propose,
    Refuse,
    RejectProposal,
    ReportFailure,
    Ruling,
    Settled,
    refuse,
)
from agora.agents.errors import ForeignDeal, NotAParty
from agora.agents.identity import Identity
from agora.agents.registry import ComputeOffer, ServiceRecord
from agora.agents.roles.owners import SERVICE_TTL
from agora.chain import ChainError
from agora.chain.types import id_owner, split
from agora.economy.contract import Contract
from agora.economy.errors import EconomyError
from agora.economy.lifecycle import FINAL, Deal, DealState
from agora.tasks.executor import vault_owner
from agora.tasks.jobs import JobResult, JobSpec
from agora.tasks.scheduling import Capacity, CapacityExceeded
from agora.tasks.vault import ResultHeld


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
    drawn: int = 0  # the data fee it paid the vault's owner at use, out of the buyer's escrow
    receipt: str = ""  # its signature over (deal id, result hash), sent with the result

    def __post_init__(self) -> None:
        self.deal_id = self.deal_id or self.call.deal_id


def run_paying_data_fee(executor: Any, wallet: Any, spec: JobSpec, deal_id: str, timeout_s: float | None = None) -> tuple[JobResult, int]:
    """Run ``spec`` as ``wallet``'s agent under ``deal_id``; returns the result and the data fee
    drawn for it. A data owner's vault holds the result (ResultHeld, naming a line) until that
    line is paid: it is drawn from the deal's escrow (only a line of the vault's owner, in this
    deal) and the same request collects the result. The provider runs jobs this way, and the
    arbiter its re-runs."""
    try:
        return executor.run(spec, timeout_s=timeout_s, requester=wallet.address, deal_id=deal_id), 0
    except ResultHeld as held:
        escrow = wallet.ledger.escrow(deal_id)
        line = held.line
        if held.deal_id.lower() != deal_id.lower() or not 0 < line < len(escrow.payees) or escrow.payees[line].lower() != vault_owner(spec.vault or "").lower():
            raise  # a line that is not the vault owner's in this deal: pay nobody
        wallet.draw(deal_id, line)
        drawn = split(escrow.amount, escrow.shares_bps)[line]  # a draw pays the line's whole share
        return executor.run(spec, timeout_s=timeout_s, requester=wallet.address, deal_id=deal_id), drawn


class ComputeProvider(Agent):
    """Sells GPU/CPU time at ``price_per_second``; quotes ``ceil(items / throughput)`` seconds."""

    role = "compute_provider"

    def __init__(
        self,
        name: str,
        identity: Identity,
        *,
        gpus: float,
        price_per_second: int,
        throughput: float = 100.0,
        gpu_memory_mb: int = 0,
        cpus: float = 1.0,
        stake: int = 0,
        claim_margin_s: float = 30.0,
    ) -> None:
        super().__init__(name, identity)
        self.claim_margin_s = claim_margin_s  # how long before the deadline an unpaid delivery goes to the arbiter
        self.stake = stake  # bonded at start: what an arbiter may slash for wrong work
        self.book = Capacity(gpus, gpu_memory_mb, cpus)  # what it has, and what accepted jobs hold until they end
        self.price_per_second = price_per_second
        self.throughput = throughput
        self.jobs: dict[str, _Job] = {}
        self.refused: dict[str, int] = {}  # reason -> messages refused (agents.deal_protocol.refuse)

    @property
    def capacity(self) -> dict[str, Any]:
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
        terms: dict[str, str | int | float] = {
            "gpus": self.capacity["gpus"],
            "gpu_memory_mb": self.capacity["gpu_memory_mb"],
            "throughput": self.throughput,
            "per": "second",
        }
        service = ServiceRecord(
            address=self.address,
            name=self.name,
            capability="compute",
            price=self.price_per_second,
            terms=terms,
            protocols=self.protocol_digests(),
            ttl=SERVICE_TTL,
        )
        ctx.registry.register_service(service, now=ctx.now())

    def quote(self, items: int) -> int:
        return max(1, math.ceil(items / self.throughput)) * self.price_per_second

    def _job_from(self, ctx: Context, sender: str, deal_id: str, party: str = "buyer") -> _Job | None:
        """The job ``deal_id`` names, if ``sender`` is its buyer (or this agent itself, for a
        timer); otherwise the message is refused and counted, and None."""
        job = self.jobs.get(deal_id)
        expected = self.address if party == "self" else (job.buyer if job is not None else None)
        if job is None or expected is None or sender.lower() != expected.lower():
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the {party} of a deal {deal_id} of mine"))
            return None
        return job

    @on_message(CallForProposals)
    def call_for_proposals(self, ctx: Context, sender: str, msg: CallForProposals) -> None:
        try:
            owner = id_owner(msg.deal_id)
        except ChainError:
            owner = ""
        if owner.lower() != sender.lower():
            refuse(self, ctx, sender, ForeignDeal(f"deal id {msg.deal_id} is not {sender}'s"))
            return
        if msg.deal_id in self.jobs:  # its own buyer calling again: the first call stands
            return
        job = msg.job
        reason = self._cannot_run(ctx, msg)
        if reason:
            ctx.send(sender, Refuse(deal_id=msg.deal_id, reason=reason))
            return
        items = len(job.inputs) if job.inputs is not None else ctx.registry.dataset(job.dataset_hash or "").items
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
        call = self.jobs.get(msg.call_id) if msg.call_id is not None and msg.deal_id not in self.jobs else None
        if call is not None:  # one replica of a redundant job: under a deal id of the same buyer's
            try:
                owner = id_owner(msg.deal_id)
            except ChainError:
                owner = ""
            if sender.lower() != call.buyer.lower() or owner.lower() != sender.lower():
                refuse(self, ctx, sender, NotAParty(f"{sender} may not award {msg.deal_id} on the call {msg.call_id}"))
                return
            if call.status != "proposed":
                return
            self.jobs[msg.deal_id] = dataclasses.replace(call, deal_id=msg.deal_id)
            call.status = "replica"
        job = self._job_from(ctx, sender, msg.deal_id)
        if job is None:
            return
        c = msg.contract
        problem = ""
        if job.status != "proposed" or c.buyer != sender or c.deal_id != msg.deal_id:
            problem = "no proposal of mine matches this award"
        elif c.provider != self.address or c.payees[0].amount != job.price:
            problem = "contract does not pay my proposed price to me"
        elif c.job_hash != job.call.job_hash or c.deadline != job.call.deadline:
            problem = "contract terms differ from the call for proposals"
        elif c.arbiter not in (None, ctx.ledger.arbiter):
            problem = "the contract names another arbiter than the ledger's"
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
        job = self._job_from(ctx, sender, msg.deal_id)
        if job is not None and job.status == "proposed":
            job.status = "lost"

    @on_message(EscrowFunded)
    def funded(self, ctx: Context, sender: str, msg: EscrowFunded) -> None:
        job = self._job_from(ctx, sender, msg.deal_id)
        if job is None or job.deal is None or job.status != "signed":
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
        executor, wallet, spec = ctx.executor, ctx.wallet, job.call.job  # taken now: the work may run on another thread

        def done(result: JobResult | None, error: Exception | None) -> JobDone:
            return JobDone(deal_id=job.deal_id, result=result, error="" if error is None else str(error) or type(error).__name__)

        def work() -> JobResult:
            result, job.drawn = run_paying_data_fee(executor, wallet, spec, job.deal_id, timeout_s=budget)
            return result

        ctx.run_off_mailbox(work, done)

    def make_good(self, ctx: Context, job: _Job) -> None:
        """A job that drew the data fee and then was not delivered (it finished late): the refund
        returns only what the escrow still holds, so the provider pays its buyer the fee from its
        own balance. The owner was paid for the use; the lateness is the provider's to bear."""
        if not job.drawn:
            return
        try:
            ctx.wallet.transfer(job.buyer, job.drawn)
            job.drawn = 0
        except ChainError as exc:
            ctx.log.warning("could not repay %s the data fee %d of failed %s: %s", job.buyer, job.drawn, job.deal_id, exc)

    @on_message(JobDone)
    def job_done(self, ctx: Context, sender: str, msg: JobDone) -> None:
        """Deliver the result, or refund the buyer and say why."""
        job = self._job_from(ctx, sender, msg.deal_id, "self")
        if job is None or job.deal is None or job.contract is None or job.status != "running":
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
            self.make_good(ctx, job)
            ctx.send(job.buyer, ReportFailure(deal_id=job.deal_id, reason=msg.error, refund_tx=refund))
            return
        try:
            job.deal.deliver(self.address, msg.result.result_hash, cost=job.contract.max_amount)
        except EconomyError as exc:  # finished after the deadline: the buyer takes its refund
            job.status = "late"
            ctx.log.warning("not delivering %s: %s", job.deal_id, exc)
            self.make_good(ctx, job)
            return
        job.status = "delivered"
        job.result = msg.result
        job.receipt = ctx.wallet.sign_typed_data(job.contract.receipt_typed_data(msg.result.result_hash))
        ctx.send(job.buyer, Deliver(deal_id=job.deal_id, result=msg.result, receipt=job.receipt))
        # a buyer that never settles would take its refund at the deadline: before then, claim
        left = job.contract.deadline - ctx.now()
        ctx.schedule(max(0.0, left - min(self.claim_margin_s, left / 2)), PaymentDue(deal_id=job.deal_id))

    @on_message(PaymentDue)
    def payment_due(self, ctx: Context, sender: str, msg: PaymentDue) -> None:
        """Delivered and still unpaid near the deadline: freeze the escrow and ask the arbiter
        to rule. The arbiter re-runs the job; a result that matches its own run is paid the
        contract (the buyer's silence does not void what it signed). A delivery the buyer
        disputed instead of paying is claimed the same way, on the frozen escrow: the buyer's
        own claim is judged only on a result this provider signed, so the true one is put in."""
        job = self._job_from(ctx, sender, msg.deal_id, "self")
        if job is None or job.deal is None or job.result is None or job.contract is None or job.status != "delivered":
            return
        state = job.deal.sync()
        if state not in (DealState.DELIVERED, DealState.DISPUTED):  # paid or refunded meanwhile
            return
        if ctx.ledger.arbiter not in ctx.registry.agents():  # frozen with nobody to rule, the money would be stuck for good
            ctx.log.warning("unpaid %s: no arbiter agent runs here to claim from; the buyer's deadline refunds it", job.deal_id)
            return
        if state is DealState.DELIVERED:
            try:
                job.deal.dispute(ctx.wallet, reason="delivered, not paid before the deadline")
            except (ChainError, EconomyError) as exc:
                ctx.log.warning("could not dispute unpaid %s: %s", job.deal_id, exc)
                return
        job.status = "claimed"
        c, signatures = job.contract, job.deal.signatures
        claim = Claim(
            deal_id=job.deal_id,
            contract=c,
            buyer_signature=signatures[c.buyer],
            provider_signature=signatures[c.provider],
            job=job.call.job,
            result=job.result,
            receipt=job.receipt,
            cost=c.max_amount,
        )
        ctx.send(ctx.ledger.arbiter, claim)

    @on_message(Ruling)
    def ruled(self, ctx: Context, sender: str, msg: Ruling) -> None:
        job = self.jobs.get(msg.deal_id)
        if sender.lower() != str(ctx.ledger.arbiter).lower() or job is None:
            refuse(self, ctx, sender, NotAParty(f"{sender} is not the arbiter ruling on a deal {msg.deal_id} of mine"))
            return
        if job.deal is not None:
            state = job.deal.sync()  # the ledger says what the ruling did
            job.status = "paid" if state is DealState.SETTLED else f"refunded by the arbiter (slashed {msg.slashed})"

    @on_message(Settled)
    def settled(self, ctx: Context, sender: str, msg: Settled) -> None:
        job = self._job_from(ctx, sender, msg.deal_id)
        if job is not None and job.deal is not None and job.deal.sync() is DealState.SETTLED:
            job.status = "paid"

    def job_status(self, deal_id: str) -> str:
        job = self.jobs.get(deal_id)
        return job.status if job else "unknown"
