"""Scenarios: a market simulation as a file, validated before anything runs.

A scenario IS a population (agents/population.py: the same groups, roles, keys and funds; one
schema, not two) with what a run needs on top: per-agent draws of any setting from a
distribution, reputation priors, the markets and their mechanisms, the ledger, the runtime, how
long to run and how long a step is, shocks at given times, and variants to compare::

    name: gpu-market
    seed: 7
    duration: 200            # seconds of simulated time (wall time on Ray)
    step: 10                 # one trading period: units refresh, metrics are recorded
    ledger: memory           # memory | embedded | http://127.0.0.1:8545
    runtime: {kind: local}   # local | ray (address: a cluster; shards: N)
    markets:
      gpu: {mechanism: cda, good: gpu-hour, floor: 1, ceiling: 200}
    agents:
      - role: trader
        count: 50
        name: "seller-{i}"
        label: sellers
        settings: {market: gpu, side: sell, units: 2}
        draws: {limit: {uniform: [20, 120]}}    # each seller's cost per unit
        strategy: {kind: zic}
      - role: trader
        count: 50
        name: "buyer-{i}"
        funds: 100000
        settings: {market: gpu, side: buy, units: 2}
        draws: {limit: {uniform: [40, 160]}}    # each buyer's value per unit
        strategy: {kind: zic}
    shocks:
      - {at: 100, kind: outage, target: sellers, fraction: 0.5, duration: 40}

A mistake is reported with its field path and what was expected (``agents[1].draws.limit:
...``), as a ScenarioError, before any agent exists. Draws come from the run's seed and the
agent's name alone, so every process that builds (a part of) the population draws the same.
"""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agora.agents.population import AgentGroup, Population
from agora.simulations.errors import ScenarioError

BUILTIN_DIR = Path(__file__).resolve().parent / "scenarios"


class Dist(BaseModel):
    """One number per agent. In a file: a plain number (fixed), or one of ``{uniform: [low,
    high]}``, ``{normal: [mean, sd]}`` (clipped at 0), ``{lognormal: [mu, sigma]}``,
    ``{choice: [a, b, ...]}``. Money and units are integers, so draws round to ints unless
    ``integer: false``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["fixed", "uniform", "normal", "lognormal", "choice"]
    args: list[float] = Field(min_length=1)
    integer: bool = True

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise ValueError("a distribution is a number or a mapping like {uniform: [low, high]}")
        if isinstance(data, (int, float)):
            return {"kind": "fixed", "args": [data], "integer": isinstance(data, int)}
        if isinstance(data, dict) and "kind" not in data:
            kinds = [k for k in data if k in ("fixed", "uniform", "normal", "lognormal", "choice")]
            if len(kinds) != 1:
                raise ValueError(f"name exactly one distribution of fixed, uniform, normal, lognormal, choice; got {sorted(data)}")
            kind = kinds[0]
            args = data[kind] if isinstance(data[kind], list) else [data[kind]]
            return {"kind": kind, "args": args, **{k: v for k, v in data.items() if k != kind}}
        return data

    @model_validator(mode="after")
    def _arity(self) -> Dist:
        need = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2}.get(self.kind)
        if need is not None and len(self.args) != need:
            raise ValueError(f"{self.kind} takes {need} number(s), got {len(self.args)}")
        if self.kind == "uniform" and self.args[0] > self.args[1]:
            raise ValueError(f"uniform needs low <= high, got {self.args}")
        if self.kind in ("normal", "lognormal") and self.args[1] < 0:
            raise ValueError(f"{self.kind} needs a non-negative spread, got {self.args[1]}")
        return self

    def draw(self, rng: random.Random) -> int | float:
        a = self.args
        if self.kind == "fixed":
            x = a[0]
        elif self.kind == "uniform":
            x = rng.uniform(a[0], a[1])
        elif self.kind == "normal":
            x = max(0.0, rng.gauss(a[0], a[1]))
        elif self.kind == "lognormal":
            x = rng.lognormvariate(a[0], a[1])
        else:
            x = rng.choice(a)
        return int(round(x)) if self.integer else float(x)

    def mean(self) -> float:
        a = self.args
        if self.kind == "fixed":
            return a[0]
        if self.kind == "uniform":
            return (a[0] + a[1]) / 2
        if self.kind == "lognormal":
            return math.exp(a[0] + a[1] ** 2 / 2)
        return a[0] if self.kind == "normal" else sum(a) / len(a)


class ScenarioGroup(AgentGroup):
    """A population group plus per-agent draws (``draws: {setting.path: distribution}``, the
    path dotted into nested settings, like ``requests.0.max_price``), a label that metrics and
    reports group agents by, and a reputation prior (0..1) seeded into the registry's graph."""

    count: int = Field(default=1, ge=0, le=10_000_000, description="0 leaves the group out (a variant without it)")
    draws: dict[str, Dist] = {}
    label: str = ""
    reputation: float | None = Field(default=None, ge=0, le=1)
    host: Literal["agents", "cohort"] = Field(
        default="agents",
        description="cohort: the group's traders share one agent, their state in arrays (agents/roles/cohort.py); call markets only",
    )

    @model_validator(mode="after")
    def _draw_paths(self) -> ScenarioGroup:
        probe = copy.deepcopy(self.settings)
        for path in self.draws:
            _put(probe, path, 0)
        return self

    def tag(self) -> str:
        return self.label or (self.name.replace("-{i}", "").replace("{i}", "") if self.name else self.role)

    def settings_for(self, name: str, seed: int | str) -> dict[str, Any]:
        if not self.draws:
            return self.settings
        rng = random.Random(f"{seed}:{name}:draws")
        nested = any("." in path for path in self.draws)
        settings = copy.deepcopy(self.settings) if nested else dict(self.settings)  # top-level draws replace, never mutate
        for path, dist in sorted(self.draws.items()):
            _put(settings, path, dist.draw(rng))
        return settings


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (dotted; list items by index) in ``tree``; every step but the last must
    exist already, so a misspelt path is refused instead of quietly making a new setting."""
    keys = path.split(".")
    node: Any = tree
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ValueError(f"draw {path!r}: {'.'.join(keys[:depth]) or 'settings'} has no item {key}")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            elif key not in node:
                raise ValueError(f"draw {path!r}: settings have no {'.'.join(keys[: depth + 1])}")
            else:
                node = node[key]
        else:
            raise ValueError(f"draw {path!r}: {'.'.join(keys[:depth])} is not a mapping or a list")


class MarketSpec(BaseModel):
    """One market: its mechanism, what a unit is, and the price range quotes stay in (base
    units per unit). ``cda``: continuous double auction; ``call``: uniform-price call market
    cleared every step; ``posted``: sellers post a price and capacity, buyers take the cheapest
    that suits them; or any mechanism registered with
    :func:`agora.agents.roles.venues.register_venue`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mechanism: str
    good: str = "unit"
    floor: int = Field(default=1, ge=1)
    ceiling: int = Field(default=200, ge=1)
    rounds: int = Field(default=4, ge=1, le=1000, description="rounds of quoting (a call each, in a call market) per step")
    max_messages_per_round: int | None = Field(default=16, ge=1, description="order messages one sender may send in a round; the rest are throttled")

    @field_validator("mechanism")
    @classmethod
    def _known(cls, v: str) -> str:
        from agora.agents.roles.venues import VENUES

        if v not in VENUES:
            raise ValueError(f"mechanism is one of {', '.join(sorted(VENUES))} (or one you register)")
        return v

    @model_validator(mode="after")
    def _range(self) -> MarketSpec:
        if self.floor > self.ceiling:
            raise ValueError(f"floor {self.floor} is above ceiling {self.ceiling}")
        return self


class RuntimeSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    shards: int = Field(default=2, ge=1, le=1024)
    signing: bool = Field(default=False, description="local runtime: sign every envelope (a trusted simulation may not); Ray always signs")
    latency: float = Field(default=0.01, ge=0, description="local runtime: seconds each message takes")
    durable: bool = Field(default=False, description="ray runtime: shards journal their agents (under the run's folder) and come back after a crash")


class Shock(BaseModel):
    """At ``at`` seconds, hit ``fraction`` of the agents labelled (or of the role) ``target``:
    an ``outage`` takes sellers off the market, a ``demand_spike`` multiplies buyers' units by
    ``factor``, a ``price_shock`` multiplies their limits (values, costs) by ``factor``; for
    ``duration`` seconds, or to the end."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: float = Field(ge=0)
    kind: Literal["outage", "demand_spike", "price_shock"]
    target: str = Field(min_length=1)
    fraction: float = Field(default=1.0, gt=0, le=1)
    factor: float = Field(default=1.0, gt=0)
    duration: float | None = Field(default=None, gt=0)


class MetricsSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_every: int = Field(default=1, ge=1, description="record every agent's state every this many steps")
    flush_rows: int = Field(default=65_536, ge=1, description="rows buffered per table before a Parquet row group is written")
    messages: bool = Field(default=False, description="record every message's header, for `agora trace`")


class Scenario(Population):
    """A population with markets, a ledger, a runtime, a clock, shocks and variants."""

    description: str = ""
    agents: list[ScenarioGroup] = Field(min_length=1)  # type: ignore[assignment]  # narrows Population.agents to scenario groups
    markets: dict[str, MarketSpec] = {}
    ledger: str = "memory"
    runtime: RuntimeSpec = RuntimeSpec()
    duration: float = Field(gt=0)
    step: float = Field(gt=0)
    shocks: list[Shock] = []
    metrics: MetricsSpec = MetricsSpec()
    variants: dict[str, dict[str, Any]] = Field(default={}, description="name -> overrides of this scenario, run and reported side by side")
    error: ClassVar[type[ScenarioError]] = ScenarioError

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, v: str) -> str:
        from agora.chain import ChainError, check_ledger_spec

        try:
            return check_ledger_spec(v)  # chain's own list of names; loads no chain
        except ChainError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.step > self.duration:
            raise ValueError(f"step {self.step} is longer than the duration {self.duration}")
        tags = {g.tag() for g in self.agents} | {g.role for g in self.agents}
        for i, shock in enumerate(self.shocks):
            if shock.at >= self.duration:
                raise ValueError(f"shocks[{i}] at {shock.at} s is not before the end ({self.duration} s)")
            if shock.target not in tags:
                raise ValueError(f"shocks[{i}] targets {shock.target!r}; the groups are {sorted(tags)}")
        for i, group in enumerate(self.agents):
            market = group.settings.get("market")
            if market is not None and market not in self.markets:
                raise ValueError(f"agents[{i}] trades in market {market!r}, which markets does not define ({sorted(self.markets)})")
            if group.host == "cohort":
                if group.role != "trader" or market is None or self.markets[market].mechanism != "call":
                    raise ValueError(f"agents[{i}]: a cohort hosts traders of a call market (role trader, a market with mechanism call)")
                if group.strategy is not None and group.strategy.kind not in ("truthful", "zic", "ziu"):
                    raise ValueError(f"agents[{i}]: a cohort quotes truthful, zic or ziu, not {group.strategy.kind}")
        return self

    # -- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """A scenario file, or a built-in by name (``gpu-market``)."""
        file = Path(path)
        if not file.exists() and (BUILTIN_DIR / f"{path}.yaml").exists():
            file = BUILTIN_DIR / f"{path}.yaml"
        try:
            data = yaml.safe_load(file.read_text())
        except OSError as exc:
            known = ", ".join(builtin_names())
            raise ScenarioError(f"no scenario file {path} and no built-in of that name (built-ins: {known}): {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path} is not YAML: {exc}") from None
        scenario = cls.parse(data, str(path))
        assert isinstance(scenario, Scenario)
        scenario._base = file.resolve().parent
        return scenario

    def steps(self) -> int:
        return max(1, int(round(self.duration / self.step)))

    def with_overrides(self, overrides: dict[str, Any], where: str = "overrides") -> Scenario:
        """This scenario with ``{dotted.path: value}`` applied and validated again: what
        variants and sweeps run. A group in ``agents`` is named by its index or its label
        (``agents.sellers.count``)."""
        data = self.model_dump(mode="json")
        for path, value in overrides.items():
            _put_path(data, path, value)
        made = type(self).parse(data, where)
        made._base = self._base
        return made

    def variant_scenarios(self) -> dict[str, Scenario]:
        """Each variant as a scenario of its own (just this one when there are none)."""
        if not self.variants:
            return {"main": self}
        base = self.model_copy(update={"variants": {}})
        base._base = self._base
        return {name: base.with_overrides(o, f"variant {name}") for name, o in self.variants.items()}

    def group_of(self) -> dict[str, ScenarioGroup]:
        """Agent name -> its group."""
        return {name: g for g in self.agents for name in g.names()}


def _put_path(data: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node: Any = data
    for key in keys[:-1]:
        if isinstance(node, list):
            node = node[_index(node, key, path)]
        else:
            if key not in node:
                raise ScenarioError(f"override {path}: no field {key!r} (fields here: {sorted(node)})")
            node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[_index(node, last, path)] = value
    else:
        node[last] = value


def _index(items: list[Any], key: str, path: str) -> int:
    if key.isdigit() and int(key) < len(items):
        return int(key)
    for i, item in enumerate(items):
        if isinstance(item, dict) and key in (item.get("label"), item.get("name"), item.get("role")):
            return i
    raise ScenarioError(f"override {path}: no item {key!r} (by index, label, name or role)")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def builtins() -> dict[str, Scenario]:
    return {name: Scenario.load(name) for name in builtin_names()}
