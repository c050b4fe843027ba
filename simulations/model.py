"""Scripting a population in Python, as Mesa users do: a model owns the seeded random
generator, the agents and the step loop; agent sets are selected and acted on.

A ``Model`` runs the same agents the scenario files and the Ray runtime run, on the local
runtime (one process, a virtual clock, seeded) with a ledger of its choosing::

    model = Model(seed=7, step=10)
    model.market("gpu", "cda", rounds=20)
    model.traders(30, "sell", "gpu", limit={"uniform": [20, 120]}, units=2, label="providers")
    model.traders(30, "buy", "gpu", limit={"uniform": [40, 160]}, units=2, funds=20_000, label="buyers")
    prices = model.collect(model_reporters={"price": lambda m: m.exchange("gpu").stats()["last_price"]})
    model.run(20)
    cheap = model.agents.select(lambda a: a.side == "sell" and a.limit < 50)

Agents act through messages, as everywhere in Agora: ``AgentSet.tell(message)`` sends one
from the model's own controller agent (registered as the run's director, so shocks are
obeyed); ``AgentSet.do`` calls a method on each agent directly, between steps, for scripting.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

from agora.agents import Agent, Identity, LocalRuntime
from agora.agents.messages import Message
from agora.agents.population import StrategyKind
from agora.agents.registry import Registry
from agora.agents.roles.exchange import Exchange
from agora.agents.roles.trader import Trader
from agora.chain import Ledger, MemoryLedger
from agora.economy.orders import Side
from agora.simulations.scenario import Dist


class AgentSet(Sequence[Agent]):
    """An ordered set of agents of one model."""

    def __init__(self, agents: Iterable[Agent], model: Model) -> None:
        self._agents = list(agents)
        self.model = model

    def __len__(self) -> int:
        return len(self._agents)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents)

    def __getitem__(self, index: Any) -> Any:
        got = self._agents[index]
        return AgentSet(got, self.model) if isinstance(index, slice) else got

    def select(
        self, filter: Callable[[Agent], bool] | None = None, *, role: str | None = None, label: str | None = None, at_most: int | None = None
    ) -> AgentSet:  # noqa: A002 - Mesa's name
        """The agents that pass ``filter``, of ``role``, labelled ``label``; at most ``at_most``."""
        chosen = [
            a
            for a in self._agents
            if (role is None or a.role == role) and (label is None or self.model.labels.get(a.address) == label) and (filter is None or filter(a))
        ]
        return AgentSet(chosen[:at_most] if at_most is not None else chosen, self.model)

    def shuffle(self) -> AgentSet:
        """The same agents in an order drawn from the model's generator."""
        agents = list(self._agents)
        self.model.rng.shuffle(agents)
        return AgentSet(agents, self.model)

    def do(self, method: str | Callable[[Agent], Any], *args: Any) -> list[Any]:
        """Call ``method`` (a name, or a function of the agent) on each agent, in order."""
        return [method(a) if callable(method) else getattr(a, method)(*args) for a in self._agents]

    def shuffle_do(self, method: str | Callable[[Agent], Any], *args: Any) -> list[Any]:
        return self.shuffle().do(method, *args)

    def get(self, attribute: str) -> list[Any]:
        return [getattr(a, attribute) for a in self._agents]

    def tell(self, message: Message) -> int:
        """Send ``message`` to each agent from the model's controller; returns how many."""
        return self.model.controller_context().broadcast(message, to=[a.address for a in self._agents])


class _Controller(Agent):
    """The model's own agent: it speaks for the script (registered as the director)."""

    role = "director"

    def on_start(self, ctx: Any) -> None:
        ctx.registry.register_agent(self.address, self.name, self.role)


class DataCollector:
    """Reporters called after every ``every`` steps: model reporters take the model, agent
    reporters an attribute name or a function of the agent; results are kept in lists."""

    def __init__(
        self,
        model_reporters: dict[str, Callable[[Model], Any]] | None = None,
        agent_reporters: dict[str, str | Callable[[Agent], Any]] | None = None,
        every: int = 1,
    ) -> None:
        self.model_reporters = dict(model_reporters or {})
        self.agent_reporters = dict(agent_reporters or {})
        self.every = every
        self.model_vars: dict[str, list[Any]] = {k: [] for k in self.model_reporters}
        self.agent_vars: list[dict[str, Any]] = []
        self.steps: list[int] = []

    def collect(self, model: Model) -> None:
        if model.steps % self.every:
            return
        self.steps.append(model.steps)
        for name, reporter in self.model_reporters.items():
            self.model_vars[name].append(reporter(model))
        for agent in model.agents:
            row = {"step": model.steps, "agent": agent.name}
            for name, agent_reporter in self.agent_reporters.items():
                row[name] = agent_reporter(agent) if callable(agent_reporter) else getattr(agent, agent_reporter, None)
            if self.agent_reporters:
                self.agent_vars.append(row)


class Model:
    """Agents on the local runtime, a seeded generator, a step of ``step`` virtual seconds."""

    def __init__(self, seed: int | str = 0, ledger: Ledger | None = None, step: float = 1.0, latency: float = 0.01, signing: bool = False) -> None:
        self.seed = seed
        self.rng = random.Random(f"{seed}:model")
        self.step_s = float(step)
        self.runtime = LocalRuntime(ledger or MemoryLedger(), registry=Registry(), seed=seed, sign=signing, latency=latency)
        self.agents = AgentSet([], self)
        self.labels: dict[str, str] = {}
        self.exchanges: dict[str, Exchange] = {}
        self.collectors: list[DataCollector] = []
        self.steps = 0
        self._controller = _Controller("model", Identity.from_seed(seed, "model"))
        self._order: list[str] = []  # addresses in the order added: they start in that order
        self._started: set[str] = set()
        self._t0: float | None = None
        self.runtime.add(self._controller)
        self._order.append(self._controller.address)

    @property
    def ledger(self) -> Ledger:
        return self.runtime.ledger

    @property
    def registry(self) -> Registry:
        return self.runtime.registry

    def controller_context(self) -> Any:
        self._start_new()
        return self.runtime.context(self._controller.address)

    # -- building --------------------------------------------------------------------------
    def add(self, agent: Agent, funds: int = 0, label: str = "") -> Agent:
        """Host ``agent`` (started at the next step), minting it ``funds``."""
        self.runtime.add(agent)
        self._order.append(agent.address)
        if funds:
            self.ledger.mint(agent.address, funds)
        if label:
            self.labels[agent.address] = label
        if not isinstance(agent, Exchange):
            self.agents = AgentSet([*self.agents, agent], self)
        return agent

    def market(self, name: str, mechanism: str = "cda", rounds: int = 4, floor: int = 1, ceiling: int = 200) -> Exchange:
        """An exchange for market ``name``, its trading period the model's step."""
        exchange = Exchange(
            f"exchange-{name}",
            Identity.from_seed(self.seed, f"exchange-{name}"),
            name,
            mechanism,
            period=self.step_s,
            rounds=rounds,
            floor=floor,
            ceiling=ceiling,
        )
        self.exchanges[name] = exchange
        self.add(exchange)
        self._start_new()
        return exchange

    def exchange(self, name: str) -> Exchange:
        return self.exchanges[name]

    def traders(
        self,
        n: int,
        side: Side,
        market: str,
        limit: Any,
        units: int = 1,
        strategy: StrategyKind | Literal[""] = "zic",  # "": none, the trader asks its limit
        funds: int = 0,
        label: str = "",
        **settings: Any,
    ) -> AgentSet:
        """``n`` traders, keys from the seed, limits drawn from ``limit`` (a number or a
        distribution as scenario files write it) with the model's generator."""
        from agora.agents.population import StrategySpec

        dist = Dist.model_validate(limit)
        start = len(self.agents)
        made = []
        for i in range(n):
            name = f"{label or side}-{start + i}"
            agent = Trader(
                name,
                Identity.from_seed(self.seed, name),
                market,
                side,
                max(1, int(dist.draw(self.rng))),
                units=units,
                strategy=StrategySpec(kind=strategy) if strategy else None,
                **settings,
            )
            made.append(self.add(agent, funds=funds, label=label))
        return AgentSet(made, self)

    def collect(
        self,
        model_reporters: dict[str, Callable[[Model], Any]] | None = None,
        agent_reporters: dict[str, str | Callable[[Agent], Any]] | None = None,
        every: int = 1,
    ) -> DataCollector:
        collector = DataCollector(model_reporters, agent_reporters, every)
        self.collectors.append(collector)
        return collector

    # -- running ---------------------------------------------------------------------------
    def _start_new(self) -> None:
        new = [a for a in self._order if a not in self._started]
        self._started.update(new)
        self.runtime.start(only=new)
        if self._t0 is None:
            self._t0 = self.runtime.now()

    def step(self) -> None:
        """Advance one step of virtual time (agents added since start now), then collect."""
        self._start_new()
        assert self._t0 is not None
        self.runtime.run(timeout=max(0.0, self._t0 + (self.steps + 1) * self.step_s + 0.05 - self.runtime.now()))
        self.steps += 1
        for collector in self.collectors:
            collector.collect(self)

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()
