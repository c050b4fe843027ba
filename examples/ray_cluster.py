"""The demo's population on a multi-node Ray cluster: the same agents, spread over the nodes.

With ``--address`` it joins an existing cluster; without, it starts a local 3-node cluster
(ray.cluster_utils.Cluster: three raylets on this machine, the head holding one logical GPU), so
the whole path — shards spread over nodes, envelopes batched between them, the job scheduled
on the node with the GPU, payment on the embedded chain — runs anywhere.
Run:  python examples/ray_cluster.py [--address ray://head:10001]
"""

import argparse
from pathlib import Path

import ray

from agora.agents.population import Population
from agora.agents.ray import RayRuntime
from agora.chain import EVMLedger

parser = argparse.ArgumentParser()
parser.add_argument("--address", default=None, help="an existing cluster; default: a local 3-node one")
args = parser.parse_args()
cluster = None
if args.address:
    ray.init(address=args.address)
else:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)

population = Population.load(Path(__file__).resolve().parent.parent / "simulations" / "data" / "demo_population.yaml")
runtime = RayRuntime(EVMLedger.embedded, shards=3)  # shard i on node i mod 3
names = runtime.add_population(population)
runtime.ledger.mint(names["buyer"], 10**18)
runtime.start()  # in file order: owners publish before the buyer looks
ok = runtime.run(until=lambda: runtime.query(names["buyer"], "all_done"), timeout=300)
(deal,) = runtime.query(names["buyer"], "deals").values()
stats = runtime.stats()
print(f"nodes in the cluster: {len(ray.nodes())}; shards on distinct nodes: {len({s['node'] for s in stats})}")
print(f"deal {deal.status} {deal.reason}: embeddings {deal.result_shape}, paid {deal.paid / 1e18:.4f} AGR")
print(f"envelopes between shards: {sum(s['received'] for s in stats)} in {sum(s['calls'] for s in stats)} Ray calls")
print("money conserved:", runtime.ledger.is_conserved())
runtime.shutdown()
ray.shutdown()
if cluster is not None:
    cluster.shutdown()
