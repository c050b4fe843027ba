"""Populations as files: validated before any agent exists, built with seed-derived or
phrase-derived keys, and the demo's file gives the demo's agents."""

from __future__ import annotations

from pathlib import Path

import pytest

from agora.agents import Agent, Identity
from agora.agents.population import Population, PopulationError, register_role, roles

DEMO = Path(__file__).resolve().parents[2] / "simulations" / "data" / "demo_population.yaml"


def test_the_demo_file_builds_the_demo_agents_and_trades(store) -> None:
    from agora.simulations.demo import TradeConfig, demo_texts, make_agents, run_trade

    population = Population.load(DEMO)
    built = {agent.name: agent for agent, _ in population.build()}
    config = TradeConfig(runtime="local", ledger="memory", store_root=str(store.root))
    reference = {a.name: a for a in make_agents(config, demo_texts()).values()}
    assert {n: a.address for n, a in built.items()} == {n: a.address for n, a in reference.items()}
    assert type(built["gpu-a"]).__name__ == "ComputeProvider" and built["data-owner"].texts == demo_texts()
    from agora.chain import MemoryLedger

    ledger = MemoryLedger()
    assert Population.fund(population.build(), ledger) == 10**18 == ledger.balance_of(built["buyer"].address)
    report = run_trade(config, agents={("buyer" if n == "buyer" else n): a for n, a in built.items()})
    assert report.deal.status == "settled" and report.conserved


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"agents": [{"role": "buyer", "count": 0}]}, "count"),
        ({"agents": [{"role": "buyer", "count": 2, "name": "same"}]}, "name pattern"),
        ({"agents": [{"role": "buyer", "name": "x"}, {"role": "buyer", "name": "x"}]}, "two agents are named"),
        ({"agents": [{"role": "buyer", "colour": "red"}]}, "colour"),
        ({"version": 2}, "version"),
        ({"agents": [{"role": "buyer", "strategy": {"kind": "psychic"}}]}, "psychic"),
    ],
)
def test_bad_files_are_refused_naming_the_problem(change: dict, complaint: str) -> None:
    with pytest.raises(PopulationError, match=complaint):
        Population.parse({"name": "p", "agents": [{"role": "buyer"}], **change})


def test_unknown_roles_and_bad_settings_fail_before_the_run(tmp_path) -> None:
    with pytest.raises(PopulationError, match="unknown role 'wizard'"):
        Population.parse({"name": "p", "agents": [{"role": "wizard"}]}).build()
    with pytest.raises(PopulationError, match="bad settings"):
        Population.parse({"name": "p", "agents": [{"role": "compute_provider", "settings": {"gpus": 1}}]}).build()
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(PopulationError, match="cannot read"):
        Population.load(tmp_path / "broken.yaml")


class Quoter(Agent):
    role = "quoter"

    def __init__(self, name: str, identity: Identity, side: str = "buy", strategy=None) -> None:
        super().__init__(name, identity)
        self.side, self.strategy = side, strategy


def test_user_roles_groups_strategies_and_phrase_keys(monkeypatch) -> None:
    import random

    register_role("quoter", Quoter)
    assert {"quoter", "trader", "buyer"} <= set(roles())
    spec = {
        "name": "market",
        "seed": 3,
        "agents": [
            {"role": "quoter", "count": 3, "name": "t{i}", "settings": {"side": "sell"}, "strategy": {"kind": "zic", "params": {"ceiling": 300}}},
            {"role": "quoter", "count": 2},
        ],
    }
    population = Population.parse(spec)
    built = population.build()
    assert [a.name for a, _ in built] == ["t0", "t1", "t2", "quoter-0", "quoter-1"] and population.size() == 5
    assert built[0][0].side == "sell" and built[0][0].address == Identity.from_seed(3, "t0").address
    assert built[0][1].strategy.build("sell", random.Random(0)).ceiling == 300
    assert built[0][0].strategy == built[0][1].strategy and built[3][0].strategy is None  # the group's strategy is a setting
    monkeypatch.setenv("AGORA_MNEMONIC", "test test test test test test test test test test test junk")
    phrased = Population.parse({**spec, "keys": {"source": "mnemonic"}}).build()
    assert phrased[0][0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # index 0 of the phrase
    monkeypatch.delenv("AGORA_MNEMONIC")
    with pytest.raises(PopulationError, match="AGORA_MNEMONIC"):
        Population.parse({**spec, "keys": {"source": "mnemonic"}}).build()


def test_roles_by_import_path() -> None:
    built = Population.parse({"name": "p", "agents": [{"role": "tests.agents.test_population:Quoter", "name": "x"}]}).build()
    assert type(built[0][0]) is Quoter
    with pytest.raises(PopulationError, match="cannot import"):
        Population.parse({"name": "p", "agents": [{"role": "nowhere.at_all:Thing"}]}).build()
