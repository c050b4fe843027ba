"""The director: the agent that plays a scenario's shocks, on the runtime's own clock.

Shocks are messages like any other, so they reach agents in order with everything else, on the
local runtime's virtual clock or a cluster's wall clock alike, and a seeded run replays them
exactly. Which agents a shock hits is drawn from the run's seed (``shock_targets``), so the
recorder can tell which agents were hit without asking them.
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import BaseModel, ConfigDict

from agora.agents.agent import Agent, Context, on_message
from agora.agents.identity import Identity
from agora.agents.messages import Message
from agora.agents.roles.market_protocol import ShockEnds, ShockStarts
from agora.simulations.scenario import Scenario


class PlannedShock(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    at: float
    kind: str
    factor: float
    duration: float | None
    targets: list[str]  # addresses


class _Fire(Message):
    index: int


class _End(Message):
    index: int


def shock_targets(scenario: Scenario, index: int) -> list[str]:
    """The names of the agents shock ``index`` hits: ``fraction`` of those whose group label or
    role is its target, drawn from the run's seed."""
    shock = scenario.shocks[index]
    names = [n for g in scenario.agents if shock.target in (g.tag(), g.role) for n in g.names()]
    if not names:  # a variant may leave the group out
        return []
    k = max(1, int(round(shock.fraction * len(names))))
    return sorted(random.Random(f"{scenario.seed}:shock:{index}").sample(names, k))


def plan(scenario: Scenario, addresses: dict[str, str]) -> list[PlannedShock]:
    return [
        PlannedShock(index=i, at=s.at, kind=s.kind, factor=s.factor, duration=s.duration, targets=[addresses[n] for n in shock_targets(scenario, i)])
        for i, s in enumerate(scenario.shocks)
    ]


class Director(Agent):
    role = "director"

    def __init__(self, name: str, identity: Identity, shocks: list[PlannedShock], hosts: dict[str, str] | None = None) -> None:
        super().__init__(name, identity)
        self.shocks = list(shocks)
        self.hosts = dict(hosts or {})  # a cohort member's address -> the cohort that hosts it
        self.fired: list[dict[str, Any]] = []
        self.started = 0.0

    def on_start(self, ctx: Context) -> None:
        self.started = ctx.now()
        ctx.registry.register_agent(self.address, self.name, self.role)
        for shock in self.shocks:
            ctx.schedule(shock.at, _Fire(index=shock.index))
            if shock.duration is not None:
                ctx.schedule(shock.at + shock.duration, _End(index=shock.index))

    def _split(self, targets: list[str]) -> tuple[list[str], dict[str, list[str]]]:
        lone: list[str] = []
        hosted: dict[str, list[str]] = {}
        for t in targets:
            if t in self.hosts:
                hosted.setdefault(self.hosts[t], []).append(t)
            else:
                lone.append(t)
        return lone, hosted

    @on_message(_Fire)
    def fire(self, ctx: Context, sender: str, msg: _Fire) -> None:
        if sender == self.address:
            self._announce(ctx, self.shocks[msg.index], start=True)

    @on_message(_End)
    def end(self, ctx: Context, sender: str, msg: _End) -> None:
        if sender == self.address:
            self._announce(ctx, self.shocks[msg.index], start=False)

    def _announce(self, ctx: Context, shock: PlannedShock, start: bool) -> None:
        """Tell every target (a cohort: once, for its members) that ``shock`` starts or ends."""

        def message(members: list[str]) -> ShockStarts | ShockEnds:
            if start:
                return ShockStarts(kind=shock.kind, factor=shock.factor, shock=shock.index, members=members)  # type: ignore[arg-type]  # shock.kind is validated by the scenario to one of the message's kinds
            return ShockEnds(shock=shock.index, members=members)

        lone, hosted = self._split(shock.targets)
        ctx.broadcast(message([]), to=lone)
        for cohort, members in hosted.items():
            ctx.send(cohort, message(members))
        self.fired.append(
            {
                "index": shock.index,
                "kind": shock.kind,
                "at": round(ctx.now() - self.started, 6),
                "targets": len(shock.targets),
                "event": "start" if start else "end",
            }
        )
