"""Parties that misbehave: the protocol protects the honest side and money never moves wrongly."""

from __future__ import annotations

import numpy as np

from agora.agents import Buyer, ComputeProvider, Identity
from agora.agents.deal_protocol import Deliver
from agora.economy import Contract
from agora.simulations.demo import TradeConfig, demo_texts, make_agents, run_trade
from agora.tasks import JobResult
from tests.simulations.test_trade import _check_money


class ForgingProvider(ComputeProvider):
    """Delivers made-up vectors instead of running the model."""

    def run_job(self, ctx, job) -> None:
        rows = len(demo_texts())
        fake = np.ones((rows, 384), dtype="f4")  # not unit-length: not what the model produces
        ctx.send(job.buyer, _signed_delivery(ctx, job, JobResult.from_array(job.call.job.job_id, fake, _meter(rows))))


def _signed_delivery(ctx, job, result: JobResult) -> Deliver:
    """A delivery with the provider's own receipt: a cheat that wants paying must sign what it sends."""
    receipt = ctx.wallet.sign_typed_data(job.contract.receipt_typed_data(result.result_hash))
    return Deliver(deal_id=job.deal_id, result=result, receipt=receipt)


def _meter(rows: int):
    from agora.tasks import Metering

    return Metering(items=rows, tokens=rows, seconds=0.01, device="cpu")


class ShortchangingBuyer(Buyer):
    """Signs a contract that pays the winner half of what it bid."""

    def draft_contract(self, record, provider: str, price: int) -> Contract:
        return super().draft_contract(record, provider, price // 2)


def _config(store, **kw) -> TradeConfig:
    return TradeConfig(runtime="local", ledger="memory", store_root=str(store.root), **kw)


def test_forged_result_is_not_paid_and_the_buyer_is_refunded(store) -> None:
    config = _config(store, deadline_s=60)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = ForgingProvider("gpu-a", Identity.from_seed(config.seed, "gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32)
    report = run_trade(config, agents=agents)
    assert report.deal.status == "refunded"
    assert "unit-length" in report.deal.reason
    assert all(p.after == p.before for p in report.parties)
    assert report.conserved


def test_provider_declines_a_contract_that_underpays_it(store) -> None:
    config = _config(store)
    agents = make_agents(config, demo_texts())
    request = agents["buyer"].requests[0]
    agents["buyer"] = ShortchangingBuyer("buyer", Identity.from_seed(config.seed, "buyer"), [request])
    report = run_trade(config, agents=agents)
    assert report.deal.status == "no_award"
    assert "price" in report.deal.reason  # the provider's reason comes back
    assert all(p.after == p.before for p in report.parties)


def test_handlers_get_a_read_only_ledger(store) -> None:
    from agora.agents import LocalRuntime
    from agora.chain import MemoryLedger

    rt = LocalRuntime(MemoryLedger())
    buyer = Buyer("b", Identity.from_seed(0, "b"), [])
    rt.add(buyer)
    ctx = rt._hosts[buyer.address].ctx
    assert not hasattr(ctx.ledger, "mint") and not hasattr(ctx.ledger, "sync_time")
    assert ctx.ledger.balance_of(buyer.address) == 0


def test_reputation_outweighs_a_lower_price_and_settlement_feeds_it(store) -> None:
    """gpu-a bids lowest, but the buyer has verified gpu-b's work before and nothing of gpu-a's:
    pricing risk (risk_weight 1), it pays gpu-b's higher bid; the deal it settles is rated in
    the compute, model and data markets alike."""
    from agora.simulations.demo import build_runtime

    config = _config(store)
    agents = make_agents(config, demo_texts())
    runtime = build_runtime(config)
    buyer, gpu_a, gpu_b = (agents[k].address for k in ("buyer", "gpu_a", "gpu_b"))
    runtime.registry.rate(buyer, gpu_b, True, 10**15, "compute")
    report = run_trade(config, runtime=runtime, agents=agents)
    runtime.shutdown()
    deal = report.deal
    assert deal.status == "settled" and deal.contract.provider == gpu_b
    assert deal.bids[gpu_a] < deal.bids[gpu_b]  # it was not the cheapest
    graph = runtime.registry.reputation
    for key in ("gpu_b", "model_owner", "data_owner"):
        assert graph.success_rate(agents[key].address) == 1.0
    markets = {graph.graph[buyer][agents[k].address]["markets"].pop() for k in ("model_owner", "data_owner")}
    assert markets == {"model", "data"}
    assert runtime.registry.trust(buyer, [gpu_a, gpu_b])[gpu_b] == 1.0


class _Broken:
    store_root = ""

    def run(self, spec, timeout_s=None, requester="", deal_id=None):
        from agora.tasks import JobFailed

        raise JobFailed("the GPU fell off the bus")


class CrashingProvider(ComputeProvider):
    """Every job it accepts fails: it refunds the buyer and says so."""

    def run_job(self, ctx, job) -> None:
        real, ctx.executor = ctx.executor, _Broken()
        try:
            super().run_job(ctx, job)
        finally:
            ctx.executor = real


class SilentProvider(ComputeProvider):
    """Wins, countersigns, then never runs the job (a provider that died)."""

    def funded(self, ctx, sender, msg) -> None:
        return None


def _with_retries(config, agents, retries: int = 1) -> None:
    request = agents["buyer"].requests[0].model_copy(update={"retries": retries})
    agents["buyer"] = Buyer("buyer", Identity.from_seed(config.seed, "buyer"), [request])


def _gpu_a(cls, config):
    return cls("gpu-a", Identity.from_seed(config.seed, "gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32)


def test_a_failed_job_is_retried_elsewhere_and_paid_once(store) -> None:
    config = _config(store)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = _gpu_a(CrashingProvider, config)  # the cheapest: it wins the first call
    _with_retries(config, agents)
    report = run_trade(config, agents=agents)
    first, last = report.attempts
    assert first.status == "refunded" and "fell off the bus" in first.reason and first.contract.provider == agents["gpu_a"].address
    assert last.status == "settled" and last.contract.provider == agents["gpu_b"].address and agents["gpu_a"].address not in last.invited
    assert first.deal_id != last.deal_id
    buyer = next(p for p in report.parties if p.role == "buyer")
    assert buyer.before - buyer.after == last.paid  # paid once, for the attempt that delivered
    assert next(p for p in report.parties if p.name == "gpu-a").after == next(p for p in report.parties if p.name == "gpu-a").before
    _check_money(report)


def test_a_provider_that_goes_silent_is_refunded_at_the_deadline_then_replaced(store) -> None:
    config = _config(store, deadline_s=60)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = _gpu_a(SilentProvider, config)
    _with_retries(config, agents)
    report = run_trade(config, agents=agents)
    first, last = report.attempts
    assert first.status == "refunded" and "deadline" in first.reason
    assert last.status == "settled" and last.contract.provider == agents["gpu_b"].address
    _check_money(report)


def test_retries_end_in_refunds_when_every_provider_fails(store) -> None:
    config = _config(store)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = _gpu_a(CrashingProvider, config)
    agents["gpu_b"] = CrashingProvider(
        "gpu-b", Identity.from_seed(config.seed, "gpu-b"), gpus=1, gpu_memory_mb=24_000, price_per_second=2 * 10**15, throughput=48
    )
    _with_retries(config, agents, retries=3)
    report = run_trade(config, agents=agents)
    assert [d.status for d in report.attempts] == ["refunded", "refunded", "no_award"]  # nobody left to call
    assert all(p.after == p.before for p in report.parties) and report.conserved


class _Rebatching:
    """An executor that runs every job with another batch size: honest work, other padding."""

    def __init__(self, inner, batch_size: int) -> None:
        self.inner, self.batch_size, self.store_root = inner, batch_size, inner.store_root

    def run(self, spec, timeout_s=None, requester="", deal_id=None):
        return self.inner.run(spec.model_copy(update={"batch_size": self.batch_size}), timeout_s, requester)


class OddBatchProvider(ComputeProvider):
    """Honest, but batches one text at a time (as different hardware would)."""

    def run_job(self, ctx, job) -> None:
        real, ctx.executor = ctx.executor, _Rebatching(ctx.executor, 1)
        try:
            super().run_job(ctx, job)
        finally:
            ctx.executor = real


class PlausibleCheat(ComputeProvider):
    """Skips the model and returns random unit vectors: well-formed, passes every shape check."""

    def run_job(self, ctx, job) -> None:
        rows = len(job.call.job.inputs or demo_texts())
        noise = np.random.default_rng(7).normal(size=(rows, 384))
        fake = (noise / np.linalg.norm(noise, axis=1, keepdims=True)).astype("f4")
        job.deal.deliver(self.address, JobResult.from_array(job.call.job.job_id, fake, _meter(rows)).result_hash, cost=job.contract.max_amount)
        ctx.send(job.buyer, _signed_delivery(ctx, job, JobResult.from_array(job.call.job.job_id, fake, _meter(rows))))


def _redundant_market(store, providers: dict, redundancy: int, stake: int, **request_terms):
    from agora.agents import LocalRuntime
    from agora.agents.roles import Arbiter
    from agora.chain import MemoryLedger
    from agora.tasks import ContentStore

    config = _config(store)
    key = lambda name: Identity.from_seed(config.seed, name)  # noqa: E731
    arbiter = Arbiter("arbiter", key("arbiter"), slash=stake)
    runtime = LocalRuntime(MemoryLedger(arbiter=arbiter.address), store=ContentStore(store.root), seed=config.seed)
    agents = make_agents(config, demo_texts())
    for name in ("gpu_a", "gpu_b", "cpu_c"):
        del agents[name]
    for name, cls in providers.items():
        agents[name] = cls(name, key(name), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32, stake=stake)
        runtime.ledger.mint(agents[name].address, stake)
    agents["arbiter"] = arbiter
    _with_retries(config, agents, retries=0)
    request = agents["buyer"].requests[0].model_copy(update={"redundancy": redundancy, **request_terms})
    del agents["buyer"]
    agents["buyer"] = Buyer("buyer", key("buyer"), [request])  # last: it calls once the others have published
    report = run_trade(config, runtime=runtime, agents=agents)
    return report, agents, runtime


def test_redundant_execution_pays_the_majority_and_the_arbiter_slashes_the_cheat(store) -> None:
    stake = 10**16
    providers = {"cheat": PlausibleCheat, "honest": ComputeProvider, "odd": OddBatchProvider}
    report, agents, runtime = _redundant_market(store, providers, redundancy=3, stake=stake)
    replicas = {
        runtime.query(agents["buyer"].address, "deals")[d].contract.provider: runtime.query(agents["buyer"].address, "deals")[d]
        for d in runtime.query(agents["buyer"].address, "deals")
    }
    cheat, honest, odd = (agents[n].address for n in ("cheat", "honest", "odd"))
    assert replicas[honest].status == "settled" and replicas[odd].status == "settled"  # other padding, same answer: paid
    assert replicas[cheat].status == "refunded" and replicas[cheat].reason.startswith("arbiter: the result differs")
    ruling = agents["arbiter"].rulings[replicas[cheat].deal_id]
    assert ruling == {"provider": cheat, "paid": 0, "slashed": stake, "upheld": False}
    assert runtime.ledger.stake_of(cheat).stake == 0 and runtime.ledger.stake_of(odd).stake == stake  # the honest keep theirs
    buyer = next(p for p in report.parties if p.role == "buyer")
    assert buyer.after - buyer.before == stake // 2 - replicas[honest].paid - replicas[odd].paid  # paid twice, compensated once
    assert runtime.ledger.balance_of(cheat) == 0 and runtime.ledger.is_conserved()
    assert runtime.registry.trust(agents["buyer"].address, [cheat, honest])[cheat] < runtime.registry.trust(agents["buyer"].address, [cheat, honest])[honest]


def test_honest_providers_with_different_batch_shapes_are_never_disputed(store) -> None:
    report, agents, runtime = _redundant_market(store, {"honest": ComputeProvider, "odd": OddBatchProvider}, redundancy=2, stake=10**16)
    deals = runtime.query(agents["buyer"].address, "deals").values()
    assert sorted(d.status for d in deals) == ["settled", "settled"]
    assert agents["arbiter"].rulings == {} and all(runtime.ledger.stake_of(agents[n].address).stake == 10**16 for n in ("honest", "odd"))


def test_a_spot_check_catches_a_single_cheat_and_the_arbiter_rules(store) -> None:
    """No redundancy: the buyer re-runs four random rows itself; random vectors fail, an honest
    provider with another batch shape passes."""
    inline = {"inputs": demo_texts()[:16], "dataset": None, "spot_check": 4}
    report, agents, runtime = _redundant_market(store, {"cheat": PlausibleCheat}, redundancy=1, stake=10**16, **inline)
    deal = report.deal
    assert deal.status == "refunded" and deal.reason.startswith("arbiter: the result differs")
    assert runtime.ledger.stake_of(agents["cheat"].address).stake == 0 and runtime.ledger.is_conserved()
    report, agents, runtime = _redundant_market(store, {"odd": OddBatchProvider}, redundancy=1, stake=10**16, **inline)
    assert report.deal.status == "settled" and agents["arbiter"].rulings == {}


class SilentBuyer(Buyer):
    """Takes the delivered work and never pays, waiting to take its refund at the deadline."""

    def delivered(self, ctx, sender, msg) -> None:
        return None


def test_a_buyer_that_never_pays_is_claimed_before_the_deadline_and_the_arbiter_pays(store) -> None:
    """The provider delivers; the buyer stays silent. Before the deadline would let the buyer
    refund itself, the provider freezes the escrow and claims; the arbiter re-runs the job, finds
    the same result and pays the contract to every payee. The buyer's refund comes too late."""
    from agora.agents import LocalRuntime
    from agora.agents.roles import Arbiter
    from agora.chain import MemoryLedger
    from agora.tasks import ContentStore

    config = _config(store, deadline_s=120)
    key = lambda name: Identity.from_seed(config.seed, name)  # noqa: E731
    arbiter = Arbiter("arbiter", key("arbiter"))
    runtime = LocalRuntime(MemoryLedger(arbiter=arbiter.address), store=ContentStore(store.root), seed=config.seed)
    agents = make_agents(config, demo_texts())
    request = agents.pop("buyer").requests[0]
    agents["arbiter"] = arbiter
    agents["buyer"] = SilentBuyer("buyer", key("buyer"), [request])
    for agent in agents.values():
        runtime.add(agent)
    buyer = agents["buyer"]
    runtime.ledger.mint(buyer.address, config.buyer_funds)
    runtime.start()
    runtime.run(timeout=400)  # well past the deadline
    (record,) = buyer.deals.values()
    contract = record.contract
    # the buyer never acted on the delivery: the arbiter's ruling (which it hears) ended the deal
    assert contract is not None and record.status == "settled" and record.reason.startswith("arbiter: the result matches")
    escrow = runtime.ledger.escrow(record.deal_id)
    assert escrow.status == "released"  # resolved by the arbiter, not refunded
    ruling = arbiter.rulings[record.deal_id]
    assert ruling["upheld"] and ruling["paid"] == contract.max_amount
    for payee in contract.payees:
        assert runtime.ledger.balance_of(payee.address) == payee.amount  # each payee its line of the contract
    assert runtime.ledger.balance_of(buyer.address) == config.buyer_funds - contract.max_amount
    provider = next(a for a in agents.values() if getattr(a, "address", None) == contract.provider)
    assert provider.job_status(record.deal_id) == "paid"
    assert runtime.ledger.is_conserved()


class CrashingBuyer(Buyer):
    """Its release lands on the ledger, then it crashes before recording it: the handler dies
    right after ``release_items`` returns, as a process would (and, durable, comes back as it
    was journaled before the release)."""

    def _pay(self, ctx, record, result) -> None:
        lifecycle = self._lifecycle(record.deal_id) if hasattr(self, "_lifecycle") else self._lifecycles[record.deal_id]
        release = lifecycle.settle

        def release_then_crash(*args, **kwargs):
            release(*args, **kwargs)
            raise RuntimeError("the buyer's process died after its release landed")

        lifecycle.settle = release_then_crash
        super()._pay(ctx, record, result)


def test_a_buyer_that_crashes_after_its_release_records_what_it_paid(store) -> None:
    """A paid deal is never recorded as unpaid: the bill is written ahead of the release, and
    at the deadline the buyer finds its release landed and ends the deal settled as billed (seen
    in a chaos run: a shard killed between a release and its journal left the buyer's record
    'settled, paid 0' while it had paid)."""
    config = _config(store, deadline_s=60)
    agents = make_agents(config, demo_texts())
    request = agents["buyer"].requests[0]
    agents["buyer"] = CrashingBuyer("buyer", Identity.from_seed(config.seed, "buyer"), [request])
    report = run_trade(config, agents=agents)
    deal = report.deal
    spent = next(p.before - p.after for p in report.parties if p.address == agents["buyer"].address)
    assert deal.status == "settled" and spent > 0
    assert deal.paid == spent  # what the record says it paid is what left its account
