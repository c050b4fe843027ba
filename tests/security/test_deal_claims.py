"""Issue 19, items 1 and 9: the arbiter judges only the evidence on record for the deal.

A second outside attack played one more agent with a valid key of its own. Envelope signatures
held, but the claims inside a signed ``Claim`` were taken on the claimant's word: a buyer took an
honest delivery, disputed it and claimed the provider had sent random vectors (refunded, kept the
result, and the honest provider's whole stake was slashed); a provider that never ran the job
claimed with a one-sentence job of its own and was paid in full. Now a claim carries the contract
both parties signed (checked against the escrow on the ledger) and the provider's signed delivery
receipt for the result, and the arbiter refuses, counts and ignores one that does not match.

The deal contract's EIP-712 domain also names the chain and the escrow contract now, so a
signature made for one deployment does not check on another.

Each attack runs on the memory ledger and on the embedded chain.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agora.agents import Buyer, ComputeProvider, Identity, LocalRuntime
from agora.agents.deal_protocol import Claim, Deliver
from agora.agents.roles import Arbiter
from agora.chain import MemoryLedger
from agora.economy import Contract, deal_id_for
from agora.economy.errors import EconomyError
from agora.economy.lifecycle import Deal, DealState
from agora.simulations.demo import TradeConfig, demo_texts, make_agents
from agora.tasks import ContentStore, JobResult, JobSpec, Metering

try:  # bound to its chain since issue 19
    from agora.economy.contract import deal_domain
except ImportError:  # the code before the fix: no domain to bind
    deal_domain = lambda ledger: {}  # noqa: E731

STAKE = 10**16
SEED = 7


def _claim(**fields: Any) -> Claim:
    """A claim with whatever evidence the message type asks for (an attacker fills in all it has)."""
    return Claim(**{k: v for k, v in fields.items() if k in Claim.model_fields})


def _random_vectors(job: JobSpec) -> JobResult:
    rows = len(job.inputs or [])
    noise = np.random.default_rng(7).normal(size=(rows, 384))
    fake = (noise / np.linalg.norm(noise, axis=1, keepdims=True)).astype("f4")
    return JobResult.from_array(job.job_id, fake, Metering(items=rows, tokens=rows, seconds=0.01, device="cpu"))


class LyingBuyer(Buyer):
    """Takes an honest delivery, keeps it, disputes the escrow and tells the arbiter the provider
    sent random vectors."""

    def _pay(self, ctx, record, result) -> None:
        self._deals[record.deal_id].result = result  # the honest work, kept
        deal = self._lifecycle(record.deal_id)
        deal.dispute(ctx.wallet, "claiming the result was random")
        record.status = "disputed"
        c = record.contract
        ctx.send(
            ctx.ledger.arbiter,
            _claim(
                deal_id=record.deal_id,
                contract=c,
                buyer_signature=deal.signatures[c.buyer],
                provider_signature=deal.signatures[c.provider],
                job=record.job,
                result=_random_vectors(record.job),
                receipt=getattr(record, "receipt", ""),
                provider=c.provider,
                cost=c.max_amount,
            ),
        )


class LazyProvider(ComputeProvider):
    """Never runs the buyer's job: once funded it freezes the escrow and claims with a
    one-sentence job of its own, which the arbiter's re-run will of course agree with."""

    def funded(self, ctx, sender, msg) -> None:
        job = self.jobs.get(msg.deal_id)
        if job is None or job.deal is None or sender != job.buyer or job.deal.sync() is not DealState.FUNDED:
            return
        real = job.call.job
        tiny = JobSpec(job_id=real.job_id, model_hash=real.model_hash, inputs=["one sentence"], task=real.task)
        result = ctx.executor.run(tiny, requester=self.address)
        job.deal.dispute(ctx.wallet, "claiming for a job of my own")
        job.status = "claimed"
        c = job.contract
        receipt = ctx.wallet.sign_typed_data(c.receipt_typed_data(result.result_hash)) if hasattr(c, "receipt_typed_data") else ""
        ctx.send(
            ctx.ledger.arbiter,
            _claim(
                deal_id=msg.deal_id,
                contract=c,
                buyer_signature=job.deal.signatures[c.buyer],
                provider_signature=job.deal.signatures[c.provider],
                job=tiny,
                result=result,
                receipt=receipt,
                provider=self.address,
                cost=c.max_amount,
            ),
        )


def _ledger(kind: str, arbiter: str):
    if kind == "memory":
        return MemoryLedger(arbiter=arbiter)
    from agora.chain import EVMLedger

    return EVMLedger.embedded(arbiter=arbiter)


def _market(store, kind: str, buyer_cls=Buyer, provider_cls=ComputeProvider) -> tuple[LocalRuntime, dict[str, Any]]:
    """One provider with a stake, the model and data owners, an arbiter, and a buyer of a
    16-text inline job (deadline 120 s)."""
    config = TradeConfig(runtime="local", ledger="memory", store_root=str(store.root), deadline_s=120, seed=SEED)
    key = lambda name: Identity.from_seed(SEED, name)  # noqa: E731
    arbiter = Arbiter("arbiter", key("arbiter"), slash=STAKE)
    runtime = LocalRuntime(_ledger(kind, arbiter.address), store=ContentStore(store.root), seed=SEED)
    agents = make_agents(config, demo_texts())
    for name in ("gpu_a", "gpu_b", "cpu_c"):
        del agents[name]
    agents["provider"] = provider_cls("gpu", key("gpu"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32, stake=STAKE)
    agents["arbiter"] = arbiter
    request = agents.pop("buyer").requests[0].model_copy(update={"inputs": demo_texts()[:16], "dataset": None})
    agents["buyer"] = buyer_cls("buyer", key("buyer"), [request])  # last: it calls once the others have published
    for agent in agents.values():
        runtime.add(agent)
    runtime.ledger.mint(agents["provider"].address, STAKE)
    runtime.ledger.mint(agents["buyer"].address, config.buyer_funds)
    runtime.start()
    runtime.run(timeout=400)  # well past the deadline
    return runtime, agents


@pytest.mark.parametrize("kind", ["memory", pytest.param("embedded", marks=pytest.mark.chain)])
def test_a_buyer_cannot_refund_itself_and_slash_an_honest_provider_by_lying_about_the_result(store, kind: str) -> None:
    runtime, agents = _market(store, kind, buyer_cls=LyingBuyer)
    buyer, provider, arbiter = agents["buyer"], agents["provider"], agents["arbiter"]
    (record,) = buyer.deals.values()
    contract = record.contract
    assert contract is not None and record.deal_id in buyer.results  # it took the honest work
    assert runtime.ledger.stake_of(provider.address).stake == STAKE  # not slashed
    assert arbiter.refused == {"UnfoundedClaim": 1}  # the buyer's claim names a result the provider never signed
    # the provider put its own receipt in: the arbiter re-ran the job and paid the contract
    assert arbiter.rulings[record.deal_id] == {"provider": provider.address, "paid": contract.max_amount, "slashed": 0, "upheld": True}
    assert runtime.ledger.escrow(record.deal_id).status == "released"
    for payee, amount in contract.payout(contract.max_amount).items():
        assert runtime.ledger.balance_of(payee) == amount  # each its split of the contract (the stake is bonded apart)
    assert runtime.ledger.balance_of(buyer.address) == TradeConfig().buyer_funds - contract.max_amount
    assert record.status == "settled" and provider.job_status(record.deal_id) == "paid"
    assert runtime.ledger.is_conserved()


@pytest.mark.parametrize("kind", ["memory", pytest.param("embedded", marks=pytest.mark.chain)])
def test_a_provider_that_never_ran_the_job_is_not_paid_for_a_job_of_its_own(store, kind: str) -> None:
    runtime, agents = _market(store, kind, provider_cls=LazyProvider)
    buyer, provider, arbiter = agents["buyer"], agents["provider"], agents["arbiter"]
    (record,) = buyer.deals.values()
    assert record.contract is not None
    assert runtime.ledger.balance_of(provider.address) == 0 and runtime.ledger.stake_of(provider.address).stake == STAKE
    assert arbiter.refused == {"UnfoundedClaim": 1}  # its job does not hash to the contract's job hash
    for payee in record.contract.payees:
        assert runtime.ledger.balance_of(payee.address) == 0  # nobody was paid
    # nothing delivered under a receipt by the deadline: a grace later the buyer asks, and is refunded
    assert runtime.ledger.escrow(record.deal_id).status == "refunded"
    assert runtime.ledger.balance_of(buyer.address) == TradeConfig().buyer_funds
    assert arbiter.rulings[record.deal_id] == {"provider": provider.address, "paid": 0, "slashed": 0, "upheld": False}
    assert record.status == "refunded" and runtime.errors().get("buyer", []) == []
    assert runtime.ledger.is_conserved()


def _terms(people: dict, ledger) -> dict[str, Any]:
    job = "0x" + "22" * 32
    return dict(
        deal_id=deal_id_for(people["buyer"].address, job, 0),
        buyer=people["buyer"].address,
        job_hash=job,
        deadline=ledger.now() + 600,
        payees=[{"address": people["provider"].address, "role": "provider", "amount": 6_000}],
    )


@pytest.mark.chain
def test_a_contract_signed_for_one_deployment_does_not_check_on_another(people) -> None:
    from agora.chain import EVMLedger

    here, there = MemoryLedger(), EVMLedger.embedded()
    contract = Contract(**_terms(people, here), **deal_domain(here))
    signatures = {who: people[who].sign_typed_data(contract.typed_data()) for who in ("buyer", "provider")}
    on_chain = Deal(contract, there)
    with pytest.raises(EconomyError, match="chain"):
        on_chain.sign(people["buyer"].address, signatures["buyer"])
    assert on_chain.state is DealState.PROPOSED and on_chain.signatures == {}
    moved = Contract(**_terms(people, there), **deal_domain(there))  # the same terms, for the chain
    assert moved.digest() != contract.digest()
    with pytest.raises(EconomyError):
        moved.verify_signature(signatures["buyer"], people["buyer"].address)
    at_home = Deal(contract, here)  # where it was signed, it checks
    for who in ("buyer", "provider"):
        at_home.sign(people[who].address, signatures[who])
    assert at_home.state is DealState.SIGNED


class _Server(ComputeProvider):
    """A model server's stand-in: payee 0 of an escrowed call, claiming through its context."""


def test_an_escrowed_calls_claim_is_judged_only_on_inputs_its_caller_signed(store, minilm_hash) -> None:
    """An escrowed call (agents/roles/serving.py) has no deal contract: its server's claim binds
    the job to the escrow by the caller's signed call authorization (escrow, server, inputs)."""
    from agora.chain.offchain import call_authorization_typed_data
    from agora.chain.types import EscrowTerms, owned_id

    key = lambda name: Identity.from_seed(SEED, name)  # noqa: E731
    arbiter, caller = Arbiter("arbiter", key("arbiter")), key("caller")
    server = _Server("server", key("server"), gpus=0, price_per_second=1)
    rt = LocalRuntime(MemoryLedger(arbiter=arbiter.address), store=ContentStore(store.root), seed=SEED)
    for agent in (arbiter, server):
        rt.add(agent)
    rt.start()
    ledger, price = rt.ledger, 1_000
    ledger.open_account(caller)
    ledger.mint(caller.address, price)
    escrow_id = owned_id(caller.address, "call", 0)
    ledger.open_escrow(caller, EscrowTerms(escrow_id=escrow_id, payees=[server.address], shares_bps=[10_000], amount=price, deadline=ledger.now() + 600))
    ledger.dispute(server.identity, escrow_id)
    asked = ["what the caller asked"]
    own = JobSpec(job_id="call-0", model_hash=minilm_hash, inputs=["a job of the server's own"])

    def signed(inputs):
        return caller.sign_typed_data(call_authorization_typed_data(ledger.domains()["escrow"], escrow_id, server.address, minilm_hash, "embedding", inputs))

    for job, authorization in ((own, ""), (own, signed(asked))):  # no authorization; one for other inputs
        claim = _claim(deal_id=escrow_id, job=job, result=rt.executor.run(job), provider=server.address, cost=price, authorization=authorization)
        _send_from(rt, server, arbiter.address, claim)
        rt.run(timeout=5)
    cheaper = own.model_copy(update={"inputs": asked, "model_hash": "ab" * 32})  # the caller's inputs, another model
    claim = _claim(
        deal_id=escrow_id,
        job=cheaper,
        result=rt.executor.run(own.model_copy(update={"inputs": asked})),
        provider=server.address,
        cost=price,
        authorization=signed(asked),
    )
    _send_from(rt, server, arbiter.address, claim)
    rt.run(timeout=5)
    assert ledger.escrow(escrow_id).status == "disputed" and ledger.balance_of(server.address) == 0  # nothing paid
    assert arbiter.refused == {"UnfoundedClaim": 3}
    job = own.model_copy(update={"inputs": asked})
    _send_from(
        rt,
        server,
        arbiter.address,
        _claim(deal_id=escrow_id, job=job, result=rt.executor.run(job), provider=server.address, cost=price, authorization=signed(asked)),
    )
    rt.run(timeout=5)
    assert ledger.escrow(escrow_id).status == "released" and ledger.balance_of(server.address) == price
    assert arbiter.rulings[escrow_id]["upheld"] and ledger.is_conserved()


def _send_from(rt: LocalRuntime, agent, target: str, message) -> None:
    rt._hosts[agent.address].ctx.send(target, message)  # the agent's own context: the public send path


class EquivocatingProvider(ComputeProvider):
    """Runs the job, but delivers the buyer made-up vectors (with a receipt for them), then at
    once freezes the escrow and claims with the true result (and a receipt for that one)."""

    def job_done(self, ctx, sender, msg) -> None:
        job = self.jobs.get(msg.deal_id)
        if sender != self.address or job is None or msg.result is None or job.status != "running":
            return
        self.book.release(job.deal_id)
        job.status = "claimed"
        rows = msg.result.shape[0]
        junk = JobResult.from_array(msg.result.job_id, np.ones((rows, 384), "f4"), msg.result.metering)
        receipt = lambda r: ctx.wallet.sign_typed_data(job.contract.receipt_typed_data(r.result_hash)) if hasattr(job.contract, "receipt_typed_data") else ""  # noqa: E731
        ctx.send(job.buyer, _msg(Deliver, deal_id=job.deal_id, result=junk, receipt=receipt(junk)))
        job.deal.dispute(ctx.wallet, "claiming before the buyer can object")
        c = job.contract
        ctx.send(
            ctx.ledger.arbiter,
            _claim(
                deal_id=job.deal_id,
                contract=c,
                buyer_signature=job.deal.signatures[c.buyer],
                provider_signature=job.deal.signatures[c.provider],
                job=job.call.job,
                result=msg.result,
                receipt=receipt(msg.result),
                provider=self.address,
                cost=c.max_amount,
            ),
        )


def _msg(cls, **fields: Any):
    return cls(**{k: v for k, v in fields.items() if k in cls.model_fields})


@pytest.mark.parametrize("kind", ["memory", pytest.param("embedded", marks=pytest.mark.chain)])
def test_a_provider_paid_for_a_result_it_never_delivered_hands_it_over_through_the_ruling(store, kind: str) -> None:
    """It signed two results; the arbiter pays the true one, so the buyer must get that one."""
    runtime, agents = _market(store, kind, provider_cls=EquivocatingProvider)
    buyer, arbiter = agents["buyer"], agents["arbiter"]
    (record,) = buyer.deals.values()
    assert arbiter.rulings[record.deal_id]["upheld"]  # the claimed result is right: the contract is paid
    assert record.status == "settled" and record.paid == record.contract.max_amount
    vectors = buyer.result_vectors(record.deal_id)  # ... and the buyer holds what it paid for
    assert vectors is not None and vectors.shape == (16, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert runtime.errors().get("buyer", []) == [] and runtime.ledger.is_conserved()
