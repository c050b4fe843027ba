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

from typing import Any

import numpy as np

from agora.agents.agent import Agent, Context, on_message
from agora.agents.billing import metered_bill, provider_tariffs
from agora.agents.deal_protocol import (
    CLAIM_GRACE_S,
    AcceptContract,
    AwardContract,
    CallForProposals,
    DeadlineDue,
    DeclineContract,
    Deliver,
    EscrowFunded,
    ProposalsDue,
    Propose,
    Refuse,
    RejectProposal,
    ReportFailure,
    Undelivered,
    refuse,
)
from agora.agents.errors import NotAParty, UnfoundedClaim, UnknownOffer
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.agents.roles.buyer_deal import BuyerDeal, Call, DealRecord, DealStatus, JobRequest, offered, resolve
from agora.agents.roles.buyer_disputes import Disputes
from agora.chain import ChainError, DeadlineNotReached
from agora.economy.auction import Bid, ReverseAuction
from agora.economy.contract import Contract, Payee, deal_domain, deal_id_for
from agora.economy.errors import EconomyError
from agora.economy.lifecycle import FINAL, Deal, DealState
from agora.economy.reputation import MarketKind
from agora.tasks.errors import TasksError, VerificationFailed
from agora.tasks.jobs import JobResult
from agora.tasks.verify import verify_result

_MARKET: dict[str, MarketKind] = {"provider": "compute", "model_owner": "model", "data_owner": "data"}


class _OpenRequest(Message):
    n: int


class _AskRefund(Message):
    """Timer: a deal its provider froze is still unruled a grace past the deadline."""


class Buyer(Disputes, Agent):
    role = "buyer"

    def __init__(self, name: str, identity: Identity, requests: list[JobRequest]) -> None:
        super().__init__(name, identity)
        self.requests = list(requests)
        self._deals: dict[str, BuyerDeal] = {}  # one record per deal (agents.roles.buyer_deal)
        self._latest: dict[int, str] = {}  # request index -> the deal id of its latest attempt
        self._failed: dict[int, set[str]] = {}  # request index -> providers that failed it
        self._looking: dict[int, float] = {}  # request index -> when the buyer first looked for its offers
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
        if ctx.now() - first < request.discover_s and not offered(ctx.registry, request):
            ctx.schedule(1.0, _OpenRequest(n=n))
            return
        self._looking.pop(n, None)
        self.open_call(ctx, request, n)

    @property
    def deals(self) -> dict[str, DealRecord]:
        """Every deal's record by id (the buyer's public view)."""
        return {deal_id: d.record for deal_id, d in self._deals.items()}

    @property
    def results(self) -> dict[str, JobResult]:
        """The verified result of every deal that paid for one."""
        return {deal_id: d.result for deal_id, d in self._deals.items() if d.result is not None}

    def deal(self, deal_id: str) -> DealRecord:
        return self._deals[deal_id].record

    def result_vectors(self, deal_id: str) -> np.ndarray | None:
        """The verified embeddings of a settled deal."""
        found = self._deals.get(deal_id)
        return None if found is None or found.result is None else found.result.array()

    def open_contracts(self) -> int:
        return sum(1 for d in self._deals.values() if d.lifecycle is not None and d.lifecycle.state not in FINAL)

    def all_done(self) -> bool:
        """Every request's latest attempt has ended, replicas included (and no retry is under way)."""
        latest = [r for d in self._latest.values() for r in (self._deals[d].replicas or [d])]
        return len(self._latest) == len(self.requests) and all(self._deals[d].record.done for d in latest)

    def latest(self, n: int = 0) -> DealRecord:
        """The latest attempt at request ``n`` (the one that settled, if any did)."""
        return self._deals[self._latest[n]].record

    def history(self, deal_id: str) -> list[dict[str, Any]]:
        """The signed contract's states as this buyer's Deal walked them (state, by whom, ledger
        time, transaction): empty for a deal that never got a contract."""
        found = self._deals.get(deal_id)
        return [] if found is None or found.lifecycle is None else [step.model_dump(mode="json") for step in found.lifecycle.history]

    # -- 1. find offers and call for proposals -------------------------------------------
    def open_call(self, ctx: Context, request: JobRequest, n: int, attempt: int = 0) -> DealRecord:
        try:
            spec, fees, tariffs = resolve(ctx.registry, request, f"{self.name}-{n}")
        except (UnknownOffer, TasksError) as exc:
            record = self._record(ctx.now(), f"unresolved-{n}-{attempt}", status="no_award", reason=str(exc))
            self._latest[n] = record.deal_id
            return record
        job_hash = "0x" + spec.digest()
        # a new attempt is a new deal: its own id, escrow and contract (the failed one was refunded)
        deal_id = deal_id_for(self.address, job_hash, n if attempt == 0 else n + 1_000_000 * attempt)
        self._latest[n] = deal_id
        budget = request.max_price - sum(f.amount for f in fees)
        failed = self._failed.get(n, set())
        offers = [c for c in ctx.registry.find_compute(gpus=spec.resources.gpus, gpu_memory_mb=spec.resources.gpu_memory_mb) if c.owner not in failed]
        providers = [c.owner for c in offers]
        record = self._record(ctx.now(), deal_id, job=spec, invited=providers)
        self._deals[deal_id].attempt = (n, attempt)
        if budget <= 0:
            return self._end(ctx.now(), record, "no_award", f"posted fees {sum(f.amount for f in fees)} leave no compute budget")
        if not providers:
            return self._end(ctx.now(), record, "no_award", "no provider has the resources")
        deadline = int(ctx.now()) + request.deadline_s
        trust = ctx.registry.trust(self.address, providers)
        auction = ReverseAuction(max_price=budget, risk_weight=request.risk_weight, gpu_memory_mb=spec.resources.gpu_memory_mb)
        self._deals[deal_id].call = Call(
            auction=auction,
            fees=fees,
            deadline=deadline,
            trust=trust,
            tariffs={**tariffs, **provider_tariffs(spec.resources.gpus, offers)},
            domain=deal_domain(ctx.ledger),
        )
        for p in providers:
            ctx.send(p, CallForProposals(deal_id=deal_id, job=spec, job_hash=job_hash, compute_budget=budget, deadline=deadline))
        ctx.schedule(request.reply_window_s, ProposalsDue(deal_id=deal_id))
        return record

    # -- 2. collect bids, award by reverse auction ---------------------------------------
    @on_message(Propose)
    def propose(self, ctx: Context, sender: str, msg: Propose) -> None:
        call = self._open(ctx, msg.deal_id, sender)
        if call is None:
            return
        call.answered.add(sender)
        try:
            call.auction.submit(Bid(bidder=sender, price=msg.price, reputation=call.trust.get(sender, 0.0), free_gpu_memory_mb=msg.free_gpu_memory_mb))
            self._deals[msg.deal_id].record.bids[sender] = msg.price
        except EconomyError as exc:
            self._deals[msg.deal_id].record.refused[sender] = f"bid rejected: {exc}"
        self._award_when_all_answered(ctx, msg.deal_id)

    @on_message(Refuse)
    def refuse(self, ctx: Context, sender: str, msg: Refuse) -> None:
        call = self._open(ctx, msg.deal_id, sender)
        if call is None:
            return
        call.answered.add(sender)
        self._deals[msg.deal_id].record.refused[sender] = msg.reason
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
        found = self._deals.get(deal_id)
        record = None if found is None else found.record
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

    def _open(self, ctx: Context, deal_id: str, sender: str) -> Call | None:
        record = self._from(ctx, sender, deal_id, "invited")
        if record is None or record.status != "calling":
            return None
        return self._deals[deal_id].call

    def _award_when_all_answered(self, ctx: Context, deal_id: str) -> None:
        found = self._deals[deal_id]
        assert found.call is not None
        if found.call.answered >= set(found.record.invited):
            self.award(ctx, deal_id)

    def award(self, ctx: Context, deal_id: str) -> None:
        record, call = self._deals[deal_id].record, self._deals[deal_id].call
        assert call is not None
        k = self._request_of(deal_id).redundancy
        award = call.auction.clear()
        if award is None:
            self._end(ctx.now(), record, "no_award", "no acceptable proposal")
            return
        if k == 1:
            winners = [(award.winner, award.price)]
        else:  # the k best by the auction's own measure, each on a deal of its own
            ranked = call.auction.ranked()
            if len(ranked) < k:
                self._end(ctx.now(), record, "no_award", f"redundancy {k} needs {k} acceptable proposals, got {len(ranked)}")
                return
            winners = [(b.bidder, b.price) for b in ranked[:k]]
        ids = [deal_id] + [self._replica(record, r) for r in range(1, len(winners))]
        if k > 1:
            self._deals[deal_id].replicas = ids
            for i in ids:
                self._deals[i].group = deal_id
        for replica_id, (winner, price) in zip(ids, winners, strict=False):
            kept = self._deals[replica_id]
            replica, kept.call = kept.record, call
            contract = self.draft_contract(replica, winner, price)
            replica.contract, replica.status = contract, "awarded"
            deal = kept.lifecycle = Deal(contract, ctx.ledger)
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
        call = self._deals[record.deal_id].call
        assert call is not None
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
        deal = self._lifecycle(msg.deal_id)
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
        ctx.schedule(max(0.0, record.contract.deadline - ctx.now()) + 1, DeadlineDue(deal_id=msg.deal_id))

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
        deal = self._lifecycle(msg.deal_id)
        try:
            deal.deliver(sender, msg.result.result_hash, cost=record.contract.max_amount)
        except EconomyError as exc:  # late, or delivered twice
            record.reason = f"delivery refused: {exc}"
            return
        items = len(record.job.inputs) if record.job.inputs is not None else ctx.registry.dataset(record.job.dataset_hash or "").items
        try:
            if msg.result.metering.items != items:
                raise VerificationFailed(f"{msg.result.metering.items} items processed, {items} paid for")
            verify_result(msg.result, record.job)
        except TasksError as exc:
            record.reason = f"result rejected: {exc}"  # no payment; refunded (and rated) at the deadline
            return
        group = self._deals[msg.deal_id].group
        if group is not None:  # a replica: paid or disputed once the replicas can be compared
            self._deals[msg.deal_id].delivered = msg.result
            record.reason = "delivered; awaiting the other replicas"
            self._judge(ctx, group)
            return
        if not self._spot_checked(ctx, record, msg.result):
            self._dispute(ctx, record, msg.result, "failed the buyer's spot check")
            return
        self._pay(ctx, record, msg.result)

    def _request_of(self, deal_id: str) -> JobRequest:
        """The request a deal (or a replica of one) was opened for."""
        lead = self._deals[self._deals[deal_id].group or deal_id]
        return self.requests[lead.attempt[0] if lead.attempt else 0]

    def _pay(self, ctx: Context, record: DealRecord, result: JobResult) -> None:
        """Verify the delivery on the deal, bill it from its metering, settle line by line."""
        assert record.contract is not None
        deal = self._lifecycle(record.deal_id)
        deal.verify(self.address, result.result_hash)
        call = self._deals[record.deal_id].call
        assert call is not None
        charged = metered_bill(record.contract, call.tariffs, result.metering)  # what the job used, each line within its line
        kept = self._deals[record.deal_id]
        kept.result, kept.settling = result, charged.amounts()
        record.result_hash, record.result_shape = result.result_hash, result.shape
        record.metering = result.metering.model_dump()
        record.bill = [line.model_dump() for line in charged.lines]
        record.paid = charged.total
        # write-ahead: a buyer that crashes after this release lands and before its state is
        # journaled comes back here knowing what it was paying, and learns at the deadline whether
        # it landed (deadline_passed), instead of recording a paid deal as unpaid
        ctx.checkpoint()
        deal.settle(ctx.wallet, amounts=kept.settling)
        self._settled(ctx, record)

    # -- failure paths: the provider refunded, or the deadline passed ----------------------
    @on_message(ReportFailure)
    def failure(self, ctx: Context, sender: str, msg: ReportFailure) -> None:
        record = self._from(ctx, sender, msg.deal_id, "provider")
        if record is None or record.done:
            return
        if self._lifecycle(msg.deal_id).sync() is DealState.REFUNDED:  # trust the ledger, not the message
            self._end(ctx.now(), record, "refunded", f"provider failed: {msg.reason}")
            self._rate(ctx, record, verified=False)
            self._retry(ctx, record)
        else:
            record.reason = f"provider failed without refunding: {msg.reason}"

    @on_message(DeadlineDue)
    def deadline_passed(self, ctx: Context, sender: str, msg: DeadlineDue) -> None:
        record = self._from(ctx, sender, msg.deal_id, "self")
        if record is None or record.status != "funded":
            return
        deal = self._lifecycle(msg.deal_id)
        state = deal.sync()
        if state is DealState.DISPUTED:  # the provider froze it for the arbiter: its ruling ends the deal
            record.status, record.reason = "disputed", "the provider disputed the escrow; awaiting the arbiter"
            ctx.schedule(CLAIM_GRACE_S + 1.0, _AskRefund(deal_id=msg.deal_id))  # unless it proves no delivery by then
            return
        if self._release_recovered(ctx, record, deal, state):
            return
        if state in FINAL:  # the arbiter already ruled (its Ruling may still be on its way)
            self._end(ctx.now(), record, "settled" if state is DealState.SETTLED else "refunded", "ruled by the arbiter")
            return
        try:
            if ctx.ledger.now() < deal.contract.deadline:
                raise DeadlineNotReached(f"ledger time {ctx.ledger.now()}")
            deal.timeout(ctx.wallet)
        except DeadlineNotReached:  # the ledger's clock lags ours: look again shortly
            ctx.schedule(1.0, DeadlineDue(deal_id=msg.deal_id))
            return
        record.receipts.append(deal.receipts[-1])
        self._end(ctx.now(), record, "refunded", record.reason or "deadline passed without a delivery")
        self._rate(ctx, record, verified=False)  # a rating needs the deal settled: the refund just landed
        group = self._deals[msg.deal_id].group
        if group is not None:
            self._judge(ctx, group)
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
        deal = self._lifecycle(msg.deal_id)
        if deal.sync() is DealState.DISPUTED:
            c, signatures = record.contract, deal.signatures
            ctx.send(
                ctx.ledger.arbiter, Undelivered(deal_id=msg.deal_id, contract=c, buyer_signature=signatures[c.buyer], provider_signature=signatures[c.provider])
            )

    def _retry(self, ctx: Context, record: DealRecord) -> None:
        """After a refund: call the providers that have not failed this request, if the request
        allows another attempt. The refunded deal stays as it ended; nothing was paid for it."""
        found = self._deals[record.deal_id].attempt
        if found is None or record.contract is None:
            return
        n, attempt = found
        self._failed.setdefault(n, set()).add(record.contract.provider)
        if attempt < self.requests[n].retries:
            self.open_call(ctx, self.requests[n], n, attempt + 1)

    # -- helpers -----------------------------------------------------------------------------
    def _lifecycle(self, deal_id: str) -> Deal:
        """The signed contract's state machine (a deal past its award has one)."""
        lifecycle = self._deals[deal_id].lifecycle
        assert lifecycle is not None
        return lifecycle

    def _rate(self, ctx: Context, record: DealRecord, verified: bool) -> None:
        """Feed the one reputation graph: a verified delivery counts for every payee in its own
        market; a failed one counts against the provider (with the contract it signed)."""
        contract = record.contract
        assert contract is not None
        if not verified:
            lifecycle = self._deals[record.deal_id].lifecycle
            signature = lifecycle.signatures.get(contract.provider, "") if lifecycle is not None else ""  # the provider's own: a rating against it needs it
            ctx.registry.rate(
                ctx.wallet.address,
                contract.provider,
                False,
                max(contract.max_amount, 1),
                "compute",
                deal_id=record.deal_id,
                contract=contract,
                signature=signature,
            )
            return
        for payee in contract.payees:
            if payee.address != ctx.wallet.address:  # a buyer that owns the model does not rate itself
                ctx.registry.rate(ctx.wallet.address, payee.address, True, max(payee.amount, 1), _MARKET[payee.role], deal_id=record.deal_id)

    def _record(self, now: float, deal_id: str, **fields: Any) -> DealRecord:
        """A new deal record, timed on the runtime's clock (virtual in a simulation)."""
        record = DealRecord(deal_id=deal_id, started_at=now, **fields)
        self._deals[deal_id] = BuyerDeal(record)
        return record

    @staticmethod
    def _end(now: float, record: DealRecord, status: DealStatus, reason: str) -> DealRecord:
        record.status, record.reason, record.finished_at = status, reason, now
        return record
