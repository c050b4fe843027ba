"""A scenario's economy hosted by a gateway, to try the gateway out (``agora gateway --scenario NAME``).

The agents run on a :class:`~agora.agents.LocalRuntime` whose virtual clock a pump thread keeps in
step with the wall clock, so markets trade, servers answer and deadlines pass in real time while
HTTP requests come in (every touch of the runtime and its registry under one lock: the runtime is
single-threaded by design), or on a RayRuntime of its own. It lives here, not in ``gateway``,
because it runs a scenario: the gateway fronts any :class:`~agora.gateway.market.MarketFront`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from agora.agents import Identity, LocalRuntime
from agora.agents.registry import Registry
from agora.chain import Ledger
from agora.chain.factory import ledger_factory
from agora.gateway.errors import GatewayError
from agora.gateway.market import PumpedFront
from agora.gateway.relay import GatewayAgent
from agora.simulations.runner import PRIOR, populate
from agora.simulations.scenario import Scenario

__all__ = ["HostedMarket", "hosted"]

T = TypeVar("T")


class HostedMarket(PumpedFront):
    """A scenario's agents hosted by the gateway: on a :class:`~agora.agents.LocalRuntime` in this
    process, kept in step with the wall clock, or (``runtime="ray"``, Ray already started or
    joined by the entry point) on a :class:`~agora.agents.ray.RayRuntime`, whose shards keep
    the wall clock themselves. The gateway agent is one more agent of the market either way."""

    def __init__(self, scenario: Any, *, runtime: str = "local", ledger: Ledger | None = None, tick: float = 0.05, tape_size: int = 5000) -> None:
        self.scenario = scenario
        self.kind = "hosted" if runtime == "local" else "ray"
        self.ledger_kind = scenario.ledger if scenario.ledger in ("memory", "embedded") else "rpc"
        identity = Identity.from_seed(scenario.seed, "gateway")
        if runtime == "local":
            self.ledger = ledger or ledger_factory(scenario.ledger, **scenario.ledger_roles())()
            self.registry = Registry(pretrusted=[PRIOR])
            self.runtime: Any = LocalRuntime(
                self.ledger, registry=self.registry, seed=scenario.seed, sign=scenario.runtime.signing, latency=scenario.runtime.latency
            )
        elif runtime == "ray":
            from agora.agents.ray import RayRuntime, ray_is_running

            if not ray_is_running():
                raise GatewayError("a gateway market on Ray needs Ray running: the entry point starts or joins it (agora gateway --runtime ray)")
            self.runtime = RayRuntime(ledger_factory(scenario.ledger, **scenario.ledger_roles()), shards=scenario.runtime.shards, seed=scenario.seed)
            self.ledger, self.registry = self.runtime.ledger, self.runtime.registry
        else:
            raise GatewayError(f"runtime is local or ray, not {runtime!r}", "runtime")
        self._lock = threading.RLock()  # the local runtime is single-threaded; Ray's shards serialize themselves
        self.world = populate(scenario, self.runtime)
        self.local = self.runtime.driven  # in this process: paced by the pump, under one lock
        self.gateway = self.runtime.add(GatewayAgent("gateway", identity), key_seed=scenario.seed)
        self.names = {address: name for name, address in self.world.addresses.items()}
        self.names.update({address: f"exchange-{m}" for m, address in self.world.exchanges.items()})
        self.exchanges, self.buyers = dict(self.world.exchanges), list(self.world.buyers)
        with self._lock:
            self.runtime.start()
        self._wall0 = time.monotonic()
        self._virtual0 = self.runtime.now()  # a driven runtime's clock is kept in step with the wall clock
        self._start_pump(tick if self.local else max(tick, 0.25), tape_size)  # on Ray each drain is a call per exchange

    # -- MarketFront ----------------------------------------------------------------------------
    def locked(self, fn: Callable[[], T]) -> T:
        if not self.local:
            return fn()  # the ledger service runs whole-ledger reads alone
        with self._lock:
            return fn()

    def ask(self, method: str, *args: Any) -> Any:
        if not self.local:
            return self.runtime.query(self.gateway, method, *args)  # runs in the gateway agent's shard
        with self._lock:
            answer = self.runtime.query(self.gateway, method, *args)
        self._wake.set()  # a relayed call waits for the pump: run it now, not at the next tick
        return answer

    def agent(self, address: str) -> dict[str, str] | None:
        if address in self.world.groups:
            return {"name": self.names.get(address, ""), "role": self.world.groups[address][1]}
        if address in self.world.exchanges.values():
            return {"name": self.names.get(address, ""), "role": "exchange"}
        return super().agent(address)

    def close(self) -> None:
        self._stop_pump()
        with self._lock:
            self.runtime.shutdown()

    def _query(self, address: str, method: str, *args: Any) -> Any:
        return self.runtime.query(address, method, *args)

    def _advance(self) -> None:
        if self.local:  # a runtime on the wall clock keeps it itself
            self.runtime.advance(self._virtual0 + (time.monotonic() - self._wall0))


def hosted(name_or_path: str, *, runtime: str = "local", ledger: str | None = None, overrides: dict[str, Any] | None = None) -> HostedMarket:
    """A :class:`HostedMarket` for a built-in scenario name or a scenario file, on the local
    runtime (this process) or on Ray."""
    changes = {"runtime.kind": runtime, **(overrides or {})}
    if ledger is not None:
        changes["ledger"] = ledger
    return HostedMarket(Scenario.load(name_or_path).with_overrides(changes), runtime=runtime)
