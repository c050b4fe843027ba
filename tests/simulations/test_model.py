"""The scripting API: a model owns the seeded generator, the agents and the step loop; agent
sets select and act; reporters collect; the same seed replays the same model."""

from __future__ import annotations

from agora.agents.roles.market_protocol import ShockEnds, ShockStarts
from agora.simulations.model import Model


def _market(seed: int = 3) -> tuple[Model, object, object]:
    model = Model(seed=seed, step=10)
    model.market("gpu", "cda", rounds=10)
    sellers = model.traders(10, "sell", "gpu", limit={"uniform": [10, 60]}, units=2, label="sellers")
    buyers = model.traders(10, "buy", "gpu", limit={"uniform": [40, 100]}, units=2, funds=10_000, label="buyers")
    return model, sellers, buyers


def test_a_model_steps_collects_and_replays() -> None:
    model, sellers, buyers = _market()
    collector = model.collect(
        model_reporters={"volume": lambda m: m.exchange("gpu").stats()["volume"]}, agent_reporters={"traded": "traded", "cash": lambda a: a.cash}
    )
    model.run(5)
    assert model.steps == 5 and len(collector.model_vars["volume"]) == 5
    assert collector.model_vars["volume"] == sorted(collector.model_vars["volume"]) and collector.model_vars["volume"][-1] > 0
    assert len(collector.agent_vars) == 5 * 20 and {"step", "agent", "traded", "cash"} <= set(collector.agent_vars[0])
    assert sum(buyers.get("traded")) == sum(sellers.get("traded")) == model.exchange("gpu").stats()["volume"]
    assert model.ledger.is_conserved() and model.ledger.total_supply() == 100_000
    again, _, _ = _market()
    replay = again.collect(model_reporters={"volume": lambda m: m.exchange("gpu").stats()["volume"]})
    again.run(5)
    assert replay.model_vars["volume"] == collector.model_vars["volume"]


def test_agent_sets_select_shuffle_and_act() -> None:
    model, sellers, buyers = _market()
    assert len(model.agents) == 20 and len(model.agents.select(label="sellers")) == 10
    assert all(a.side == "sell" for a in model.agents.select(lambda a: a.side == "sell"))
    assert len(model.agents.select(role="trader", at_most=3)) == 3
    first, second = sellers.shuffle(), sellers.shuffle()
    assert sorted(a.name for a in first) == sorted(a.name for a in sellers) and [a.name for a in first] != [a.name for a in second]
    assert model.agents.select(label="buyers").do(lambda a: a.side) == ["buy"] * 10
    dark = sellers[:5]
    model.run(1)
    assert dark.tell(ShockStarts(kind="outage")) == 5
    model.run(2)
    assert not any(dark.get("active")) and all(sellers[5:].get("active"))
    before = dark.get("traded")
    model.run(2)
    assert dark.get("traded") == before  # out of the market: no more trades
    dark.tell(ShockEnds())
    model.run(2)
    assert all(dark.get("active")) and sum(dark.get("traded")) >= sum(before)
