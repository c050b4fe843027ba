"""Runtimes host agents. The interface is small and the agent code is the same in each:

- :class:`LocalRuntime`: one process, a virtual clock, deterministic delivery order. Fast, for
  tests and simulations; time jumps to the next event, and the ledger's clock follows it.
- :class:`agents.ray_runtime.RayRuntime`: each agent in a Ray actor, wall clock, for clusters.
"""

from __future__ import annotations

import heapq
import itertools
import time
from abc import ABC, abstractmethod
from typing import Any, Callable

from agents.agent import Agent
from agents.errors import RuntimeFailure
from agents.host import AgentHost
from agents.messages import Envelope
from agents.registry import Registry
from chain import Ledger


class Runtime(ABC):
    ledger: Ledger
    registry: Registry

    @abstractmethod
    def add(self, agent: Agent) -> str:
        """Host ``agent``; returns its address. Add every agent before :meth:`start`."""

    @abstractmethod
    def start(self) -> None:
        """Run each agent's on_start, in the order they were added."""

    @abstractmethod
    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Deliver messages until ``until()`` holds (True) or no progress / time is left (False)."""

    @abstractmethod
    def query(self, address: str, method: str, *args: Any) -> Any:
        """Read an agent's state through one of its public methods or attributes."""

    @abstractmethod
    def errors(self) -> dict[str, list[str]]:
        """Handler failures per agent name: they are logged, never fatal."""

    def shutdown(self) -> None:
        """Release what the runtime holds."""


class LocalRuntime(Runtime):
    """All agents in this process; events ordered by (virtual time, send order)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        registry: Registry | None = None,
        store: Any = None,
        executor: Any = None,
        seed: int | str = 0,
        sign: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.ledger = ledger
        self.registry = registry or Registry()
        from tasks import ContentStore, LocalExecutor

        self.store = store or ContentStore()
        self.executor = executor or LocalExecutor(self.store.root)
        self.seed = seed
        self.sign = sign
        self.latency = latency
        self.clock = float(ledger.now())
        self._hosts: dict[str, AgentHost] = {}
        self._queue: list[tuple[float, int, Envelope]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.clock

    def add(self, agent: Agent) -> str:
        if agent.address in self._hosts:
            raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
        self._hosts[agent.address] = AgentHost(
            agent,
            self.ledger,
            self.registry,
            transport=lambda env: self._push(self.clock + self.latency, env),
            timer=lambda delay, env: self._push(self.clock + delay, env),
            clock=self.now,
            store=self.store,
            executor=self.executor,
            seed=self.seed,
            sign=self.sign,
        )
        return agent.address

    def _push(self, at: float, envelope: Envelope) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), envelope))

    def start(self) -> None:
        for host in self._hosts.values():
            host.start()

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        """Process events in order; ``timeout`` is in virtual seconds from now."""
        limit = None if timeout is None else self.clock + timeout
        while self._queue:
            if until is not None and until():
                return True
            at, _, envelope = self._queue[0]
            if limit is not None and at > limit:
                break
            heapq.heappop(self._queue)
            self.clock = max(self.clock, at)
            self.ledger.sync_time(int(self.clock))  # the ledger follows the virtual clock
            host = self._hosts.get(envelope.target)
            if host is None:
                raise RuntimeFailure(f"message for unknown agent {envelope.target}")
            host.deliver(envelope)
        return until() if until is not None else not self._queue

    def query(self, address: str, method: str, *args: Any) -> Any:
        return self._hosts[address].query(method, *args)

    def agent(self, address: str) -> Agent:
        return self._hosts[address].agent

    def errors(self) -> dict[str, list[str]]:
        return {h.agent.name: list(h.errors) for h in self._hosts.values() if h.errors}


def wait_until(until: Callable[[], bool], timeout: float | None, poll: float = 0.05) -> bool:
    """Poll ``until`` in wall time (runtimes whose agents run elsewhere)."""
    end = None if timeout is None else time.monotonic() + timeout
    while not until():
        if end is not None and time.monotonic() > end:
            return False
        time.sleep(poll)
    return True
