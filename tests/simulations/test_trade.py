"""The slice end to end: discovery, auction, signed contract, escrow, real inference, payout.

Runs on the LocalRuntime against both ledgers (fast, virtual clock), and on the RayRuntime with
the embedded chain and a logical GPU. Every path checks that money is conserved.
"""

from __future__ import annotations

import pytest

from agora.agents import ComputeProvider, Identity
from agora.simulations.demo import TradeConfig, build_runtime, demo_texts, make_agents, run_trade


class StallingProvider(ComputeProvider):
    """Wins the auction, countersigns, is funded, then never delivers."""

    def run_job(self, ctx, job) -> None:
        job.status = "stalled"


def _config(store, **kw) -> TradeConfig:
    return TradeConfig(store_root=str(store.root), **{"runtime": "local", **kw})


def _check_money(report) -> None:
    assert report.conserved
    assert report.supply == report.config.buyer_funds
    for p in report.parties:
        assert p.after - p.before == p.expected_change, p.name


@pytest.mark.parametrize("ledger", ["memory", "evm"])
def test_trade_settles_and_pays_each_party_its_share(store, ledger) -> None:
    report = run_trade(_config(store, ledger=ledger))
    deal = report.deal
    assert deal.status == "settled", deal.reason
    assert report.errors == {}
    roles = {p.role: p for p in report.parties if p.expected_change}
    assert roles["model_owner"].expected_change == report.config.model_fee
    assert roles["data_owner"].expected_change == report.config.data_fee
    assert {p.name for p in report.parties if p.expected_change > 0} == {"model-owner", "data-owner", "gpu-a"}
    assert deal.result_shape == (len(demo_texts()), 384)
    assert set(deal.refused) == set() and len(deal.bids) == 2  # the CPU-only provider is not invited
    _check_money(report)
    buyer = next(p for p in report.parties if p.role == "buyer")
    own = sum(r.gas_used for r in report.receipts if r.sender == buyer.address)
    assert buyer.gas_used == own and (own > 0) == (ledger == "evm")  # gas per agent, apart from the token
    a, b, sim = report.nearest
    assert sim > 0.6 and a != b  # real embeddings: the closest pair are paraphrases
    provider = next(p for p in report.parties if p.name == "gpu-a").address
    # compute-to-data: the rows stayed in the owner's vault; the one job that read them is logged
    assert [(r["requester"], r["granted"], r["items"]) for r in report.data_access] == [(provider, True, len(demo_texts()))]


def test_same_seed_replays_the_same_trade(store) -> None:
    one, two = run_trade(_config(store, ledger="memory")), run_trade(_config(store, ledger="memory"))
    assert one.deal.deal_id == two.deal.deal_id
    assert one.deal.result_hash == two.deal.result_hash
    assert [p.address for p in one.parties] == [p.address for p in two.parties]
    other = run_trade(_config(store, ledger="memory", seed=8))
    assert other.parties[0].address != one.parties[0].address


@pytest.mark.parametrize("ledger", ["memory", "evm"])
def test_missed_deadline_refunds_the_buyer_in_full(store, ledger) -> None:
    config = _config(store, ledger=ledger, deadline_s=120)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = StallingProvider("gpu-a", Identity.from_seed(config.seed, "gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32)
    report = run_trade(config, agents=agents)
    assert report.deal.status == "refunded"
    assert "deadline" in report.deal.reason
    assert all(p.after == p.before for p in report.parties)  # full refund, nobody paid
    assert [r.op for r in report.deal.receipts] == ["open_escrow", "refund"]
    assert report.conserved


def _started_trade(tmp_path, ledger: str):  # type: ignore[no-untyped-def]
    """The demo's trade on LocalRuntime with a store of its own, its buyer funded, started."""
    config = TradeConfig(runtime="local", ledger=ledger, store_root=str(tmp_path / "store"))
    runtime = build_runtime(config)
    agents = make_agents(config, demo_texts())
    for agent in agents.values():
        runtime.add(agent)
    runtime.ledger.mint(agents["buyer"].address, config.buyer_funds)
    runtime.start()
    return config, runtime, agents


def test_provider_failure_refunds_the_buyer(store, tmp_path) -> None:
    """A tampered model in the provider's store: the job fails, the provider refunds."""
    from agora.tasks import ContentStore

    config, runtime, agents = _started_trade(tmp_path, "evm")
    model_dir = ContentStore(tmp_path / "store").root / agents["model_owner"].model_hash
    (model_dir / "config.json").write_text('{"tampered": true}')
    assert runtime.run(until=lambda: agents["buyer"].all_done(), timeout=3600)
    (deal,) = agents["buyer"].deals.values()
    assert deal.status == "refunded" and "modified" in deal.reason
    assert runtime.ledger.balance_of(agents["buyer"].address) == config.buyer_funds
    assert runtime.ledger.escrow(deal.deal_id).status == "refunded"
    assert runtime.ledger.is_conserved()


def test_a_job_the_vault_refuses_costs_nobody_the_data_fee(store, tmp_path) -> None:
    """The owner's fee is paid at use: drawn by the provider when the vault holds a finished
    result (tasks.vault.ResultHeld). A job that fails there (here the vault's policy no longer
    allows the task) draws nothing: the buyer is refunded in full, nobody else's balance moves."""
    from agora.tasks.vault import AccessPolicy

    config, runtime, agents = _started_trade(tmp_path, "memory")
    owner = agents["data_owner"]
    vault = runtime.executor.vault(owner.vault)
    vault.policies[owner.dataset_hash] = AccessPolicy(price_per_use=config.data_fee, tasks=["generation"])
    assert runtime.run(until=lambda: agents["buyer"].all_done(), timeout=3600)
    (deal,) = agents["buyer"].deals.values()
    assert deal.status == "refunded" and "not allowed" in deal.reason
    assert runtime.ledger.balance_of(agents["buyer"].address) == config.buyer_funds
    assert all(runtime.ledger.balance_of(a.address) == 0 for a in agents.values() if a is not agents["buyer"])
    assert runtime.ledger.escrow(deal.deal_id).drawn == [] and runtime.ledger.is_conserved()


def test_budget_below_fees_means_no_deal_and_no_money_moves(store) -> None:
    report = run_trade(_config(store, ledger="memory", max_price=2 * 10**15))
    assert report.deal.status == "no_award" and "budget" in report.deal.reason
    assert all(p.after == p.before for p in report.parties)
    assert report.conserved


def test_providers_refuse_an_over_budget_job(store) -> None:
    report = run_trade(_config(store, ledger="memory", max_price=3 * 10**15 + 1))
    assert report.deal.status == "no_award"
    assert len(report.deal.refused) == 2 and all("exceeds" in r for r in report.deal.refused.values())


@pytest.mark.ray
@pytest.mark.chain
@pytest.mark.slow
def test_trade_on_ray_with_a_logical_gpu(ray_cluster, store) -> None:
    report = run_trade(TradeConfig(runtime="ray", ledger="evm", store_root=str(store.root)), timeout=240)
    assert report.deal.status == "settled", (report.deal.reason, report.errors)
    assert report.deal.metering["gpu_ids"] in (["0"], ["1"])  # the job ran as a Ray task on a GPU
    assert report.errors == {}
    _check_money(report)


@pytest.mark.ray
@pytest.mark.slow
def test_missed_deadline_on_ray_refunds(ray_cluster, store) -> None:
    config = TradeConfig(runtime="ray", ledger="memory", store_root=str(store.root), deadline_s=4)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = StallingProvider("gpu-a", Identity.from_seed(config.seed, "gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32)
    report = run_trade(config, agents=agents, timeout=120)
    assert report.deal.status == "refunded"
    assert all(p.after == p.before for p in report.parties)
    assert report.conserved


@pytest.mark.anvil
def test_trade_settles_on_a_real_json_rpc_node(store, anvil_url) -> None:
    report = run_trade(_config(store, ledger="evm", rpc_url=anvil_url))
    assert report.deal.status == "settled", report.deal.reason
    assert all(r.gas_used > 0 for r in report.receipts)
    _check_money(report)


@pytest.mark.anvil
def test_missed_deadline_on_anvil_uses_chain_time_travel(store, anvil_url) -> None:
    config = _config(store, ledger="evm", rpc_url=anvil_url, deadline_s=3600)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = StallingProvider("gpu-a", Identity.from_seed(config.seed, "gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32)
    report = run_trade(config, agents=agents, timeout=7200)  # virtual seconds on LocalRuntime
    assert report.deal.status == "refunded"  # an hour passed on chain in well under a second
    assert all(p.after == p.before for p in report.parties) and report.conserved


class DyingProvider(ComputeProvider):
    """Wins, countersigns, is funded, and its process dies as the job starts (a machine lost)."""

    def run_job(self, ctx, job) -> None:
        import os

        os._exit(1)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.chaos
def test_a_provider_that_dies_mid_job_on_ray_is_refunded_then_replaced(ray_cluster, store) -> None:
    """A real process death on Ray: the winning provider's shard dies as its job starts. The
    buyer's deadline refunds that deal on the ledger, the buyer calls the next provider as a new
    deal, and is paid out once; the dead provider gets nothing; no token is made or lost."""
    from agora.agents import Buyer

    config = TradeConfig(runtime="ray", ledger="memory", store_root=str(store.root), deadline_s=6)
    agents = make_agents(config, demo_texts())
    agents["gpu_a"] = DyingProvider("gpu-a", Identity.from_seed(config.seed, "gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=10**15, throughput=32)
    request = agents["buyer"].requests[0].model_copy(update={"retries": 1})
    agents["buyer"] = Buyer("buyer", Identity.from_seed(config.seed, "buyer"), [request])
    runtime = build_runtime(config)
    try:
        for name, agent in agents.items():
            runtime.add(agent, dedicated={} if name == "gpu_a" else None)  # its own shard: only it dies
        buyer = agents["buyer"].address
        runtime.ledger.mint(buyer, config.buyer_funds)
        runtime.start()
        assert runtime.run(until=lambda: runtime.query(buyer, "all_done"), timeout=180)
        first, last = runtime.query(buyer, "deals").values()
        assert first.status == "refunded" and "deadline" in first.reason and first.contract.provider == agents["gpu_a"].address
        assert last.status == "settled" and last.contract.provider == agents["gpu_b"].address
        assert runtime.ledger.balance_of(agents["gpu_a"].address) == 0
        assert config.buyer_funds - runtime.ledger.balance_of(buyer) == last.paid  # paid once
        assert runtime.ledger.is_conserved() and runtime.ledger.total_supply() == config.buyer_funds
    finally:
        runtime.shutdown()
