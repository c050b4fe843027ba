"""GPU rental: providers rent out GPU time and memory; buyers get matched by what they need.

Two providers: a small card (16 GB, cheap) and a box of three big ones (80 GB each, dearer). One buyer's job needs
40 GB of GPU memory, another's 8 GB, a third's two whole GPUs. Ray knows each node's GPU memory as
a resource (tasks.scheduling.node_resources), so it never places jobs whose memory does not fit;
the registry invites only providers with the memory; the reverse auction weighs price, reputation
and free memory; the two-GPU job runs data-parallel in a placement group; each provider is paid
for the GPU-seconds it metered, never more than it bid.
Run:  python examples/gpu_rental.py   (no GPU needed: Ray's logical GPUs and memory schedule it)
"""

import ray

from agora.agents import Buyer, ComputeProvider, DataOwner, Identity, JobRequest, ModelOwner
from agora.agents.ray import RayRuntime
from agora.chain import MemoryLedger
from agora.simulations.demo import demo_texts, packaged_model_path
from agora.tasks import Resources
from agora.tasks.scheduling import node_resources

MILLI = 10**15
key = lambda name: Identity.from_seed("gpu-rental", name)  # noqa: E731

ray.init(
    address="local", num_cpus=2, num_gpus=4, resources=node_resources(logical_gpu_memory_mb=16_000 + 3 * 80_000), include_dashboard=False, log_to_driver=False
)
runtime = RayRuntime(MemoryLedger, shards=2)
owner = ModelOwner("owner", key("owner"), packaged_model_path(), "all-MiniLM-L6-v2", price_per_call=MILLI)
data = DataOwner("data", key("data"), demo_texts(), "sentences", price_per_use=MILLI, compute_to_data=False)
small = ComputeProvider("small-gpu", key("small-gpu"), gpus=1, gpu_memory_mb=16_000, price_per_second=MILLI, throughput=64)
big = ComputeProvider("big-gpu", key("big-gpu"), gpus=3, gpu_memory_mb=240_000, price_per_second=3 * MILLI, throughput=64)


def ask(gpus, mb):
    return JobRequest(
        model="all-MiniLM-L6-v2",
        dataset="sentences",
        resources=Resources(gpus=gpus, gpu_memory_mb=mb, cpus=0.5),
        max_price=50 * MILLI,
        deadline_s=300,
    )


buyers = {
    "needs 40 GB": Buyer("b40", key("b40"), [ask(1, 40_000)]),
    "needs 8 GB": Buyer("b8", key("b8"), [ask(1, 8_000)]),
    "needs 2 GPUs": Buyer("b2x", key("b2x"), [ask(2, 16_000)]),
}
for agent in (owner, data, small, big, *buyers.values()):
    runtime.add(agent)
for b in buyers.values():
    runtime.ledger.mint(b.address, 100 * MILLI)
runtime.start()
runtime.run(until=lambda: all(runtime.query(b.address, "all_done") for b in buyers.values()), timeout=300)

names = {small.address: "small-gpu", big.address: "big-gpu"}
for label, b in buyers.items():
    deal = runtime.query(b.address, "latest", 0)
    invited = ", ".join(sorted(names[a] for a in deal.invited))
    provider = names.get(deal.contract.provider, "-") if deal.contract else "-"
    line = next((x for x in deal.bill if x["role"] == "provider"), None)
    paid = f"paid {line['amount'] / 1e18:.6f} of a {line['cap'] / 1e18:.6f} AGR bid for {line['basis']}" if line else f"{deal.reason} {deal.refused}"
    print(f"{label:<13} invited [{invited}] -> {provider}: {deal.status}; GPUs {deal.metering.get('gpu_ids')}; {paid}")
print("money conserved:", runtime.ledger.is_conserved())
runtime.shutdown()
ray.shutdown()
