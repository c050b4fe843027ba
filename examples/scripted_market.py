"""Script a market in Python, as a Mesa model: the model owns the seeded generator, the agents
and the step loop; select agent sets and act on them. Run: python examples/scripted_market.py"""

from agora.economy.metrics import equilibrium
from agora.simulations.model import Model

model = Model(seed=7, step=10)  # the local runtime, a memory ledger, 10 virtual seconds a step
model.market("gpu", "cda", rounds=20)
sellers = model.traders(30, "sell", "gpu", limit={"uniform": [20, 120]}, units=2, label="providers")
buyers = model.traders(30, "buy", "gpu", limit={"uniform": [40, 160]}, units=2, funds=20_000, label="buyers")
prices = model.collect(model_reporters={"last price": lambda m: m.exchange("gpu").stats()["last_price"]}, agent_reporters={"traded": "traded"})

model.run(10)  # a shock, scripted: half the providers go dark for five steps
from agora.agents.roles.market_protocol import ShockEnds, ShockStarts  # noqa: E402

dark = sellers.shuffle()[:15]
dark.tell(ShockStarts(kind="outage"))
model.run(5)
dark.tell(ShockEnds())
model.run(5)

q, low, high = equilibrium([b.limit for b in buyers for _ in range(2)], [s.limit for s in sellers for _ in range(2)])
cheap = sellers.select(lambda s: s.limit < 50)
print(f"equilibrium: {q} units a step at {low:.0f}-{high:.0f}; last prices {prices.model_vars['last price'][-5:]}")
print(f"{len(cheap)} cheap providers sold {sum(cheap.get('traded'))} units; {sum(buyers.get('traded'))} units bought in all")
print(f"money conserved: {model.ledger.is_conserved()}")
