"""How a shard reaches the other shards: the one seam between a shard and Ray.

A :class:`~agora.agents.ray.shard.Shard` hosts agents, signs and checks batches and keeps its
journal in plain Python; everything it asks of the cluster goes through its :class:`Peers`:
another shard's handle, a delivery call that runs there, which of its calls have finished and
how each ended. :class:`RayPeers` is the real one (named actors, ``.remote``, ``ray.wait``);
:class:`LocalPeers` runs shards in one process, so a shard's hosting, batching, session signing
and journal recovery are tested without a cluster (tests/agents/test_shard.py)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["LocalPeers", "Peers", "RayPeers"]


class Peers(ABC):
    """The shards a shard can reach, and its calls to them."""

    node: str = ""
    """The node this shard runs on (for ``agora status``)."""

    @abstractmethod
    def connect(self, handles: list[Any]) -> None:
        """The deployment's shards, by index, as the runtime made them."""

    @abstractmethod
    def handle(self, index: int, count: int) -> Any:
        """Shard ``index`` of ``count`` (looked up again after :meth:`forget`)."""

    @abstractmethod
    def call(self, handle: Any, method: str, *args: Any) -> Any:
        """Start ``method(*args)`` on the shard ``handle``; returns the call, to wait on."""

    @abstractmethod
    def finished(self, calls: list[Any]) -> list[Any]:
        """Those of ``calls`` that have ended, without waiting."""

    @abstractmethod
    def outcome(self, call: Any) -> None:
        """Raise what an ended call raised (nothing when it returned)."""

    def forget(self) -> None:  # noqa: B027 - peers that cache no handles have none to drop
        """Drop the handles known: a receiver may have been made again elsewhere."""


class RayPeers(Peers):
    """Shards as named Ray actors (``{name}-shard-{i}``), calls as Ray object references."""

    def __init__(self, name: str) -> None:
        import ray

        self.name = name
        self.node = ray.get_runtime_context().get_node_id()
        self._handles: list[Any] = []

    def connect(self, handles: list[Any]) -> None:
        self._handles = list(handles)

    def handle(self, index: int, count: int) -> Any:
        if len(self._handles) < count:  # after a restart: found again by name
            import ray

            self._handles = [ray.get_actor(f"{self.name}-shard-{i}") for i in range(count)]
        return self._handles[index]

    def call(self, handle: Any, method: str, *args: Any) -> Any:
        return getattr(handle, method).remote(*args)

    def finished(self, calls: list[Any]) -> list[Any]:
        import ray

        ready, _ = ray.wait(calls, num_returns=len(calls), timeout=0)
        return list(ready)

    def outcome(self, call: Any) -> None:
        import ray

        ray.get(call)

    def forget(self) -> None:  # noqa: B027 - peers that cache no handles have none to drop
        self._handles = []


class LocalPeers(Peers):
    """Shards in this process: a call runs on a thread of a small pool (as a Ray actor call runs
    beside the caller), and is a :class:`~concurrent.futures.Future`."""

    node = "local"

    def __init__(self, workers: int = 4) -> None:
        self._handles: list[Any] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="local-peer")

    def connect(self, handles: list[Any]) -> None:
        self._handles = list(handles)

    def handle(self, index: int, count: int) -> Any:
        return self._handles[index]

    def call(self, handle: Any, method: str, *args: Any) -> Future[Any]:
        run: Callable[..., Any] = getattr(handle, method)
        return self._pool.submit(run, *args)

    def finished(self, calls: list[Any]) -> list[Any]:
        return [c for c in calls if c.done()]

    def outcome(self, call: Any) -> None:
        call.result()
