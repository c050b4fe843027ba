"""RayRuntime: agents as Ray actors, for a laptop or a cluster.

Each agent lives in an actor (``ray.remote(_RayHost)``, zero CPUs reserved, so the cluster's
cores stay free for jobs); the ledger and the registry each live in an actor too, and agents
reach them through proxies. Envelopes are always signed here: they cross process and machine
boundaries. Library code never calls ``ray.init()``: the caller starts or joins Ray first.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from agents.agent import Agent
from agents.errors import RuntimeFailure
from agents.host import AgentHost
from agents.messages import Envelope
from agents.registry import Registry
from agents.runtime import Runtime, wait_until
from chain import Ledger, MemoryLedger
from chain.remote import LedgerService, RemoteLedger


def _unwrap(fn: Callable[[], Any]) -> Any:
    from ray.exceptions import RayTaskError

    try:
        return fn()
    except RayTaskError as exc:
        raise exc.cause from None


class RemoteProxy:
    """Calls a plain object's methods on its actor, synchronously, with its own errors."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str) -> Callable[..., Any]:
        import ray

        method = getattr(self._handle, name)
        return lambda *args, **kwargs: _unwrap(lambda: ray.get(method.remote(*args, **kwargs)))


class _RayHost:
    """The actor body around an AgentHost: ships envelopes to peer actors, runs timers."""

    def __init__(self, agent: Agent, ledger: Any, registry: Any, store_root: str, seed: int | str) -> None:
        import ray

        from tasks.executor import RayExecutor
        from tasks.store import ContentStore

        self._peers: dict[str, Any] = {}
        self._self = ray.get_runtime_context().current_actor
        self.host = AgentHost(
            agent,
            RemoteLedger(ledger),
            RemoteProxy(registry),  # type: ignore[arg-type]
            transport=self._transport,
            timer=self._timer,
            clock=time.time,
            store=ContentStore(store_root),
            executor=RayExecutor(store_root),
            seed=seed,
            sign=True,
        )

    def set_peers(self, peers: dict[str, Any]) -> None:
        self._peers = peers

    def _transport(self, envelope: Envelope) -> None:
        peer = self._peers.get(envelope.target)
        if peer is None:
            raise RuntimeFailure(f"no agent {envelope.target} in this runtime")
        peer.deliver.remote(envelope)

    def _timer(self, delay: float, envelope: Envelope) -> None:
        timer = threading.Timer(delay, self._self.deliver.remote, args=(envelope,))
        timer.daemon = True
        timer.start()

    def start(self) -> None:
        self.host.start()

    def deliver(self, envelope: Envelope) -> None:
        self.host.deliver(envelope, remote=True)

    def stop(self) -> None:
        self.host.stop()

    def query(self, method: str, *args: Any) -> Any:
        return self.host.query(method, *args)

    def errors(self) -> list[str]:
        return list(self.host.errors)


class RayRuntime(Runtime):
    """Hosts agents as actors on the Ray cluster this process is connected to."""

    def __init__(
        self,
        ledger_factory: Callable[[], Ledger] = MemoryLedger,
        *,
        store_root: str | None = None,
        seed: int | str = 0,
        actor_options: dict[str, Any] | None = None,
    ) -> None:
        import ray

        if not ray.is_initialized():
            raise RuntimeFailure("Ray is not running: call ray.init() (or ray.init(address=...)) in your entry point first")
        service = {"num_cpus": 0, "max_concurrency": 1}
        self._ledger_actor = ray.remote(LedgerService).options(**service).remote(ledger_factory)
        self._registry_actor = ray.remote(Registry).options(**service).remote()
        self.ledger = RemoteLedger(self._ledger_actor)
        self.registry = RemoteProxy(self._registry_actor)  # type: ignore[assignment]
        from tasks.store import default_root

        self.store_root = str(store_root or default_root())  # a folder every node can read
        self.seed = seed
        self.actor_options = {"num_cpus": 0, **(actor_options or {})}
        self._actors: dict[str, Any] = {}
        self._names: dict[str, str] = {}

    def add(self, agent: Agent) -> str:
        import ray

        if agent.address in self._actors:
            raise RuntimeFailure(f"{agent.name} ({agent.address}) is already hosted")
        self._actors[agent.address] = (
            ray.remote(_RayHost)
            .options(**self.actor_options)
            .remote(agent, self._ledger_actor, self._registry_actor, self.store_root, self.seed)
        )
        self._names[agent.address] = agent.name
        return agent.address

    def start(self) -> None:
        import ray

        ray.get([a.set_peers.remote(self._actors) for a in self._actors.values()])
        for actor in self._actors.values():  # in order: owners publish before buyers look
            ray.get(actor.start.remote())

    def run(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> bool:
        return wait_until(until or (lambda: True), timeout)

    def query(self, address: str, method: str, *args: Any) -> Any:
        import ray

        return _unwrap(lambda: ray.get(self._actors[address].query.remote(method, *args)))

    def errors(self) -> dict[str, list[str]]:
        import ray

        found = ray.get([a.errors.remote() for a in self._actors.values()])
        return {self._names[addr]: errs for addr, errs in zip(self._actors, found) if errs}

    def shutdown(self) -> None:
        import ray

        try:  # on_stop hooks first, then the actors go
            ray.get([a.stop.remote() for a in self._actors.values()], timeout=30)
        except Exception:  # noqa: BLE001 - a dead actor must not keep the others running
            pass
        for actor in [*self._actors.values(), self._ledger_actor, self._registry_actor]:
            ray.kill(actor)
        self._actors.clear()
