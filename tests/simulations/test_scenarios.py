"""Scenarios: one schema with the population, validated with field paths before anything runs;
per-agent draws that every process draws alike; overrides and variants."""

from __future__ import annotations

import pytest

from agora.simulations.errors import ScenarioError
from agora.simulations.scenario import Dist, Scenario, builtin_names

BASE = {
    "name": "tiny",
    "seed": 1,
    "duration": 40,
    "step": 10,
    "markets": {"gpu": {"mechanism": "cda", "rounds": 4}},
    "agents": [
        {
            "role": "trader",
            "count": 4,
            "name": "s-{i}",
            "label": "sellers",
            "settings": {"market": "gpu", "side": "sell", "units": 2},
            "draws": {"limit": {"uniform": [10, 50]}},
            "strategy": {"kind": "zic"},
        },
        {
            "role": "trader",
            "count": 4,
            "name": "b-{i}",
            "label": "buyers",
            "funds": 10_000,
            "settings": {"market": "gpu", "side": "buy", "units": 2},
            "draws": {"limit": {"uniform": [40, 90]}},
            "strategy": {"kind": "zic"},
        },
    ],
}


def _with(**changes):
    import copy

    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = data
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[keys[-1]] = value
    return data


def test_every_builtin_validates_and_is_listed() -> None:
    assert builtin_names() == ["access", "chaos-economy", "data-market", "full-economy", "gateway-market", "gpu-market", "model-market"]
    for name in builtin_names():
        scenario = Scenario.load(name)
        assert scenario.name == name and scenario.description and scenario.steps() >= 10


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"agents__0__count": -1}, "agents[0].count: Input should be greater than or equal to 0 (got -1)"),
        ({"agents__1__draws": {"limit": {"uniform": [90, 40]}}}, "agents[1].draws.limit: uniform needs low <= high"),
        ({"agents__1__draws": {"limit": {"gamma": [1, 2]}}}, "agents[1].draws.limit: name exactly one distribution"),
        ({"markets": {"gpu": {"mechanism": "barter"}}}, "markets.gpu.mechanism: mechanism is one of call, cda, posted (or one you register) (got 'barter')"),
        ({"ledger": "postgres"}, "ledger: a ledger is memory, embedded or a JSON-RPC URL"),
        ({"step": 100}, "step 100.0 is longer than the duration 40.0"),
        ({"shocks": [{"at": 5, "kind": "outage", "target": "nobody"}]}, "shocks[0] targets 'nobody'"),
        ({"shocks": [{"at": 50, "kind": "outage", "target": "sellers"}]}, "shocks[0] at 50.0 s is not before the end"),
        ({"agents__0__settings": {"market": "cpu", "side": "sell"}}, "agents[0] trades in market 'cpu', which markets does not define"),
        ({"runtime": {"kind": "k8s"}}, "runtime.kind: Input should be 'local' or 'ray' (got 'k8s')"),
        ({"duration": "long"}, "duration: Input should be a valid number"),
    ],
)
def test_a_mistake_names_its_field_and_what_was_expected(change, expected) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.parse(_with(**change), "tiny.yaml")
    assert "tiny.yaml is not a valid scenario" in str(caught.value) and expected in str(caught.value)


def test_a_missing_file_or_bad_yaml_says_so(tmp_path) -> None:
    with pytest.raises(ScenarioError, match="built-ins: access, chaos-economy, data-market"):
        Scenario.load(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match="is not YAML"):
        Scenario.load(tmp_path / "bad.yaml")


def test_draws_depend_on_the_seed_and_the_name_alone() -> None:
    scenario = Scenario.parse(BASE)
    whole = {a.name: a.limit for a, _ in scenario.build()}
    part = {a.name: a.limit for a, _ in scenario.build(only={"b-2", "s-1"})}
    assert part == {"b-2": whole["b-2"], "s-1": whole["s-1"]}  # a shard building a part draws the same
    assert all(10 <= whole[f"s-{i}"] <= 50 and 40 <= whole[f"b-{i}"] <= 90 for i in range(4))
    assert len(set(whole.values())) > 4  # agents draw their own values
    reseeded = {a.name: a.limit for a, _ in Scenario.parse({**BASE, "seed": 2}).build()}
    assert reseeded != whole
    nested = _with(agents__1__settings={"requests": [{"max_price": 1, "model": "m"}]}, agents__1__role="buyer", agents__1__draws={"requests.0.max_price": 5})
    del nested["agents"][1]["strategy"]
    assert _drawn(nested)["requests"] == [{"max_price": 5, "model": "m"}]
    with pytest.raises(ScenarioError, match="agents\\[1\\]: draw 'requests.1.max_price': requests has no item 1"):
        Scenario.parse({**nested, "agents": [nested["agents"][0], {**nested["agents"][1], "draws": {"requests.1.max_price": 5}}]})
    with pytest.raises(ScenarioError, match="settings have no reqests"):
        Scenario.parse({**nested, "agents": [nested["agents"][0], {**nested["agents"][1], "draws": {"reqests.0.max_price": 5}}]})


def _drawn(data):  # the drawn settings of the second group's first agent
    return Scenario.parse(data).agents[1].settings_for("b-0", 1)


def test_distributions_shorthand_and_their_draws() -> None:
    import random

    rng = random.Random(0)
    assert Dist.model_validate(7).draw(rng) == 7 and Dist.model_validate(2.5).draw(rng) == 2.5
    assert Dist.model_validate({"choice": [3, 9]}).draw(rng) in (3, 9)
    normal = [Dist.model_validate({"normal": [100, 10]}).draw(rng) for _ in range(2000)]
    assert 98 < sum(normal) / len(normal) < 102 and all(isinstance(x, int) for x in normal)
    assert Dist.model_validate({"lognormal": [0, 0.5], "integer": False}).mean() == pytest.approx(1.1331, abs=1e-3)


def test_overrides_and_variants_revalidate() -> None:
    scenario = Scenario.load("access")
    variants = scenario.variant_scenarios()
    assert list(variants) == ["open-market", "centralized"]
    central = variants["centralized"]
    assert central.markets["gpu"].mechanism == "posted" and central.agents[1].count == 0 and central.size() == scenario.size() - 40
    bigger = scenario.with_overrides({"agents.low-budget.count": 10, "seed": 9})
    assert bigger.agents[3].count == 10 and bigger.seed == 9
    with pytest.raises(ScenarioError, match="override markets.cpu.mechanism: no field 'cpu'"):
        scenario.with_overrides({"markets.cpu.mechanism": "cda"})
    with pytest.raises(ScenarioError, match="agents\\[3\\].count: Input should be greater than or equal to 0"):
        scenario.with_overrides({"agents.low-budget.count": -5})


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10, 10**12), st.floats(allow_nan=True), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)
_paths = st.sampled_from(
    [
        "name",
        "seed",
        "duration",
        "step",
        "ledger",
        "runtime",
        "markets",
        "shocks",
        "agents",
        "agents__0__count",
        "agents__0__settings",
        "agents__0__draws",
        "agents__1__strategy",
        "agents__0__host",
        "markets__gpu",
        "markets__gpu__rounds",
        "metrics",
        "variants",
        "keys",
    ]
)


@settings(max_examples=200)
@given(st.one_of(_json, st.dictionaries(st.text(max_size=8), _json, max_size=6)))
def test_random_data_is_a_typed_error_or_a_scenario(data) -> None:
    try:
        Scenario.parse(data)
    except ScenarioError:
        pass


@settings(max_examples=200)
@given(_paths, _json)
def test_a_scenario_with_one_field_replaced_by_junk_is_a_typed_error_or_a_scenario(path, value) -> None:
    try:
        scenario = Scenario.parse(_with(**{path: value}))
    except ScenarioError as exc:
        assert "is not a valid scenario" in str(exc)
        return
    assert scenario.steps() >= 1


def test_naming_a_chain_ledger_loads_no_chain() -> None:
    """A scenario's ledger name is checked against chain's list of names without importing web3
    (most of a second, and absent where the chain extra is not installed)."""
    import subprocess
    import sys

    code = "import sys\nfrom agora.simulations.scenario import Scenario\nScenario.load('full-economy').with_overrides({'ledger': 'embedded'})\nprint('web3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
