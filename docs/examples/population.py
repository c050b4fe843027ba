"""A population from a file, hosted in one process: the demo trade's agents on the local runtime.

The file names groups (a role, a name, settings, funds); ``build`` makes each agent with its
key from the file's seed, ``fund`` mints their starting funds, and the runtime runs them on a
virtual clock until the buyer is done. Run:  python docs/examples/population.py
"""

from pathlib import Path

from agora.agents import LocalRuntime, Population
from agora.chain import MemoryLedger

ROOT = Path(__file__).resolve().parent.parent.parent
population = Population.load(ROOT / "simulations" / "data" / "demo_population.yaml")
runtime = LocalRuntime(MemoryLedger(), seed=population.seed)  # one process, a virtual clock

built = population.build()  # [(agent, its group)], in file order: owners publish before the buyer looks
for agent, _group in built:
    runtime.add(agent)
Population.fund(built, runtime.ledger)  # each group's funds, minted on the ledger
buyer = next(agent for agent, group in built if group.role == "buyer")

runtime.start()
runtime.run(until=lambda: runtime.query(buyer.address, "all_done"), timeout=300)
(deal,) = runtime.query(buyer.address, "deals").values()
print(f"{population.name}: {population.size()} agents; deal {deal.status}, paid {deal.paid}, embeddings {deal.result_shape}")
print(f"money conserved: {runtime.ledger.is_conserved()}")
